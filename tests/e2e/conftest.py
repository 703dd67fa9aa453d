from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

PipelinesCLI = Callable[..., dict[str, Any]]
# .ci/run sets it after starting an engine and building the images: then a missing engine or
# image fails the docker tests instead of skipping them.
REQUIRED = os.environ.get("KFP_MLOPS_DOCKER") == "1"


@pytest.fixture(scope="session")
def pipelines_cli() -> PipelinesCLI:
    """Run `python -m pipelines ... --stores S --json` as a user would; returns the JSON
    summary (its last stdout line) and fails the test, with the error and the progress
    log, when the command exits non-zero."""

    def run(*args: str, stores: Path, timeout: float = 1800) -> dict[str, Any]:
        proc = subprocess.run(
            [sys.executable, "-m", "pipelines", *args, "--stores", str(stores), "--json"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        lines = proc.stdout.strip().splitlines()
        summary = json.loads(lines[-1]) if lines else {}
        assert proc.returncode == 0, f"{' '.join(args)}: {summary.get('error')}\n{proc.stderr[-3000:]}"
        return summary

    return run


def _unavailable(reason: str) -> None:
    message = f"DOCKER TESTS NOT RUN: {reason}"
    if REQUIRED:
        pytest.fail(message)
    warnings.warn(message, stacklevel=2)
    print(f"\n!!! {message} !!!", file=sys.stderr)
    pytest.skip(message)


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """A Docker engine that answers; skipped loudly (or failed under CI) if none."""
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        _unavailable("no Docker engine answers (run ../shared/env/docker-up.sh)")


@pytest.fixture(scope="session")
def docker_images(docker_engine: None) -> dict[str, str]:
    """The step images (components.images), built; skipped loudly (or failed under CI) if not."""
    from components.catalog import IMAGES

    missing = [
        ref
        for ref in IMAGES.values()
        if subprocess.run(["docker", "image", "inspect", ref], capture_output=True).returncode
    ]
    if missing:
        _unavailable(f"images not built: {', '.join(sorted(set(missing)))} (run make images)")
    return IMAGES
