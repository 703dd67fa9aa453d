"""Run the dbt project in ``dbt_transforms/`` programmatically (no kfp here).

``run_dbt`` runs ``dbt build`` (models and their data tests) against a warehouse URI:
``duckdb://...`` selects the ``duckdb`` target of ``dbt_transforms/profiles.yml`` and
``bigquery://PROJECT`` the ``bigquery`` one. The profile reads everything from
environment variables, which are set here for the duration of one call and then
restored, so the committed profile holds no paths and no secrets.

dbt keeps process-wide state (flags, the adapter registry, ``os.environ``), so runs in
one process are serialised by a lock; runs in separate processes do not collide because
each call gets its own temporary ``--target-path`` and ``--log-path``.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from components.artifacts import TableRef
from components.paths import project_dir as _project_dir
from components.versions import table_version
from components.warehouse import AUDIT_SCHEMA, RAW_SCHEMA, WarehouseURI, duckdb_settings, ident, parse_uri

MART = "labeled_projects"
TARGETS = ("duckdb", "bigquery")
# Statuses of a node that broke the build (a skipped node is a consequence, not a cause).
_BROKEN = {"error": "errored", "fail": "failed"}

_RUN_LOCK = threading.RLock()


class DbtTransformError(RuntimeError):
    """dbt did not build cleanly; the message names every failing model and test.

    ``result`` holds the run (for its Markdown summary) when dbt got as far as running nodes.
    """

    def __init__(self, message: str, result: DbtResult | None = None) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class NodeResult:
    """The outcome of one dbt node (model or data test) in a run."""

    unique_id: str
    name: str
    resource_type: str  # "model" | "test" | ...
    status: str  # "success" | "pass" | "fail" | "warn" | "error" | "skipped" | ...
    message: str
    failures: int | None
    execution_time: float
    # A generic data test's kind and what it tests, e.g. ("relationships", "stg_tags.id").
    test: str = ""
    tested: str = ""

    @property
    def broken(self) -> bool:
        return self.status in _BROKEN

    def describe(self) -> str:
        """One line naming the node and why it broke, e.g. ``test unique_x_id failed: 3 failures``.

        A generic test also names its kind and column: ``... failed: 2 failures
        (relationships on stg_tags.id)``.
        """
        verb = _BROKEN.get(self.status, self.status)
        if self.resource_type == "test" and self.failures:
            noun = "failure" if self.failures == 1 else "failures"
            what = f" ({self.test} on {self.tested})" if self.test and self.tested else ""
            return f"test {self.name} {verb}: {self.failures} {noun}{what}"
        detail = " ".join((self.message or "").split())
        return f"{self.resource_type} {self.name} {verb}" + (f": {detail}" if detail else "")


@dataclass(frozen=True)
class DbtResult:
    """What one ``dbt build`` did, and what the mart holds afterwards."""

    success: bool
    invocation_id: str
    warehouse: str  # the warehouse URI, normalised (components.warehouse.WarehouseURI)
    target: str
    target_schema: str
    nodes: tuple[NodeResult, ...] = ()
    rows: int | None = None  # rows of <target_schema>.labeled_projects when it was built
    data_version: str = ""  # content hash of the mart (components.versions.table_version)
    error: str = ""  # an error raised before any node ran (e.g. a compilation error)

    @property
    def failed(self) -> list[NodeResult]:
        return [n for n in self.nodes if n.broken]

    @property
    def skipped(self) -> list[NodeResult]:
        return [n for n in self.nodes if n.status == "skipped"]

    def failure_message(self) -> str:
        """Names each failing model/test (and what was skipped because of them)."""
        if self.error:
            return f"dbt build did not run: {self.error}"
        parts = [n.describe() for n in self.failed]
        if self.skipped:
            parts.append("skipped: " + ", ".join(n.name for n in self.skipped))
        return "dbt build failed: " + ("; ".join(parts) or "no node reported a failure")

    def summary_markdown(self) -> str:
        """A Markdown report of the run: one table row per model and test."""
        state = "succeeded" if self.success else "failed"
        lines = [
            f"## dbt build {state}",
            "",
            f"Target `{self.target}`, schema `{self.target_schema}`, invocation `{self.invocation_id}`.",
            "",
        ]
        if self.rows is not None:
            lines += [
                f"`{self.target_schema}.{MART}`: {self.rows} rows, data version `{self.data_version}`.",
                "",
            ]
        if not self.success:
            lines += [f"**{_md_cell(self.failure_message())}**", ""]
        lines += [
            "| node | type | status | failures | time (s) | message |",
            "|---|---|---|---:|---:|---|",
        ]
        for n in self.nodes:
            failures = "" if n.failures is None else str(n.failures)
            lines.append(
                f"| {n.name} | {n.resource_type} | {n.status} | {failures} "
                f"| {n.execution_time:.2f} | {_md_cell(n.message)} |"
            )
        return "\n".join(lines) + "\n"


def _md_cell(text: str | None) -> str:
    return " ".join((text or "").split()).replace("|", "\\|")


@contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of a block, then restore them exactly."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def _close_duckdb() -> None:
    """Release the DuckDB file dbt-duckdb keeps open after a run.

    dbt-duckdb caches one database handle per process (``DuckDBConnectionManager._ENV``)
    and only drops it at exit; while it lives, the file stays locked and a second
    connection with another configuration (e.g. read-only) fails in this process.
    """
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager as Manager

    with Manager._LOCK:
        if Manager._ENV is not None:
            Manager._ENV.close()
            Manager._ENV = None


def _duckdb_env(path: str | Path) -> dict[str, str]:
    """The profile's DuckDB variables: the file, and the memory limit and spill folder every
    connection to the warehouse uses (components.warehouse.duckdb_settings)."""
    # Always absolute: dbt resolves a relative path against its own cwd.
    resolved = Path(path).expanduser().resolve()
    settings = duckdb_settings(resolved)
    return {
        "DBT_DUCKDB_PATH": str(resolved),
        "DBT_DUCKDB_MEMORY_LIMIT": str(settings["memory_limit"]),
        "DBT_DUCKDB_TEMP_DIR": str(settings["temp_directory"]),
    }


def _target_env(wh: WarehouseURI, target_schema: str) -> dict[str, str]:
    env = {"DBT_TARGET_SCHEMA": target_schema}
    if wh.kind == "duckdb":
        env |= _duckdb_env(wh.path)
    else:
        env["DBT_BIGQUERY_PROJECT"] = wh.project
        if wh.location:
            env["DBT_BIGQUERY_LOCATION"] = wh.location
    return env


def _invoke(
    command: str,
    *,
    project: Path,
    target: str,
    env: Mapping[str, str],
    raw_schema: str,
    extra: list[str] | None = None,
) -> tuple[Any, str]:
    """Run one dbt command in-process; returns (dbtRunnerResult, invocation id)."""
    from dbt.cli.main import dbtRunner
    from dbt_common.invocation import get_invocation_id

    from components import warehouse_lock

    # dbt-duckdb opens the warehouse file itself: take the write turn around the whole command.
    turn: Any = nullcontext()
    if target == "duckdb":
        purpose = f"dbt {command} into {env.get('DBT_TARGET_SCHEMA', '?')}"
        turn = warehouse_lock.turn(env["DBT_DUCKDB_PATH"], write=True, purpose=purpose)
    with (
        _RUN_LOCK,
        tempfile.TemporaryDirectory(prefix="dbt-", ignore_cleanup_errors=True) as tmp,
        _environ({**env, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}),
        turn,
    ):
        args = [
            command,
            "--project-dir",
            str(project),
            "--profiles-dir",
            str(project),
            "--target",
            target,
            "--target-path",
            str(Path(tmp) / "target"),
            "--log-path",
            str(Path(tmp) / "logs"),
            "--vars",
            json.dumps({"raw_schema": raw_schema}),
            # The temp target holds no saved manifest; say so instead of warning about it.
            "--no-partial-parse",
            "--no-use-colors",
            *(extra or []),
        ]
        try:
            res = dbtRunner().invoke(args)
            return res, get_invocation_id()
        finally:
            if target == "duckdb":
                _close_duckdb()


def _tested(node: Any) -> tuple[str, str]:
    """A generic test's kind and the ``model.column`` it tests; ("", "") for anything else."""
    metadata = getattr(node, "test_metadata", None)
    column = getattr(node, "column_name", None)
    model = str(getattr(node, "attached_node", None) or "").rsplit(".", 1)[-1]
    if metadata is None or not column or not model:
        return "", ""
    return str(metadata.name), f"{model}.{column}"


def _node_results(run: Any) -> tuple[NodeResult, ...]:
    nodes = []
    for r in getattr(run, "results", None) or []:
        node = r.node
        test, tested = _tested(node)
        nodes.append(
            NodeResult(
                unique_id=node.unique_id,
                name=node.name,
                resource_type=str(getattr(node.resource_type, "value", node.resource_type)),
                status=str(getattr(r.status, "value", r.status)),
                message=r.message or "",
                failures=r.failures,
                execution_time=float(r.execution_time or 0.0),
                test=test,
                tested=tested,
            )
        )
    return tuple(nodes)


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
    with _RUN_LOCK, _build_turn(wh, target_schema):
        if wh.kind == "duckdb" and source_versions:
            _check_sources(wh, raw_schema, source_versions)
        res, invocation_id = _invoke(
            "build",
            project=project.resolve(),
            target=target,
            env=_target_env(wh, target_schema),
            raw_schema=raw_schema,
            extra=["--select", select] if select else [],
        )
        nodes = _node_results(res.result)
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
        if any(n.resource_type == "model" and n.name == MART and n.status == "success" for n in nodes):
            # dbt's handle on the DuckDB file is closed by now (see _invoke). The mart is
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


def _throwaway_service_account(folder: Path, project: str) -> Path:
    """A syntactically valid service-account key that grants nothing.

    Opening a dbt-bigquery connection builds credentials (offline) but fetches no token
    until a query runs; ``compile`` with ``--no-populate-cache --no-introspect`` runs none.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    info = {
        "type": "service_account",
        "project_id": project,
        "private_key_id": "compile-check",
        "private_key": pem,
        "client_email": f"compile-check@{project}.iam.gserviceaccount.com",
        "client_id": "0",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    path = folder / "compile-check-key.json"
    path.write_text(json.dumps(info))
    return path


def compile_only(
    target: str = "bigquery",
    *,
    project_dir: str | Path | None = None,
    target_schema: str = AUDIT_SCHEMA,
    raw_schema: str = RAW_SCHEMA,
    tests: bool = False,
) -> dict[str, str]:
    """Compile the models (and with ``tests``, the data tests) for a target without reaching any warehouse.

    This is how the ``bigquery`` target is checked on machines without BigQuery.
    ``dbt parse`` needs no connection but renders no model SQL; ``dbt compile`` opens a
    connection (dbt-bigquery fails at once without credentials), so it runs against a
    dummy project with a throwaway service-account key and with cache population and
    introspective queries off: credentials are built offline and no query is ever sent.
    For ``duckdb`` the connection is a scratch file in a temporary folder.

    Returns:
        Compiled SQL of every model (and data test), by node name.

    Raises:
        DbtTransformError: the project does not parse or compile for that target.
    """
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; use one of {', '.join(TARGETS)}")
    ident(target_schema)
    project = Path(project_dir) if project_dir else _project_dir("dbt_transforms")
    with tempfile.TemporaryDirectory(prefix="dbt-compile-") as tmp:
        env: dict[str, str] = {"DBT_TARGET_SCHEMA": target_schema}
        if target == "bigquery":
            project_id = "compile-check"
            env |= {
                "DBT_BIGQUERY_PROJECT": project_id,
                "DBT_BIGQUERY_METHOD": "service-account",
                "DBT_BIGQUERY_KEYFILE": str(_throwaway_service_account(Path(tmp), project_id)),
            }
        else:
            env |= _duckdb_env(Path(tmp) / "compile.duckdb")
        res, _ = _invoke(
            "compile",
            project=project.resolve(),
            target=target,
            env=env,
            raw_schema=raw_schema,
            extra=["--no-populate-cache", "--no-introspect"],
        )
    if not res.success:
        nodes = _node_results(res.result)
        detail = "; ".join(n.describe() for n in nodes if n.broken) or " ".join(str(res.exception).split())
        raise DbtTransformError(f"dbt compile for target {target!r} failed: {detail}")
    kinds = {"model", "test"} if tests else {"model"}
    return {
        r.node.name: r.node.compiled_code
        for r in res.result.results
        if str(getattr(r.node.resource_type, "value", r.node.resource_type)) in kinds
    }
