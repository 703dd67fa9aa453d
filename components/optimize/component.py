"""KFP wrapper of one optimize worker (logic in ``components.optimize.core``)."""

from typing import NamedTuple

from kfp.dsl import Dataset, Input

from components.step import MLFLOW_CREDENTIALS, OPTUNA_CREDENTIALS, STORES, step_component


@step_component("optimize", needs=(MLFLOW_CREDENTIALS, OPTUNA_CREDENTIALS, STORES))
def optimize(
    dataset: Input[Dataset],
    study_name: str,
    storage: str,
    worker: int,
    n_trials: int,
    tracking_uri: str,
    experiment: str = "tagifai",
    num_epochs: int = 30,
    artifact_root: str = "",
    pipeline_run_id: str = "",
    pipeline_run_name: str = "",
) -> NamedTuple("Outputs", [("finished_trials", int)]):  # type: ignore[valid-type]
    """Run trials of a shared Optuna study as one of several parallel workers.

    Trials tune the lesson's search space on the dataset's train / validation split and
    maximize validation F1 (median pruning). Each finished trial is logged as an MLflow
    child run of the study's parent run (shared by all workers, tagged ``study_name``).

    Args:
        dataset: Labeled projects as parquet (from extract).
        study_name: Optuna study shared by the workers; use one name per pipeline run.
        storage: Optuna RDB storage URL shared by the workers (``sqlite:////abs/optuna.db``,
            ``postgresql://...``), or ``env:NAME`` to read it from an environment variable.
        worker: This worker's index; it seeds the TPE sampler so workers differ.
        n_trials: Trials this worker runs.
        tracking_uri: MLflow tracking URI.
        experiment: MLflow experiment of the study's runs.
        num_epochs: Training epochs per trial.
        artifact_root: Artifact location for a new experiment (local sqlite tracking);
            empty lets a tracking server decide.
        pipeline_run_id: The pipeline run's id (``dsl.PIPELINE_JOB_ID_PLACEHOLDER``), tagged
            on the study's and the trials' runs; "" leaves the tag out.
        pipeline_run_name: The pipeline run's name (``dsl.PIPELINE_JOB_NAME_PLACEHOLDER``).

    Returns:
        finished_trials: Trials this worker finished (completed or pruned).
    """
    from components.lineage import pipeline_run_tags
    from components.optimize.core import run_worker

    result = run_worker(
        dataset.path,
        study_name=study_name,
        storage=storage,
        worker=worker,
        n_trials=n_trials,
        tracking_uri=tracking_uri,
        experiment=experiment,
        num_epochs=num_epochs,
        artifact_root=artifact_root,
        tags=pipeline_run_tags(pipeline_run_id, pipeline_run_name, "optimize"),
    )
    print(f"worker {worker} of study {study_name}: trials {result.trials}, states {result.states}")
    from collections import namedtuple

    Outputs = namedtuple("Outputs", ["finished_trials"])
    return Outputs(result.finished)
