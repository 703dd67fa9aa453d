"""Runs that overlap, as a cron run and a manual run do: the published table always equals
the source of a run that reported success — never a mix — and the other run says why.

Two runs are started at the same moment (each waits for one "go" file before it starts the
CLI). On one ``--stores`` folder the second waits for the first, or stops at once with
``--if-busy fail``. Two runs that share only the warehouse file (as two KFP runs share a
warehouse on a cluster, where no run holds a lock for its whole length) take turns at it
step by step; what one run's step wrote is checked by the next step of that run, so a run
whose tables another run replaced fails instead of publishing the other's data.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tagifai.sample import write_sample

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.e2e, pytest.mark.slow]
REDIRECTS = ("KFP_MLOPS_STORES", "WAREHOUSE_URI", "MLFLOW_TRACKING_URI", "OPTUNA_STORAGE")
_START_ON_GO = """
    import os, sys, time
    go = sys.argv[1]
    while not os.path.exists(go):
        time.sleep(0.005)
    os.execv(sys.executable, [sys.executable, "-m", "pipelines", *sys.argv[2:]])
"""


@dataclass
class Outcome:
    returncode: int
    summary: dict[str, Any]
    stderr: str
    ended: float


def _together(commands: list[list[str]], go: Path, env: dict[str, str] | None = None) -> list[Outcome]:
    """Start every `python -m pipelines` command at the same moment; their outcomes, in order."""
    base = {k: v for k, v in os.environ.items() if k not in REDIRECTS}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(_START_ON_GO), str(go), *cmd],
            cwd=ROOT,
            env={**base, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for cmd in commands
    ]
    time.sleep(0.3)
    go.touch()
    ended: dict[int, float] = {}
    while len(ended) < len(procs):
        for i, proc in enumerate(procs):
            if i not in ended and proc.poll() is not None:
                ended[i] = time.monotonic()
        time.sleep(0.05)
    outcomes = []
    for i, proc in enumerate(procs):
        out, err = proc.communicate(timeout=60)
        lines = out.strip().splitlines()
        summary = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
        outcomes.append(Outcome(proc.returncode, summary, err, ended[i]))
    return outcomes


def _labeled(source: Path) -> set[tuple[int, str]]:
    """What dataops publishes from a source: each project's id with its tag."""
    con = duckdb.connect()
    try:
        rows = con.execute(
            "select p.id, t.tag from read_csv(?, header=true) p join read_csv(?, header=true) t using (id)",
            [str(source / "projects.csv"), str(source / "tags.csv")],
        ).fetchall()
    finally:
        con.close()
    return {(int(i), str(t)) for i, t in rows}


def _published(warehouse: Path) -> set[tuple[int, str]]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = con.execute("select id, tag from mlops_course.labeled_projects").fetchall()
    finally:
        con.close()
    return {(int(i), str(t)) for i, t in rows}


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sources")
    found = {name: write_sample(root / name, rows=3_000, seed=seed) for name, seed in (("a", 1), ("b", 2))}
    assert _labeled(found["a"]) != _labeled(found["b"])
    return found


def _dataops(source: Path, stores: Path, *flags: str) -> list[str]:
    return ["run", "dataops", "--local", "--source", str(source), "--stores", str(stores), "--json", *flags]


def test_two_dataops_runs_on_one_stores_one_fails_at_once_and_the_table_is_the_others(
    sources: dict[str, Path], tmp_path: Path
) -> None:
    stores = tmp_path / "stores"
    outcomes = _together(
        [_dataops(sources[n], stores, "--if-busy", "fail") for n in ("a", "b")], tmp_path / "go"
    )
    codes = sorted(o.returncode for o in outcomes)
    assert codes == [0, 3], [o.stderr[-2000:] for o in outcomes]
    winner = next(n for n, o in zip("ab", outcomes, strict=True) if o.returncode == 0)
    loser = next(o for o in outcomes if o.returncode == 3)
    assert "is busy" in loser.stderr and "use --if-busy wait" in loser.stderr
    assert _published(stores / "warehouse.duckdb") == _labeled(sources[winner])


def test_two_dataops_runs_on_one_stores_take_turns_and_the_later_ones_table_stands(
    sources: dict[str, Path], tmp_path: Path
) -> None:
    stores = tmp_path / "stores"
    outcomes = _together([_dataops(sources[n], stores) for n in ("a", "b")], tmp_path / "go")
    assert [o.returncode for o in outcomes] == [0, 0], [o.stderr[-2000:] for o in outcomes]
    later = "ab"[max(range(2), key=lambda i: outcomes[i].ended)]
    assert _published(stores / "warehouse.duckdb") == _labeled(sources[later])
    assert any("waiting for the stores folder" in o.stderr for o in outcomes)


@pytest.mark.parametrize("attempt", range(3))
def test_two_runs_sharing_only_the_warehouse_never_publish_a_mix(
    sources: dict[str, Path], tmp_path: Path, attempt: int
) -> None:
    # What a cluster does: two pipeline runs, one warehouse, no run-long lock between them.
    warehouse = tmp_path / "shared" / "warehouse.duckdb"
    commands = [_dataops(sources[n], tmp_path / f"stores-{n}") for n in ("a", "b")]
    outcomes = _together(commands, tmp_path / "go", env={"WAREHOUSE_URI": f"duckdb:///{warehouse}"})
    succeeded = [n for n, o in zip("ab", outcomes, strict=True) if o.returncode == 0]
    for outcome in outcomes:
        if outcome.returncode != 0:
            # The other run replaced a table this run had written: said so, nothing published.
            assert outcome.returncode == 1, outcome.stderr[-2000:]
            assert "another run changed it" in outcome.summary["error"], outcome.summary["error"]
    if not succeeded:
        assert not warehouse.exists() or _published_or_none(warehouse) is None
        return
    published = _published(warehouse)
    assert published in [_labeled(sources[n]) for n in succeeded]  # never a mix


def _published_or_none(warehouse: Path) -> set[tuple[int, str]] | None:
    try:
        return _published(warehouse)
    except duckdb.CatalogException:
        return None


def test_two_mlops_runs_on_one_stores_register_two_versions_and_end_every_mlflow_run(
    sources: dict[str, Path], tmp_path: Path
) -> None:
    stores = tmp_path / "stores"
    [first] = _together([_dataops(sources["a"], stores)], tmp_path / "go-dataops")
    assert first.returncode == 0, first.stderr[-2000:]
    mlops = [
        "run",
        "mlops",
        "--local",
        "--stores",
        str(stores),
        "--json",
        "--trials",
        "2",
        "--workers",
        "1",
        "--param",
        "trial_epochs=5",
    ]
    outcomes = _together([mlops, mlops], tmp_path / "go-mlops")
    assert [o.returncode for o in outcomes] == [0, 0], [o.stderr[-2000:] for o in outcomes]
    versions = sorted(o.summary["model_version"] for o in outcomes)
    assert versions == ["1", "2"]

    from tagifai import tracking

    uri = f"sqlite:///{stores / 'mlflow.db'}"
    client = tracking.client(uri)
    experiment = client.get_experiment_by_name("tagifai")
    runs = client.search_runs([experiment.experiment_id])
    assert runs and all(r.info.status == "FINISHED" for r in runs), {r.info.status for r in runs}
    champion = tracking.get_alias(uri)
    assert champion is not None and str(champion.version) in versions
