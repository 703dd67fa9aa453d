"""KFP wrapper of the train step (logic in ``components.train.core``)."""

from typing import NamedTuple, Optional

from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from components.step import MLFLOW_CREDENTIALS, STORES, step_component


@step_component("train", needs=(MLFLOW_CREDENTIALS, STORES))
def train(
    dataset: Input[Dataset],
    best_params: Input[Artifact],
    tracking_uri: str,
    model: Output[Model],
    metrics: Output[Metrics],
    confusion: Output[ClassificationMetrics],
    experiment: str = "tagifai",
    artifact_root: str = "",
    param_overrides: str = "{}",
    register_as: str = "tagifai",
    validation_report: Optional[Input[HTML]] = None,  # noqa: UP045 - KFP reads Optional[...], not X | None
    pipeline_run_id: str = "",
    pipeline_run_name: str = "",
) -> NamedTuple("Outputs", [("version", str), ("run_id", str), ("test_f1", float)]):  # type: ignore[valid-type]
    """Train the tag model with the best params, evaluate it on the test split, register it.

    Logs params, overall / per-class / per-slice test metrics, the model folder, a metrics
    JSON, the confusion matrix as a picture (``plots/confusion_matrix.svg``) and the dataset's
    validation report (``reports/validation.html``) to MLflow, tagged with the pipeline run,
    then registers a new model version tagged with the data version and the run id.

    Args:
        dataset: Labeled projects as parquet (from extract).
        best_params: Training params JSON (from study_summary).
        tracking_uri: MLflow tracking (and registry) URI.
        experiment: MLflow experiment of the run.
        artifact_root: Artifact location for a new experiment (local sqlite tracking);
            empty lets a tracking server decide.
        param_overrides: JSON object of params that replace the best ones (e.g. to force a
            worse model in a demo); unknown keys fail.
        register_as: Registered model name.
        validation_report: The dataset's validation report (ge_validate's ``data_docs``),
            attached to the MLflow run; optional.
        pipeline_run_id: The pipeline run's id (``dsl.PIPELINE_JOB_ID_PLACEHOLDER``), tagged
            on the MLflow run and the model version; "" leaves the tag out.
        pipeline_run_name: The pipeline run's name (``dsl.PIPELINE_JOB_NAME_PLACEHOLDER``).

    Returns:
        model: The model folder (loadable with ``tagifai.predict.load``).
        metrics: Overall weighted test f1, precision, recall, and the fallback threshold.
        confusion: Test confusion matrix over the model's classes.
        version: The registered model version.
        run_id: The MLflow run id.
        test_f1: Weighted test F1 (with the `other` fallback).
    """
    from collections import namedtuple

    from components.lineage import pipeline_run_tags
    from components.train.core import train_and_register

    out = train_and_register(
        dataset.path,
        best_params.path,
        tracking_uri,
        model.path,
        experiment=experiment,
        artifact_root=artifact_root,
        param_overrides=param_overrides,
        register_as=register_as,
        data_version=str(dataset.metadata.get("data_version", "")),
        validation_report=validation_report.path if validation_report is not None else None,
        tags=pipeline_run_tags(pipeline_run_id, pipeline_run_name),
    )
    for key in ("f1", "precision", "recall"):
        metrics.log_metric(key, out.metrics["overall"][key])
    metrics.log_metric("threshold", out.threshold)
    confusion.log_confusion_matrix(out.classes, out.confusion)
    model.metadata.update(
        {
            "registered_model": register_as,
            "version": out.version,
            "run_id": out.run_id,
            "data_version": out.data_version,
            "features": out.params.features,
        }
    )
    print(
        f"registered {register_as} v{out.version} (run {out.run_id}, {out.params.features} features): "
        f"test F1 {out.test_f1:.4f}"
    )
    Outputs = namedtuple("Outputs", ["version", "run_id", "test_f1"])
    return Outputs(out.version, out.run_id, out.test_f1)
