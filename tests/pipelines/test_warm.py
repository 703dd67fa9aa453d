"""Warm task starts (pipelines/local/warm.py): real kfp.local runs of tiny pipelines whose tasks
are forked from the fork server, and the command recognition they rely on (kfp is pinned)."""

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from kfp import dsl

from components.extract.component import extract
from components.step import step_component
from pipelines import local
from pipelines.local import guard, warm


@dsl.component(base_image="python:3.11-slim", install_kfp_package=False)
def where(marker: str) -> str:
    """Where the task ran: its parent pid, an env var, the cwd, and whether a module global
    set by an earlier task leaked into it."""
    import json
    import os

    import pandas

    leaked = getattr(pandas, "_kfp_mlops_marker", "")
    pandas._kfp_mlops_marker = marker  # type: ignore[attr-defined]
    return json.dumps(
        {"ppid": os.getppid(), "env": os.environ.get("WARM_TEST", ""), "cwd": os.getcwd(), "leaked": leaked}
    )


@dsl.component(base_image="python:3.11-slim", install_kfp_package=False)
def leave(code: int) -> None:
    import sys

    print("leaving with", code)
    sys.exit(code)


def _leave_as_a_step(code: int) -> None:
    import sys

    with open("/proc/self/cmdline", "rb") as f:
        print("process:", f.read().replace(b"\0", b" ").decode())
    print("leaving with", code)
    sys.exit(code)


leave_step = step_component("leave_as_a_step", image="train")(_leave_as_a_step)  # the command every step runs


@dsl.component(base_image="python:3.11-slim", install_kfp_package=False)
def start_a_helper() -> int:
    """Start a process and return without waiting for it."""
    import subprocess

    return subprocess.Popen(["sleep", "300"]).pid


@dsl.component(base_image="python:3.11-slim", install_kfp_package=False)
def wait_long(marker: str) -> None:
    import os
    import time

    with open(marker, "w") as f:
        f.write(f"{os.getpid()}\n")
    time.sleep(300)


@dsl.pipeline(name="warm-probe")
def probe() -> str:
    first = where(marker="first").set_env_variable("WARM_TEST", "from-the-task")
    second = where(marker="second").after(first)
    return second.output


@dsl.pipeline(name="warm-exit")
def exits(code: int = 3) -> None:
    leave(code=code)


@dsl.pipeline(name="step-exit")
def step_exits(code: int = 3) -> None:
    leave_step(code=code)


@dsl.pipeline(name="warm-helper")
def helper() -> int:
    return start_a_helper().output


@dsl.pipeline(name="warm-wait")
def waits(marker: str) -> None:
    wait_long(marker=marker)


def _answers(result: local.RunResult) -> list:
    import json

    values = [out["parameters"]["Output"] for name, out in sorted(result.outputs.items())]
    return [json.loads(v) for v in values]


def test_tasks_fork_from_the_server_with_their_env_and_a_clean_state(tmp_path: Path) -> None:
    from multiprocessing import forkserver

    result = local.run(probe, {}, tmp_path / "runs")
    assert result.status == local.SUCCEEDED, result.error
    first, second = _answers(result)
    server = forkserver._forkserver._forkserver_pid  # type: ignore[attr-defined]
    assert server and first["ppid"] == second["ppid"] == server  # forked, not started by sh
    assert (first["env"], second["env"]) == ("from-the-task", "")
    assert first["cwd"] == second["cwd"] == os.getcwd()
    # the second task starts from the server's state, not from what the first one left
    assert first["leaked"] == second["leaked"] == ""
    assert "[KFP Executor" in Path(result.log_file).read_text()  # kfp's executor logged as usual


def test_sys_exit_in_a_task_fails_that_task_only(tmp_path: Path) -> None:
    result = local.run(exits, {"code": 3}, tmp_path / "runs")
    assert result.status == local.FAILED and result.tasks[0].status == local.FAILED
    assert "leaving with 3" in "".join(result.tasks[0].log)
    assert local.run(exits, {"code": 0}, tmp_path / "runs").status == local.SUCCEEDED


def test_switched_off_tasks_start_as_subprocesses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from multiprocessing import forkserver

    monkeypatch.setenv(warm.ENV_SWITCH, "0")
    result = local.run(probe, {}, tmp_path / "runs")
    assert result.status == local.SUCCEEDED, result.error
    server = forkserver._forkserver._forkserver_pid  # type: ignore[attr-defined]
    assert all(a["ppid"] != server for a in _answers(result))


def test_recognises_the_compiled_component_command_and_nothing_else() -> None:
    container = extract.component_spec.implementation.container
    command = [*container.command, *container.args]
    parsed = warm.parse_command(command)
    assert parsed is not None
    source, args = parsed
    assert "def extract(" in source and args == [
        "--executor_input",
        "{{$}}",
        "--function_to_execute",
        "extract",
    ]
    # kfp.local swaps `python3` for the running interpreter's path: still recognised
    script = command[2].replace("python3", "/opt/venv/bin/python")
    assert warm.parse_command([*command[:2], script, *command[3:]]) is not None
    # a component that installs packages at start, or any other command, is not
    pip = "python3 -m pip install --quiet pandas && " + command[2]
    assert warm.parse_command([*command[:2], pip, *command[3:]]) is None
    assert warm.parse_command(["python", "-m", "kfp.dsl.executor_main", *args]) is None
    assert warm.parse_command(["sh", "-ec"]) is None


def test_preload_follows_the_pipelines() -> None:
    assert "dbt.cli.main" in warm.preload_for(["dataops"]) and "mlflow" not in warm.preload_for(["dataops"])
    both = warm.preload_for(["dataops", "mlops"])
    assert {"dbt.cli.main", "mlflow", "great_expectations"} <= set(both) and len(both) == len(set(both))
    assert warm.preload_for(["unknown"]) == list(warm._BASE)


@pytest.mark.parametrize("warm_on", ["1", "0"])
def test_a_step_command_keeps_its_exit_status_warm_or_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, warm_on: str
) -> None:
    # Steps run kfp's executor through components.executor: in a fresh subprocess when warm
    # starts are off, in the fork server's child when on. Either way the status is the task's.
    monkeypatch.setenv(warm.ENV_SWITCH, warm_on)
    failed = local.run(step_exits, {"code": 3}, tmp_path / "runs")
    assert failed.status == local.FAILED
    log = "".join(failed.tasks[0].log)
    assert "leaving with 3" in log
    if warm_on == "0":
        assert "-m components.executor kfp.dsl.executor_main" in log
    assert local.run(step_exits, {"code": 0}, tmp_path / "runs").status == local.SUCCEEDED


@pytest.mark.parametrize("warm_on", ["1", "0"])
def test_what_a_task_started_and_left_running_ends_with_the_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, warm_on: str
) -> None:
    monkeypatch.setenv(warm.ENV_SWITCH, warm_on)
    result = local.run(helper, {}, tmp_path / "runs")
    assert result.status == local.SUCCEEDED, result.error
    pid = result.outputs["start-a-helper"]["parameters"]["Output"]
    assert isinstance(pid, int) and pid > 0
    assert not guard.alive(pid)  # a container's processes end with its main process too


def test_a_killed_fork_server_takes_its_running_task_along(tmp_path: Path) -> None:
    from multiprocessing import forkserver

    marker = tmp_path / "task.pid"
    results: list[local.RunResult] = []
    runner = threading.Thread(
        target=lambda: results.append(local.run(waits, {"marker": str(marker)}, tmp_path))
    )
    runner.start()
    deadline = time.monotonic() + 60
    while not (marker.exists() and marker.read_text().endswith("\n")):
        assert time.monotonic() < deadline and runner.is_alive(), "the task never started"
        time.sleep(0.01)
    task = int(marker.read_text())
    server = forkserver._forkserver._forkserver_pid  # type: ignore[attr-defined]
    assert task in guard.children(server)
    os.kill(server, signal.SIGKILL)  # no exit hook runs: the kernel's parent-death signal acts
    t0 = time.monotonic()
    while guard.alive(task) and time.monotonic() - t0 < 5:
        time.sleep(0.01)
    assert not guard.alive(task) and time.monotonic() - t0 < 2
    runner.join(30)
    assert results and results[0].status == local.FAILED
