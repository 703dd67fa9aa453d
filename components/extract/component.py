"""KFP wrapper of the extract step (logic in ``components.extract.core``)."""

from kfp import dsl
from kfp.dsl import Dataset, Output

from components.images import IMAGES


@dsl.component(base_image=IMAGES["extract"], install_kfp_package=False)
def extract(
    warehouse: str,
    dataset: Output[Dataset],
    schema: str = "mlops_course",
    table: str = "labeled_projects",
) -> None:
    """Extract the published labeled projects from the warehouse as a parquet dataset.

    Fails with a message naming the table when it is missing or empty.

    Args:
        warehouse: Warehouse URI: ``duckdb:///abs/path.duckdb`` or ``bigquery://PROJECT``.
        schema: Published schema (BigQuery dataset).
        table: Published table name.

    Returns:
        dataset: The table as parquet; metadata: rows, data_version (content hash),
            warehouse, table.
    """
    from components.extract.core import extract as extract_table

    out = extract_table(warehouse, dataset.path, schema=schema, table=table)
    dataset.metadata.update(
        {"rows": out.rows, "data_version": out.data_version, "warehouse": out.warehouse, "table": out.table}
    )
    print(f"extracted {out.table} from {out.warehouse}: {out.rows} rows, version {out.data_version}")
