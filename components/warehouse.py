"""The warehouse, as every step names and opens it: URIs, DuckDB connections, whole-table reads.

A warehouse is named by a URI so that it can travel as a plain pipeline parameter:

- ``duckdb:///abs/path/warehouse.duckdb`` or ``duckdb://relative/path.duckdb`` (or a bare path)
- ``bigquery://PROJECT`` (datasets are the schemas; the client: :mod:`components.bigquery`)

Schemas: raw tables land in ``mlops_course``; dbt builds into ``mlops_course_audit``;
publish swaps the audited table into ``mlops_course``.

Every DuckDB connection opened here (and dbt-duckdb's, through the profile) gets a memory
limit and a spill folder (:func:`duckdb_settings`), so a large load, join or copy spills to
disk instead of growing the process: ``KFP_MLOPS_DUCKDB_MEMORY_LIMIT`` (default
``512MB``) and ``KFP_MLOPS_DUCKDB_TEMP_DIR`` (default ``duckdb_tmp/`` beside the warehouse
file, i.e. under the stores folder). Opening a file takes a turn at it
(:mod:`components.warehouse_lock`).

Data versions of tables live in :mod:`components.versions`, parquet datasets in
:mod:`components.parquet`.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlparse

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

RAW_SCHEMA = "mlops_course"
AUDIT_SCHEMA = "mlops_course_audit"
MEMORY_LIMIT_ENV = "KFP_MLOPS_DUCKDB_MEMORY_LIMIT"
TEMP_DIR_ENV = "KFP_MLOPS_DUCKDB_TEMP_DIR"
DEFAULT_MEMORY_LIMIT = "512MB"
# A table streamed out of DuckDB comes in chunks of STREAM_VECTORS vectors of VECTOR_ROWS.
VECTOR_ROWS = 2048
STREAM_VECTORS = 64

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class WarehouseError(RuntimeError):
    """A warehouse operation failed; the message names the table and the cause."""


def ident(name: str) -> str:
    """Validate a schema/table identifier (they are interpolated into SQL)."""
    if not _IDENT.match(name):
        raise WarehouseError(f"invalid identifier {name!r}: use letters, digits and underscores")
    return name


@dataclass(frozen=True)
class WarehouseURI:
    kind: str  # "duckdb" | "bigquery"
    path: str = ""  # duckdb file
    project: str = ""  # bigquery project
    location: str = ""  # bigquery location (optional)

    def __str__(self) -> str:
        if self.kind == "duckdb":
            return f"duckdb:///{Path(self.path).resolve()}"
        loc = f"?location={self.location}" if self.location else ""
        return f"bigquery://{self.project}{loc}"


def parse_uri(uri: str) -> WarehouseURI:
    """Parse a warehouse URI; a bare path means a DuckDB file."""
    if not uri:
        raise WarehouseError("empty warehouse URI")
    if "://" not in uri:
        return WarehouseURI("duckdb", path=uri)
    parsed = urlparse(uri)
    if parsed.scheme == "duckdb":
        # duckdb:///abs/path -> /abs/path ; duckdb://rel/path -> rel/path
        path = (parsed.netloc + parsed.path) if parsed.netloc else parsed.path
        if not path:
            raise WarehouseError(f"warehouse URI {uri!r} names no DuckDB file")
        return WarehouseURI("duckdb", path=path)
    if parsed.scheme == "bigquery":
        if not parsed.netloc:
            raise WarehouseError(f"warehouse URI {uri!r} names no BigQuery project")
        location = parse_qs(parsed.query).get("location", [""])[0]
        return WarehouseURI("bigquery", project=parsed.netloc, location=location)
    raise WarehouseError(
        f"unknown warehouse scheme {parsed.scheme!r} in {uri!r} (use duckdb:// or bigquery://)"
    )


def duckdb_settings(path: str | Path) -> dict[str, str | bool | int | float | list[str]]:
    """DuckDB's ``memory_limit`` and ``temp_directory`` for the warehouse file at ``path``.

    Without a limit DuckDB may take 80% of the machine before it spills; every process
    that opens the warehouse uses these (dbt-duckdb through ``dbt_transforms/profiles.yml``).
    """
    temp = os.environ.get(TEMP_DIR_ENV) or str(Path(path).expanduser().resolve().parent / "duckdb_tmp")
    return {"memory_limit": duckdb_memory_limit(), "temp_directory": temp}


def duckdb_memory_limit() -> str:
    """DuckDB's ``memory_limit`` for every connection: ``KFP_MLOPS_DUCKDB_MEMORY_LIMIT`` or 512MB."""
    return os.environ.get(MEMORY_LIMIT_ENV) or DEFAULT_MEMORY_LIMIT


@contextmanager
def duckdb_connect(
    path: str | Path, read_only: bool = False, purpose: str = "", wait_s: float | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open a DuckDB file (creating its folder) with :func:`duckdb_settings`, closing it even on error.

    The open waits for its turn (:mod:`components.warehouse_lock`: one writer or many
    readers), so tasks that overlap, as Argo runs them, take turns instead of failing on
    DuckDB's file lock; a process outside the project that holds DuckDB's own lock is
    waited for within the same bound.

    Args:
        path: The DuckDB file.
        read_only: Open for reading (a shared turn) instead of writing (an exclusive one).
        purpose: What the connection is for, shown to a process that waits for it.
        wait_s: Longest wait for the turn (default ``KFP_MLOPS_WAREHOUSE_LOCK_TIMEOUT``).

    Raises:
        WarehouseError: The file does not exist (for reading) or stayed busy; the message
            names who holds it.
    """
    from components import warehouse_lock

    p = Path(path)
    if read_only and not p.exists():
        raise WarehouseError(f"DuckDB warehouse {p} does not exist (run the dataops pipeline first)")
    p.parent.mkdir(parents=True, exist_ok=True)
    what = purpose or ("read" if read_only else "write")
    limit = warehouse_lock.timeout_s() if wait_s is None else wait_s
    started = time.monotonic()
    try:
        with warehouse_lock.turn(p, write=not read_only, purpose=what, wait_s=limit):
            con = _open_duckdb(p, read_only, limit - (time.monotonic() - started))
            try:
                yield con
            finally:
                con.close()
    except warehouse_lock.WarehouseBusy as exc:
        raise WarehouseError(str(exc)) from None


def _open_duckdb(path: Path, read_only: bool, wait_s: float) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect``, retried while another process holds DuckDB's own file lock."""
    import duckdb

    deadline = time.monotonic() + max(wait_s, 0.0)
    delay = 0.05
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=duckdb_settings(path))
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            if time.monotonic() + delay > deadline:
                # DuckDB's message names the conflicting process (its PID).
                raise WarehouseError(
                    f"DuckDB warehouse {path} is locked by a process outside the project's turns: "
                    f"{str(exc).splitlines()[0]}"
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def duckdb_table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    row = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, table],
    ).fetchone()
    return bool(row and row[0])


def read_table(uri: str, schema: str, table: str, bq_client: Any = None) -> pd.DataFrame:
    """Read a whole table into pandas (DuckDB file or BigQuery)."""
    wh = parse_uri(uri)
    ident(schema)
    ident(table)
    if wh.kind == "duckdb":
        with duckdb_connect(wh.path, read_only=True, purpose=f"read {schema}.{table}") as con:
            if not duckdb_table_exists(con, schema, table):
                raise WarehouseError(f"table {schema}.{table} not found in {wh.path}")
            return con.execute(f'select * from "{schema}"."{table}"').df()
    from components.bigquery import bigquery_client

    client = bq_client or bigquery_client(wh)
    return client.query(f"select * from `{wh.project}.{schema}.{table}`").to_dataframe()


def iter_chunks(
    con: duckdb.DuckDBPyConnection, sql: str, vectors: int = STREAM_VECTORS
) -> Iterator[pd.DataFrame]:
    """The result of ``sql`` as pandas frames of ``vectors`` * 2,048 rows, in DuckDB's order.

    Each chunk is converted exactly as ``.df()`` converts a whole result, so per-row values
    (and their hashes) are the same whichever way a table is read. At least one frame is
    yielded, empty when the result is, so a consumer always sees the columns.
    """
    con.execute(sql)
    first = True
    while True:
        chunk = con.fetch_df_chunk(vectors)
        if chunk.empty and not first:
            return
        first = False
        yield chunk
        if chunk.empty:
            return


def __getattr__(name: str) -> Any:
    """``frame_version``, which ``pipelines.watch_probes`` imports from here.

    It is defined in :mod:`components.versions`, which imports this module, so it is looked
    up on first use instead of imported at the top.
    """
    if name == "frame_version":
        from components.versions import frame_version

        return frame_version
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
