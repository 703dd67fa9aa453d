"""The new-data trigger: one run per data version, across instances and processes; clean
shutdown on SIGTERM; bounded intervals; warehouse and source probes on real files."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from components.warehouse import duckdb_connect
from pipelines.local import guard
from pipelines.triggers.probes import DataVersion, SourceProbe, WarehouseProbe
from pipelines.triggers.starters import (
    FAILED,
    INTERRUPTED,
    STARTED,
    CommandStarter,
    KfpStarter,
    LocalStarter,
    Started,
    WatchError,
)
from pipelines.triggers.state import State, state_lock
from pipelines.triggers.watch import (
    MAX_INTERVAL_S,
    Watcher,
    add_watch_command,
    check_interval,
    cmd_watch,
    main,
)
from tagifai.sample import write_sample

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class RecordingStarter:
    """A Starter that records the versions it was asked to start (it starts nothing)."""

    description: str = "recording starter"
    calls: list[DataVersion] = field(default_factory=list)
    fail_with: Exception | None = None

    def start(self, version: DataVersion, should_stop: Callable[[], bool]) -> Started:
        if self.fail_with is not None:
            raise self.fail_with
        self.calls.append(version)
        return Started(STARTED, f"run-{len(self.calls)}", f"http://kfp/#/runs/details/run-{len(self.calls)}")


def quiet(_: str) -> None:
    pass


def poll_once(source: Path, state: Path, starter: Any) -> int:
    """A fresh watcher (new probe, new state object): what a restarted process would do."""
    return Watcher(SourceProbe(source, settle_s=0), starter, state, log=quiet).run(once=True)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return write_sample(tmp_path / "source", rows=40, seed=5)


def read_state(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    assert data["format"] == 1
    return data


# --------------------------------------------------------------------------- dedupe


def test_one_run_per_data_version_across_watcher_instances(source: Path, tmp_path: Path) -> None:
    state, starter = tmp_path / "state.json", RecordingStarter()
    assert poll_once(source, state, starter) == 0
    assert poll_once(source, state, starter) == 0  # a restarted watcher: same version, no run
    assert [v.rows for v in starter.calls] == [40]

    write_sample(source, rows=45, seed=5)  # five new projects
    assert poll_once(source, state, starter) == 0
    assert poll_once(source, state, starter) == 0
    assert [v.rows for v in starter.calls] == [40, 45]
    first, second = starter.calls
    assert first.key != second.key and second.max_created_on > first.max_created_on

    runs = read_state(state)["runs"]
    assert [(r["data_version"], r["rows"], r["status"], r["run"]) for r in runs] == [
        (first.key, 40, STARTED, "run-1"),
        (second.key, 45, STARTED, "run-2"),
    ]
    assert read_state(state)["last_poll"]["outcome"] == "unchanged"
    assert not list(tmp_path.glob(".state.json.*.tmp"))  # atomic writes leave no temp file


def test_one_run_per_data_version_across_processes(source: Path, tmp_path: Path) -> None:
    """Two real `python -m pipelines.triggers.watch --once` processes; the command appends what it got."""
    out, state = tmp_path / "runs.txt", tmp_path / "state.json"
    script = f"import os; open({str(out)!r}, 'a').write(os.environ['KFP_MLOPS_DATA_VERSION'] + '\\n')"
    argv = [
        sys.executable,
        "-m",
        "pipelines.triggers.watch",
        "--source",
        str(source),
        "--exec",
        subprocess.list2cmdline([sys.executable, "-c", script]),
        "--state",
        str(state),
        "--settle",
        "0",
        "--once",
    ]
    for _ in range(2):
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
    assert "is what the last run published" in proc.stdout and "nothing to do" in proc.stdout
    lines = out.read_text().splitlines()
    assert lines == [read_state(state)["runs"][0]["data_version"]]
    assert read_state(state)["runs"][0]["status"] == "succeeded"


def test_a_failed_start_is_retried_and_a_failed_run_is_not(source: Path, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    broken = RecordingStarter(fail_with=ConnectionError("KFP host unreachable"))
    assert poll_once(source, state, broken) == 1  # --once reports the failure
    assert read_state(state)["runs"] == []
    assert read_state(state)["last_poll"]["message"] == "could not start a run: KFP host unreachable"
    # The next poll starts it; a command that fails is recorded as failed, and not run again.
    failing = CommandStarter([sys.executable, "-c", "raise SystemExit(3)"])
    assert poll_once(source, state, failing) == 1
    assert poll_once(source, state, failing) == 0
    assert [(r["status"], r["detail"]) for r in read_state(state)["runs"]] == [(FAILED, "exit code 3")]


# --------------------------------------------------------------------------- shutdown


def _spawn_watch(source: Path, state: Path, command: list[str], *extra: str) -> subprocess.Popen[str]:
    """``python -m pipelines.triggers.watch --exec COMMAND`` on `source` (default: every 5 s)."""
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "pipelines.triggers.watch", "--source", str(source)),
            *("--exec", subprocess.list2cmdline(command), "--state", str(state), "--settle", "0"),
            *(extra or ("--interval", "5")),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def _stop(proc: subprocess.Popen[str]) -> tuple[int, float, str]:
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=10)
    finally:
        proc.kill()
    return proc.returncode, time.monotonic() - t0, out


def test_sigterm_between_polls_exits_0_promptly_with_valid_state(source: Path, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    proc = _spawn_watch(source, state, [sys.executable, "-c", "pass"], "--interval", "60")
    _wait_for(lambda: state.exists() and read_state(state)["last_poll"] is not None)
    code, seconds, out = _stop(proc)
    assert code == 0 and seconds < 3, out
    assert "stopped; state saved" in out
    data = read_state(state)
    assert [r["status"] for r in data["runs"]] == ["succeeded"]


def test_sigterm_during_a_run_stops_it_and_records_it_as_interrupted(source: Path, tmp_path: Path) -> None:
    state, marker = tmp_path / "state.json", tmp_path / "child.pid"
    child = f"import os, time; open({str(marker)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    proc = _spawn_watch(source, state, [sys.executable, "-c", child])
    _wait_for(lambda: marker.exists() and marker.read_text() != "")
    code, seconds, out = _stop(proc)
    assert code == 0 and seconds < 5, out
    assert "run interrupted" in out
    with pytest.raises(ProcessLookupError):  # the run was stopped (and reaped)
        os.kill(int(marker.read_text()), 0)
    data = read_state(state)
    assert [r["status"] for r in data["runs"]] == [INTERRUPTED] and data["published"] is None
    assert data["last_poll"]["outcome"] == INTERRUPTED
    # Not published: the next watcher starts that version again.
    starter = RecordingStarter()
    assert poll_once(source, state, starter) == 0 and len(starter.calls) == 1


# --------------------------------------------------------------------------- guards


def test_interval_bounds(source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert check_interval(5) == 5 and check_interval(MAX_INTERVAL_S) == MAX_INTERVAL_S
    with pytest.raises(WatchError, match=r"--interval must be between 5 and 86400 seconds, got 4\.5"):
        check_interval(4.5)
    watcher = Watcher(SourceProbe(source), RecordingStarter(), tmp_path / "s.json", log=quiet)
    with pytest.raises(WatchError, match="got 100000"):
        watcher.run(interval=100_000)
    assert main(["--source", str(source), "--interval", "1", "--state", str(tmp_path / "s.json")]) == 2
    assert capsys.readouterr().err == "error: --interval must be between 5 and 86400 seconds, got 1\n"
    assert not (tmp_path / "s.json").exists()


def test_one_watcher_per_state_file_and_corrupt_state(source: Path, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    with state_lock(state), pytest.raises(WatchError, match="another watcher is using"):
        poll_once(source, state, RecordingStarter())
    state.write_text("{not json")
    with pytest.raises(WatchError, match=r"state file .* is unreadable .*; fix or delete it"):
        poll_once(source, state, RecordingStarter())
    state.write_text('{"runs": 3}')
    with pytest.raises(WatchError, match="is not a watch state"):
        State.load(state, "x")


def test_cli_flags(source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_watch_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["watch", "--source", str(source), "--once", "--exec", "true", "--host", "http://x"]
    )
    assert args.func is cmd_watch
    assert cmd_watch(args) == 2
    assert capsys.readouterr().err == "error: choose one of --exec, --host\n"
    assert main(["--source", str(tmp_path / "nope"), "--once"]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert (
        main(["--source", str(source), "--once", "--grace", "-1", "--state", str(tmp_path / "s.json")]) == 2
    )
    assert capsys.readouterr().err == "error: --grace must not be negative, got -1\n"


# --------------------------------------------------------------------------- probes


def test_source_probe_waits_for_files_to_settle(source: Path) -> None:
    now = time.time()
    probe = SourceProbe(source, settle_s=30, clock=lambda: now)
    assert probe.current() is None and "changed 0." in probe.problem
    later = SourceProbe(source, settle_s=30, clock=lambda: now + 60).current()
    assert later is not None and later.rows == 40
    (source / "tags.csv").unlink()
    assert SourceProbe(source, settle_s=0).current() is None


def test_warehouse_probe(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    probe = WarehouseProbe(f"duckdb:///{path}")
    assert probe.current() is None and "does not exist yet" in probe.problem
    df = pd.DataFrame(
        {
            "id": [1, 2],
            "created_on": ["2020-01-01 00:00:00", "2020-02-01 00:00:00"],
            "title": ["a", "b"],
            "description": ["x", None],
            "tag": ["mlops", None],
        }
    )

    def publish(frame: pd.DataFrame) -> None:
        with duckdb_connect(path) as con:
            con.execute("create schema if not exists mlops_course")
            con.register("frame", frame)
            con.execute("create or replace table mlops_course.labeled_projects as select * from frame")

    with duckdb_connect(path) as con:
        con.execute("create schema mlops_course")
    assert probe.current() is None and "does not exist yet" in probe.problem
    publish(df)
    v1 = probe.current()
    assert v1 is not None and (v1.rows, v1.max_created_on) == (2, "2020-02-01 00:00:00")
    publish(df.iloc[::-1])  # same rows, another order: same version
    assert probe.current() == v1
    publish(df.assign(tag=["mlops", "computer-vision"]))  # a label arrives: a new version
    v2 = probe.current()
    assert v2 is not None and v2.key != v1.key and v2.rows == 2
    # Another process writing the warehouse holds its lock: the poll waits.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(path)!r}); print('ready', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        assert probe.current() is None and probe.problem.startswith("warehouse busy or unreadable")
    finally:
        holder.kill()
        holder.wait()
    assert probe.current() == v2


# --------------------------------------------------------------------------- starters


def test_kfp_starter_submits_the_compiled_package(tmp_path: Path) -> None:
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    @dataclass
    class Submitted:
        run_id: str
        url: str

    def submit(*args: Any, **kwargs: Any) -> Submitted:
        calls.append((args, kwargs))
        return Submitted("r-1", "http://kfp/#/runs/details/r-1")

    @dataclass
    class Conn:
        host: str = "http://kfp"

    conn = Conn()
    starter = KfpStarter(conn, "mlops", tmp_path / "mlops.yaml", {"margin": 0.01}, "exp", submit=submit)
    version = DataVersion("abc123", 10, "2020-01-01")
    assert starter.start(version, lambda: False) == Started(STARTED, "r-1", "http://kfp/#/runs/details/r-1")
    (args, kwargs) = calls[0]
    assert args == ("mlops", tmp_path / "mlops.yaml", conn)
    assert (kwargs["params"], kwargs["experiment"], kwargs["run_name"]) == (
        {"margin": 0.01},
        "exp",
        "mlops data abc123",
    )


def test_local_starter_command(tmp_path: Path) -> None:
    src = LocalStarter("all", tmp_path / "stores", source=tmp_path / "src", params=["trial_epochs=5"])
    assert src.argv[1:] == [
        "-m",
        "pipelines",
        "run",
        "all",
        "--local",
        "--stores",
        str(tmp_path / "stores"),
        "--if-busy",
        "wait",
        "--source",
        str(tmp_path / "src"),
        "--param",
        "trial_epochs=5",
    ]
    wh = LocalStarter("mlops", tmp_path / "stores", source=tmp_path / "src", warehouse="duckdb:///w.duckdb")
    assert "--source" not in wh.argv and wh.env == {"WAREHOUSE_URI": "duckdb:///w.duckdb"}
    out = tmp_path / "env.json"
    echo = CommandStarter(
        [sys.executable, "-c", f"import json, os; json.dump(dict(os.environ), open({str(out)!r}, 'w'))"]
    )
    assert echo.start(DataVersion("k1", 3, "2021-01-01"), lambda: False).status == "succeeded"
    env = json.loads(out.read_text())
    assert (env["KFP_MLOPS_DATA_VERSION"], env["KFP_MLOPS_DATA_ROWS"]) == ("k1", "3")
    assert env["KFP_MLOPS_DATA_MAX_CREATED_ON"] == "2021-01-01"


# --------------------------------------------------------------------------- what was published


def counting_command(log: Path, fail_rows: int = -1, seconds: float = 0.0) -> CommandStarter:
    """A run that logs its start and end (with the data version), taking `seconds`; it fails
    for a data version of `fail_rows` rows."""
    script = (
        "import os, sys, time\n"
        f"log = open({str(log)!r}, 'a', buffering=1)\n"
        "version, rows = os.environ['KFP_MLOPS_DATA_VERSION'], int(os.environ['KFP_MLOPS_DATA_ROWS'])\n"
        "log.write(f'start {version} {os.getpid()}\\n')\n"
        f"time.sleep({seconds})\n"
        f"if rows == {fail_rows}: sys.exit(1)\n"
        "log.write(f'done {version}\\n')\n"
    )
    return CommandStarter([sys.executable, "-c", script])


def lines(log: Path, word: str) -> list[str]:
    return (
        [line.split()[1] for line in log.read_text().splitlines() if line.startswith(word)]
        if log.exists()
        else []
    )


def test_a_source_that_goes_back_to_an_earlier_content_is_published_again(
    source: Path, tmp_path: Path
) -> None:
    """A -> B -> A: the third poll starts a run for A again, since B is what was published."""
    state, log = tmp_path / "state.json", tmp_path / "runs.log"
    starter = counting_command(log)
    write_sample(source, rows=40, seed=5)
    assert poll_once(source, state, starter) == 0
    write_sample(source, rows=45, seed=6)
    assert poll_once(source, state, starter) == 0
    write_sample(source, rows=40, seed=5)
    assert poll_once(source, state, starter) == 0
    assert poll_once(source, state, starter) == 0  # A is published now: nothing to do
    a, b, again = lines(log, "done")
    assert a == again != b and lines(log, "start") == [a, b, a]
    data = read_state(state)
    assert data["published"]["data_version"] == a and data["published"]["rows"] == 40
    assert [r["status"] for r in data["runs"]] == ["succeeded"] * 3
    assert data["last_poll"]["outcome"] == "unchanged"


def test_a_failed_version_is_not_retried_until_another_one_is_published(source: Path, tmp_path: Path) -> None:
    state, log = tmp_path / "state.json", tmp_path / "runs.log"
    starter = counting_command(log, fail_rows=45)
    for rows in (40, 45, 45, 50, 45):
        write_sample(source, rows=rows, seed=rows)
        poll_once(source, state, starter)
    data = read_state(state)
    assert [(r["rows"], r["status"]) for r in data["runs"]] == [
        (40, "succeeded"),
        (45, "failed"),  # the second poll of 45 rows started nothing
        (50, "succeeded"),
        (45, "failed"),  # after 50 was published, 45 is new again
    ]
    assert data["published"]["rows"] == 50
    assert len(lines(log, "start")) == 4


def test_a_state_file_without_published_takes_its_last_success(source: Path, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    version = SourceProbe(source, settle_s=0).current()
    assert version is not None
    old = {
        "data_version": version.key,
        "rows": 40,
        "status": "succeeded",
        "run": "r",
        "detail": "",
        "at": "x",
    }
    state.write_text(json.dumps({"format": 1, "runs": [old], "last_poll": None}))
    starter = RecordingStarter()
    assert poll_once(source, state, starter) == 0 and starter.calls == []
    assert read_state(state)["published"]["data_version"] == version.key


# --------------------------------------------------------------------------- a killed watcher


def test_a_killed_watcher_takes_its_run_along_and_the_next_one_runs_that_version_once(
    source: Path, tmp_path: Path
) -> None:
    state, log = tmp_path / "state.json", tmp_path / "runs.log"
    command = counting_command(log, seconds=3).argv
    watcher = _spawn_watch(source, state, command, "--interval", "60")
    _wait_for(lambda: len(lines(log, "start")) == 1)
    run_pid = int(log.read_text().split()[2])
    assert read_state(state)["runs"][-1]["status"] == "running"  # recorded before it started
    watcher.kill()  # SIGKILL: no handler runs in the watcher
    watcher.wait(timeout=10)
    _wait_for(lambda: not guard.alive(run_pid), timeout=5)  # the run died with it
    assert lines(log, "done") == []

    restarted = _spawn_watch(source, state, command, "--once")
    out, _ = restarted.communicate(timeout=60)
    assert restarted.returncode == 0, out
    assert "stopped: its parent ended" in out, out  # the left-over run was settled first
    version = lines(log, "start")[0]
    assert lines(log, "start") == [version, version] and lines(log, "done") == [version]
    data = read_state(state)
    assert [r["status"] for r in data["runs"]] == ["interrupted", "succeeded"]
    assert data["published"]["data_version"] == version
    assert not list((tmp_path / "watch-runs").iterdir())  # settled reports are removed


def test_a_restarted_watcher_waits_for_a_run_that_outlived_its_watcher_instead_of_starting_another(
    source: Path, tmp_path: Path
) -> None:
    """The run ignores SIGTERM (a run still stopping, or one started where the kernel cannot
    end it with the watcher): the next watcher re-attaches to it and does not run it again."""
    state, log = tmp_path / "state.json", tmp_path / "runs.log"
    script = (
        "import os, signal, time\n"
        f"log = open({str(log)!r}, 'a', buffering=1)\n"
        "signal.signal(signal.SIGTERM, lambda *a: log.write('got SIGTERM\\n'))\n"
        "log.write(f\"start {os.environ['KFP_MLOPS_DATA_VERSION']} {os.getpid()}\\n\")\n"
        "end = time.monotonic() + 8\n"
        "while time.monotonic() < end: time.sleep(0.05)\n"
        "log.write(f\"done {os.environ['KFP_MLOPS_DATA_VERSION']}\\n\")\n"
    )
    command = [sys.executable, "-c", script]
    watcher = _spawn_watch(source, state, command, "--interval", "60", "--grace", "30")
    _wait_for(lambda: len(lines(log, "start")) == 1)
    watcher.kill()
    watcher.wait(timeout=10)  # (its output pipe stays open while the run goes on)
    _wait_for(lambda: "got SIGTERM" in log.read_text(), timeout=5)  # the guard asked it to stop

    restarted = _spawn_watch(source, state, command, "--once", "--grace", "30")
    out, _ = restarted.communicate(timeout=60)
    assert restarted.returncode == 0, out
    assert "is still going" in out and "waiting for it to end" in out, out
    version = lines(log, "start")[0]
    assert lines(log, "start") == [version] and lines(log, "done") == [version]  # one run, run once
    data = read_state(state)
    assert [r["status"] for r in data["runs"]] == ["succeeded"]  # it exited 0: its data is published
    assert data["published"]["data_version"] == version
    assert "is what the last run published" in out


def test_the_source_probe_reads_only_regular_files_inside_the_folder(source: Path, tmp_path: Path) -> None:
    # A tags.csv linked to a secret elsewhere: the probe reports it and reads nothing of it.
    secret = tmp_path / "key.json"
    secret.write_text('{"private_key": "SECRET-VALUE"}\n')
    (source / "tags.csv").rename(tmp_path / "tags-original.csv")
    (source / "tags.csv").symlink_to(secret)
    probe = SourceProbe(source, settle_s=0)
    assert probe.current() is None
    assert "is a symbolic link, not a regular file" in probe.problem
    assert "SECRET-VALUE" not in probe.problem
