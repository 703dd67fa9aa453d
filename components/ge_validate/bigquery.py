"""Validating a BigQuery table where it lives: the suite runs as SQL, no row is downloaded.

A GX SQL datasource (sqlalchemy-bigquery, ``bigquery://PROJECT/DATASET``) on the steps'
own BigQuery client (:func:`components.bigquery.bigquery_client`: its credentials and
endpoint), over a query asset selecting the data columns. The column-type checks run on a
table asset of the same table: GX reads only the column *names* of a query asset (its type
reflection falls back to the names for BigQuery), so a type check on a query asset fails
with ``KeyError: 'type'`` whatever the data (found against the BigQuery emulator).
:func:`bigquery_batch_spec` builds everything that datasource needs without network.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.ge_validate.report import finish
from components.ge_validate.results import RESULT_FORMAT, ValidationSummary, summarize
from components.ge_validate.suites import data_columns, ephemeral_context, suite_config, suite_of
from components.warehouse import WarehouseError, ident, parse_uri


@dataclass(frozen=True)
class SqlBatchSpec:
    """Everything the GX SQL datasource, asset and batch definition need (no network)."""

    connection_string: str  # sqlalchemy-bigquery: bigquery://PROJECT/DATASET[?location=..]
    query: str  # the data columns of the table, in table order
    datasource_name: str
    asset_name: str
    batch_definition_name: str = "whole_table"
    dialect: str = "bigquery"
    schema: str = ""  # the table itself, for the checks a query asset cannot serve (column types)
    table: str = ""

    def datasource_config(self, client: Any = None) -> dict[str, Any]:
        """Keyword arguments of ``context.data_sources.add_sql``.

        With `client` (a ``google.cloud.bigquery.Client``), sqlalchemy-bigquery uses that
        client, its credentials and endpoint, instead of building one of its own.
        """
        config: dict[str, Any] = {"name": self.datasource_name, "connection_string": self.connection_string}
        if client is not None:
            joiner = "&" if "?" in self.connection_string else "?"
            config["connection_string"] += f"{joiner}user_supplied_client=True"
            config["kwargs"] = {"connect_args": {"client": client}}
        return config

    def asset_config(self) -> dict[str, Any]:
        """Keyword arguments of ``datasource.add_query_asset``."""
        return {"name": self.asset_name, "query": self.query}

    def table_asset_config(self) -> dict[str, Any]:
        """Keyword arguments of ``datasource.add_table_asset``: the whole table, for type checks."""
        return {"name": f"{self.asset_name}_table", "table_name": self.table, "schema_name": self.schema}


# Expectations on column types: GX resolves them on a table asset only (see the module doc).
COLUMN_TYPE_EXPECTATIONS = frozenset(
    {"expect_column_values_to_be_of_type", "expect_column_values_to_be_in_type_list"}
)


def bigquery_batch_spec(warehouse_uri: str, schema: str, table: str, columns: list[str]) -> SqlBatchSpec:
    """The BigQuery datasource and batch for ``schema.table``: pure, testable without network.

    ``columns`` are the table's columns in order (from :func:`bigquery_columns`); the
    query selects the data columns only, so the ordered-column check sees no Airbyte
    meta columns and no row leaves BigQuery.
    """
    wh = parse_uri(warehouse_uri)
    if wh.kind != "bigquery":
        raise WarehouseError(f"not a BigQuery warehouse: {warehouse_uri!r}")
    ident(schema)
    ident(table)
    keep = data_columns(columns)
    if not keep:
        raise WarehouseError(f"table {schema}.{table} has no data columns (got {columns})")
    select = ", ".join(f"`{ident(c)}`" for c in keep)
    location = f"?location={wh.location}" if wh.location else ""
    return SqlBatchSpec(
        connection_string=f"bigquery://{wh.project}/{schema}{location}",
        query=f"select {select} from `{wh.project}.{schema}.{table}`",
        datasource_name=f"bigquery_{schema}",
        asset_name=table,
        schema=schema,
        table=table,
    )


def bigquery_columns(warehouse_uri: str, schema: str, table: str, bq_client: Any = None) -> list[str]:
    """The column names of a BigQuery table, in order (a metadata call, no data scanned)."""
    from components.bigquery import bigquery_client

    wh = parse_uri(warehouse_uri)
    client = bq_client or bigquery_client(wh)
    return [f.name for f in client.get_table(f"{wh.project}.{ident(schema)}.{ident(table)}").schema]


def validate_sql(
    spec: SqlBatchSpec,
    suite: str,
    *,
    data_docs_path: str | Path | None = None,
    raise_on_failure: bool = True,
    source: str = "",
    data_version: str = "",
    project_root: str | Path | None = None,
    client: Any = None,
) -> ValidationSummary:
    """Validate a SQL batch where it lives (needs the warehouse and its credentials).

    The suite's column-type checks run on the table (``spec.table``), the others on the
    query; the outcomes are reported in the suite's order. `client` is the BigQuery client
    sqlalchemy-bigquery is to use (default: one it builds from the environment).
    """
    from types import SimpleNamespace

    started = time.perf_counter()
    config = suite_config(suite, dialect=spec.dialect, project_root=project_root)
    expectations = config.get("expectations", [])
    typed = [e for e in expectations if e["type"] in COLUMN_TYPE_EXPECTATIONS and spec.table]
    rest = [e for e in expectations if e not in typed]
    datasource = ephemeral_context().data_sources.add_sql(**spec.datasource_config(client))
    results: list[Any] = []
    success = True
    for chosen, asset in (
        (rest, lambda: datasource.add_query_asset(**spec.asset_config())),
        (typed, lambda: datasource.add_table_asset(**spec.table_asset_config())),
    ):
        if chosen:
            batch = asset().add_batch_definition_whole_table(spec.batch_definition_name).get_batch()
            result = batch.validate(suite_of(config, chosen), result_format=RESULT_FORMAT)
            results += result.results
            success = success and bool(result.success)
    order = {str(e["id"]): i for i, e in enumerate(expectations)}
    results.sort(key=lambda r: order.get(str(r.expectation_config.id), len(order)))
    combined = SimpleNamespace(results=results, success=success)
    summary = summarize(combined, suite, rows=None, source=source or spec.query, data_version=data_version)
    summary.seconds = time.perf_counter() - started
    return finish(summary, data_docs_path, raise_on_failure)
