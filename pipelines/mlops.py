"""MLOps: extract -> validate -> optimize (parallel Optuna workers) -> train -> evaluate -> promote.

    extract -> [train_and_promote]
    train_and_promote: validate -> optimize x N (one shared study) -> study summary
        -> train (MLflow run + registry version) -> evaluate (candidate vs. champion, same test rows)
        -> dsl.If(promote) -> promote

`train_and_promote` is a pipeline of its own so that the continual-learning pipeline can
nest it on a composed retraining set. It, ``mlops`` and ``continual`` take their training
parameters from :mod:`pipelines.training` (``@training_parameters``).
"""

import functools
from typing import Any

from kfp import dsl
from kfp.dsl import Dataset, Input
from kfp.dsl.graph_component import GraphComponent

from components.evaluate.component import evaluate
from components.extract.component import extract
from components.ge_validate.component import ge_validate
from components.optimize.component import optimize
from components.promote.component import promote
from components.study_summary.component import study_summary
from components.train.component import train
from pipelines.platform import wire
from pipelines.settings import CLUSTER_WAREHOUSE
from pipelines.training import PIPELINE_RUN, training_parameters


@dsl.pipeline(
    name="train-and-promote",
    description="Validate a labeled dataset, tune, train and register tagifai, and promote it "
    "to champion only if it beats the current champion.",
)
@training_parameters()
def train_and_promote(dataset: Input[Dataset], **training: Any) -> str:
    check = ge_validate(dataset=dataset, suite="labeled_projects")
    wire(check).set_display_name("validate dataset")

    # One Optuna study per run, shared by every worker through `optuna_storage`; the
    # workers and the summary find it, and its MLflow runs, by these.
    tracking_uri, experiment = training["tracking_uri"], training["experiment"]
    study = {
        "study_name": dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        "storage": training["optuna_storage"],
        "tracking_uri": tracking_uri,
        "experiment": experiment,
    }
    with dsl.ParallelFor(training["workers"], parallelism=2) as worker:
        tune = optimize(
            dataset=dataset,
            **study,
            worker=worker,
            n_trials=training["trials_per_worker"],
            num_epochs=training["trial_epochs"],
            artifact_root=training["artifact_root"],
            **PIPELINE_RUN,
        ).after(check)
        wire(tune).set_display_name("optimize")

    best = study_summary(**study, expected_trials=training["expected_trials"]).after(tune)
    wire(best).set_display_name("study summary")

    fit = train(
        dataset=dataset,
        best_params=best.outputs["best_params"],
        tracking_uri=tracking_uri,
        experiment=experiment,
        artifact_root=training["artifact_root"],
        param_overrides=training["param_overrides"],
        validation_report=check.outputs["data_docs"],  # kept with the model's run in MLflow
        **PIPELINE_RUN,
    )
    wire(fit).set_display_name("train")

    gate = evaluate(
        dataset=dataset,
        candidate_version=fit.outputs["version"],
        tracking_uri=tracking_uri,
        margin=training["margin"],
        slice_tolerance=training["slice_tolerance"],
    )
    wire(gate).set_display_name("evaluate")

    with dsl.If(gate.outputs["decision"] == "promote", name="better-than-champion"):
        crown = promote(
            version=fit.outputs["version"],
            tracking_uri=tracking_uri,
            reason=gate.outputs["reason"],
            compared_with=gate.outputs["champion_version"],
        )
        wire(crown).set_display_name("promote")
    return gate.outputs["decision"]


def build(scheduled_time: str = "") -> GraphComponent:
    """The mlops pipeline; `scheduled_time` is what extract receives as the run's scheduled time.

    ``mlops`` (below) passes "": ``kfp.local`` cannot run KFP's time placeholders. The cluster
    build (`for_cluster`) passes ``dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER``, so a
    recurring run extracts the table as of its scheduled time (see ``components.cutoff``).
    """

    @dsl.pipeline(
        name="mlops",
        description="Extract labeled_projects, validate, tune with parallel Optuna workers, train and "
        "register tagifai in MLflow, evaluate against the champion and promote only if it is better.",
    )
    @training_parameters()
    def mlops(warehouse: str = CLUSTER_WAREHOUSE, *, as_of: str = "", **training: Any) -> str:
        data = extract(warehouse=warehouse, as_of=as_of, scheduled_time=scheduled_time)
        wire(data).set_display_name("extract labeled_projects")
        gated = train_and_promote(dataset=data.outputs["dataset"], **training)
        gated.set_display_name("train and promote")
        return gated.output

    return mlops


mlops = build()


@functools.cache
def for_cluster() -> GraphComponent:
    """The build that compiled YAML carries: extract gets the run's scheduled time."""
    return build(dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER)
