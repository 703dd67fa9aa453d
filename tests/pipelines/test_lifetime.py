"""Processes end with what started them (pipelines/local/guard.py, pipelines/local/lifetime.py): the guard, process trees,
and a local run whose own process is SIGKILLed or interrupted — real processes throughout,
a real DuckDB file held by the task."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from pipelines.local import guard, lifetime
from pipelines.local.guard import alive, descendants, end_tree, start_time
from pipelines.local.guard import main as guard_main

ROOT = Path(__file__).resolve().parents[2]
GUARD = [sys.executable, "-m", "pipelines.local.guard"]


def end_session(session: int) -> None:
    """Kill whatever is left of a session: a failing test leaves no process behind."""
    for pid in lifetime.session_members(session):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def wait_for(
    check: Callable[[], bool], timeout: float = 30.0, what: str = "it", left: Callable[[], str] = str
) -> float:
    """Seconds until `check()` held; fails after `timeout`, saying what `left()` says."""
    t0 = time.monotonic()
    while not check():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what} {left()}".rstrip())
        time.sleep(0.01)
    return time.monotonic() - t0


def describe(pids: list[int]) -> str:
    """``pid state command`` of each process, for a failure message."""
    out = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
        except OSError:
            continue
        out.append(f"{pid} {state} {command}")
    return "; ".join(out)


def pids_in(path: Path) -> list[int]:
    wait_for(lambda: path.exists() and path.read_text().endswith("\n"), what=f"{path.name}")
    return [int(p) for p in path.read_text().split()]


# --------------------------------------------------------------------------- the guard


def test_the_guard_passes_the_exit_code_on_and_ends_what_the_command_left_running(tmp_path: Path) -> None:
    pids, status = tmp_path / "pids", tmp_path / "status.json"
    script = f"sleep 300 & echo $! > {pids}; exit 7"
    proc = subprocess.run([*GUARD, "--status", str(status), "--", "sh", "-c", script], cwd=ROOT, timeout=30)
    assert proc.returncode == 7
    (sleeper,) = pids_in(pids)
    assert not alive(sleeper)  # the background sleep ended with the command
    body = json.loads(status.read_text())
    assert (body["exit_code"], body["signal"], body["stopped"]) == (7, None, None)


def test_the_guard_ends_the_whole_tree_when_its_parent_is_killed(tmp_path: Path) -> None:
    pids, status = tmp_path / "pids", tmp_path / "status.json"
    command = ["sh", "-c", f"sleep 300 & echo $$ $! > {pids}; wait"]
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, subprocess, sys, time;"
            f"subprocess.Popen({[*GUARD, '--parent']!r} + [str(os.getpid())] + "
            f"{['--status', str(status), '--', *command]!r}); time.sleep(300)",
        ],
        cwd=ROOT,
        start_new_session=True,
    )
    shell, sleeper = pids_in(pids)
    assert alive(shell) and alive(sleeper)
    parent.kill()
    parent.wait()
    seconds = wait_for(lambda: not lifetime.session_members(parent.pid), timeout=5, what="the tree to end")
    assert seconds < 2
    assert not alive(shell) and not alive(sleeper)
    wait_for(status.exists, timeout=5, what="the status file")
    body = json.loads(status.read_text())
    assert body["stopped"] == "its parent ended" and body["signal"] == signal.SIGKILL


def test_a_guard_whose_parent_is_already_gone_starts_nothing(tmp_path: Path) -> None:
    marker, status = tmp_path / "ran", tmp_path / "status.json"
    proc = subprocess.run(
        [*GUARD, "--parent", "1", "--status", str(status), "--", "touch", str(marker)], cwd=ROOT, timeout=30
    )
    assert proc.returncode == 128 + signal.SIGTERM
    assert not marker.exists()
    body = json.loads(status.read_text())
    assert (body["exit_code"], body["stopped"]) == (None, "its parent ended") and body["ended_at"]


def test_the_status_file_names_the_running_guard_until_it_is_done(tmp_path: Path) -> None:
    status = tmp_path / "status.json"
    guard = subprocess.Popen([*GUARD, "--status", str(status), "--", "sleep", "300"], cwd=ROOT)
    try:
        wait_for(status.exists, what="the status file")
        running = json.loads(status.read_text())
        assert running["pid"] == guard.pid and running["started"] == start_time(guard.pid)
        assert "ended_at" not in running and running["exit_code"] is None
        guard.send_signal(signal.SIGTERM)
        assert guard.wait(timeout=10) == 128 + signal.SIGKILL
    finally:
        guard.kill()
    done = lifetime.read_status(status)
    assert done is not None and done["stopped"] == "stopped" and done["signal"] == signal.SIGKILL


def test_a_stop_gives_the_command_its_grace_then_kills_it(tmp_path: Path) -> None:
    log = tmp_path / "log"
    stubborn = (
        "import signal, sys, time\n"
        f"log = open({str(log)!r}, 'a', buffering=1)\n"
        "signal.signal(signal.SIGTERM, lambda *a: log.write('got SIGTERM\\n'))\n"
        "log.write('ready\\n')\n"
        "while True: time.sleep(0.05)\n"
    )
    guard = subprocess.Popen([*GUARD, "--grace", "1.5", "--", sys.executable, "-c", stubborn], cwd=ROOT)
    wait_for(lambda: log.exists() and "ready" in log.read_text(), what="the command")
    t0 = time.monotonic()
    guard.send_signal(signal.SIGTERM)
    wait_for(lambda: "got SIGTERM" in log.read_text(), timeout=5, what="SIGTERM to reach the command")
    time.sleep(0.5)
    assert guard.poll() is None  # still within its grace
    assert guard.wait(timeout=10) == 128 + signal.SIGKILL
    assert 1.4 < time.monotonic() - t0 < 5


def test_the_guard_refuses_a_missing_command_and_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert guard_main(["--parent", "1"]) == 2
    assert "guard: no command given (put it after --)" in capsys.readouterr().err
    assert guard_main(["--grace", "-1", "--", "true"]) == 2
    assert "guard: --grace must not be negative, got -1" in capsys.readouterr().err
    assert guard_main(["--parent", "x", "--", "true"]) == 2
    assert "invalid literal for int()" in capsys.readouterr().err
    assert guard_main(["--pid", "1", "--", "true"]) == 2
    assert "guard: bad or incomplete option '--pid'" in capsys.readouterr().err


def test_the_guard_starts_with_the_standard_library_alone() -> None:
    """It starts once per task with warm starts off: nothing but the standard library, no site."""
    code = "import sys; import pipelines.local.guard; print(sorted(m for m in sys.modules if m.startswith(('pipelines', 'json', 'argparse', 'pathlib', 'typing', 'contextlib'))))"
    out = subprocess.run(
        [sys.executable, "-S", "-E", "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "['pipelines', 'pipelines.local', 'pipelines.local.guard']"


def test_end_tree_ends_every_descendant_and_leaves_others_alone(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    root = subprocess.Popen(["sh", "-c", f"sh -c 'sleep 300 & echo $$ $! > {pids}; wait' & wait"])
    bystander = subprocess.Popen(["sleep", "300"])
    try:
        inner, sleeper = pids_in(pids)
        assert set(descendants(root.pid)) >= {inner, sleeper}
        ended = end_tree(root.pid)
        assert {root.pid, inner, sleeper} <= set(ended)
        root.wait(timeout=5)
        assert not any(alive(p) for p in (inner, sleeper))
        assert alive(bystander.pid)
    finally:
        bystander.kill()
        bystander.wait()


# --------------------------------------------------------------------------- a local run

# A run of one task that holds the warehouse for writing (as a sync or dbt does) and has
# started a process of its own; the driver prints its pid, then the run's summary.
DRIVER = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path

    from kfp import dsl

    from pipelines import local
    from pipelines.local import interrupt


    @dsl.component(base_image="python:3.11-slim", install_kfp_package=False)
    def hold(warehouse: str, marker: str) -> None:
        import os, subprocess, time

        import duckdb

        con = duckdb.connect(warehouse)
        con.execute("create or replace table t as select 1 as x")
        helper = subprocess.Popen(["sleep", "300"])
        with open(marker, "w") as f:
            f.write(f"{os.getpid()} {helper.pid}\\n")
        time.sleep(300)


    @dsl.pipeline(name="hold-warehouse")
    def holding(warehouse: str, marker: str) -> None:
        hold(warehouse=warehouse, marker=marker).set_display_name("hold the warehouse")


    if __name__ == "__main__":
        warehouse, marker, runs = sys.argv[1:4]
        out = sys.stdout  # the run routes print() into its log meanwhile
        tracker = interrupt.Tracker(lambda event, rec: print(event, rec.name, rec.status, file=out, flush=True))
        arguments = {"warehouse": warehouse, "marker": marker}
        if os.environ.get("RUN_IN_THREAD"):  # the fork server is then started by another thread
            import threading

            runner = threading.Thread(target=local.run, args=(holding, arguments, Path(runs)))
            runner.start()
            runner.join()
            sys.exit(0)
        try:
            with interrupt.interruptible(tracker):
                result = local.run(holding, arguments, Path(runs), progress=tracker.progress("hold-warehouse"))
        except interrupt.RunInterrupted as exc:
            print(tracker.message(exc.signum), file=sys.stderr, flush=True)
            sys.exit(exc.exit_code)
        print(json.dumps({"status": result.status}), flush=True)
    """
)


def start_driver(tmp_path: Path, warm: str, **extra: str) -> tuple[subprocess.Popen[str], Path, Path]:
    driver, warehouse, marker = tmp_path / "driver.py", tmp_path / "warehouse.duckdb", tmp_path / "task"
    driver.write_text(DRIVER)
    proc = subprocess.Popen(
        [sys.executable, str(driver), str(warehouse), str(marker), str(tmp_path / "runs")],
        cwd=ROOT,
        env={**os.environ, "KFP_MLOPS_WARM": warm, **extra},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the run's session: every process it starts, at any depth
    )
    return proc, warehouse, marker


@pytest.mark.parametrize(
    ("warm", "thread"),
    [("1", ""), ("1", "1"), ("0", "")],
    ids=["warm", "warm-server-from-a-thread", "cold"],
)
def test_killing_the_run_process_alone_ends_its_task_and_frees_the_warehouse_at_once(
    tmp_path: Path, warm: str, thread: str
) -> None:
    # From a thread, the fork server gets no parent-death signal: the end of its client's
    # pipe is what tells it, and no task keeps that pipe open.
    proc, warehouse, marker = start_driver(tmp_path, warm, RUN_IN_THREAD=thread)
    try:
        task, helper = pids_in(marker)
        with pytest.raises(duckdb.IOException, match="lock"):  # the task holds the file
            duckdb.connect(str(warehouse)).close()
        assert len(lifetime.session_members(proc.pid)) >= 3  # the run, the task, its helper
        os.kill(proc.pid, signal.SIGKILL)  # the run's process only, not its group
        proc.wait(timeout=10)
        seconds = wait_for(
            lambda: not lifetime.session_members(proc.pid),
            timeout=10,
            what="the run's processes to end",
            left=lambda: describe(lifetime.session_members(proc.pid)),
        )
        assert seconds < 3, f"processes of the killed run lived {seconds:.1f}s"
        assert not alive(task) and not alive(helper)
        duckdb.connect(str(warehouse)).close()  # a writer opens the file at once
    finally:
        end_session(proc.pid)
        proc.communicate(timeout=10)


@pytest.mark.parametrize("warm", ["1", "0"], ids=["warm", "cold"])
def test_sigint_stops_the_task_and_says_which_one_without_a_traceback(tmp_path: Path, warm: str) -> None:
    proc, warehouse, marker = start_driver(tmp_path, warm)
    try:
        task, helper = pids_in(marker)
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        out, err = proc.communicate(timeout=30)
    finally:
        end_session(proc.pid)
    assert proc.returncode == 130, err
    assert time.monotonic() - t0 < 10
    assert (
        err.strip()
        == "interrupted (Ctrl-C) while running hold-warehouse: hold the warehouse; those tasks were stopped."
    )
    assert "Traceback" not in out + err
    assert "end hold the warehouse STOPPED" in out  # its end was reported, as stopped
    assert not alive(task) and not alive(helper)  # ended before the run exited
    duckdb.connect(str(warehouse)).close()
    # multiprocessing's helpers (the fork server, its resource tracker) leave once they see the run gone
    wait_for(
        lambda: not lifetime.session_members(proc.pid),
        timeout=3,
        what="the run's helpers to leave",
        left=lambda: describe(lifetime.session_members(proc.pid)),
    )


def test_a_process_whose_main_thread_ended_is_alive_until_its_other_threads_end() -> None:
    """The main thread's exit makes the process show as a zombie while its other threads
    still run and hold its files (and file locks): it is not gone yet."""
    code = (
        "import ctypes, threading, time\n"
        "threading.Thread(target=time.sleep, args=(1.5,)).start()\n"
        "ctypes.CDLL(None).syscall(60, 0)\n"  # SYS_exit: the calling (main) thread only
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 5
        while (guard.stat_fields(proc.pid) or [b"?"])[0] != b"Z" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert guard.stat_fields(proc.pid)[0] == b"Z"  # type: ignore[index]
        assert guard.alive(proc.pid)
        assert proc.pid in lifetime.session_members(os.getsid(proc.pid))
        deadline = time.monotonic() + 10
        while guard.alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not guard.alive(proc.pid)  # every thread ended: gone, only the status to reap
    finally:
        proc.wait(timeout=10)
