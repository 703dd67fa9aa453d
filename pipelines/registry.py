"""The pipelines by name (imported lazily so the CLI starts fast)."""

from __future__ import annotations

import importlib
from typing import Any

PIPELINES: dict[str, str] = {
    "dataops": "pipelines.dataops:dataops",
    "mlops": "pipelines.mlops:mlops",
    "continual": "pipelines.continual:continual",
}


def load(name: str) -> Any:
    try:
        target = PIPELINES[name]
    except KeyError:
        raise SystemExit(f"unknown pipeline {name!r}; choose from {', '.join(PIPELINES)}") from None
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)
