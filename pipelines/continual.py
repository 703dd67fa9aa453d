"""Continual learning: monitor drift, then continue, improve (retrain), inspect or roll back.

monitor (new rows since the champion's data vs. its training reference)
  improve  -> compose the retraining set -> train_and_promote (nested mlops: validate,
              optimize, train, evaluate against the champion, promote only if better)
  rollback -> move the `champion` alias back to the version it replaced
  inspect  -> the monitor's report for a person; nothing changes
  continue -> nothing changes

`as_of` (or, on a cluster, the run's scheduled time) cuts the table: the run sees the rows
created before that instant, so a backfilled run sees what a run at that time would have.
"""

import functools

from kfp import dsl
from kfp.dsl.graph_component import GraphComponent

from components.compose.component import compose
from components.monitor.component import monitor
from components.rollback.component import rollback
from pipelines.mlops import train_and_promote
from pipelines.platform import wire
from pipelines.settings import CLUSTER_OPTUNA_STORAGE, CLUSTER_TRACKING_URI, CLUSTER_WAREHOUSE


def build(scheduled_time: str = "") -> GraphComponent:
    """The continual pipeline; `scheduled_time` is what monitor and compose receive as the
    run's scheduled time ("" in ``continual``, which ``kfp.local`` runs; KFP's placeholder in
    `for_cluster`, so a recurring run sees the table as of its scheduled time)."""

    @dsl.pipeline(
        name="continual",
        description="Monitor drift of the new data against the champion's training data and act: "
        "continue, improve (retrain behind the promotion gate), inspect, or roll back.",
    )
    def continual(
        warehouse: str = CLUSTER_WAREHOUSE,
        tracking_uri: str = CLUSTER_TRACKING_URI,
        artifact_root: str = "",
        optuna_storage: str = CLUSTER_OPTUNA_STORAGE,
        policy_json: str = "{}",
        workers: list = [0, 1],  # noqa: B006 - a pipeline parameter default, never mutated
        trials_per_worker: int = 10,
        expected_trials: int = 20,
        trial_epochs: int = 30,
        experiment: str = "tagifai",
        margin: float = 0.0,
        slice_tolerance: float = 0.05,
        as_of: str = "",
    ) -> str:
        window = {"as_of": as_of, "scheduled_time": scheduled_time}
        watch = monitor(warehouse=warehouse, tracking_uri=tracking_uri, policy_json=policy_json, **window)
        wire(watch, "monitor").set_caching_options(False).set_display_name("monitor drift")

        with dsl.If(watch.outputs["Output"] == "improve", name="improve"):
            data = compose(warehouse=warehouse, tracking_uri=tracking_uri, **window)
            wire(data, "compose").set_caching_options(False).set_display_name("compose retraining set")
            retrain = train_and_promote(
                dataset=data.outputs["dataset"],
                tracking_uri=tracking_uri,
                artifact_root=artifact_root,
                optuna_storage=optuna_storage,
                workers=workers,
                trials_per_worker=trials_per_worker,
                expected_trials=expected_trials,
                trial_epochs=trial_epochs,
                experiment=experiment,
                margin=margin,
                slice_tolerance=slice_tolerance,
            )
            retrain.set_display_name("retrain and gate")
        with dsl.If(watch.outputs["Output"] == "rollback", name="rollback"):
            back = rollback(
                tracking_uri=tracking_uri, reason="drift monitor: the champion degraded on new labels"
            )
            wire(back, "rollback").set_caching_options(False).set_display_name("roll back champion")
        # `inspect` and `continue` change nothing: the monitor's report is the outcome.
        return watch.outputs["Output"]

    return continual


continual = build()


@functools.cache
def for_cluster() -> GraphComponent:
    """The build that compiled YAML carries: monitor and compose get the run's scheduled time."""
    return build(dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER)
