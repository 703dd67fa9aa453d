"""Warehouse access shared by the steps: DuckDB (embedded default) and BigQuery.

A warehouse is named by a URI so that it can travel as a plain pipeline parameter:

- ``duckdb:///abs/path/warehouse.duckdb`` or ``duckdb://relative/path.duckdb`` (or a bare path)
- ``bigquery://PROJECT`` (datasets are the schemas; credentials come from the environment)

``BIGQUERY_EMULATOR_HOST`` (``http://HOST:PORT``), when set, sends every BigQuery call of the
steps to that endpoint instead of Google's, without credentials: a local BigQuery emulator
(the tests start ``bqemulator`` on loopback). google-cloud-bigquery itself reads the same
variable for its endpoint; :func:`bigquery_client` adds anonymous credentials and a quick
check that something answers there, so a missing emulator fails in seconds, not after the
client's 600 s of retries.

Schemas: raw tables land in ``mlops_course``; dbt builds into ``mlops_course_audit``;
publish swaps the audited table into ``mlops_course``.

Every DuckDB connection opened here (and dbt-duckdb's, through the profile) gets a memory
limit and a spill folder (:func:`duckdb_settings`), so a large load, join or copy spills to
disk instead of growing the process: ``KFP_MLOPS_DUCKDB_MEMORY_LIMIT`` (default
``512MB``) and ``KFP_MLOPS_DUCKDB_TEMP_DIR`` (default ``duckdb_tmp/`` beside the warehouse
file, i.e. under the stores folder).
"""

from __future__ import annotations

import hashlib
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
    import numpy as np
    import pandas as pd

RAW_SCHEMA = "mlops_course"
AUDIT_SCHEMA = "mlops_course_audit"
DEFAULT_DUCKDB = "stores/warehouse.duckdb"
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
    client = bq_client or bigquery_client(wh)
    return client.query(f"select * from `{wh.project}.{schema}.{table}`").to_dataframe()


BIGQUERY_EMULATOR_ENV = "BIGQUERY_EMULATOR_HOST"
# How long the check that an emulator answers may take.
EMULATOR_PROBE_S = 5.0


def bigquery_endpoint() -> str:
    """The BigQuery API endpoint that replaces Google's (``$BIGQUERY_EMULATOR_HOST``), or ``""``.

    Raises:
        WarehouseError: The variable is set but is not an ``http(s)://HOST[:PORT]`` URL.
    """
    value = os.environ.get(BIGQUERY_EMULATOR_ENV, "").strip()
    if not value:
        return ""
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.path not in ("", "/"):
        raise WarehouseError(
            f"{BIGQUERY_EMULATOR_ENV}={value!r} is not an endpoint URL: use http://HOST:PORT "
            "(the BigQuery emulator's REST address)"
        )
    return value.rstrip("/")


def bigquery_client(wh: WarehouseURI) -> Any:
    """A BigQuery client for the warehouse's project and location.

    Credentials come from the environment (ADC: a mounted key file, Workload Identity, a
    Vertex AI task's service account). With ``BIGQUERY_EMULATOR_HOST`` set, the client talks
    to that endpoint with anonymous credentials, once a quick request shows it answers.

    Raises:
        WarehouseError: ``BIGQUERY_EMULATOR_HOST`` is malformed or nothing answers there.
    """
    from google.cloud import bigquery

    endpoint = bigquery_endpoint()
    if not endpoint:
        return bigquery.Client(project=wh.project, location=wh.location or None)
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials

    _probe_emulator(endpoint)
    return bigquery.Client(
        project=wh.project,
        location=wh.location or None,
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=endpoint),
    )


def _probe_emulator(endpoint: str) -> None:
    """One request with a short timeout: the client would retry a dead endpoint for 600 s."""
    import requests

    try:
        requests.get(f"{endpoint}/bigquery/v2/projects", timeout=EMULATOR_PROBE_S)
    except requests.RequestException as exc:
        raise WarehouseError(
            f"no BigQuery emulator answers at {endpoint} ({BIGQUERY_EMULATOR_ENV}): {type(exc).__name__}"
        ) from None


def write_parquet(df: pd.DataFrame, path: str | Path) -> Path:
    """Write `df` as one parquet file (snappy, no index) with fastparquet; returns the path.

    Parquet datasets are what the steps hand each other. fastparquet writes and
    :func:`read_parquet` reads them in every image, so the train and optimize images need
    neither pyarrow (~150 MB) nor DuckDB (~70 MB); a frame read back equals the frame
    written (same dtypes, so the same data version). The file appears whole or not at all:
    it is written beside its final name and renamed into place.
    """
    import fastparquet

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    try:
        fastparquet.write(str(partial), df.reset_index(drop=True), write_index=False, compression="SNAPPY")
        partial.replace(out)
    except (ValueError, TypeError) as exc:  # a column fastparquet cannot store
        mixed = [str(c) for c in df.columns if df[c].dtype == object and not _all_text(df[c])]
        cause = f"column(s) {', '.join(mixed)} hold values that are not text" if mixed else exc
        raise WarehouseError(f"cannot write {out} as parquet: {cause}") from None
    finally:
        partial.unlink(missing_ok=True)
    return out


def _all_text(column: pd.Series) -> bool:
    return bool(column.dropna().map(lambda v: isinstance(v, str)).all())


def parquet_files(path: str | Path) -> list[str]:
    """The files of a parquet dataset: `path` itself, or the ``*.parquet`` files at any depth
    of the folder `path` (sorted); a clear error when there are none."""
    src = Path(path)
    if src.is_dir():
        files = sorted(str(f) for f in src.rglob("*.parquet") if f.is_file())
        if not files:
            raise WarehouseError(f"no parquet files in the folder {src}")
        return files
    if src.is_file():
        return [str(src)]
    raise WarehouseError(f"parquet dataset not found: {src}")


def read_parquet(path: str | Path) -> pd.DataFrame:
    """Read a parquet dataset (one file, or a folder of ``*.parquet`` files at any depth)
    into pandas with fastparquet, without pyarrow or DuckDB.

    Columns convert as in :func:`read_table`: text is pandas' ``str`` dtype, an integer
    column with nulls is ``Int64`` (where pandas with pyarrow gives float64).
    """
    import fastparquet
    import pandas as pd

    parts = []
    for file in parquet_files(path):
        try:
            parquet = fastparquet.ParquetFile(file)
            part = parquet.to_pandas()
        except Exception as exc:  # fastparquet raises many types for a file that is not parquet
            raise WarehouseError(f"cannot read {file} as parquet: {type(exc).__name__}: {exc}") from None
        # fastparquet gives text as object columns; the warehouse readers give pandas' str.
        text = [c for c in part.columns if part[c].dtype == object and _is_text(parquet, c)]
        parts.append(part.astype(dict.fromkeys(text, "str")))
    return pd.concat(parts, ignore_index=True)


def _is_text(parquet: Any, column: str) -> bool:
    """Whether `column` of a fastparquet file holds UTF-8 strings (converted type UTF8 or
    logical type STRING), as opposed to bytes, JSON or nested values."""
    element = parquet.schema.schema_element(column)
    logical = getattr(element, "logicalType", None)
    return element.converted_type == 0 or getattr(logical, "STRING", None) is not None


# Where :func:`parquet_view` shows a parquet dataset to DuckDB.
PARQUET_SCHEMA = "artifact"
PARQUET_VIEW = "dataset"


@contextmanager
def parquet_view(path: str | Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB connection in which the parquet dataset at `path` is the view
    ``artifact.dataset``, for steps that work on it in DuckDB (ge_validate streams it in
    bounded chunks, as it does warehouse tables). Its rows convert to pandas as
    :func:`read_parquet`'s do, so :func:`duckdb_table_version` of the view equals
    ``frame_version(read_parquet(path))``.
    """
    import duckdb

    listing = ", ".join("'" + f.replace("'", "''") + "'" for f in parquet_files(path))
    con = duckdb.connect(config={"memory_limit": duckdb_memory_limit()})
    try:
        con.execute(f"create schema {PARQUET_SCHEMA}")
        # Creating the view reads every file's footer: a file that is not parquet fails here.
        con.execute(f"create view {PARQUET_SCHEMA}.{PARQUET_VIEW} as select * from read_parquet([{listing}])")
    except duckdb.Error as exc:
        con.close()
        raise WarehouseError(f"cannot read {path} as parquet: {exc}") from None
    try:
        yield con
    finally:
        con.close()


def frame_version(df: pd.DataFrame) -> str:
    """Content hash of a frame (order-independent on rows): the data version.

    The sha256 of the column names and the sorted 64-bit row hashes of
    ``pandas.util.hash_pandas_object``; :func:`duckdb_table_version` computes the same
    value over a DuckDB table without reading it whole.
    """
    import pandas as pd

    if df.empty:
        return _version_digest(df.columns, None)
    return _version_digest(df.columns, pd.util.hash_pandas_object(df, index=False).to_numpy().copy())


def _version_digest(columns: Any, row_hashes: np.ndarray | None) -> str:
    """sha256(column names, then the row hashes in sorted order), first 16 hex digits."""
    h = hashlib.sha256(",".join(map(str, columns)).encode())
    if row_hashes is not None and len(row_hashes):
        row_hashes.sort()
        h.update(row_hashes.tobytes())
    return h.hexdigest()[:16]


# What duckdb_table_version and frame_version produce: a content hash of the table. Other
# versions a reference may carry (an Airbyte job id) name a load, not the content.
_TABLE_VERSION = re.compile(r"^[0-9a-f]{16}$")


class TableChanged(WarehouseError):
    """A table no longer holds the data version an upstream step recorded for it."""


def check_table_version(
    con: duckdb.DuckDBPyConnection, schema: str, table: str, expected: str, doing: str
) -> tuple[int, str]:
    """Rows and data version of a table, once it is known to hold `expected` (if a content hash).

    Steps that overlap with another run's steps (Argo runs them at once; two runs share one
    warehouse) check here, inside their turn at the warehouse, that what they are about to
    read is what this run's upstream step wrote and recorded.

    Raises:
        TableChanged: The table holds other data now; `doing` says what was not done.
    """
    rows, actual = duckdb_table_version(con, schema, table)
    if _TABLE_VERSION.match(expected or "") and actual != expected:
        raise TableChanged(
            f"{schema}.{table} no longer holds the data this run's upstream step recorded (data version "
            f"{expected}; it now holds {actual}, {rows} rows): another run changed it; nothing was {doing}"
        )
    return rows, actual


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


def duckdb_table_version(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> tuple[int, str]:
    """Rows and data version of a DuckDB table, streamed chunk by chunk.

    Equal to ``frame_version(read_table(...))`` (the same per-row hashes, sorted), with
    memory bounded by one chunk plus 8 bytes per row instead of the whole table.
    """
    import numpy as np
    import pandas as pd

    fqn = f'"{ident(schema)}"."{ident(table)}"'
    count = con.execute(f"select count(*) from {fqn}").fetchone()
    rows = int(count[0]) if count else 0
    hashes = np.empty(rows, dtype=np.uint64)
    filled = 0
    columns: Any = []
    for chunk in iter_chunks(con, f"select * from {fqn}"):
        columns = chunk.columns
        if len(chunk):
            hashes[filled : filled + len(chunk)] = pd.util.hash_pandas_object(chunk, index=False).to_numpy()
            filled += len(chunk)
    if filled != rows:
        raise WarehouseError(
            f"{schema}.{table} changed while it was hashed ({rows} rows counted, {filled} read)"
        )
    return rows, _version_digest(columns, hashes if rows else None)


def table_version(uri: str, schema: str, table: str) -> tuple[int, str]:
    """Rows and data version of a DuckDB warehouse table (see :func:`duckdb_table_version`)."""
    wh = parse_uri(uri)
    if wh.kind != "duckdb":
        raise WarehouseError(f"table_version reads DuckDB warehouses, not {uri!r}")
    with duckdb_connect(wh.path, read_only=True, purpose=f"hash {schema}.{table}") as con:
        if not duckdb_table_exists(con, schema, table):
            raise WarehouseError(f"table {schema}.{table} not found in {wh.path}")
        return duckdb_table_version(con, schema, table)
