"""End to end: a local run's processes end with it, and the watcher neither leaves a run
behind nor runs one twice — through the real commands (``python -m pipelines run`` /
``watch``) on small generated sources, checked on the processes and on the published table.

- SIGKILL of the CLI alone (not its process group), warm and cold: within seconds no process
  of the run is left and a writer opens the warehouse at once.
- Ctrl-C (SIGINT to the process group, as a terminal sends it): exit 130, one message naming
  the running task, no traceback, the published table as it was, the run's processes gone.
- The watcher SIGKILLed mid-run, then restarted: its run's processes are gone, exactly one
  run of that data version ran to completion, and the table is that version's.
- A source going A -> B -> A with the watcher: the published table ends equal to A.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from components import warehouse_lock
from pipelines.local import guard, lifetime
from tagifai.sample import write_sample

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED = "mlops_course.labeled_projects"
# Settings that would send a run somewhere other than its --stores folder.
REDIRECTS = ("KFP_MLOPS_STORES", "WAREHOUSE_URI", "MLFLOW_TRACKING_URI", "OPTUNA_STORAGE")
# kfp.local's line for a publish task that ended well, in a run's log (colour codes between).
PUBLISH_DONE = re.compile(r"Task \S*'publish'\S* finished with status \S*SUCCESS")


def env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if k not in REDIRECTS}, **extra}


def end_session(session: int) -> None:
    """Kill whatever is left of a session: a failing test leaves no process behind."""
    for pid in lifetime.session_members(session):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> float:
    t0 = time.monotonic()
    while not check():
        assert time.monotonic() - t0 < timeout, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.01)
    return time.monotonic() - t0


def gone_within(session: int, timeout: float) -> float:
    """Seconds until no process of `session` is left (fails after `timeout`, naming them)."""
    t0 = time.monotonic()
    while members := lifetime.session_members(session):
        if time.monotonic() - t0 > timeout:
            names = [
                Path(f"/proc/{p}/cmdline").read_bytes()[:120] for p in members if Path(f"/proc/{p}").exists()
            ]
            raise AssertionError(f"processes of the run still alive after {timeout}s: {names}")
        time.sleep(0.02)
    return time.monotonic() - t0


def table(warehouse: Path) -> set[tuple[object, ...]]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return set(con.execute(f"select id, title, description, tag from {PUBLISHED}").fetchall())
    finally:
        con.close()


def expected(source: Path) -> set[tuple[object, ...]]:
    """The source's projects joined with their tags: what dataops publishes for it."""
    con = duckdb.connect()
    try:
        return set(
            con.execute(
                f"select p.id, p.title, p.description, t.tag from read_csv('{source / 'projects.csv'}') p "
                f"join read_csv('{source / 'tags.csv'}') t using (id)"
            ).fetchall()
        )
    finally:
        con.close()


def cli(source: str, stores: Path, **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipelines",
            "run",
            "dataops",
            "--local",
            "--source",
            source,
            "--stores",
            str(stores),
        ],
        cwd=ROOT,
        env=env(**extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the run's session holds every process it starts
    )


def writing_task(stores: Path, run: int) -> int | None:
    """The pid of a task of run `run` that holds the warehouse for writing now, if any."""
    for record in (stores / "warehouse.duckdb.holders").glob("*.json"):
        try:
            body = json.loads(record.read_text())
        except (OSError, ValueError):
            continue
        pid = int(body.get("pid", 0))
        if body.get("write") and pid != run and pid in lifetime.session_members(run):
            return pid
    return None


# --------------------------------------------------------------------------- the CLI


@pytest.mark.parametrize("warm", ["1", "0"], ids=["warm", "cold"])
def test_sigkill_of_the_cli_alone_ends_every_task_process_and_frees_the_warehouse(
    tmp_path: Path, warm: str
) -> None:
    stores = tmp_path / "stores"
    proc = cli("sample:200000", stores, KFP_MLOPS_WARM=warm)
    try:
        deadline = time.monotonic() + 300
        while not (task := writing_task(stores, proc.pid)):
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "no task ever held the warehouse"
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)  # the CLI alone: its group gets nothing
        proc.wait(timeout=10)
        seconds = gone_within(proc.pid, timeout=10)
        assert seconds < 5 and not guard.alive(task)
        duckdb.connect(str(stores / "warehouse.duckdb")).close()  # a writer opens it at once
    finally:
        end_session(proc.pid)
        proc.communicate(timeout=30)


def test_ctrl_c_stops_the_run_with_one_message_and_leaves_the_published_table(
    tmp_path: Path,
) -> None:
    stores, first, second = tmp_path / "stores", tmp_path / "a", tmp_path / "b"
    write_sample(first, rows=300, seed=1)
    write_sample(second, rows=320, seed=2)
    done = cli(str(first), stores)
    _, err = done.communicate(timeout=600)
    assert done.returncode == 0, err[-3000:]
    before = table(stores / "warehouse.duckdb")
    assert before == expected(first)

    proc = cli(str(second), stores)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "▶ transform labeled_projects" in line:
                break
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
        out, err = proc.communicate(timeout=60)
    finally:
        end_session(proc.pid)
    assert proc.returncode == 130, err[-3000:]
    assert err.strip().splitlines()[-2:] == [
        "interrupted (Ctrl-C) while running dataops: transform labeled_projects; those tasks were stopped.",
        "dataops: publish labeled_projects did not run: the published table is as it was.",
    ]
    assert "Traceback" not in out + err
    assert "transform labeled_projects       stopped" in out
    gone_within(proc.pid, timeout=5)
    assert table(stores / "warehouse.duckdb") == before
    with warehouse_lock.turn(stores / "stores", write=True, purpose="check", wait_s=0):
        pass  # the stores were released


# --------------------------------------------------------------------------- the watcher


def watcher(source: Path, stores: Path, *extra: str, out: Path | None = None) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "pipelines", "watch", "--source", str(source), "--local"]
    argv += ["--pipeline", "dataops", "--stores", str(stores), "--settle", "0", *extra]
    output = open(out, "w") if out is not None else subprocess.PIPE  # noqa: SIM115
    return subprocess.Popen(argv, cwd=ROOT, env=env(), stdout=output, stderr=subprocess.STDOUT, text=True)


def watch_once(source: Path, stores: Path) -> str:
    proc = watcher(source, stores, "--once")
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    return out


def test_a_source_going_a_b_a_leaves_the_published_table_equal_to_a(tmp_path: Path) -> None:
    source, stores = tmp_path / "source", tmp_path / "stores"
    write_sample(source, rows=60, seed=1)
    a = expected(source)
    watch_once(source, stores)
    assert table(stores / "warehouse.duckdb") == a
    write_sample(source, rows=70, seed=2)
    b = expected(source)
    watch_once(source, stores)
    assert table(stores / "warehouse.duckdb") == b != a
    write_sample(source, rows=60, seed=1)
    out = watch_once(source, stores)
    assert "differs from what was published" in out and "[dataops] succeeded" in out
    assert table(stores / "warehouse.duckdb") == a
    state = json.loads((stores / "watch-state.json").read_text())
    keys = [r["data_version"] for r in state["runs"]]
    assert [r["status"] for r in state["runs"]] == ["succeeded"] * 3 and keys[0] == keys[2] != keys[1]
    assert state["published"]["data_version"] == keys[0]


def test_a_watcher_killed_mid_run_leaves_nothing_running_and_its_restart_runs_that_version_once(
    tmp_path: Path,
) -> None:
    source, stores, first_out = tmp_path / "source", tmp_path / "stores", tmp_path / "first.log"
    write_sample(source, rows=60, seed=3)
    proc = watcher(source, stores, "--interval", "60", out=first_out)
    try:
        wait_for(lambda: "▶ transform labeled_projects" in first_out.read_text(), 600, "the run's transform")
        state = json.loads((stores / "watch-state.json").read_text())
        (entry,) = state["runs"]
        assert entry["status"] == "running" and entry["pid"]
        proc.kill()  # SIGKILL: the watcher runs no handler
        proc.wait(timeout=10)
        seconds = gone_within(entry["pid"], timeout=30)  # the guard's session: the CLI, fork server, tasks
    finally:
        proc.kill()
        if (stores / "watch-state.json").exists():
            for run in json.loads((stores / "watch-state.json").read_text())["runs"]:
                if run.get("pid"):
                    end_session(run["pid"])
    assert seconds < 10
    duckdb.connect(str(stores / "warehouse.duckdb")).close()  # nothing holds the warehouse
    first = first_out.read_text()
    assert "[dataops] succeeded" not in first

    again = watch_once(source, stores)
    assert "interrupted (stopped: its parent ended" in again  # the killed run, settled first
    assert again.count("[dataops] succeeded") == 1
    state = json.loads((stores / "watch-state.json").read_text())
    assert [r["status"] for r in state["runs"]] == ["interrupted", "succeeded"]
    assert (
        state["runs"][0]["data_version"]
        == state["runs"][1]["data_version"]
        == state["published"]["data_version"]
    )
    assert table(stores / "warehouse.duckdb") == expected(source)
    logs = [log.read_text() for log in sorted((stores / "runs").glob("dataops-*/run.log"))]
    assert len(logs) == 2 and [PUBLISH_DONE.search(log) is not None for log in logs] == [False, True]
