"""Data versions of tables and frames: what a step records so the next one can tell it reads the same data.

A data version is a content hash: the sha256 of the column names and the sorted 64-bit
row hashes of ``pandas.util.hash_pandas_object``, first 16 hex digits. Rows are hashed as
pandas holds them, so a frame, the DuckDB table it was read from and the parquet dataset
it was written to have one version. Two kinds of thing are hashed, one function each:

- a frame (:func:`frame_version`): extract's and compose's datasets, train's data;
- a DuckDB table (:func:`duckdb_table_version`, :func:`table_version`): the same value
  as the frame read whole, streamed chunk by chunk instead.

A source file pair is named by its fingerprint (``tagifai.sources.SourceFingerprint``);
an Airbyte server sync by its job id (``airbyte-job-<id>``): those name a load, not
content, and :func:`check_table_version` checks content hashes only.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any

from components.warehouse import (
    WarehouseError,
    duckdb_connect,
    duckdb_table_exists,
    ident,
    iter_chunks,
    parse_uri,
)

if TYPE_CHECKING:
    import duckdb
    import numpy as np
    import pandas as pd


def frame_version(df: pd.DataFrame) -> str:
    """The data version of a frame: a content hash of its column names and rows, in any row order."""
    import pandas as pd

    if df.empty:
        return _version_digest(df.columns, None)
    return _version_digest(df.columns, pd.util.hash_pandas_object(df, index=False).to_numpy().copy())


def duckdb_table_version(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> tuple[int, str]:
    """Rows and data version of a DuckDB table on an open connection, streamed chunk by chunk.

    Equal to :func:`frame_version` of the table read whole (the same per-row hashes, sorted),
    with memory bounded by one chunk plus 8 bytes per row instead of the whole table.
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
    """Rows and data version of a DuckDB warehouse's table (:func:`duckdb_table_version`, in a read turn)."""
    wh = parse_uri(uri)
    if wh.kind != "duckdb":
        raise WarehouseError(f"table_version reads DuckDB warehouses, not {uri!r}")
    with duckdb_connect(wh.path, read_only=True, purpose=f"hash {schema}.{table}") as con:
        if not duckdb_table_exists(con, schema, table):
            raise WarehouseError(f"table {schema}.{table} not found in {wh.path}")
        return duckdb_table_version(con, schema, table)


def _version_digest(columns: Any, row_hashes: np.ndarray | None) -> str:
    """sha256(column names, then the row hashes in sorted order), first 16 hex digits."""
    h = hashlib.sha256(",".join(map(str, columns)).encode())
    if row_hashes is not None and len(row_hashes):
        row_hashes.sort()
        h.update(row_hashes.tobytes())
    return h.hexdigest()[:16]


# What the functions above produce. Other versions a table reference may carry (an Airbyte
# job id) name a load, not the content, and are not checked against it.
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
