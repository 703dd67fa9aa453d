"""KFP wrapper of the compose step (logic in ``components.compose.core``)."""

from kfp.dsl import Dataset, Input, Output

from components.step import MLFLOW_CREDENTIALS, STORES, step_component


@step_component("compose", image="train", needs=(MLFLOW_CREDENTIALS, STORES))
def compose(
    dataset: Input[Dataset],
    tracking_uri: str,
    retraining_set: Output[Dataset],
    eval_fraction: float = 0.15,
    seed: int = 1234,
    max_class_ratio: float = 3.0,
) -> None:
    """Compose the retraining set: the champion's training data + newly labeled rows, balanced.

    Rows whose id hash falls in ``eval_fraction`` form a fixed evaluation set that is held
    out of every retraining set (the same ids in every run, recomputable with
    ``components.compose.core.eval_mask``). The rest is down-sampled by stratified sampling
    (per class, spread over slices and old/new rows, seeded by id) so that no class has more
    than ``max_class_ratio`` times the rows of the smallest one. Never reads the warehouse.

    Args:
        dataset: extract's snapshot of the published table (parquet), already cut at the
            run's as_of / scheduled time: the same snapshot the monitor read, so both see
            the same rows. Its metadata names the table (``table``) and the cutoff
            (``as_of``, ``as_of_source``, ``as_of_note``).
        tracking_uri: MLflow tracking (and registry) URI; locates the champion's training data.
        eval_fraction: Share of ids in the fixed evaluation set (0 disables it).
        seed: Seed of the eval-set and sampling hashes; changing it changes the eval set.
        max_class_ratio: Largest class size allowed, as a multiple of the smallest class.

    Returns:
        retraining_set: Parquet with extract's columns (id, created_on, title, description,
            tag); metadata: rows, data_version, class_counts (before and after balancing),
            eval_rows, reference_rows, new_rows, champion, eval_fraction, seed, and from the
            snapshot's metadata: table, as_of, as_of_source, as_of_note.
    """
    from components.artifacts import PARQUET
    from components.compose.core import compose as compose_rows
    from components.snapshot import snapshot_origin

    origin = snapshot_origin(dataset.metadata)
    print(origin.note)
    out = compose_rows(
        dataset.path,
        tracking_uri,
        retraining_set.path,
        eval_fraction=eval_fraction,
        seed=seed,
        max_class_ratio=max_class_ratio,
        origin=origin,
    )
    retraining_set.metadata.update(
        {"kind": PARQUET, **out.metadata(), **origin.metadata(), "eval_fraction": eval_fraction, "seed": seed}
    )
    print(
        f"composed {out.rows} rows (version {out.data_version}) from {out.reference_rows} reference + "
        f"{out.new_rows} new labeled rows; {out.eval_rows} held out for evaluation; classes {out.class_counts}"
    )
