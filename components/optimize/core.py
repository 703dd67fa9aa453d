"""An Optuna worker: runs trials of a shared study and logs each as an MLflow child run.

Workers share the study through its RDB storage (:mod:`components.study`) and share one
MLflow parent run per study, found by its ``study_name`` tag. Each worker samples with its
own seed so they propose different points.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna

from components.parquet import read_parquet
from components.progress import progress
from components.study import FINISHED_STATES, open_storage, retry_setup, storage_error
from tagifai import embeddings, tracking
from tagifai.config import DataConfig, SearchSpace, TrainParams
from tagifai.data import LabelEncoder, prepare, split
from tagifai.optimize import create_study, make_objective, warm_start

STUDY_TAG, ROLE_TAG = tracking.STUDY_TAG, tracking.ROLE_TAG
PARENT_SETTLE_S = 1.0
# The name goes into an MLflow filter string, which has no escapes for quotes.
_STUDY_NAME = re.compile(r"""^[^'"\\]{1,256}$""")


@dataclass
class WorkerResult:
    """What one worker did."""

    worker: int
    parent_run_id: str
    trials: list[int] = field(default_factory=list)  # trial numbers run by this worker
    states: dict[str, int] = field(default_factory=dict)  # trial state name -> count

    @property
    def finished(self) -> int:
        """Trials that completed or were pruned: the ones that count."""
        return sum(self.states.get(s.name, 0) for s in FINISHED_STATES)


def load_shared_study(study_name: str, storage: str, seed: int = 0) -> optuna.Study:
    """Create or load the shared study (maximize validation F1, TPE seeded per worker)."""
    from sqlalchemy.exc import OperationalError

    store = open_storage(storage)
    # tagifai.optimize.create_study is typed for URLs; Optuna accepts a storage object too.
    store_arg: Any = store
    try:
        return retry_setup(lambda: create_study(study_name, store_arg, seed=seed))
    except OperationalError as exc:
        raise storage_error(storage, exc) from exc


def _ensure_experiment(tracking_uri: str, experiment: str, artifact_location: str | None) -> str:
    """Experiment id; tolerates a concurrent worker creating the store or the experiment first."""
    # "already exists" (the other worker won) or a locked fresh sqlite store: try again.
    return retry_setup(
        lambda: tracking.ensure_experiment(tracking_uri, experiment, artifact_location), (Exception,)
    )


def study_parent_run(
    tracking_uri: str,
    experiment: str,
    study_name: str,
    artifact_location: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> str:
    """The id of the study's parent run, shared by all workers (created by the first one).

    Workers starting together may all find no parent and create one each. Each creator
    then waits a moment, looks again and adopts the oldest (start time, then run id); the
    others delete their own, so they converge on one parent. Children also carry the study
    name as a tag, so nothing is lost even if a very slow store let two parents survive.
    """
    client = tracking.client(tracking_uri)
    exp_id = _ensure_experiment(tracking_uri, experiment, artifact_location)
    found = tracking.study_runs(tracking_uri, exp_id, study_name)
    if found:
        return found[0]
    own = tracking.start_parent_run(
        tracking_uri,
        experiment,
        run_name=f"optuna-study-{study_name}",
        tags={STUDY_TAG: study_name, ROLE_TAG: "study", **(tags or {})},
        artifact_location=artifact_location,
    )
    # Let a concurrent creator's insert land, so that every creator sees every candidate
    # and picks the same one.
    time.sleep(PARENT_SETTLE_S)
    found = tracking.study_runs(tracking_uri, exp_id, study_name)
    winner = found[0] if found else own
    if winner != own:
        client.delete_run(own)
    return winner


@dataclass(frozen=True)
class StudyRuns:
    """Where the study's MLflow runs go: its experiment, and its parent run the trials are children of."""

    tracking_uri: str
    experiment: str
    study_name: str
    artifact_location: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)  # on every run (e.g. the pipeline run's)

    def parent_run(self) -> str:
        """The id of the parent run, shared by all workers (see `study_parent_run`)."""
        return study_parent_run(
            self.tracking_uri, self.experiment, self.study_name, self.artifact_location, self.tags
        )


def _show_progress(
    study: optuna.Study, trial: optuna.trial.FrozenTrial, worker: int, done: int, n_trials: int
) -> None:
    """``worker 1: trial 3/10 (#7) val F1 0.8123; study best 0.8421`` (best of all workers)."""
    outcome = f"val F1 {trial.value:.4f}" if trial.value is not None else trial.state.name.lower()
    try:
        best = f"study best {study.best_value:.4f}"
    except ValueError:  # no trial of the study has completed yet
        best = "no completed trial yet"
    progress(f"worker {worker}: trial {done}/{n_trials} (#{trial.number}) {outcome}; {best}")


def _trial_hook(
    runs: StudyRuns, base: TrainParams, result: WorkerResult, n_trials: int
) -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None]:
    """A study callback that logs every finished trial (complete, pruned, failed) as a child
    run of the worker's parent run, records it in `result`, and prints how far the worker is:
    trials done of `n_trials`, the study's best so far. A trial's params are `base` with the
    trial's own on top."""
    worker = result.worker

    def log_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        result.trials.append(trial.number)
        result.states[trial.state.name] = result.states.get(trial.state.name, 0) + 1
        _show_progress(study, trial, worker, len(result.trials), n_trials)
        metrics: dict[str, float] = {}
        if trial.value is not None:
            metrics["val_f1"] = float(trial.value)
        if trial.intermediate_values:
            last = max(trial.intermediate_values)
            metrics["last_val_f1"] = float(trial.intermediate_values[last])
            metrics["epochs_run"] = float(last + 1)
        if "threshold" in trial.user_attrs:
            metrics["threshold"] = float(trial.user_attrs["threshold"])
        tracking.log_run(
            runs.tracking_uri,
            runs.experiment,
            run_name=f"{runs.study_name}-trial-{trial.number}",
            params=base.with_(**trial.params).to_dict(),
            metrics=metrics,
            tags={
                STUDY_TAG: runs.study_name,
                ROLE_TAG: "trial",
                "optuna_trial": str(trial.number),
                "optuna_state": trial.state.name,
                "optuna_worker": str(worker),
                **runs.tags,
            },
            parent_run_id=result.parent_run_id,
            artifact_location=runs.artifact_location,
        )

    return log_trial


def search_space(space: SearchSpace | None = None) -> SearchSpace:
    """The space to search: without the encoder's packages, the TF-IDF family only (said so)."""
    space = space or SearchSpace()
    if any(f != "tfidf" for f in space.features):
        try:
            embeddings.locate()
        except embeddings.EncoderUnavailable as exc:
            print(f"optimize: searching TF-IDF features only: {exc}", flush=True)
            space = space.tfidf_only()
    if not space.features:
        raise ValueError("the search space has no feature family")
    return space


def run_worker(
    dataset_path: str | Path,
    *,
    study_name: str,
    storage: str,
    worker: int,
    n_trials: int,
    tracking_uri: str,
    experiment: str = tracking.MODEL_NAME,
    num_epochs: int = 30,
    artifact_root: str = "",
    space: SearchSpace | None = None,
    data_cfg: DataConfig | None = None,
    tags: Mapping[str, str] | None = None,
) -> WorkerResult:
    """Run `n_trials` trials of the shared study on the dataset's train / validation split;
    `tags` go on the study's parent run and every trial's run."""
    if not _STUDY_NAME.match(study_name):
        raise ValueError(f"study name {study_name!r}: 1-256 characters without quotes or backslashes")
    if n_trials < 1:
        raise ValueError("n_trials must be at least 1")
    cfg = data_cfg or DataConfig()
    space = search_space(space)
    df = prepare(read_parquet(dataset_path), cfg)
    train_df, val_df, _ = split(df, cfg)
    base = TrainParams(num_epochs=num_epochs)
    runs = StudyRuns(tracking_uri, experiment, study_name, artifact_root or None, dict(tags or {}))

    study = load_shared_study(study_name, storage, seed=worker)
    # The summary step rebuilds the full training params from these.
    study.set_user_attr("base_params", base.to_dict())
    study.set_user_attr("search_space", asdict(space))
    parent = runs.parent_run()
    result = WorkerResult(worker=worker, parent_run_id=parent)
    objective = make_objective(train_df, val_df, base, space, label_encoder=LabelEncoder.fit(df["tag"]))

    def tagged_objective(trial: optuna.trial.Trial) -> float:
        trial.set_user_attr("worker", worker)
        return objective(trial)

    hook = _trial_hook(runs, base, result, n_trials)
    client = tracking.client(tracking_uri)
    remaining = n_trials
    try:
        if worker == 0:
            # Warm start: the lesson's defaults are always among the trials, so the study's
            # best is never worse (on validation) than the known-good configuration.
            for trial in warm_start(study, tagged_objective, space, limit=remaining):
                hook(study, trial)
                remaining -= 1
        if remaining:
            study.optimize(tagged_objective, n_trials=remaining, callbacks=[hook])
    except BaseException:
        client.set_terminated(parent, status="FAILED")
        raise
    # Every worker closes the parent when it is done; the last one's end time stands. A
    # worker that failed has marked it FAILED, which a later success does not hide.
    if client.get_run(parent).info.status != "FAILED":
        client.set_terminated(parent, status="FINISHED")
    return result
