"""``step_component``: the one declaration of every step.

A step is declared once, on its component function::

    @step_component("evaluate", image="train", needs=(MLFLOW_CREDENTIALS, STORES))
    def evaluate(...): ...

The declaration names the image the step runs on (:mod:`components.images`; its own by
default) and what it needs on a cluster: credentials, the stores volume, pod retries for a
step that calls a flaky external service, caching. Everything else follows from it: the
component's ``base_image``, the map of every step's image (:mod:`components.catalog`), and
the Kubernetes wiring a pipeline attaches with ``pipelines.platform.wire(task)``.

The component runs with kfp baked into its image (no pip at task start), and its container
runs kfp's executor through :mod:`components.executor`, which ends the process as soon as the
task's outputs are written and its exit hooks have run.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from kfp import dsl

from components.images import image, image_spec

# The line kfp's lightweight-component script runs, and what the steps run instead. The
# executor module stays named on the command line: kfp.local checks for it.
KFP_EXECUTOR = "_KFP_RUNTIME=true python3 -m kfp.dsl.executor_main"
STEP_EXECUTOR = "_KFP_RUNTIME=true python3 -m components.executor kfp.dsl.executor_main"


class Need(enum.Enum):
    """What a step's pod needs on a cluster (``pipelines.platform`` wires each one)."""

    AIRBYTE_CREDENTIALS = "the Airbyte API's credentials"
    WAREHOUSE_CREDENTIALS = "the BigQuery credentials"
    MLFLOW_CREDENTIALS = "the MLflow tracking server's credentials"
    OPTUNA_CREDENTIALS = "the Optuna study storage's password"
    STORES = "the stores volume (the embedded warehouse, sources)"


AIRBYTE_CREDENTIALS = Need.AIRBYTE_CREDENTIALS
WAREHOUSE_CREDENTIALS = Need.WAREHOUSE_CREDENTIALS
MLFLOW_CREDENTIALS = Need.MLFLOW_CREDENTIALS
OPTUNA_CREDENTIALS = Need.OPTUNA_CREDENTIALS
STORES = Need.STORES


@dataclass(frozen=True)
class Step:
    """A step, as declared.

    Attributes:
        name: As its folder ``components/<name>/`` and its function.
        image: The image it runs on (a key of ``components.images.IMAGE_SPECS``).
        needs: What its pod needs on a cluster.
        external: It calls an external service whose failures are transient (an Airbyte
            sync): pod-level retries with backoff, and a deadline for each attempt.
        cache: Whether KFP may reuse an earlier run's outputs. Off for every step here: a
            step reads the warehouse, the registry or a source, which a cached result
            would not see change.
    """

    name: str
    image: str
    needs: tuple[Need, ...]
    external: bool = False
    cache: bool = False

    @property
    def image_ref(self) -> str:
        return image(self.image)


_DECLARED: dict[str, Step] = {}


def declared() -> dict[str, Step]:
    """Every step declared so far (a step is declared when its component module is imported;
    :mod:`components.catalog` imports them all)."""
    return dict(_DECLARED)


def component_of(label: str) -> str:
    """The component a compiled task or executor runs: ``exec-ge-validate-2`` and
    ``ge-validate-2`` (the second task of it) -> ``ge-validate``."""
    return re.sub(r"-\d+$", "", label.removeprefix("exec-"))


def step_of(name: str) -> Step:
    """The declaration of a step, by its name (``ge_validate``) or its component's (``ge-validate``)."""
    key = name.replace("-", "_")
    try:
        return _DECLARED[key]
    except KeyError:
        raise KeyError(
            f"no step {name!r} is declared (components/<step>/component.py with @step_component); "
            f"declared: {', '.join(sorted(_DECLARED))}"
        ) from None


def step_component(
    name: str,
    *,
    image: str | None = None,
    needs: Iterable[Need] = (),
    external: bool = False,
    cache: bool = False,
) -> Callable[[Callable[..., Any]], Any]:
    """Decorator: `func` as the KFP component of step `name`, declared with what it needs.

    Args:
        name: The step's name: its folder under ``components/`` and its function's name.
        image: The image it runs on; its own (``name``) by default.
        needs: What its pod needs on a cluster (:class:`Need`).
        external: It calls a flaky external service (pod retries and a deadline).
        cache: Whether KFP may reuse an earlier run's outputs.

    Raises:
        KeyError: The image is unknown.
        ValueError: The step is declared twice, differently.
    """
    step = Step(name, image or name, tuple(needs), external, cache)
    image_spec(step.image)  # an unknown image fails here, naming the known ones

    def decorate(func: Callable[..., Any]) -> Any:
        if _DECLARED.get(name, step) != step:
            raise ValueError(f"step {name!r} is declared twice, differently")
        component = dsl.component(base_image=step.image_ref, install_kfp_package=False)(func)
        command = component.component_spec.implementation.container.command
        scripts = [i for i, part in enumerate(command) if KFP_EXECUTOR in part]
        if len(scripts) != 1 or command[scripts[0]].count(KFP_EXECUTOR) != 1:
            raise RuntimeError(
                f"{func.__name__}: kfp's lightweight-component command no longer runs "
                f"{KFP_EXECUTOR!r} once; components.step must be updated for this kfp version"
            )
        command[scripts[0]] = command[scripts[0]].replace(KFP_EXECUTOR, STEP_EXECUTOR)
        _DECLARED[name] = step
        return component

    return decorate
