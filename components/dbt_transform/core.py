"""Build the labeled_projects mart with dbt on a warehouse: ``run_dbt`` (no kfp here).

``run_dbt`` runs ``dbt build`` (models and their data tests) against a warehouse URI:
``duckdb://...`` selects the ``duckdb`` target of ``dbt_transforms/profiles.yml`` and
``bigquery://PROJECT`` the ``bigquery`` one, in the warehouse's write turn, once the raw
tables are known to hold what this run's syncs loaded (one version of the source:
:func:`check_one_source`). How one dbt command runs: :mod:`.invoke`; what it reports:
:mod:`.results`; the offline compile check: :mod:`.compile`.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

from components.artifacts import TableRef
from components.dbt_transform.invoke import RUN_LOCK, invoke, target_env
from components.dbt_transform.results import MART, DbtResult, DbtTransformError, node_results
from components.paths import project_dir as _project_dir
from components.versions import table_version
from components.warehouse import AUDIT_SCHEMA, RAW_SCHEMA, WarehouseURI, ident, parse_uri


def check_one_source(refs: Mapping[str, TableRef]) -> str:
    """The fingerprint of the source every raw table was loaded from, once they agree.

    The embedded loader records, in each table reference, the fingerprint of the source
    pair it read (``source_fingerprint``). The two syncs of a run read the folder at two
    times: if it was rewritten in between, joining their tables would pair one version's
    projects with another's tags, so the transform refuses.

    Args:
        refs: Raw table name -> the reference its sync wrote.

    Returns:
        The agreed fingerprint; "" when a sync recorded none (an Airbyte server sync reads
        the source itself, and only Airbyte knows what it read).

    Raises:
        DbtTransformError: The syncs read different versions of the source.
    """
    from tagifai.sources import SourceFingerprint

    fingerprints = {name: ref.source_fingerprint for name, ref in sorted(refs.items())}
    if not all(fingerprints.values()):
        return ""
    if len(set(fingerprints.values())) == 1:
        return next(iter(fingerprints.values()))
    files = {name: SourceFingerprint.files_of(f) for name, f in fingerprints.items()}
    names = sorted({file for digests in files.values() for file in digests})
    changed = [n for n in names if len({digests.get(n) for digests in files.values()}) > 1]
    loaded = "; ".join(f"{name} was loaded from {f}" for name, f in fingerprints.items())
    raise DbtTransformError(
        f"the source changed during the run: {loaded} ({', '.join(changed) or 'the files'} changed "
        "between the syncs); nothing was transformed: run again to load one version of the source"
    )


def run_dbt(
    warehouse_uri: str,
    *,
    target_schema: str = AUDIT_SCHEMA,
    select: str | None = None,
    project_dir: str | Path | None = None,
    target: str | None = None,
    raw_schema: str = RAW_SCHEMA,
    source_versions: Mapping[str, str] | None = None,
    docs_path: str | Path | None = None,
) -> DbtResult:
    """Run ``dbt build`` on a warehouse and report every model and test.

    Args:
        warehouse_uri: ``duckdb:///abs/file.duckdb`` (or a path) or ``bigquery://PROJECT``.
        target_schema: Schema (BigQuery dataset) the models build into.
        select: A dbt ``--select`` expression; all models and tests when None.
        project_dir: The dbt project; ``dbt_transforms/`` of this checkout or image by default.
        target: Profile target; defaults to the URI's kind and must match it.
        raw_schema: Schema holding the raw ``projects`` and ``tags`` tables.
        source_versions: Raw table -> the data version this run's sync recorded (DuckDB):
            checked, inside the write turn that dbt's build runs in, before anything is built.
        docs_path: Where to write dbt's documentation site as one offline page (``dbt docs
            generate --static``: models, tests, columns and the lineage graph) after a clean build.

    Returns:
        The run: per-node results, dbt's invocation id, and the mart's rows and data version.

    Raises:
        DbtTransformError: a model or test failed or errored (each one is named), or dbt
            could not run at all (bad project, no connection).
    """
    wh = parse_uri(warehouse_uri)
    ident(target_schema)
    ident(raw_schema)
    if target_schema.lower() == RAW_SCHEMA.lower():
        # Write-audit-publish: dbt builds where nobody reads; only publish writes the published
        # schema, and only what was validated.
        raise DbtTransformError(
            f"target schema {target_schema!r} is the published schema: dbt must build into an audit "
            f"schema (default {AUDIT_SCHEMA!r}) that publish swaps in after validation"
        )
    target = target or wh.kind
    if target != wh.kind:
        raise ValueError(f"target {target!r} does not match warehouse {warehouse_uri!r} ({wh.kind})")
    if wh.kind == "duckdb" and not Path(wh.path).expanduser().is_file():
        raise DbtTransformError(f"DuckDB warehouse {wh.path} does not exist: run airbyte_sync first")
    project = Path(project_dir) if project_dir else _project_dir("dbt_transforms")

    # Held until the mart is read: another run in this process must not reopen the file meanwhile,
    # and (the write turn) no other process: the sources are checked, the mart built and hashed
    # without anyone writing in between.
    with RUN_LOCK, _build_turn(wh, target_schema):
        if wh.kind == "duckdb" and source_versions:
            _check_sources(wh, raw_schema, source_versions)

        def dbt(command: str, **options: Any) -> tuple[Any, str]:
            env = target_env(wh, target_schema)
            return invoke(
                command, project=project.resolve(), target=target, env=env, raw_schema=raw_schema, **options
            )

        res, invocation_id = dbt("build", extra=["--select", select] if select else [])
        nodes = node_results(res.result)
        error = ""
        if not nodes and not res.success:  # dbt stopped before running any node
            error = " ".join(str(res.exception or "dbt failed without reporting a cause").split())
        result = DbtResult(
            success=bool(res.success),
            invocation_id=invocation_id,
            warehouse=str(wh),
            target=target,
            target_schema=target_schema,
            nodes=nodes,
            error=error,
        )
        if not result.success:
            raise DbtTransformError(result.failure_message(), result)
        if docs_path is not None:
            docs, _ = dbt("docs generate", extra=["--static"], keep={"static_index.html": Path(docs_path)})
            if not docs.success:
                raise DbtTransformError(
                    f"dbt built the models, but its docs failed: {docs.exception}", result
                )
        if any(n.resource_type == "model" and n.name == MART and n.status == "success" for n in nodes):
            # dbt's handle on the DuckDB file is closed by now (see invoke). The mart is
            # hashed chunk by chunk, never read whole.
            rows, version = table_version(str(wh), target_schema, MART)
            result = replace(result, rows=rows, data_version=version)
    return result


def _build_turn(wh: WarehouseURI, target_schema: str) -> Any:
    """The warehouse's write turn for a whole build (DuckDB); nothing for BigQuery."""
    if wh.kind != "duckdb":
        return nullcontext()
    from components import warehouse_lock

    return warehouse_lock.turn(wh.path, write=True, purpose=f"dbt build into {target_schema}")


def _check_sources(wh: WarehouseURI, raw_schema: str, versions: Mapping[str, str]) -> None:
    """Every raw table still holds what this run's sync loaded (another run may have loaded since)."""
    from components.versions import TableChanged, check_table_version
    from components.warehouse import duckdb_connect

    with duckdb_connect(wh.path, read_only=True, purpose="check the raw tables") as con:
        for table, version in sorted(versions.items()):
            try:
                check_table_version(con, raw_schema, table, version, "transformed")
            except TableChanged as exc:
                raise DbtTransformError(str(exc)) from None
