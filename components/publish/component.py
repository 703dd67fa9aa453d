"""KFP wrapper of the publish step (write-audit-publish)."""

from typing import NamedTuple

from kfp.dsl import Dataset, Input, Output

from components.step import STORES, WAREHOUSE_CREDENTIALS, step_component


@step_component("publish", image="extract", needs=(WAREHOUSE_CREDENTIALS, STORES))
def publish(
    audited: Input[Dataset],
    published: Output[Dataset],
    schema: str = "mlops_course",
    table: str = "labeled_projects",
) -> NamedTuple("Outputs", [("rows_published", int)]):  # type: ignore[valid-type]
    """Publish a validated audit table: swap it into the published schema atomically.

    Run it only after the audited table's validation succeeded; a table changed since it was
    validated (content hash differs) is refused and the published table stays as it was.

    Args:
        audited: Table reference to the audited table (from dbt_transform).
        schema: Published schema (BigQuery dataset).
        table: Published table name.

    Returns:
        published: Table reference to the published table (rows, data_version in metadata).
        rows_published: Rows published.
    """
    from components.artifacts import read_table_ref, write_table_ref
    from components.publish.core import publish as publish_table

    ref = read_table_ref(audited.path, audited.metadata)  # a parquet dataset is refused
    out = publish_table(ref, schema=schema, table=table)
    write_table_ref(published, out)
    print(f"published {out.fqn}: {out.rows} rows, version {out.data_version}")
    from collections import namedtuple

    Outputs = namedtuple("Outputs", ["rows_published"])
    return Outputs(out.rows)
