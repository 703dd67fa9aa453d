"""Continual learning: snapshot the table, monitor drift, then continue, improve (retrain),
inspect or roll back.

extract (one snapshot of labeled_projects, cut at the run's as_of / scheduled time)
  -> monitor (new rows since the champion's data vs. its training reference)
       improve  -> compose the retraining set -> train_and_promote (nested mlops: validate,
                   optimize, train, evaluate against the champion, promote only if better)
       rollback -> move the `champion` alias back to the version it replaced
       inspect  -> the monitor's report for a person; nothing changes
       continue -> nothing changes

Only extract reads the warehouse (as in the mlops pipeline). monitor and compose both take
its one snapshot as input, so they see exactly the same rows: a row published while the run
goes on cannot reach compose unmonitored. Their image (train's) needs no warehouse client,
and their tasks no warehouse credentials.

`as_of` (or, on a cluster, the run's scheduled time) cuts the snapshot: the run sees the
rows created before that instant, so a backfilled run sees what a run at that time would have.
"""

import functools
from typing import Any

from kfp import dsl
from kfp.dsl.graph_component import GraphComponent

from components.compose.component import compose
from components.extract.component import extract
from components.monitor.component import monitor
from components.rollback.component import rollback
from pipelines.mlops import train_and_promote
from pipelines.platform import wire
from pipelines.settings import CLUSTER_WAREHOUSE
from pipelines.training import PIPELINE_RUN, training_parameters


def build(scheduled_time: str = "") -> GraphComponent:
    """The continual pipeline; `scheduled_time` is what extract receives as the run's
    scheduled time ("" in ``continual``, which ``kfp.local`` runs; KFP's placeholder in
    `for_cluster`, so a recurring run snapshots the table as of its scheduled time). monitor
    and compose read that snapshot, never the warehouse."""

    @dsl.pipeline(
        name="continual",
        description="Monitor drift of the new data against the champion's training data and act: "
        "continue, improve (retrain behind the promotion gate), inspect, or roll back.",
    )
    @training_parameters(exclude=("param_overrides",), after={"policy_json": "optuna_storage"})
    def continual(
        warehouse: str = CLUSTER_WAREHOUSE, policy_json: str = "{}", *, as_of: str = "", **training: Any
    ) -> str:
        tracking_uri = training["tracking_uri"]
        # One snapshot for the whole run: monitor and compose see the same rows.
        snap = extract(warehouse=warehouse, as_of=as_of, scheduled_time=scheduled_time)
        wire(snap).set_display_name("snapshot labeled_projects")

        watch = monitor(
            dataset=snap.outputs["dataset"],
            tracking_uri=tracking_uri,
            policy_json=policy_json,
            artifact_root=training["artifact_root"],
            **PIPELINE_RUN,
        )
        wire(watch).set_display_name("monitor drift")

        with dsl.If(watch.outputs["decision"] == "improve", name="improve"):
            data = compose(dataset=snap.outputs["dataset"], tracking_uri=tracking_uri)
            wire(data).set_display_name("compose retraining set")
            retrain = train_and_promote(dataset=data.outputs["retraining_set"], **training)
            retrain.set_display_name("retrain and gate")
        with dsl.If(watch.outputs["decision"] == "rollback", name="rollback"):
            back = rollback(
                tracking_uri=tracking_uri, reason="drift monitor: the champion degraded on new labels"
            )
            wire(back).set_display_name("roll back champion")
        # `inspect` and `continue` change nothing: the monitor's report is the outcome.
        return watch.outputs["decision"]

    return continual


continual = build()


@functools.cache
def for_cluster() -> GraphComponent:
    """The build that compiled YAML carries: extract gets the run's scheduled time (and
    monitor and compose its snapshot)."""
    return build(dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER)
