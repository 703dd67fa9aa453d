"""Stopping a local run: Ctrl-C (SIGINT) or SIGTERM on ``python -m pipelines run``.

While :func:`interruptible` is open, the first SIGINT or SIGTERM ends every running task
process at once (:func:`pipelines.local.lifetime.stop_all`: a task that starts after it is ended
too) and raises :class:`RunInterrupted` in the main thread, which unwinds the run: the
stores folder is released and the run's temporary folders are removed on the way out. A
second signal while that happens only ends tasks again. The command then prints what
:meth:`Tracker.message` says — which tasks were running, and what the run changed — and
exits 128 + the signal (130 for Ctrl-C, 143 for SIGTERM), without a traceback. The task
processes are in process groups of their own (:mod:`pipelines.local.warm`), so a Ctrl-C in the
terminal reaches the run alone: it notes what was running before anything ends.

What a stopped run leaves: each task writes only its own outputs until ``publish``, which
swaps the validated table in within one transaction, and ``promote`` / ``roll back
champion``, which move the registry alias in one call. So unless one of those had ended,
the published table and the champion are as they were before the run.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from pipelines.local import lifetime

# The tasks that change what other runs and readers see, per pipeline, and what they change.
PUBLISHING: dict[str, tuple[tuple[str, ...], str]] = {
    "dataops": (("publish labeled_projects",), "the published table"),
    "mlops": (("promote",), "the champion"),
    "continual": (("promote", "roll back champion"), "the champion"),
}
STOPPED = "STOPPED"


class RunInterrupted(KeyboardInterrupt):
    """The run got SIGINT or SIGTERM; its tasks have been told to end."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


Progress = Callable[[str, Any], None]


class Tracker:
    """Follows a command's tasks through their progress events, to tell after an interrupt
    which were running and what the pipelines had changed."""

    def __init__(self, show: Progress):
        self.show = show
        self.pipelines: list[str] = []
        self.running: list[tuple[str, str]] = []  # (pipeline, task), in start order
        self.ended: dict[tuple[str, str], str] = {}  # (pipeline, task) -> status
        self.at_interrupt: list[tuple[str, str]] | None = None

    def progress(self, pipeline: str) -> Progress:
        """The progress callback for `pipeline`'s run: shows each event and keeps count."""
        self.pipelines.append(pipeline)

        def on(event: str, rec: Any) -> None:
            key = (pipeline, rec.name)
            if event == "note":  # a progress line of a running task
                self.show(event, rec)
                return
            if event == "start":
                self.running.append(key)
                self.show(event, rec)
                return
            with contextlib.suppress(ValueError):
                self.running.remove(key)
            stopped = self.at_interrupt is not None and rec.status != "SUCCEEDED"
            self.ended[key] = STOPPED if stopped else rec.status
            self.show(event, replace(rec, status=STOPPED) if stopped else rec)

        return on

    def interrupted(self) -> None:
        """Note what runs now (called by the signal handler, before the tasks are ended)."""
        if self.at_interrupt is None:
            self.at_interrupt = list(self.running)

    def message(self, signum: int) -> str:
        """What the user reads: the signal, the tasks it stopped, what the run changed."""
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        stopped = self.at_interrupt or []
        if stopped:
            tasks = "; ".join(
                f"{p}: {', '.join(t for q, t in stopped if q == p)}"
                for p in dict.fromkeys(p for p, _ in stopped)
            )
            lines = [f"interrupted ({name}) while running {tasks}; those tasks were stopped."]
        elif self.pipelines:
            lines = [f"interrupted ({name}) between tasks of {self.pipelines[-1]}; nothing was running."]
        else:
            lines = [f"interrupted ({name}) before any task started."]
        for pipeline in dict.fromkeys(self.pipelines):
            lines.append(self._changed(pipeline, stopped))
        if not self.pipelines:
            lines.append("Nothing ran: the stores are as they were.")
        return "\n".join(line for line in lines if line)

    def _changed(self, pipeline: str, stopped: list[tuple[str, str]]) -> str:
        tasks, what = PUBLISHING.get(pipeline, ((), ""))
        if not what:
            return ""
        done = [t for t in tasks if self.ended.get((pipeline, t)) == "SUCCEEDED"]
        midway = [t for t in tasks if (pipeline, t) in stopped]
        if done:
            return f"{pipeline}: {done[0]} had finished before the interrupt: {what} is this run's."
        if midway:
            return (
                f"{pipeline}: {midway[0]} was stopped midway; it changes {what} in one transaction, "
                f"so {what} is either as it was or this run's."
            )
        return f"{pipeline}: {tasks[0]} did not run: {what} is as it was."


@contextlib.contextmanager
def interruptible(tracker: Tracker | None = None) -> Iterator[None]:
    """Turn SIGINT / SIGTERM into "end every task, then raise :class:`RunInterrupted`" while
    the block runs (main thread only: elsewhere the block runs unchanged)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    raised = False

    def handler(signum: int, frame: Any) -> None:
        nonlocal raised
        if tracker is not None:
            tracker.interrupted()
        lifetime.stop_all()
        if not raised:  # once: the run is unwinding after that
            raised = True
            raise RunInterrupted(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    lifetime.resume()
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        lifetime.resume()
