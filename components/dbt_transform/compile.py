"""The dbt project compiled for a target without reaching any warehouse (the BigQuery target's check)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from components.dbt_transform.invoke import duckdb_env, invoke
from components.dbt_transform.results import DbtTransformError, node_results
from components.paths import project_dir as _project_dir
from components.warehouse import AUDIT_SCHEMA, RAW_SCHEMA, ident

TARGETS = ("duckdb", "bigquery")


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
            env |= duckdb_env(Path(tmp) / "compile.duckdb")
        res, _ = invoke(
            "compile",
            project=project.resolve(),
            target=target,
            env=env,
            raw_schema=raw_schema,
            extra=["--no-populate-cache", "--no-introspect"],
        )
    if not res.success:
        nodes = node_results(res.result)
        detail = "; ".join(n.describe() for n in nodes if n.broken) or " ".join(str(res.exception).split())
        raise DbtTransformError(f"dbt compile for target {target!r} failed: {detail}")
    kinds = {"model", "test"} if tests else {"model"}
    return {
        r.node.name: r.node.compiled_code
        for r in res.result.results
        if str(getattr(r.node.resource_type, "value", r.node.resource_type)) in kinds
    }
