"""The training parameters of ``train_and_promote``, ``mlops`` and ``continual``, declared once.

:class:`Training` lists them in order, with their types and defaults. KFP reads a pipeline's
parameters from its function's signature (``inspect.signature``, which honours
``__signature__``), so :func:`training_parameters` gives a function written as
``def mlops(warehouse: str = ..., *, as_of: str = "", **training: Any)`` the full signature:
its own parameters around the training ones. KFP calls the pipeline function with a channel
per parameter, by position; the wrapper binds them to that signature, so the function gets
the training ones in ``training`` and hands them on to the nested ``train_and_promote`` as
``**training``. A parameter added to :class:`Training` reaches all three pipelines.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kfp import dsl

from pipelines.settings import CLUSTER_OPTUNA_STORAGE, CLUSTER_TRACKING_URI

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Training:
    """Where a model's runs are kept and how it is tuned, trained and gated, unless a run
    says otherwise: each field a pipeline parameter, in the order the pipelines take them.

    Attributes:
        tracking_uri: MLflow tracking (and registry) URI.
        artifact_root: Artifact location for a new experiment (local sqlite tracking); empty
            lets a tracking server decide.
        optuna_storage: The Optuna storage the workers of a run share its study in.
        workers: One Optuna worker per index (each seeds its sampler with it).
        trials_per_worker: Trials each worker runs.
        expected_trials: Workers × trials per worker: what the study summary checks none was
            lost of.
        trial_epochs: Epochs of a trial (the final model trains for TrainParams' own).
        experiment: The MLflow experiment.
        param_overrides: JSON object of training params that replace the study's best.
        margin: How much the candidate's test F1 must beat the champion's by.
        slice_tolerance: How far any slice's F1 may drop below the champion's.
    """

    tracking_uri: str = CLUSTER_TRACKING_URI
    artifact_root: str = ""
    optuna_storage: str = CLUSTER_OPTUNA_STORAGE
    workers: list[int] = field(default_factory=lambda: [0, 1])
    trials_per_worker: int = 10
    expected_trials: int = field(init=False)
    trial_epochs: int = 30
    experiment: str = "tagifai"
    param_overrides: str = "{}"
    margin: float = 0.0
    slice_tolerance: float = 0.05

    def __post_init__(self) -> None:
        object.__setattr__(self, "expected_trials", len(self.workers) * self.trials_per_worker)


DEFAULTS = Training()


def parameters(exclude: Collection[str] = ()) -> list[inspect.Parameter]:
    """The training parameters but those in `exclude`, annotated and defaulted from :class:`Training`.

    Raises:
        ValueError: `exclude` names a parameter :class:`Training` does not declare.
    """
    names = [f.name for f in dataclasses.fields(Training)]
    unknown = sorted(set(exclude) - set(names))
    if unknown:
        raise ValueError(f"no training parameter {', '.join(unknown)}; they are {', '.join(names)}")
    types = typing.get_type_hints(Training)
    defaults = Training()  # a fresh one: each pipeline gets a workers list of its own
    return [
        inspect.Parameter(
            name,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            default=getattr(defaults, name),
            annotation=types[name],
        )
        for name in names
        if name not in exclude
    ]


def training_parameters(
    *, exclude: Collection[str] = (), after: Mapping[str, str] | None = None
) -> Callable[[F], F]:
    """Give a pipeline function taking ``**training`` the training parameters, for ``@dsl.pipeline``.

    The function's signature becomes its own parameters with the training ones (see
    :func:`parameters`) in place of ``**training``: its positional-or-keyword parameters
    first, then the training ones, then its keyword-only ones; one named in `after` comes
    right after the training parameter it maps to instead. A call, by position or keyword,
    is bound to that signature; the function gets its own parameters by name and the
    training ones in ``training``.

    Args:
        exclude: Training parameters the pipeline does not take.
        after: Own parameter -> the training parameter it follows.

    Raises:
        TypeError: The function takes no ``**training``.
        ValueError: `exclude` or `after` names a parameter there is not, or the function
            declares a training parameter itself.
    """
    placed = dict(after or {})

    def decorate(func: F) -> F:
        declared = inspect.signature(func)
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in declared.parameters.values()):
            raise TypeError(f"{func.__name__} takes no **training for the training parameters")
        own = [p for p in declared.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        training = parameters(exclude)
        names = [p.name for p in training]
        clash = sorted(set(names) & {p.name for p in own})
        if clash:
            raise ValueError(f"{func.__name__} declares training parameters itself: {', '.join(clash)}")
        stray = sorted(set(placed) - {p.name for p in own}) + sorted(set(placed.values()) - set(names))
        if stray:
            raise ValueError(
                f"after names {', '.join(stray)}: its keys must be {func.__name__}'s parameters, "
                "its values training parameters it takes"
            )
        signature = declared.replace(parameters=_ordered(own, training, placed))

        @functools.wraps(func)
        def pipeline(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            given = bound.arguments
            return func(**{n: v for n, v in given.items() if n not in names}, **{n: given[n] for n in names})

        pipeline.__signature__ = signature  # type: ignore[attr-defined]
        return typing.cast(F, pipeline)

    return decorate


def _ordered(
    own: list[inspect.Parameter], training: list[inspect.Parameter], placed: Mapping[str, str]
) -> list[inspect.Parameter]:
    """`own` and `training` in the order :func:`training_parameters` gives them, all
    positional-or-keyword (KFP passes a pipeline function its channels by position)."""
    first = [p for p in own if p.kind is not inspect.Parameter.KEYWORD_ONLY and p.name not in placed]
    last = [p for p in own if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in placed]
    middle = [q for t in training for q in (t, *(p for p in own if placed.get(p.name) == t.name))]
    return [p.replace(kind=inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in (*first, *middle, *last)]


# The pipeline run, for the steps that tag their MLflow runs with it (components.lineage).
# Each placeholder is a whole input value: the only form the KFP driver substitutes
# (backend/src/v2/driver/resolve.go, resolveInputParameter).
PIPELINE_RUN = {
    "pipeline_run_id": dsl.PIPELINE_JOB_ID_PLACEHOLDER,
    "pipeline_run_name": dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
}
