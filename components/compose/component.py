"""KFP wrapper of the compose step (logic in ``components.compose.core``)."""

from kfp.dsl import Dataset, Output

from components.step import step_component


@step_component("compose")
def compose(
    warehouse: str,
    tracking_uri: str,
    dataset: Output[Dataset],
    eval_fraction: float = 0.15,
    seed: int = 1234,
    schema: str = "mlops_course",
    table: str = "labeled_projects",
    max_class_ratio: float = 3.0,
    as_of: str = "",
    scheduled_time: str = "",
) -> None:
    """Compose the retraining set: the champion's training data + newly labeled rows, balanced.

    Rows whose id hash falls in ``eval_fraction`` form a fixed evaluation set that is held
    out of every retraining set (the same ids in every run, recomputable with
    ``components.compose.core.eval_mask``). The rest is down-sampled by stratified sampling
    (per class, spread over slices and old/new rows, seeded by id) so that no class has more
    than ``max_class_ratio`` times the rows of the smallest one.

    Args:
        warehouse: Warehouse URI: ``duckdb:///abs/path.duckdb`` or ``bigquery://PROJECT``.
        tracking_uri: MLflow tracking (and registry) URI; locates the champion's training data.
        eval_fraction: Share of ids in the fixed evaluation set (0 disables it).
        seed: Seed of the eval-set and sampling hashes; changing it changes the eval set.
        schema: Published schema (BigQuery dataset).
        table: Published table name.
        max_class_ratio: Largest class size allowed, as a multiple of the smallest class.
        as_of: Compose from the table as it was at this ISO 8601 instant: rows created
            before it ('' = every row); the same cutoff the monitor used.
        scheduled_time: The run's scheduled time (wired by the cluster build); the cutoff
            when ``as_of`` is empty and the server filled it in. See ``components.cutoff``.

    Returns:
        dataset: Parquet with extract's columns (id, created_on, title, description, tag);
            metadata: rows, data_version, class_counts (before and after balancing),
            eval_rows, reference_rows, new_rows, champion.
    """
    from components import cutoff
    from components.compose.core import compose as compose_rows

    window = cutoff.resolve(as_of, scheduled_time)
    print(window.note)
    out = compose_rows(
        warehouse,
        tracking_uri,
        dataset.path,
        eval_fraction=eval_fraction,
        seed=seed,
        max_class_ratio=max_class_ratio,
        schema=schema,
        table=table,
        cutoff=window,
    )
    dataset.metadata.update(
        {
            **out.metadata(),
            **window.metadata(),
            "eval_fraction": eval_fraction,
            "seed": seed,
            "table": f"{schema}.{table}",
        }
    )
    print(
        f"composed {out.rows} rows (version {out.data_version}) from {out.reference_rows} reference + "
        f"{out.new_rows} new labeled rows; {out.eval_rows} held out for evaluation; classes {out.class_counts}"
    )
