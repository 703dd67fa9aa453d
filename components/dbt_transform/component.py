"""KFP wrapper of the dbt_transform step (logic in ``components.dbt_transform.core``)."""

from kfp.dsl import HTML, Dataset, Input, Markdown, Output

from components.step import STORES, WAREHOUSE_CREDENTIALS, step_component


@step_component("dbt_transform", needs=(WAREHOUSE_CREDENTIALS, STORES))
def dbt_transform(
    projects: Input[Dataset],
    tags: Input[Dataset],
    warehouse: str,
    labeled_projects: Output[Dataset],
    run_results: Output[Markdown],
    docs: Output[HTML],
    target_schema: str = "mlops_course_audit",
):
    """Build the labeled_projects mart with dbt: staging models, the mart and their data tests.

    The task fails, naming each failing model and test, when dbt does not build cleanly, and
    before building anything when the two syncs read different versions of the source
    (their references' ``source_fingerprint``: the folder was rewritten between them).

    Args:
        projects: Reference to the raw projects table (from airbyte_sync or ge_validate).
        tags: Reference to the raw tags table, in the same schema as projects.
        warehouse: Warehouse URI: ``duckdb:///abs/file.duckdb`` or ``bigquery://PROJECT``.
        target_schema: Schema (BigQuery dataset) the models build into: the audit schema.

    Returns:
        labeled_projects: Reference to <target_schema>.labeled_projects: rows, data version, the
            source fingerprint both syncs read, dbt invocation id.
        run_results: Markdown table of every dbt model and test with its status, failures and timing.
        docs: dbt's documentation site as one offline page (models, tests, columns, lineage).
    """
    from pathlib import Path

    from components.artifacts import TableRef, read_table_ref, write_table_ref
    from components.dbt_transform.core import MART, check_one_source, run_dbt

    sources = {}
    for name, artifact in (("projects", projects), ("tags", tags)):
        ref = read_table_ref(artifact.path, artifact.metadata)
        # The dbt sources are fixed tables: refuse to transform anything but what was validated.
        if ref.table != name:
            raise ValueError(f"input {name} must reference the raw table {name!r}, got {ref}")
        sources[name] = ref
    raw_schema = sources["projects"].schema
    if sources["tags"].schema != raw_schema:
        raise ValueError(f"projects and tags must be in one schema, got {[r.fqn for r in sources.values()]}")
    # One version of the source: never join one version's projects with another's tags.
    source_fingerprint = check_one_source(sources)

    result = run_dbt(
        warehouse,
        target_schema=target_schema,
        raw_schema=raw_schema,
        source_versions={n: r.data_version for n, r in sources.items()},
        docs_path=docs.path,
    )
    Path(run_results.path).parent.mkdir(parents=True, exist_ok=True)
    Path(run_results.path).write_text(result.summary_markdown())
    run_results.metadata["dbt_invocation_id"] = result.invocation_id
    mart = TableRef(
        result.warehouse, target_schema, MART, result.rows or 0, result.data_version, source_fingerprint
    )
    write_table_ref(labeled_projects, mart)
    labeled_projects.metadata["dbt_invocation_id"] = result.invocation_id
    labeled_projects.metadata["source_versions"] = {n: r.data_version for n, r in sources.items()}
