"""The training defaults, declared once for ``train_and_promote``, ``mlops`` and ``continual``.

KFP needs every pipeline to declare its own parameters, so the three pipelines each list
them; their defaults come from :data:`DEFAULTS`, and the two outer pipelines hand them on to
the nested ``train_and_promote`` with :func:`forward` (a test checks the three agree).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kfp import dsl


@dataclass(frozen=True)
class Training:
    """How a model is tuned, trained and gated, unless a run says otherwise.

    Attributes:
        workers: One Optuna worker per index (each seeds its sampler with it).
        trials_per_worker: Trials each worker runs.
        trial_epochs: Epochs of a trial (the final model trains for TrainParams' own).
        experiment: The MLflow experiment.
        param_overrides: JSON object of training params that replace the study's best.
        margin: How much the candidate's test F1 must beat the champion's by.
        slice_tolerance: How far any slice's F1 may drop below the champion's.
    """

    workers: tuple[int, ...] = (0, 1)
    trials_per_worker: int = 10
    trial_epochs: int = 30
    experiment: str = "tagifai"
    param_overrides: str = "{}"
    margin: float = 0.0
    slice_tolerance: float = 0.05

    @property
    def expected_trials(self) -> int:
        """Workers × trials per worker: what the study summary checks none was lost of."""
        return len(self.workers) * self.trials_per_worker


DEFAULTS = Training()
# What mlops and continual hand on to the nested train_and_promote, by the same names.
FORWARDED = (
    "tracking_uri",
    "artifact_root",
    "optuna_storage",
    "workers",
    "trials_per_worker",
    "expected_trials",
    "trial_epochs",
    "experiment",
    "param_overrides",
    "margin",
    "slice_tolerance",
)


def forward(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The training parameters among a pipeline's `parameters`, to pass to train_and_promote."""
    return {name: parameters[name] for name in FORWARDED if name in parameters}


# The pipeline run, for the steps that tag their MLflow runs with it (components.lineage).
# Each placeholder is a whole input value: the only form the KFP driver substitutes
# (backend/src/v2/driver/resolve.go, resolveInputParameter).
PIPELINE_RUN = {
    "pipeline_run_id": dsl.PIPELINE_JOB_ID_PLACEHOLDER,
    "pipeline_run_name": dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
}
