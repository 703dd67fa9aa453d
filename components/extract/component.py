"""KFP wrapper of the extract step (logic in ``components.extract.core``)."""

from kfp.dsl import Dataset, Output

from components.step import STORES, WAREHOUSE_CREDENTIALS, step_component


@step_component("extract", needs=(WAREHOUSE_CREDENTIALS, STORES))
def extract(
    warehouse: str,
    dataset: Output[Dataset],
    schema: str = "mlops_course",
    table: str = "labeled_projects",
    as_of: str = "",
    scheduled_time: str = "",
) -> None:
    """Extract the published labeled projects from the warehouse as a parquet dataset.

    Fails with a message naming the table when it is missing or empty, or when ``as_of``
    is not a time or leaves no row.

    Args:
        warehouse: Warehouse URI: ``duckdb:///abs/path.duckdb`` or ``bigquery://PROJECT``.
        schema: Published schema (BigQuery dataset).
        table: Published table name.
        as_of: Keep only rows created before this ISO 8601 instant ('' = every row).
        scheduled_time: The run's scheduled time (wired by the cluster build); the cutoff
            when ``as_of`` is empty and the server filled it in. See ``components.cutoff``.

    Returns:
        dataset: The table as parquet; metadata: rows, data_version (content hash),
            warehouse, table, as_of (the cutoff applied, '' for none) and its source.
    """
    from components import cutoff
    from components.artifacts import PARQUET
    from components.extract.core import extract as extract_table

    window = cutoff.resolve(as_of, scheduled_time)
    print(window.note)
    out = extract_table(warehouse, dataset.path, schema=schema, table=table, cutoff=window)
    dataset.metadata.update(
        {
            "kind": PARQUET,
            "rows": out.rows,
            "data_version": out.data_version,
            "warehouse": out.warehouse,
            "table": out.table,
            **window.metadata(),
        }
    )
    print(f"extracted {out.table} from {out.warehouse}: {out.rows} rows, version {out.data_version}")
