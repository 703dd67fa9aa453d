"""Warehouse access shared by the steps: DuckDB (embedded default) and BigQuery.

A warehouse is named by a URI so that it can travel as a plain pipeline parameter:

- ``duckdb:///abs/path/warehouse.duckdb`` or ``duckdb://relative/path.duckdb`` (or a bare path)
- ``bigquery://PROJECT`` (datasets are the schemas; credentials come from the environment)

Schemas: raw tables land in ``mlops_course``; dbt builds into ``mlops_course_audit``;
publish swaps the audited table into ``mlops_course``.
"""

from __future__ import annotations

import hashlib
import re
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
DEFAULT_DUCKDB = "stores/warehouse.duckdb"

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


@contextmanager
def duckdb_connect(path: str | Path, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open a DuckDB file (creating its folder), closing it even on error."""
    import duckdb

    p = Path(path)
    if read_only and not p.exists():
        raise WarehouseError(f"DuckDB warehouse {p} does not exist (run the dataops pipeline first)")
    p.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(p), read_only=read_only)
    try:
        yield con
    finally:
        con.close()


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
        with duckdb_connect(wh.path, read_only=True) as con:
            if not duckdb_table_exists(con, schema, table):
                raise WarehouseError(f"table {schema}.{table} not found in {wh.path}")
            return con.execute(f'select * from "{schema}"."{table}"').df()
    client = bq_client or bigquery_client(wh)
    return client.query(f"select * from `{wh.project}.{schema}.{table}`").to_dataframe()


def bigquery_client(wh: WarehouseURI) -> Any:
    """A BigQuery client; credentials from the environment (ADC / a mounted key file)."""
    from google.cloud import bigquery

    return bigquery.Client(project=wh.project, location=wh.location or None)


def frame_version(df: pd.DataFrame) -> str:
    """Content hash of a frame (order-independent on rows): the data version."""
    import pandas as pd

    if df.empty:
        return hashlib.sha256(",".join(map(str, df.columns)).encode()).hexdigest()[:16]
    row_hashes = pd.util.hash_pandas_object(df, index=False).to_numpy().copy()
    row_hashes.sort()
    h = hashlib.sha256(",".join(map(str, df.columns)).encode())
    h.update(row_hashes.tobytes())
    return h.hexdigest()[:16]
