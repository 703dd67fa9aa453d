"""What an interrupted run says (pipelines/local/interrupt.py): the tasks it stopped and what the
run had changed, from the progress events the run reports. Real runs are interrupted in
tests/pipelines/test_lifetime.py and tests/e2e/test_run_lifetime.py."""

from __future__ import annotations

import signal

from pipelines.local import FAILED, SUCCEEDED, TaskRecord
from pipelines.local.interrupt import STOPPED, Tracker


class Shown:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def __call__(self, event: str, rec: TaskRecord) -> None:
        self.events.append((event, rec.name, rec.status))


def run(tracker: Tracker, pipeline: str, tasks: list[tuple[str, str]]) -> None:
    """Report `tasks` (name, final status) of `pipeline` as started and ended, in order."""
    progress = tracker.progress(pipeline)
    for name, status in tasks:
        rec = TaskRecord(name)
        progress("start", rec)
        rec.status = status
        progress("end", rec)


def test_a_stopped_dataops_names_its_running_tasks_and_leaves_the_table() -> None:
    shown = Shown()
    tracker = Tracker(shown)
    run(tracker, "dataops", [("sync projects", SUCCEEDED), ("sync tags", SUCCEEDED)])
    progress = tracker.progress("dataops")
    first, second = TaskRecord("validate projects"), TaskRecord("validate tags")
    progress("start", first)
    progress("start", second)
    tracker.interrupted()
    first.status = FAILED  # killed
    progress("end", first)
    second.status = SUCCEEDED  # it ended well just as the signal came
    progress("end", second)
    assert shown.events[-2:] == [("end", "validate projects", STOPPED), ("end", "validate tags", SUCCEEDED)]
    assert tracker.message(signal.SIGINT) == (
        "interrupted (Ctrl-C) while running dataops: validate projects, validate tags; "
        "those tasks were stopped.\n"
        "dataops: publish labeled_projects did not run: the published table is as it was."
    )


def test_run_all_stopped_in_mlops_says_dataops_published_and_the_champion_stayed() -> None:
    tracker = Tracker(Shown())
    run(
        tracker,
        "dataops",
        [("transform labeled_projects", SUCCEEDED), ("publish labeled_projects", SUCCEEDED)],
    )
    progress = tracker.progress("mlops")
    progress("start", TaskRecord("train"))
    tracker.interrupted()
    assert tracker.message(signal.SIGTERM) == (
        "interrupted (SIGTERM) while running mlops: train; those tasks were stopped.\n"
        "dataops: publish labeled_projects had finished before the interrupt: the published table is this run's.\n"
        "mlops: promote did not run: the champion is as it was."
    )


def test_a_publish_stopped_midway_is_told_as_either_state() -> None:
    tracker = Tracker(Shown())
    tracker.progress("dataops")("start", TaskRecord("publish labeled_projects"))
    tracker.interrupted()
    assert tracker.message(signal.SIGINT).splitlines()[1] == (
        "dataops: publish labeled_projects was stopped midway; it changes the published table in one "
        "transaction, so the published table is either as it was or this run's."
    )


def test_an_interrupt_before_or_between_tasks() -> None:
    before = Tracker(Shown())
    before.interrupted()
    assert before.message(signal.SIGINT) == (
        "interrupted (Ctrl-C) before any task started.\nNothing ran: the stores are as they were."
    )
    between = Tracker(Shown())
    run(between, "continual", [("monitor drift", SUCCEEDED)])
    between.interrupted()
    assert between.message(signal.SIGINT) == (
        "interrupted (Ctrl-C) between tasks of continual; nothing was running.\n"
        "continual: promote did not run: the champion is as it was."
    )
