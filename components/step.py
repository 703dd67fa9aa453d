"""``step_component(step)``: the ``@dsl.component`` of every step, in one place.

A step's component runs on the step's image (:mod:`components.images`) with kfp baked into
it (no pip at task start), and its container runs kfp's executor through
:mod:`components.executor`, which ends the process as soon as the task's outputs are written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kfp import dsl

from components.images import IMAGES

# The line kfp's lightweight-component script runs, and what the steps run instead. The
# executor module stays named on the command line: kfp.local checks for it.
KFP_EXECUTOR = "_KFP_RUNTIME=true python3 -m kfp.dsl.executor_main"
STEP_EXECUTOR = "_KFP_RUNTIME=true python3 -m components.executor kfp.dsl.executor_main"


def step_component(step: str) -> Callable[[Callable[..., Any]], Any]:
    """Decorator: `func` as the KFP component of `step` (a key of ``IMAGES``)."""
    image = IMAGES[step]

    def decorate(func: Callable[..., Any]) -> Any:
        component = dsl.component(base_image=image, install_kfp_package=False)(func)
        command = component.component_spec.implementation.container.command
        scripts = [i for i, part in enumerate(command) if KFP_EXECUTOR in part]
        if len(scripts) != 1 or command[scripts[0]].count(KFP_EXECUTOR) != 1:
            raise RuntimeError(
                f"{func.__name__}: kfp's lightweight-component command no longer runs "
                f"{KFP_EXECUTOR!r} once; components.step must be updated for this kfp version"
            )
        command[scripts[0]] = command[scripts[0]].replace(KFP_EXECUTOR, STEP_EXECUTOR)
        return component

    return decorate
