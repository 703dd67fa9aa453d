"""Argo's task order in local runs (pipelines/local/scheduler.py): independent tasks overlap, a
task waits for its own upstreams only, and a failure stops new starts (fail-fast).

Overlap is shown with a rendezvous, not with timings: each of two independent tasks marks
that it started and then waits for the other's mark. Run one at a time, the first would
wait in vain and fail.
"""

import signal
import threading
import time
from pathlib import Path

import pytest
from kfp import dsl

from pipelines import local
from pipelines.local import scheduler


@dsl.component(base_image="python:3.11-slim", install_kfp_package=False)
def meet(folder: str, me: str, other: str, wait_s: float) -> str:
    import time
    from pathlib import Path

    Path(folder, f"started-{me}").touch()
    deadline = time.monotonic() + wait_s
    while not Path(folder, f"started-{other}").exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{me}: {other} did not start while {me} was running")
        time.sleep(0.02)
    return me


@dsl.component(base_image="python:3.11-slim", install_kfp_package=False)
def mark(folder: str, name: str, after: str = "") -> str:
    from pathlib import Path

    if after:  # the upstream's mark must exist already: it finished before this started
        assert Path(folder, f"done-{after}").exists(), f"{name} started before {after} finished"
    Path(folder, f"done-{name}").touch()
    return name


@dsl.component(base_image="python:3.11-slim", install_kfp_package=False)
def fail_after(folder: str, other: str, wait_s: float) -> None:
    import time
    from pathlib import Path

    deadline = time.monotonic() + wait_s
    while not Path(folder, f"started-{other}").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    raise RuntimeError("this task fails")


@dsl.pipeline(name="fan-out")
def fan_out(folder: str, wait_s: float = 60.0) -> str:
    a = meet(folder=folder, me="a", other="b", wait_s=wait_s).set_display_name("meet a")
    b = meet(folder=folder, me="b", other="a", wait_s=wait_s).set_display_name("meet b")
    joined = mark(folder=folder, name="joined").after(a, b)
    return mark(folder=folder, name="last", after=joined.output).output


@dsl.pipeline(name="fail-fast")
def fail_fast(folder: str) -> None:
    # `slow` starts with `boom`; `boom` fails once `slow` has started. `slow`'s successor
    # and `boom`'s successor must never start.
    slow = meet(folder=folder, me="slow", other="never", wait_s=2.0).set_display_name("slow")
    slow.set_caching_options(False)
    boom = fail_after(folder=folder, other="slow", wait_s=30.0).set_display_name("boom")
    mark(folder=folder, name="after-boom").after(boom)
    mark(folder=folder, name="after-slow").after(slow)


@dsl.pipeline(name="nested-fan-out")
def nested_fan_out(folder: str, go: str = "yes") -> None:
    with dsl.If(go == "yes", name="go"):
        meet(folder=folder, me="x", other="y", wait_s=60.0)
        meet(folder=folder, me="y", other="x", wait_s=60.0)
    with dsl.If(go == "no", name="stop"):
        mark(folder=folder, name="stopped")


def test_independent_tasks_run_at_the_same_time_and_joins_wait_for_both(tmp_path: Path) -> None:
    result = local.run(fan_out, {"folder": str(tmp_path)}, tmp_path / "runs", sequential=False)
    assert result.status == local.SUCCEEDED, result.error
    assert sorted(t.name for t in result.tasks) == ["mark", "mark-2", "meet a", "meet b"]
    assert {p.name for p in tmp_path.glob("done-*")} == {"done-joined", "done-last"}


def test_sequential_order_runs_one_task_at_a_time(tmp_path: Path) -> None:
    # The same rendezvous cannot happen one at a time: the first task gives up.
    result = local.run(fan_out, {"folder": str(tmp_path), "wait_s": 1.0}, tmp_path / "runs", sequential=True)
    assert result.status == local.FAILED
    assert "did not start while" in result.error


def test_the_environment_switch_selects_the_sequential_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(scheduler.SEQUENTIAL_ENV, "1")
    assert scheduler.sequential()
    monkeypatch.setenv(scheduler.SEQUENTIAL_ENV, "0")
    assert not scheduler.sequential()
    monkeypatch.delenv(scheduler.SEQUENTIAL_ENV)
    assert not scheduler.sequential()


def test_a_failed_run_lets_running_tasks_end_and_starts_no_successor(tmp_path: Path) -> None:
    result = local.run(fail_fast, {"folder": str(tmp_path)}, tmp_path / "runs", sequential=False)
    assert result.status == local.FAILED
    states = {t.name: t.status for t in result.tasks}
    # `slow` was running when `boom` failed: it ran to its own end (its partner never
    # comes, so it fails by its own timeout, not by being stopped), and no successor started.
    assert states == {"boom": local.FAILED, "slow": local.FAILED}
    slow = next(t for t in result.tasks if t.name == "slow")
    assert "never did not start while slow was running" in slow.error()
    assert not list(tmp_path.glob("done-*"))


def test_tasks_inside_a_condition_branch_overlap_and_a_false_branch_is_skipped(tmp_path: Path) -> None:
    result = local.run(nested_fan_out, {"folder": str(tmp_path)}, tmp_path / "runs", sequential=False)
    assert result.status == local.SUCCEEDED, result.error
    assert sorted(t.name for t in result.tasks) == ["meet", "meet-2"]
    assert not (tmp_path / "done-stopped").exists()


def test_schedule_starts_each_task_after_its_own_upstreams_only() -> None:
    # c depends on a only; b is slow and independent: c must start before b ends.
    import threading

    b_may_end = threading.Event()
    order: list[str] = []

    def execute(name: str) -> str:
        order.append(f"start {name}")
        if name == "b":
            assert b_may_end.wait(10), "c never started while b was running"
        if name == "c":
            b_may_end.set()
        order.append(f"end {name}")
        return scheduler.SUCCEEDED

    states = scheduler._schedule(["a", "b", "c"], {"a": set(), "b": set(), "c": {"a"}}, execute)
    assert states == {"a": "SUCCEEDED", "b": "SUCCEEDED", "c": "SUCCEEDED"}
    assert order.index("start c") > order.index("end a")
    assert order.index("start c") < order.index("end b")


def test_schedule_starts_nothing_once_a_task_has_failed() -> None:
    # `b` is still running when `a` fails; `c` (after `b` only) must not start.
    import time

    states: dict[str, str] = {}

    def execute(name: str) -> str:
        if name == "b":
            deadline = time.monotonic() + 10
            while states.get("a") != scheduler.FAILED:
                assert time.monotonic() < deadline, "a's failure was never recorded"
                time.sleep(0.01)
            return scheduler.SUCCEEDED
        assert name != "c", "c started after a had failed"
        return scheduler.FAILED

    scheduler._schedule(["a", "b", "c"], {"a": set(), "b": set(), "c": {"b"}}, execute, states)
    assert states == {"a": scheduler.FAILED, "b": scheduler.SUCCEEDED, "c": scheduler.NOT_STARTED}


def test_schedule_never_starts_a_task_whose_upstream_was_skipped_or_failed() -> None:
    outcomes = {"cond": scheduler.SKIPPED, "bad": scheduler.FAILED}
    started: list[str] = []

    def execute(name: str) -> str:
        started.append(name)
        return outcomes.get(name, scheduler.SUCCEEDED)

    states = scheduler._schedule(
        ["cond", "under-cond", "bad", "under-bad"],
        {"cond": set(), "under-cond": {"cond"}, "bad": {"cond"}, "under-bad": {"bad"}},
        execute,
    )
    assert started == ["cond"]
    assert states == {
        "cond": scheduler.SKIPPED,
        "under-cond": scheduler.NOT_STARTED,
        "bad": scheduler.NOT_STARTED,
        "under-bad": scheduler.NOT_STARTED,
    }


def test_a_signal_taken_by_a_task_thread_reaches_the_main_thread_while_the_task_runs() -> None:
    """The kernel may hand Ctrl-C to any thread; the scheduler's main thread must act on it
    while the task still runs (so the run knows what was running), not when the task ends."""
    seen: dict[str, float] = {}

    def handler(signum: int, frame: object) -> None:
        seen.setdefault("handled", time.monotonic())
        raise KeyboardInterrupt

    def execute(name: str) -> str:
        time.sleep(0.5)  # the main thread waits for the task by now
        seen["start"] = time.monotonic()
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)  # to this task thread only
        time.sleep(3)
        seen["end"] = time.monotonic()
        return scheduler.SUCCEEDED

    previous = signal.signal(signal.SIGINT, handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            scheduler._schedule(["slow"], {"slow": set()}, execute)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert seen["handled"] - seen["start"] < 1.0  # within a wait, not after the task's 3 s
