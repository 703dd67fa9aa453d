"""The one map of container images. Components read their `base_image` from here.

The registry comes from ``IMAGE_REGISTRY`` (default ``ghcr.io/kfp-mlops``) at compile
time; the tag is the package version, so the images, the package and the compiled YAML
always move together. Never ``:latest``.
"""

from __future__ import annotations

import os
from importlib import metadata

DEFAULT_REGISTRY = "ghcr.io/kfp-mlops"

# Every step with its own image. Steps that share an image say so here.
STEPS: tuple[str, ...] = (
    "airbyte_sync",
    "ge_validate",
    "dbt_transform",
    "extract",
    "optimize",
    "train",
)
# evaluate / promote / monitor run on the train image (same deps: sklearn + mlflow);
# publish runs on the extract image (warehouse client only).
SHARED: dict[str, str] = {
    "evaluate": "train",
    "promote": "train",
    "monitor": "train",
    "compose": "train",
    "rollback": "train",
    "study_summary": "optimize",
    "publish": "extract",
}
# The one image with the whole kfp SDK (compile, submit): the watcher Deployment runs on it.
# The others hold kfp's task runtime only (images/<step>/Dockerfile).
SDK_STEP = "extract"


def package_version() -> str:
    try:
        return metadata.version("kfp-mlops")
    except metadata.PackageNotFoundError:  # running from a source tree without install
        return "0.0.0-dev"


def registry() -> str:
    return os.environ.get("IMAGE_REGISTRY", DEFAULT_REGISTRY).rstrip("/")


def image_name(step: str) -> str:
    """Image repository name of a step, e.g. ``kfp-mlops-train``."""
    base = SHARED.get(step, step)
    if base not in STEPS:
        raise KeyError(f"no image for step {step!r}; known: {', '.join(STEPS + tuple(SHARED))}")
    return "kfp-mlops-" + base.replace("_", "-")


def image(step: str) -> str:
    """Full image reference of a step: ``<registry>/<name>:<version>``."""
    return f"{registry()}/{image_name(step)}:{package_version()}"


IMAGES: dict[str, str] = {step: image(step) for step in STEPS + tuple(SHARED)}
