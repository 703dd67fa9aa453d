"""The points where a local run hooks into kfp.local (kfp is pinned; tests/pipelines checks the
hook points): each task's log captured and timed, logging while tasks overlap, and named
outputs in ``dsl.If`` conditions."""

from __future__ import annotations

import contextlib
import io
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from components.progress import PROGRESS_MARK
from pipelines.local.echo import TaskEcho
from pipelines.local.records import FAILED, SUCCEEDED, Progress, TaskRecord

# Terminal colour and cursor codes (kfp.local colours its status lines).
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def write_task_logs(folder: Path, records: list[TaskRecord]) -> None:
    """One plain log per task, ``<folder>/<task>.log`` (``validate-projects.log``)."""
    folder.mkdir(parents=True, exist_ok=True)
    for rec in records:
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", rec.name).strip("-") or "task"  # optimize #2: optimize-2
        (folder / f"{name}.log").write_text("".join(rec.log))


class TaskStream(io.TextIOBase):
    """Stands in for sys.stdout during a run: routes what each task thread prints into that
    task's record and the run log, and echoes it to the terminal when verbose (each line
    under its task's name, the executor's setup left out: :mod:`pipelines.local.echo`);
    otherwise a task's progress lines (:data:`PROGRESS_MARK`) go to `note`."""

    def __init__(self, log: TextIO, echo: TextIO | None, note: Callable[[TaskRecord], None] | None = None):
        self.local = threading.local()
        self.log = log
        self.echo = echo
        self.note = note
        self.lock = threading.Lock()
        self.echoes: dict[int, TaskEcho] = {}  # per task: its lines on the terminal

    def write(self, s: str) -> int:
        rec: TaskRecord | None = getattr(self.local, "task", None)
        plain = ANSI_ESCAPE.sub("", s)  # the logs are read in editors, not terminals
        with self.lock:
            if rec is not None:
                rec.log.append(plain)
            self.log.write(plain)
            if self.echo is not None and rec is None:
                self.echo.write(s)
            elif self.echo is not None and rec is not None:
                self.echoes.setdefault(id(rec), TaskEcho(self.echo, rec.name)).write(s)
        if rec is not None and self.note is not None and PROGRESS_MARK in s:
            for line in s.splitlines():
                text = line.strip()
                if text.startswith(PROGRESS_MARK):
                    rec.note = text.removeprefix(PROGRESS_MARK)
                    self.note(rec)
        return len(s)

    def finish(self, rec: TaskRecord) -> None:
        """The task ended: its last line (one without a newline) reaches the terminal too."""
        with self.lock:
            echo = self.echoes.pop(id(rec), None)
            if echo is not None:
                echo.close()

    def flush(self) -> None:
        with self.lock:
            self.log.flush()
            if self.echo is not None:
                self.echo.flush()


@contextlib.contextmanager
def _patched(owner: Any, name: str, replacement: Any) -> Iterator[None]:
    """`owner.name` is `replacement` inside the block, and what it was again after it."""
    original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
    setattr(owner, name, replacement)
    try:
        yield
    finally:
        setattr(owner, name, original)


@contextlib.contextmanager
def observe_tasks(
    stream: TaskStream, records: list[TaskRecord], progress: Progress, names: dict[str, str]
) -> Iterator[None]:
    """Wrap kfp.local's per-task executor to time each task and capture its log.

    kfp is pinned (constraints.txt); the hook point is checked by tests/pipelines.
    """
    from kfp.local import status as kstatus
    from kfp.local.orchestrator import task_executor

    original = task_executor.execute_single_task

    def observed(task_name: str, *args: Any, **kwargs: Any) -> Any:
        name = names.get(task_name, task_name)
        # Tasks of one name (a ParallelFor's iterations): optimize, optimize #2, ...
        seen = sum(1 for r in records if r.name == name or r.name.startswith(f"{name} #"))
        rec = TaskRecord(f"{name} #{seen + 1}" if seen else name)
        records.append(rec)
        stream.local.task = rec
        progress("start", rec)
        t0 = time.perf_counter()
        try:
            outputs, st = original(task_name, *args, **kwargs)
            rec.status = SUCCEEDED if st == kstatus.Status.SUCCESS else FAILED
            return outputs, st
        except BaseException:
            rec.status = FAILED
            raise
        finally:
            rec.seconds = time.perf_counter() - t0
            stream.local.task = None
            stream.finish(rec)
            progress("end", rec)

    with _patched(task_executor, "execute_single_task", observed):
        yield


@contextlib.contextmanager
def root_logging(stream: io.TextIOBase) -> Iterator[None]:
    """Keep a handler on the run's stream on the root logger while the run goes on.

    kfp.local gives the root logger its own handler for each task and puts the previous
    ones back after it, which is not safe for tasks that overlap: one task's restore can
    leave the root logger bare while another logs, and logging then sets up a stderr handler
    of its own, which prints kfp's lines (``ERROR:root:Task ... FAILURE``) on the terminal.
    """
    import logging

    from kfp.local.logging_utils import MillisecondFormatter

    root = logging.getLogger()
    saved = root.handlers[:]
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        MillisecondFormatter(fmt="%(asctime)s - %(levelname)s - %(message)s", datefmt="%H:%M:%S.%f")
    )
    root.handlers = [handler]
    try:
        yield
    finally:
        root.handlers = saved


@contextlib.contextmanager
def named_outputs_in_conditions() -> Iterator[None]:
    """Let `dsl.If` conditions read a named output (`task.outputs["decision"]`) locally.

    kfp 2.17's local condition evaluator only resolves a task's single `Output`; a named
    output (`pipelinechannel--evaluate-decision`) is looked up as a pipeline input, is not
    found, and the condition is silently false. Clusters are not affected. This resolves
    such references as task outputs when no pipeline input of that name exists.
    """
    from kfp.local.orchestrator.enhanced_dag_orchestrator import ConditionEvaluator

    original = ConditionEvaluator.__dict__["_resolve_pipeline_channel"]

    def resolve(channel_ref: str, io_store: Any) -> Any:
        ref = channel_ref.replace("pipelinechannel--", "")
        if "-Output" not in ref and "--" not in ref:
            for key in (ref, channel_ref):
                with contextlib.suppress(ValueError, KeyError):
                    return io_store.get_parent_input(key)
            parts = ref.split("-")
            for i in range(len(parts) - 1, 0, -1):  # longest task name first: ge-validate-2
                with contextlib.suppress(ValueError, KeyError):
                    return io_store.get_task_output("-".join(parts[:i]), "-".join(parts[i:]))
        return original.__func__(channel_ref, io_store)

    with _patched(ConditionEvaluator, "_resolve_pipeline_channel", staticmethod(resolve)):
        yield


@contextlib.contextmanager
def run_name_as_the_backend() -> Iterator[None]:
    """``{{$.pipeline_job_name}}`` is the run's name in every task, loop iterations too.

    The KFP driver substitutes the run's display name wherever the placeholder is
    (``backend/src/v2/driver/resolve.go``, resolveInputParameter); kfp.local substitutes the
    resource name of the DAG the task is in, which inside a ``ParallelFor`` is the run's name
    plus ``/for-loop-1-iteration-0``. Only the placeholder's value changes here: kfp.local
    still files each iteration's outputs under its own folder.
    """
    from kfp.local import placeholder_utils

    original = placeholder_utils.replace_placeholders

    def replace(*args: Any, **kwargs: Any) -> Any:
        if "pipeline_resource_name" in kwargs:
            kwargs["pipeline_resource_name"] = str(kwargs["pipeline_resource_name"]).split("/", 1)[0]
        return original(*args, **kwargs)

    with _patched(placeholder_utils, "replace_placeholders", replace):
        yield
