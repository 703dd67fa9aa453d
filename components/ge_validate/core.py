"""Validate a warehouse table or a dataset against a committed Great Expectations suite.

The entry point of the step: :func:`validate_table` (a warehouse table) and
:func:`validate_input` (what a ``Dataset`` artifact holds). Where each part lives:

- ``suites``: the committed suites, built in an ephemeral GX context; the data columns;
- ``frames``: GX's pandas engine on in-memory frames (:func:`validate_frame`);
- ``streaming``: DuckDB tables (and parquet, shown to DuckDB) larger than one chunk,
  validated chunk by chunk, never read whole;
- ``bigquery``: BigQuery tables, validated as SQL where they live;
- ``results``: each expectation's outcome, the suite's summary, :class:`ValidationFailed`;
- ``report``: the self-contained HTML report, written before a failed suite raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from components.artifacts import TABLE_REF, dataset_kind, read_table_ref
from components.ge_validate.bigquery import bigquery_batch_spec, bigquery_columns, validate_sql
from components.ge_validate.report import finish
from components.ge_validate.results import ValidationSummary
from components.ge_validate.streaming import CHUNK_ROWS, validate_duckdb_table
from components.parquet import PARQUET_SCHEMA, PARQUET_VIEW, parquet_view
from components.versions import check_table_version, duckdb_table_version
from components.warehouse import WarehouseError, duckdb_connect, duckdb_table_exists, ident, parse_uri


def validate_table(
    warehouse_uri: str,
    schema: str,
    table: str,
    suite: str,
    *,
    data_docs_path: str | Path | None = None,
    raise_on_failure: bool = True,
    data_version: str = "",
    bq_client: Any = None,
    project_root: str | Path | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> ValidationSummary:
    """Validate a warehouse table: DuckDB via pandas in bounded chunks, BigQuery pushed down as SQL.

    ``data_version`` defaults to the content hash of the table (DuckDB only).
    """
    wh = parse_uri(warehouse_uri)
    source = f"{wh}#{schema}.{table}"
    common: dict[str, Any] = {
        "data_docs_path": data_docs_path,
        "raise_on_failure": raise_on_failure,
        "source": source,
        "project_root": project_root,
    }
    if wh.kind == "bigquery":
        from components.bigquery import bigquery_client

        client = bq_client or bigquery_client(wh)
        columns = bigquery_columns(warehouse_uri, schema, table, client)
        spec = bigquery_batch_spec(warehouse_uri, schema, table, columns)
        return validate_sql(spec, suite, data_version=data_version, client=client, **common)
    with duckdb_connect(wh.path, read_only=True, purpose=f"validate {schema}.{table}") as con:
        if not duckdb_table_exists(con, ident(schema), ident(table)):
            raise WarehouseError(f"table {schema}.{table} not found in {wh.path}")
        # What is validated must be what the upstream step of this run wrote.
        _, actual = check_table_version(con, schema, table, data_version, "validated")
        summary = validate_duckdb_table(
            con, schema, table, suite, chunk_rows=chunk_rows, source=source, project_root=project_root
        )
        summary.data_version = actual
    return finish(summary, data_docs_path, raise_on_failure)


def validate_input(
    path: str | Path,
    suite: str,
    *,
    metadata: Mapping[str, Any] | None = None,
    data_docs_path: str | Path | None = None,
    raise_on_failure: bool = True,
    project_root: str | Path | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> ValidationSummary:
    """Validate what a KFP ``Dataset`` artifact holds: a table reference or parquet.

    A reference is validated in its warehouse (pushed down on BigQuery); its recorded
    data version is kept so the report joins the lineage of the step that wrote it.
    Parquet is validated in DuckDB like a DuckDB table, never held whole; its data version
    is the one extract recorded for it (``frame_version`` of the frame it wrote). Which of
    the two it is, the artifact's `metadata` says (``kind``; :func:`components.artifacts.dataset_kind`).
    """
    if dataset_kind(path, metadata) == TABLE_REF:
        ref = read_table_ref(path, metadata)
        return validate_table(
            ref.warehouse,
            ref.schema,
            ref.table,
            suite,
            data_docs_path=data_docs_path,
            raise_on_failure=raise_on_failure,
            data_version=ref.data_version,
            project_root=project_root,
            chunk_rows=chunk_rows,
        )
    # Parquet: streamed through DuckDB like a warehouse table, in chunks of `chunk_rows`.
    with parquet_view(path) as con:
        summary = validate_duckdb_table(
            con,
            PARQUET_SCHEMA,
            PARQUET_VIEW,
            suite,
            chunk_rows=chunk_rows,
            source=str(path),
            project_root=project_root,
        )
        summary.data_version = duckdb_table_version(con, PARQUET_SCHEMA, PARQUET_VIEW)[1]
    return finish(summary, data_docs_path, raise_on_failure)
