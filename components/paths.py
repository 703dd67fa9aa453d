"""Where the project's data projects (dbt, GX) and stores live at run time.

Inside an image the project files are copied to ``/app`` and ``KFP_MLOPS_HOME=/app`` is
set; from a source checkout (editable install) they are found next to this package.
"""

from __future__ import annotations

import os
from pathlib import Path


def project_home() -> Path:
    """The folder holding ``dbt_transforms/`` and ``great_expectations/``."""
    env = os.environ.get("KFP_MLOPS_HOME")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent.parent
    if (here / "dbt_transforms").is_dir():
        return here
    return Path.cwd()


def project_dir(name: str) -> Path:
    """A data project folder (``dbt_transforms`` or ``great_expectations``); clear error if absent."""
    path = project_home() / name
    if not path.is_dir():
        raise FileNotFoundError(
            f"{name}/ not found under {project_home()}; set KFP_MLOPS_HOME to the project checkout"
        )
    return path
