"""The pipelines by name (imported lazily so the CLI starts fast)."""

from __future__ import annotations

import importlib
from typing import Any

PIPELINES: dict[str, str] = {
    "dataops": "pipelines.dataops:dataops",
    "mlops": "pipelines.mlops:mlops",
    "continual": "pipelines.continual:continual",
}


# A module may also define ``for_cluster()``: the build that compiled YAML carries, with KFP
# placeholders ``kfp.local`` cannot run (the run's scheduled time).
CLUSTER_BUILD = "for_cluster"


def load(name: str, cluster: bool = False) -> Any:
    """The pipeline `name`: the build ``kfp.local`` runs, or with `cluster` the one to compile."""
    try:
        target = PIPELINES[name]
    except KeyError:
        raise SystemExit(f"unknown pipeline {name!r}; choose from {', '.join(PIPELINES)}") from None
    module_name, attr = target.split(":")
    module = importlib.import_module(module_name)
    if cluster and hasattr(module, CLUSTER_BUILD):
        return getattr(module, CLUSTER_BUILD)()
    return getattr(module, attr)
