"""The task processes of a local run, and the runs a watcher starts: tracked, stopped, guarded.

The process-tree mechanics (the kernel's parent-death signal, adopting orphans, ending a
tree) and the guard program are in :mod:`pipelines.local.guard`. Here:

- the registry of the task processes running in this process (:func:`tracked`), which an
  interrupted run ends at once (:func:`stop_all`), refusing any task that would start after;
- the command line that runs a command under the guard (:func:`guard_command`), and the
  guard's report on it (:func:`read_status`);
- the processes of a session (:func:`session_members`): a run started in a session of its
  own is over when none is left, wherever they are in the process tree.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pipelines.local import guard

GUARD_PROGRAM = Path(guard.__file__).resolve()


def session_members(session: int) -> list[int]:
    """The live processes of a session (its id is the pid of the process that began it:
    ``start_new_session=True``), wherever they are in the process tree."""
    members = []
    for entry in Path("/proc").iterdir():
        fields = guard.stat_fields(int(entry.name)) if entry.name.isdigit() else None
        if fields is not None and int(fields[3]) == session and not guard.ended(fields, int(entry.name)):
            members.append(int(entry.name))
    return members


# --------------------------------------------------------------------------- the run's tasks
#
# The task processes of a local run that is going on in this process, each with the way
# to end it: an interrupted run ends them all (:func:`stop_all`), and a task that starts
# after that is ended as soon as it is tracked.

_live: dict[object, Callable[[], object]] = {}
_stopping = threading.Event()


@contextlib.contextmanager
def tracked(stop: Callable[[], object]) -> Iterator[None]:
    """Register a running task process while the block runs; `stop` ends it."""
    key = object()
    _live[key] = stop
    try:
        if _stopping.is_set():  # the run was interrupted while this one started
            stop()
        yield
    finally:
        _live.pop(key, None)


def stopping() -> bool:
    """True once the run going on in this process was interrupted (no task may start)."""
    return _stopping.is_set()


def stop_all() -> int:
    """End every tracked task process now, and any that starts later; the number ended.

    Safe in a signal handler: no lock is taken (the registry is read as one snapshot).
    """
    _stopping.set()
    stops = list(_live.values())
    for stop in stops:
        with contextlib.suppress(Exception):
            stop()
    return len(stops)


def resume() -> None:
    """Allow tasks to start again (a new run in this process, after an interrupted one)."""
    _stopping.clear()


# --------------------------------------------------------------------------- the guard


def guard_command(
    command: Sequence[str],
    parent: int | None = None,
    grace_s: float = 0.0,
    status: str | Path | None = None,
    python: str = sys.executable,
) -> list[str]:
    """The argv that runs `command` under the guard (:mod:`pipelines.local.guard`).

    The guard runs as a file without the site packages (``-S -E``): it needs only the
    standard library, and starts in about a quarter of the time.
    """
    argv = [python, "-S", "-E", str(GUARD_PROGRAM)]
    if parent is not None:
        argv += ["--parent", str(parent)]
    if grace_s:
        argv += ["--grace", f"{grace_s:g}"]
    if status is not None:
        argv += ["--status", str(status)]
    return [*argv, "--", *command]


def read_status(path: str | Path) -> dict[str, Any] | None:
    """The guard's status file (see :mod:`pipelines.local.guard`), or None when there is none."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
