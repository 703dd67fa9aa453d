"""What ties an MLflow run (or model version) to the pipeline run whose step made it.

The pipelines pass each tracking step the run's id and name through KFP's placeholders
(``dsl.PIPELINE_JOB_ID_PLACEHOLDER``, ``dsl.PIPELINE_JOB_NAME_PLACEHOLDER``). On a KFP backend
the driver substitutes them with the run's id and display name
(``backend/src/v2/driver/resolve.go``, resolveInputParameter), so the KFP UI's
``#/runs/details/<id>`` page is the run; ``kfp.local`` substitutes a fresh id and its run
folder's name (``<pipeline>-<time>``, inside ``stores/runs/<run>/``).
"""

from __future__ import annotations

RUN_ID_TAG = "kfp.pipeline_run_id"
RUN_NAME_TAG = "kfp.pipeline_run_name"
STEP_TAG = "kfp_step"


def pipeline_run_tags(run_id: str = "", run_name: str = "", step: str = "") -> dict[str, str]:
    """The tags naming the pipeline run and step; a value not given (a step run by hand) is left out."""
    if "{{$." in run_id + run_name:
        raise ValueError(
            f"pipeline run id {run_id!r} / name {run_name!r} is an unresolved KFP placeholder: "
            "pass it as the whole value of a task input, which is the only form the KFP driver substitutes"
        )
    tags = {RUN_ID_TAG: run_id, RUN_NAME_TAG: run_name, STEP_TAG: step}
    return {key: value for key, value in tags.items() if value}
