"""One dbt command, run in-process, with its target's settings passed through the environment.

The profile (``dbt_transforms/profiles.yml``) reads everything from environment
variables, which are set here for the duration of one call and then restored, so the
committed profile holds no paths and no secrets.

dbt keeps process-wide state (flags, the adapter registry, ``os.environ``), so runs in
one process are serialised by a lock (:data:`RUN_LOCK`); runs in separate processes do not
collide because each call gets its own temporary ``--target-path`` and ``--log-path``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from components.warehouse import WarehouseURI, duckdb_settings

RUN_LOCK = threading.RLock()


@contextmanager
def environ(values: Mapping[str, str]) -> Iterator[None]:
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


def duckdb_env(path: str | Path) -> dict[str, str]:
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


def target_env(wh: WarehouseURI, target_schema: str) -> dict[str, str]:
    env = {"DBT_TARGET_SCHEMA": target_schema}
    if wh.kind == "duckdb":
        env |= duckdb_env(wh.path)
    else:
        env["DBT_BIGQUERY_PROJECT"] = wh.project
        if wh.location:
            env["DBT_BIGQUERY_LOCATION"] = wh.location
    return env


def invoke(
    command: str,
    *,
    project: Path,
    target: str,
    env: Mapping[str, str],
    raw_schema: str,
    extra: list[str] | None = None,
    keep: Mapping[str, Path] | None = None,
) -> tuple[Any, str]:
    """Run one dbt command (``build``, ``docs generate``) in-process; returns
    (dbtRunnerResult, invocation id). `keep` copies files of dbt's target folder (a temporary
    one) out before it is removed: ``{"static_index.html": destination}``."""
    from dbt.cli.main import dbtRunner
    from dbt_common.invocation import get_invocation_id

    from components import warehouse_lock

    # dbt-duckdb opens the warehouse file itself: take the write turn around the whole command.
    turn: Any = nullcontext()
    if target == "duckdb":
        purpose = f"dbt {command} into {env.get('DBT_TARGET_SCHEMA', '?')}"
        turn = warehouse_lock.turn(env["DBT_DUCKDB_PATH"], write=True, purpose=purpose)
    with (
        RUN_LOCK,
        tempfile.TemporaryDirectory(prefix="dbt-", ignore_cleanup_errors=True) as tmp,
        environ({**env, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}),
        turn,
    ):
        args = [
            *command.split(),
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
            for name, destination in (keep or {}).items():
                made = Path(tmp) / "target" / name
                if res.success and made.is_file():
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(made, destination)
            return res, get_invocation_id()
        finally:
            if target == "duckdb":
                _close_duckdb()
