"""The local runner (pipelines/local/runner.py) on tiny pipelines: progress records, errors,
reports, and the two kfp.local hook points it relies on (kfp is pinned)."""

import builtins
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest
from kfp import dsl
from kfp.dsl import HTML, Output

from pipelines import local


@dsl.component(base_image="python:3.11-slim", install_kfp_package=False)
def decide(x: int, page: Output[HTML]) -> NamedTuple("Outputs", [("decision", str), ("reason", str)]):  # type: ignore[valid-type]
    from collections import namedtuple

    with open(page.path, "w") as f:
        f.write("<html><body>report</body></html>")
    return namedtuple("Outputs", ["decision", "reason"])("go" if x > 0 else "stop", f"x={x}")


@dsl.component(base_image="python:3.11-slim", install_kfp_package=False)
def act(reason: str) -> str:
    print("acting on", reason)
    return reason


@dsl.component(base_image="python:3.11-slim", install_kfp_package=False)
def explode(message: str) -> None:
    raise ValueError(message)


@dsl.pipeline(name="tiny")
def tiny(x: int = 1) -> str:
    d = decide(x=x).set_display_name("decide things")
    with dsl.If(d.outputs["decision"] == "go", name="go"), dsl.ParallelFor([1, 2], parallelism=2):
        act(reason=d.outputs["reason"])
    return d.outputs["decision"]


@dsl.pipeline(name="broken")
def broken() -> None:
    explode(message="the expectation expect_column_values_to_be_unique(id) failed: 3 unexpected")


def test_runner_records_tasks_and_follows_named_output_conditions(tmp_path) -> None:
    seen = []
    result = local.run(tiny, {"x": 1}, tmp_path / "runs", progress=lambda e, r: seen.append((e, r.name)))
    assert result.status == local.SUCCEEDED and result.error == ""
    names = sorted(t.name for t in result.tasks)
    # the condition on a named output held, so both loop iterations ran
    assert names == ["act", "act #2", "decide things"]  # the iterations get distinct names
    assert all(t.status == local.SUCCEEDED and t.seconds > 0 for t in result.tasks)
    assert ("start", "decide things") in seen and ("end", "decide things") in seen
    assert result.outputs["decide things"]["parameters"]["decision"] == "go"
    [report] = result.reports
    assert report.endswith("decide-things.page.html") and "report" in Path(report).read_text()
    assert builtins.print is print  # kfp's indenting print swap was undone
    assert "acting on x=1" in Path(result.log_file).read_text()


def test_verbose_shows_each_tasks_own_lines_by_name_without_the_executor_input(tmp_path, capsys) -> None:
    result = local.run(tiny, {"x": 1}, tmp_path / "runs", verbose=True)
    assert result.status == local.SUCCEEDED
    shown = capsys.readouterr().out
    # Both loop iterations' lines, each under its task's name.
    assert "[act] acting on x=1" in shown and "[act #2] acting on x=1" in shown
    assert shown.count("[decide things] (executor input: in run.log)") == 1
    assert "parameterValues" not in shown and "Looking for component" not in shown
    # The run log keeps everything.
    logged = Path(result.log_file).read_text()
    assert logged.count("Got executor_input:") == 3 and "parameterValues" in logged


def test_runner_skips_the_branch_when_the_condition_is_false(tmp_path) -> None:
    result = local.run(tiny, {"x": 0}, tmp_path / "runs")
    assert result.status == local.SUCCEEDED
    assert [t.name for t in result.tasks] == ["decide things"]


def test_runner_reports_the_exception_a_task_raised(tmp_path) -> None:
    result = local.run(broken, {}, tmp_path / "runs")
    assert result.status == local.FAILED
    assert result.tasks[0].status == local.FAILED
    assert (
        "ValueError: the expectation expect_column_values_to_be_unique(id) failed: 3 unexpected"
        in result.error
    )


def test_runner_reports_bad_arguments(tmp_path) -> None:
    result = local.run(tiny, {"nope": 1}, tmp_path / "runs")
    assert result.status == local.FAILED and "nope" in result.error


@dsl.component(base_image="python:3.11-slim", install_kfp_package=False)
def count(n: int) -> int:
    return n + 1


@dsl.pipeline(name="untyped-loop")
def untyped_loop(items: list = [0, 1]) -> None:  # noqa: B006 - a pipeline parameter default
    with dsl.ParallelFor(items) as item:
        count(n=item).set_display_name("count item")


def test_runner_refuses_what_the_kfp_backend_would_refuse_and_runs_nothing(tmp_path) -> None:
    # kfp.local would pass the raw ints and succeed; the backend's driver turns the untyped
    # list's items into strings and refuses them for an int input.
    result = local.run(untyped_loop, {}, tmp_path / "runs")
    assert result.status == local.FAILED and result.tasks == []
    assert "KFP backend's rules" in result.error
    assert 'task count ("count item")' in result.error and "type mismatch" in result.error
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize("hook", ["task_executor", "condition", "placeholders"])
def test_kfp_local_hook_points_exist(hook) -> None:
    if hook == "task_executor":
        from kfp.local.orchestrator import task_executor

        assert callable(task_executor.execute_single_task)
    elif hook == "placeholders":
        import inspect

        from kfp.local import placeholder_utils, task_dispatcher

        assert (
            "pipeline_resource_name" in inspect.signature(placeholder_utils.replace_placeholders).parameters
        )
        # The dispatcher looks it up on the module at each call, so the runner's wrapper is used.
        assert "placeholder_utils.replace_placeholders(" in inspect.getsource(task_dispatcher)
    else:
        from kfp.local.orchestrator.enhanced_dag_orchestrator import ConditionEvaluator

        assert isinstance(ConditionEvaluator.__dict__["_resolve_pipeline_channel"], staticmethod)


@dsl.component(base_image="python:3.11-slim", install_kfp_package=False)
def name_of_run(run_name: str) -> str:
    return run_name


@dsl.pipeline(name="named-run")
def named_run() -> None:
    name_of_run(run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER).set_display_name("outside")
    with dsl.ParallelFor([1, 2]):
        name_of_run(run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER).set_display_name("inside")


def test_the_run_name_placeholder_is_the_runs_name_inside_a_loop_too(tmp_path) -> None:
    result = local.run(named_run, {}, tmp_path / "runs")
    assert result.status == local.SUCCEEDED
    # Every task's executor output, the two iterations' too (kfp.local files them apart).
    written = sorted(Path(result.run_dir).rglob("executor_output.json"))
    names = [json.loads(path.read_text())["parameterValues"]["Output"] for path in written]
    assert len(names) == 3 and set(names) == {Path(result.run_dir).name}, names  # as the KFP driver does


def test_runs_started_in_the_same_second_get_their_own_folder_and_log(tmp_path) -> None:
    first = local.run(tiny, {"x": 1}, tmp_path / "runs")
    second = local.run(tiny, {"x": 0}, tmp_path / "runs")
    assert first.status == second.status == local.SUCCEEDED
    assert first.log_file != second.log_file and first.run_dir != second.run_dir
    assert Path(first.log_file).name == "run.log" and "acting on x=1" in Path(first.log_file).read_text()
    assert "acting on" not in Path(second.log_file).read_text()
    assert not list((tmp_path / "runs").glob("*/tmp"))  # each run removed its task temp folder


def test_a_killed_runs_temp_folder_is_removed_by_the_next_run(tmp_path) -> None:
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    killed = tmp_path / "runs" / "tiny-20260101-000000-1-dead"
    (killed / "tmp" / "tmpabc").mkdir(parents=True)
    (killed / "owner.json").write_text(json.dumps({"pid": int(gone.stdout), "host": socket.gethostname()}))
    live = tmp_path / "runs" / "tiny-20260101-000001-2-live"
    (live / "tmp").mkdir(parents=True)
    (live / "owner.json").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    assert local.run(tiny, {"x": 0}, tmp_path / "runs").status == local.SUCCEEDED
    assert not (killed / "tmp").exists() and (killed / "owner.json").exists()
    assert (live / "tmp").exists()  # its process is alive: never touched
