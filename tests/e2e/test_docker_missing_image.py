"""`run --docker` with an image the engine does not have (and cannot pull): one message naming
the image, the steps that need it and `make images`; no raw Docker API error, nothing run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]


def test_a_missing_image_is_named_with_its_steps_and_how_to_build_it(
    docker_engine: None, tmp_path: Path
) -> None:
    # A registry nothing answers on: the images are not in the engine and no pull can succeed.
    env = {**os.environ, "IMAGE_REGISTRY": "127.0.0.1:9/nowhere", "PYTHONUNBUFFERED": "1"}
    stores = tmp_path / "stores"
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines", "run", "dataops", "--docker", "--stores", str(stores)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    error = proc.stderr.strip().splitlines()[-1]
    assert "the Docker engine has no image 127.0.0.1:9/nowhere/kfp-mlops-airbyte-sync:" in error, error
    assert (
        "(for airbyte-sync; pull:" in error
        and "(for ge-validate; pull:" in error
        and "Build the images with `make images`" in error
    )
    assert "APIError" not in proc.stderr and "Traceback" not in proc.stderr
    assert not list((stores / "runs").glob("dataops-*")), "a refused run leaves no run folder"
