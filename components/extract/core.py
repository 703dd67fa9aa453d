"""Read a published warehouse table (DuckDB or BigQuery) and write it as parquet.

The BigQuery path takes an injected client so it can run against any endpoint (a local
HTTP stand-in in tests); by default it builds one from the environment's credentials.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components import cutoff as cut
from components.bigquery import bigquery_client
from components.parquet import write_parquet
from components.versions import frame_version
from components.warehouse import RAW_SCHEMA, WarehouseError, ident, parse_uri, read_table

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_TABLE = "labeled_projects"
# BigQuery: bound the wait for the query job and its result pages; retries of transient
# errors (429, 5xx) are the client's default bounded retry.
BQ_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Extracted:
    """What extract wrote and where it came from."""

    path: Path
    rows: int
    data_version: str
    warehouse: str
    table: str  # schema.table
    cutoff: cut.Cutoff = cut.NO_CUTOFF


def bigquery_sql(project: str, schema: str, table: str) -> str:
    """The query extract sends to BigQuery (identifiers validated, standard SQL)."""
    return f"select * from `{project}.{ident(schema)}.{ident(table)}`"


def read_bigquery(client: Any, project: str, schema: str, table: str) -> pd.DataFrame:
    """Run the extract query on a BigQuery client and return the rows as pandas."""
    import pandas as pd
    from google.api_core import exceptions as gexc

    sql = bigquery_sql(project, schema, table)
    try:
        job = client.query(sql, timeout=BQ_TIMEOUT_S)
        rows = job.result(timeout=BQ_TIMEOUT_S)
        # The table is small (thousands of rows): the REST pages are enough, and neither the
        # BigQuery Storage API nor pyarrow is needed in the image. The client has already
        # converted each value to the Python type of its schema field.
        columns = [field.name for field in rows.schema]
        return pd.DataFrame.from_records([tuple(row.values()) for row in rows], columns=columns)
    except gexc.NotFound as exc:
        raise WarehouseError(
            f"table {project}.{schema}.{table} not found in BigQuery (run the dataops pipeline first): "
            f"{exc.message}"
        ) from exc


def read_published(
    warehouse: str,
    schema: str,
    table: str,
    bq_client: Any = None,
    cutoff: cut.Cutoff = cut.NO_CUTOFF,
) -> pd.DataFrame:
    """The published table as pandas (only rows created before `cutoff` when it has a time),
    sorted by id; a clear error when it is missing or empty, or the cutoff leaves no row."""
    wh = parse_uri(warehouse)
    ident(schema)
    ident(table)
    if wh.kind == "duckdb":
        df = read_table(warehouse, schema, table)
    else:
        df = read_bigquery(bq_client or bigquery_client(wh), wh.project, schema, table)
    if df.empty:
        raise WarehouseError(f"table {schema}.{table} in {wh} is empty: nothing to train on")
    df = cut.apply(df, cutoff, where=f"{schema}.{table}")
    # A table scan has no order; the dataset (and so its split) must not depend on it.
    if "id" in df.columns:
        df = df.sort_values("id", kind="stable").reset_index(drop=True)
    return df


def extract(
    warehouse: str,
    out_path: str | Path,
    schema: str = RAW_SCHEMA,
    table: str = DEFAULT_TABLE,
    bq_client: Any = None,
    cutoff: cut.Cutoff = cut.NO_CUTOFF,
) -> Extracted:
    """Read `schema.table` (rows created before `cutoff`) and write it as parquet to `out_path`."""
    df = read_published(warehouse, schema, table, bq_client=bq_client, cutoff=cutoff)
    out = write_parquet(df, out_path)
    return Extracted(
        path=out,
        rows=len(df),
        data_version=frame_version(df),
        warehouse=str(parse_uri(warehouse)),
        table=f"{schema}.{table}",
        cutoff=cutoff,
    )
