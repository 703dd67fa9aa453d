"""Compile pipelines to YAML, for a KFP backend on Kubernetes or for Vertex AI Pipelines."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pipelines import registry

if TYPE_CHECKING:
    from pipelines.vertex import VertexSettings

TARGETS = ("kfp", "vertex")


def compile_all(
    out: Path, names: list[str] | None = None, target: str = "kfp", vertex: VertexSettings | None = None
) -> list[Path]:
    """Compile `names` (default: every pipeline) into ``out/<name>.yaml``.

    Args:
        out: The folder to write into (created).
        names: The pipelines to compile.
        target: ``kfp``: the cluster build with its ``platforms.kubernetes`` wiring;
            ``vertex``: the Vertex AI build (one document, see :mod:`pipelines.vertex`).
        vertex: The Vertex settings (default: resolved from the environment).

    Raises:
        ValueError: An unknown target; for ``vertex``, missing or malformed settings.
    """
    from kfp import compiler

    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; choose from {', '.join(TARGETS)}")
    if target == "vertex":
        from pipelines import vertex as vx

        settings = vertex or vx.VertexSettings.resolve()
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names or list(registry.PIPELINES):
        path = out / f"{name}.yaml"
        pipeline = vx.build(name, settings) if target == "vertex" else registry.load(name, cluster=True)
        compiler.Compiler().compile(pipeline, str(path))
        paths.append(path)
    return paths
