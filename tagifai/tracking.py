"""MLflow helpers. Every function takes the tracking URI: nothing is read from the environment
and MLflow's global state is never touched, so one process can talk to several stores.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

MODEL_NAME = "tagifai"
CHAMPION = "champion"
MODEL_ARTIFACT_PATH = "model"


def client(tracking_uri: str, registry_uri: str | None = None) -> Any:
    from mlflow.tracking import MlflowClient

    if not tracking_uri.startswith("sqlite:///"):
        return MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri or tracking_uri)
    # Opening a sqlite store runs MLflow's schema migrations; parallel steps (optimize workers)
    # opening a new store at once would race on them. A file lock next to the database
    # serializes the first open.
    db = Path(tracking_uri[len("sqlite:///") :])
    db.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(db.with_name(db.name + ".lock")):
        return MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri or tracking_uri)


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    import fcntl

    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# The MLflow UI shows an experiment by its kind: tracked model training (runs, metrics,
# model versions), not the GenAI view (traces) it picks for an experiment without one.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
EXPERIMENT_NOTE = (
    "tagifai: the tag classifier of the Made With ML lesson, trained by the kfp-mlops pipelines. "
    "Optuna studies (a parent run per study, a child per trial) and the trained candidates; "
    "the registered model `tagifai` holds the versions and the `champion` alias."
)
MODEL_DESCRIPTION = (
    "Tags a project (title + description) as one of the lesson's tags. Versions are trained by the "
    "mlops and continual pipelines; a version becomes the `champion` only when the evaluate step's "
    "gate finds it no worse than the champion on the same test rows (tags gate_decision, gate_reason)."
)


def ensure_experiment(
    tracking_uri: str, name: str, artifact_location: str | None = None, note: str = EXPERIMENT_NOTE
) -> str:
    """Experiment id for `name`, created if missing (with `artifact_location`; for a sqlite
    store, by default ``mlartifacts`` beside the database), marked as a model-training
    experiment with `note` on what it holds."""
    c = client(tracking_uri)
    exp = c.get_experiment_by_name(name)
    if artifact_location is None and tracking_uri.startswith("sqlite:///"):
        # MLflow's own default is ./mlruns of whatever folder the process runs in: keep a
        # database's artifacts beside it instead.
        artifact_location = str(Path(tracking_uri[len("sqlite:///") :]).parent / "mlartifacts")
    if exp is not None:
        if exp.tags.get(EXPERIMENT_KIND_TAG) is None:  # made before the kind was set
            c.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return str(exp.experiment_id)
    tags = {EXPERIMENT_KIND_TAG: EXPERIMENT_KIND, "mlflow.note.content": note}
    return str(c.create_experiment(name, artifact_location=artifact_location, tags=tags))


def log_run(
    tracking_uri: str,
    experiment: str,
    *,
    run_name: str,
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, float] | None = None,
    artifacts: Mapping[str, str | Path] | None = None,
    tags: Mapping[str, str] | None = None,
    parent_run_id: str | None = None,
    artifact_location: str | None = None,
) -> str:
    """Create a finished run with params, metrics, tags and artifact folders; returns its id.

    `artifacts` maps an artifact path inside the run to a local file or folder.
    """
    from mlflow.entities import Metric, Param

    c = client(tracking_uri)
    exp_id = ensure_experiment(tracking_uri, experiment, artifact_location)
    run_tags = dict(tags or {})
    if parent_run_id:
        run_tags["mlflow.parentRunId"] = parent_run_id
    run = c.create_run(exp_id, run_name=run_name, tags=run_tags)
    run_id = run.info.run_id
    try:
        now = int(time.time() * 1000)
        c.log_batch(
            run_id,
            metrics=[
                Metric(k, float(v), now, 0) for k, v in (metrics or {}).items() if math.isfinite(float(v))
            ],
            params=[Param(k, str(v)) for k, v in (params or {}).items()],
            tags=[],
        )
        for dest, local in (artifacts or {}).items():
            local = Path(local)
            if local.is_dir():
                c.log_artifacts(run_id, str(local), artifact_path=dest)
            else:
                c.log_artifact(run_id, str(local), artifact_path=dest or None)
    except Exception:
        c.set_terminated(run_id, status="FAILED")
        raise
    c.set_terminated(run_id, status="FINISHED")
    return str(run_id)


def start_parent_run(
    tracking_uri: str,
    experiment: str,
    run_name: str,
    tags: Mapping[str, str] | None = None,
    artifact_location: str | None = None,
) -> str:
    """An open run that child runs (e.g. Optuna trials) attach to; finish with `end_run`."""
    c = client(tracking_uri)
    exp_id = ensure_experiment(tracking_uri, experiment, artifact_location)
    return str(c.create_run(exp_id, run_name=run_name, tags=dict(tags or {})).info.run_id)


def end_run(tracking_uri: str, run_id: str, status: str = "FINISHED") -> None:
    client(tracking_uri).set_terminated(run_id, status=status)


# Tags of an Optuna study's runs: the study's name, and "study" (the shared parent run) or
# "trial" (one child per trial).
STUDY_TAG = "study_name"
ROLE_TAG = "optuna_role"


def study_runs(tracking_uri: str, experiment_id: str, study_name: str) -> list[str]:
    """The parent runs of `study_name` in an experiment, oldest first (start time, then id)."""
    runs = client(tracking_uri).search_runs(
        [experiment_id],
        filter_string=f"tags.{STUDY_TAG} = '{study_name}' and tags.{ROLE_TAG} = 'study'",
    )
    return [r.info.run_id for r in sorted(runs, key=lambda r: (r.info.start_time, r.info.run_id))]


def end_study_runs(
    tracking_uri: str,
    experiment: str,
    study_name: str,
    status: str,
    report: str | None = None,
    files: Mapping[str, str] | None = None,
) -> list[str]:
    """End the study's parent run(s) with `status` (FINISHED or FAILED), with the study's
    `report` (HTML) attached as ``reports/study.html`` and `files` (artifact path -> text,
    e.g. its pictures) beside it; returns their ids."""
    found = client(tracking_uri).get_experiment_by_name(experiment)
    if found is None:
        return []
    ended = study_runs(tracking_uri, found.experiment_id, study_name)
    for run_id in ended:
        if report is not None:
            log_report(tracking_uri, run_id, report, "study.html")
        log_texts(tracking_uri, run_id, dict(files or {}))
        end_run(tracking_uri, run_id, status)
    return ended


def log_report(tracking_uri: str, run_id: str, text: str, name: str) -> None:
    """Attach a report to a run: the MLflow UI shows it among the run's artifacts, ``reports/<name>``."""
    log_texts(tracking_uri, run_id, {f"reports/{name}": text})


def log_texts(tracking_uri: str, run_id: str, files: Mapping[str, str]) -> None:
    """Attach text files to a run, each at its artifact path (``plots/x.svg``: shown as a picture)."""
    c = client(tracking_uri)
    for path, text in files.items():
        c.log_text(run_id, text, path)


def version_run_id(tracking_uri: str, version: str, name: str = MODEL_NAME) -> str:
    """The training run of a registered version."""
    return str(client(tracking_uri).get_model_version(name, str(version)).run_id)


def register_model(
    tracking_uri: str,
    run_id: str,
    name: str = MODEL_NAME,
    artifact_path: str = MODEL_ARTIFACT_PATH,
    tags: Mapping[str, str] | None = None,
) -> str:
    """Register the run's model folder as a new version of `name`; returns the version."""
    from mlflow.exceptions import MlflowException

    c = client(tracking_uri)
    try:
        c.create_registered_model(name, description=MODEL_DESCRIPTION)
    except MlflowException as exc:
        if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
            raise
    source = f"{c.get_run(run_id).info.artifact_uri.rstrip('/')}/{artifact_path}"
    mv = c.create_model_version(name, source=source, run_id=run_id, tags=dict(tags or {}))
    return str(mv.version)


def get_alias(tracking_uri: str, alias: str = CHAMPION, name: str = MODEL_NAME) -> Any | None:
    """The model version holding `alias`, or None (no model, or alias unset)."""
    from mlflow.exceptions import MlflowException

    try:
        return client(tracking_uri).get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def set_alias(tracking_uri: str, version: str, alias: str = CHAMPION, name: str = MODEL_NAME) -> None:
    client(tracking_uri).set_registered_model_alias(name, alias, str(version))


def set_version_tags(
    tracking_uri: str, version: str, tags: Mapping[str, str], name: str = MODEL_NAME
) -> None:
    c = client(tracking_uri)
    for key, value in tags.items():
        c.set_model_version_tag(name, str(version), key, str(value))


def list_versions(tracking_uri: str, name: str = MODEL_NAME) -> list[Any]:
    """All versions of `name`, oldest first."""
    versions = client(tracking_uri).search_model_versions(f"name = '{name}'")
    return sorted(versions, key=lambda mv: int(mv.version))


def run_metrics(tracking_uri: str, run_id: str) -> dict[str, float]:
    return dict(client(tracking_uri).get_run(run_id).data.metrics)


def download_model(
    tracking_uri: str, version: str, dst: str | Path | None = None, name: str = MODEL_NAME
) -> Path:
    """Download a registered version's model folder; returns the local folder."""
    c = client(tracking_uri)
    mv = c.get_model_version(name, str(version))
    out = Path(dst) if dst else Path(tempfile.mkdtemp(prefix=f"{name}-v{version}-"))
    out.mkdir(parents=True, exist_ok=True)
    local = c.download_artifacts(mv.run_id, MODEL_ARTIFACT_PATH, str(out))
    return Path(local)
