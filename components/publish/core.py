"""Write-audit-publish: swap a validated audit table into the published schema atomically."""

from __future__ import annotations

from typing import Any

from components.artifacts import TableRef
from components.bigquery import bigquery_client
from components.versions import duckdb_table_version
from components.warehouse import (
    RAW_SCHEMA,
    WarehouseError,
    duckdb_connect,
    duckdb_table_exists,
    ident,
    parse_uri,
)


class PublishError(RuntimeError):
    """The audited table cannot be published; the published table was left as it was."""


def publish(
    audited: TableRef, *, schema: str = RAW_SCHEMA, table: str = "", bq_client: Any = None
) -> TableRef:
    """Replace `schema.table` with the audited table in one transaction.

    The audited table must still hold exactly what was validated: its content hash is
    compared with the reference's `data_version` inside the transaction, so a table changed
    after validation is never published. The hash is streamed out of DuckDB chunk by chunk
    and the copy runs inside DuckDB (which spills to disk past its memory limit), so the
    table is never held whole in this process.
    """
    table = ident(table or audited.table)
    ident(schema)
    if audited.schema.lower() == schema.lower():
        raise PublishError(
            f"{audited.fqn} is already in the published schema {schema!r}: only a table built and "
            "validated in an audit schema can be published"
        )
    wh = parse_uri(audited.warehouse)
    if wh.kind == "bigquery":
        return _publish_bigquery(audited, schema, table, bq_client or bigquery_client(wh))
    with duckdb_connect(wh.path, purpose=f"publish {audited.fqn} as {schema}.{table}") as con:
        con.execute("begin transaction")
        try:
            if not duckdb_table_exists(con, audited.schema, audited.table):
                raise PublishError(f"audited table {audited.fqn} does not exist in {wh.path}")
            rows, version = duckdb_table_version(con, audited.schema, audited.table)
            if audited.data_version and version != audited.data_version:
                raise PublishError(
                    f"{audited.fqn} changed after it was validated "
                    f"(validated version {audited.data_version}, now {version}); not published"
                )
            con.execute(f'create schema if not exists "{schema}"')
            con.execute(
                f'create or replace table "{schema}"."{table}" as '
                f'select * from "{audited.schema}"."{audited.table}"'
            )
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
    return TableRef(audited.warehouse, schema, table, rows=rows, data_version=version)


def _publish_bigquery(audited: TableRef, schema: str, table: str, client: Any) -> TableRef:
    """A copy job with WRITE_TRUNCATE replaces the destination atomically in BigQuery."""
    from google.cloud import bigquery

    project = parse_uri(audited.warehouse).project
    src = f"{project}.{audited.schema}.{audited.table}"
    dst = f"{project}.{schema}.{table}"
    src_table = client.get_table(src)
    if audited.rows and src_table.num_rows != audited.rows:
        raise PublishError(
            f"{src} has {src_table.num_rows} rows, {audited.rows} were validated; not published"
        )
    config = bigquery.CopyJobConfig(write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE)
    job = client.copy_table(src, dst, job_config=config)
    job.result(timeout=600)
    if job.error_result:
        raise WarehouseError(f"BigQuery copy {src} -> {dst} failed: {job.error_result}")
    return TableRef(
        audited.warehouse, schema, table, rows=int(src_table.num_rows), data_version=audited.data_version
    )
