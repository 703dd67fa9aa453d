"""Local runs in Argo's order on real data sizes: the tasks that a cluster would overlap
overlap here too, and take turns at the one DuckDB warehouse file instead of failing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_dataops_on_a_million_sample_rows_overlaps_the_syncs_and_publishes_every_row(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "pipelines", "run", "dataops", "--local"),
            *("--source", "sample:1000000", "--stores", str(tmp_path / "stores"), "--json"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert proc.returncode == 0, f"{summary.get('error')}\n{proc.stderr[-3000:]}"
    assert summary["order"] == "argo"
    assert summary["rows_published"] == 1_000_000

    # Both syncs started before either ended: they ran at the same time, on one DuckDB file
    # (whether their loads met at the file depends on timing; tests/components/
    # test_warehouse_lock.py makes them meet).
    progress = [line.strip() for line in proc.stderr.splitlines()]
    first_end = next(i for i, line in enumerate(progress) if line.startswith("✓ sync"))
    assert {"▶ sync projects", "▶ sync tags"} <= set(progress[:first_end])
