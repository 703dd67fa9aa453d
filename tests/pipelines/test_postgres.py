"""The cluster's PostgreSQL, for real: the manifests' init script, run by the ``postgres_server``
fixture against a PostgreSQL server of the tests' own (Debian's ``postgresql``), leaves two
databases that only their own role can open, and only with its password."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INIT = ROOT / "manifests" / "base" / "postgres" / "initdb" / "10-kfp-mlops.sh"


def test_each_role_opens_its_own_database_with_its_password(postgres_server) -> None:
    for role in ("mlflow", "optuna"):
        [(user, database)] = postgres_server.query(role, "select current_user, current_database()")
        assert (user, database) == (role, role)


def test_a_connection_without_the_password_or_to_the_other_database_is_refused(postgres_server) -> None:
    import psycopg

    server = postgres_server
    env_password = os.environ.pop("PGPASSWORD", None)  # libpq would read it
    try:
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(host=server.host, port=server.port, user="optuna", dbname="optuna")
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(
                host=server.host, port=server.port, user="optuna", dbname="optuna", password="wrong"
            )
    finally:
        if env_password is not None:
            os.environ["PGPASSWORD"] = env_password
    # A step pod holds the optuna password: it still cannot open the model registry's database.
    with pytest.raises(psycopg.OperationalError, match='permission denied for database "mlflow"'):
        psycopg.connect(
            host=server.host,
            port=server.port,
            user="optuna",
            dbname="mlflow",
            password=server.passwords["optuna"],
        )


def test_a_url_without_a_password_connects_through_pgpassword(postgres_server, monkeypatch) -> None:
    # What the pods do: the URL names no password, libpq takes it from PGPASSWORD.
    from sqlalchemy import create_engine, text

    monkeypatch.setenv("PGPASSWORD", postgres_server.passwords["optuna"])
    engine = create_engine(postgres_server.url("optuna"))
    try:
        with engine.connect() as con:
            assert con.execute(text("select current_user")).scalar() == "optuna"
    finally:
        engine.dispose()


@pytest.mark.parametrize("empty", ["MLFLOW_DB_PASSWORD", "OPTUNA_DB_PASSWORD"])
def test_the_init_script_refuses_an_empty_password_before_creating_anything(
    empty: str, tmp_path: Path
) -> None:
    # psql is never reached: a fake one on the PATH would record a call.
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "psql").write_text(f"#!/bin/sh\ntouch {tmp_path}/psql-called\n")
    (fake / "psql").chmod(0o755)
    env = {"PATH": f"{fake}:/usr/bin:/bin", "MLFLOW_DB_PASSWORD": "a", "OPTUNA_DB_PASSWORD": "b", empty: ""}
    proc = subprocess.run(["/bin/sh", str(INIT)], capture_output=True, text=True, env=env, timeout=30)
    assert proc.returncode != 0
    assert f"{empty}: is empty: set it in Secret postgres-credentials" in proc.stderr
    assert not (tmp_path / "psql-called").exists()
