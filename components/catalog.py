"""Every step of the project, found from its folder and read from its declaration.

A step is a folder ``components/<step>/`` whose ``component.py`` declares it with
:func:`components.step.step_component`; importing this module imports every such
``component.py``, so :data:`STEPS` and :data:`IMAGES` always list exactly the steps there are.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from components.step import Step, declared

_HERE = Path(__file__).resolve().parent


def step_folders() -> list[str]:
    """The step folders under ``components/`` (those holding a ``component.py``), sorted."""
    return sorted(p.parent.name for p in _HERE.glob("*/component.py"))


def load() -> dict[str, Step]:
    """Import every step's component module; the declared steps by name."""
    folders = step_folders()
    for folder in folders:
        importlib.import_module(f"components.{folder}.component")
    # Only the steps of the folders: a component declared elsewhere (a test's, a notebook's)
    # is a step to wire, but not one of the project's.
    steps = {name: step for name, step in declared().items() if name in folders}
    undeclared = sorted(set(folders) - set(steps))
    if undeclared:
        raise RuntimeError(
            f"components/{undeclared[0]}/component.py declares no step: decorate its function with "
            f"@step_component({undeclared[0]!r}, ...)"
        )
    return steps


STEPS: dict[str, Step] = load()
# Every step's image reference (several steps share an image).
IMAGES: dict[str, str] = {name: step.image_ref for name, step in STEPS.items()}
