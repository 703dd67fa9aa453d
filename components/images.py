"""The container images the steps run on: what each holds, and its reference.

A step names its image in its declaration (:func:`components.step.step_component`);
several steps may share one. An image here is one build of the single template
``images/Dockerfile``: the project's extra it installs, whether it carries the whole kfp
SDK, its description and its size goal (:mod:`images.build` reads them).

The registry comes from ``IMAGE_REGISTRY`` (default ``ghcr.io/kfp-mlops``) at compile
time; the tag is the package version, so the images, the package and the compiled YAML
always move together. Never ``:latest``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import metadata

DEFAULT_REGISTRY = "ghcr.io/kfp-mlops"
DEFAULT_SIZE_GOAL_MB = 600


@dataclass(frozen=True)
class Image:
    """One image: ``kfp-mlops-<name>``, built from ``images/Dockerfile``.

    Attributes:
        name: The image's key (``train``); its repository is ``kfp-mlops-train``.
        extra: The ``pyproject.toml`` extra it installs on top of kfp's task runtime.
        description: One line, for its OCI label.
        sdk: Whether it carries the whole kfp SDK (compile, submit) instead of the task
            runtime only (``_KFP_RUNTIME=true``).
        data: The project's data folders it carries under ``/app`` (``dbt_transforms``).
        size_goal_mb: The size the image build checks it against.
    """

    name: str
    extra: str
    description: str
    sdk: bool = False
    data: tuple[str, ...] = ()
    size_goal_mb: int = DEFAULT_SIZE_GOAL_MB

    def build_args(self, version: str) -> dict[str, str]:
        """The build arguments of ``images/Dockerfile`` for this image."""
        return {
            "REPOSITORY": self.repository,
            "EXTRA": self.extra,
            "SDK": "true" if self.sdk else "false",
            "KFP_RUNTIME": "false" if self.sdk else "true",
            "DATA": " ".join(self.data),
            "DESCRIPTION": self.description,
            "VERSION": version,
        }

    @property
    def repository(self) -> str:
        return "kfp-mlops-" + self.name.replace("_", "-")


# In build order: the first builds the layers every image shares, the rest reuse them.
IMAGE_SPECS: dict[str, Image] = {
    image.name: image
    for image in (
        Image(
            "airbyte_sync",
            "airbyte",
            "Extract-load of the projects and tags streams (Airbyte API client or embedded loader).",
        ),
        Image(
            "ge_validate",
            "gx",
            "Great Expectations validation of a warehouse table or dataset.",
            data=("great_expectations",),
        ),
        Image(
            "dbt_transform",
            "dbt",
            "dbt build of the labeled_projects mart (duckdb and bigquery targets).",
            data=("dbt_transforms",),
            size_goal_mb=900,  # dbt-bigquery brings pyarrow and the Vertex AI client
        ),
        # The watcher Deployment runs `python -m pipelines watch` on it: it compiles and submits.
        Image(
            "extract",
            "extract",
            "Extract of labeled_projects from the warehouse; also runs publish.",
            sdk=True,
        ),
        # The model images carry the sentence encoder (onnxruntime, tokenizers, the int8 model).
        Image("optimize", "optimize", "Optuna worker and study summary.", size_goal_mb=750),
        Image(
            "train",
            "train",
            "Training, evaluation, promotion and drift monitoring of the tagifai model.",
            size_goal_mb=750,
        ),
    )
}
# The one image with the whole kfp SDK (compile, submit): the watcher Deployment runs on it.
SDK_IMAGE = next(image.name for image in IMAGE_SPECS.values() if image.sdk)


def package_version() -> str:
    try:
        return metadata.version("kfp-mlops")
    except metadata.PackageNotFoundError:  # running from a source tree without install
        return "0.0.0-dev"


def registry() -> str:
    return os.environ.get("IMAGE_REGISTRY", DEFAULT_REGISTRY).rstrip("/")


def image_spec(name: str) -> Image:
    try:
        return IMAGE_SPECS[name]
    except KeyError:
        raise KeyError(f"no image {name!r}; the images are {', '.join(IMAGE_SPECS)}") from None


def image(name: str) -> str:
    """Full reference of an image: ``<registry>/kfp-mlops-<name>:<version>``."""
    return f"{registry()}/{image_spec(name).repository}:{package_version()}"
