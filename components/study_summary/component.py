"""KFP wrapper of the study_summary step (logic in ``components.study_summary.core``)."""

from typing import NamedTuple

from kfp.dsl import HTML, Artifact, Output

from components.step import MLFLOW_CREDENTIALS, OPTUNA_CREDENTIALS, STORES, step_component


@step_component("study_summary", image="optimize", needs=(MLFLOW_CREDENTIALS, OPTUNA_CREDENTIALS, STORES))
def study_summary(
    study_name: str,
    storage: str,
    expected_trials: int,
    best_params: Output[Artifact],
    report: Output[HTML],
    tracking_uri: str = "",
    experiment: str = "tagifai",
) -> NamedTuple("Outputs", [("best_f1", float)]):  # type: ignore[valid-type]
    """Check that the optimize workers lost no trial and pick the best params.

    The report is written first; the task then fails when the study's finished trials
    (complete + pruned) differ from ``expected_trials`` or no trial completed.

    Args:
        study_name: The Optuna study the optimize workers shared.
        storage: Optuna RDB storage URL (or ``env:NAME``), as given to the workers.
        expected_trials: Workers × trials per worker.
        tracking_uri: The MLflow store the workers logged to: the study's parent run there
            is ended, FINISHED when no trial was lost, FAILED otherwise ("" : none), with the
            report (``reports/study.html``) and its pictures (``plots/*.svg``) attached.
        experiment: The workers' MLflow experiment.

    Returns:
        best_params: JSON of the full training params (base params + the best trial's values).
        report: Self-contained HTML: trial accounting, best params, optimization history
            (inline SVG), trials sorted by value.
        best_f1: The best validation F1.
    """
    from pathlib import Path

    from components.study_summary.core import write_summary
    from tagifai import tracking

    def written() -> str | None:
        return Path(report.path).read_text() if Path(report.path).is_file() else None

    try:
        summary, pictures = write_summary(study_name, storage, expected_trials, best_params.path, report.path)
    except BaseException:
        if tracking_uri:
            tracking.end_study_runs(tracking_uri, experiment, study_name, "FAILED", report=written())
        raise
    if tracking_uri:
        files = {f"plots/{stem}.svg": svg for stem, svg in pictures.items()}
        tracking.end_study_runs(
            tracking_uri, experiment, study_name, "FINISHED", report=written(), files=files
        )
    meta = {"study_name": study_name, "finished_trials": summary.finished, "states": summary.counts}
    best_params.metadata.update({**meta, "best_trial": summary.best_trial, "best_value": summary.best_value})
    report.metadata.update(meta)
    print(f"study {study_name}: {summary.finished} finished trials, best F1 {summary.best_value:.4f}")
    from collections import namedtuple

    Outputs = namedtuple("Outputs", ["best_f1"])
    return Outputs(float(summary.best_value or 0.0))
