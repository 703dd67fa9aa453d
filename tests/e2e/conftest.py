from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

PipelinesCLI = Callable[..., dict[str, Any]]


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
