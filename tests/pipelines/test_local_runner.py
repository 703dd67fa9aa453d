"""The local runner (pipelines/local.py) on tiny pipelines: progress records, errors,
reports, and the two kfp.local hook points it relies on (kfp is pinned)."""

import builtins
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
    assert names == ["act", "act", "decide things"]
    assert all(t.status == local.SUCCEEDED and t.seconds > 0 for t in result.tasks)
    assert ("start", "decide things") in seen and ("end", "decide things") in seen
    assert result.outputs["decide things"]["parameters"]["decision"] == "go"
    [report] = result.reports
    assert report.endswith("decide-things.page.html") and "report" in Path(report).read_text()
    assert builtins.print is print  # kfp's indenting print swap was undone
    assert "acting on x=1" in Path(result.log_file).read_text()


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


@pytest.mark.parametrize("hook", ["task_executor", "condition"])
def test_kfp_local_hook_points_exist(hook) -> None:
    if hook == "task_executor":
        from kfp.local.orchestrator import task_executor

        assert callable(task_executor.execute_single_task)
    else:
        from kfp.local.orchestrator.enhanced_dag_orchestrator import ConditionEvaluator

        assert isinstance(ConditionEvaluator.__dict__["_resolve_pipeline_channel"], staticmethod)
