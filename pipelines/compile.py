"""Compile pipelines to YAML."""

from __future__ import annotations

from pathlib import Path

from pipelines import registry


def compile_all(out: Path, names: list[str] | None = None) -> list[Path]:
    from kfp import compiler

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names or list(registry.PIPELINES):
        path = out / f"{name}.yaml"
        compiler.Compiler().compile(registry.load(name, cluster=True), str(path))
        paths.append(path)
    return paths
