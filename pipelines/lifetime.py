"""Processes that end with the process that started them.

A local run is a tree of processes: ``python -m pipelines run`` (the CLI), the warm fork
server (:mod:`pipelines.warm`) and the tasks forked from it, or, with warm starts off, one
``sh`` + Python per task; a watcher (:mod:`pipelines.watch`) adds itself on top. When a
process of that tree is killed — SIGKILL leaves it no say — what it started must not keep
running: a task that outlives its run keeps its turn at the DuckDB warehouse and writes
on behalf of a run that no longer exists. Linux gives each process two means for that:

- ``PR_SET_PDEATHSIG`` (prctl(2)): the kernel sends a chosen signal to a process when its
  parent ends. It is sent when the *thread* that forked the process ends, so a process
  asks for it only of a parent whose forking thread lives at least as long as the child
  (the thread that waits for it). The setting is kept across ``execve`` and cleared in a
  forked child, and it does not cover a parent that ended before the call: the caller
  checks ``getppid()`` right after (:func:`die_with_parent`).
- ``PR_SET_CHILD_SUBREAPER``: a process whose descendants lose their own parent gets them
  as children instead of PID 1, so it can still find and end them (:func:`end_descendants`).

This module is imported by the CLI, the fork server and the guard, so it uses only the
standard library. Run as a program it is the **guard**: it starts a command, and ends the
command's whole process tree when its own parent ends, when it gets SIGTERM / SIGHUP, and
when the command ends (whatever the command left running)::

    python -m pipelines.lifetime [--parent PID] [--grace S] [--status FILE] -- COMMAND [ARG ...]

``--parent``: end the tree when that process (the guard's parent) ends; a guard whose
parent has already ended starts nothing. ``--grace``: on a stop, the command gets SIGTERM
and that many seconds before the tree gets SIGKILL (0, the default: SIGKILL at once).
``--status``: a JSON file, written atomically, that lets a process which is not the
guard's parent follow the run: the guard's ``pid`` (its session, when started in a new
one) and ``started`` (:func:`start_time`) from the start, and once it is done
``ended_at``, the command's ``exit_code`` (and ``signal``, when a signal ended it) and
``stopped`` (why the guard stopped it, or null). SIGINT is ignored by the guard (its parent
decides what a Ctrl-C stops); the command gets the signal dispositions a fresh process
has. The guard exits with the command's exit code, or 128 + the signal that ended it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PR_SET_CHILD_SUBREAPER = 36

# How long one pass of ending a tree waits for its processes to be gone.
END_WAIT_S = 5.0


def _prctl(option: int, value: int) -> bool:
    """prctl(2) with one argument; False where there is no prctl (not Linux) or it failed."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(option, value, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def die_with_parent(parent: int, sig: int = signal.SIGKILL) -> bool:
    """Have the kernel send `sig` to this process when its parent `parent` ends.

    If `parent` already ended (this process was reparented before the call), the signal
    is sent now, so a late start behaves like a parent's death. Returns False where
    the kernel cannot do it (not Linux): the caller then watches ``getppid()`` itself.
    """
    supported = _prctl(PR_SET_PDEATHSIG, int(sig))
    if os.getppid() != parent:
        os.kill(os.getpid(), sig)
    return supported


def become_subreaper() -> bool:
    """Adopt this process's orphaned descendants (Linux), so :func:`end_descendants` finds them."""
    return _prctl(PR_SET_CHILD_SUBREAPER, 1)


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()  # after "pid (comm)": state ppid ...
    except (OSError, IndexError):
        return None
    return fields[0].decode(), int(fields[1])


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (an ended process not yet reaped)."""
    stat = _stat(pid)
    if stat is None:
        if not Path("/proc/self/stat").exists():  # no /proc: ask the kernel
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True
            return True
        return False
    return stat[0] not in ("Z", "X")


def session_members(session: int) -> list[int]:
    """The live processes of a session (its id is the pid of the process that began it:
    ``start_new_session=True``), wherever they are in the process tree."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            with open(entry / "stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()  # state ppid pgrp session ...
        except (OSError, IndexError):
            continue
        if int(fields[3]) == session and fields[0] not in (b"Z", b"X"):
            members.append(int(entry.name))
    return members


def start_time(pid: int) -> str:
    """When the process started (clock ticks since boot), to tell a pid from a later one
    that reuses it; "" when unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return ""


def children(pid: int) -> list[int]:
    """The live children of `pid` (``/proc/PID/task/*/children``, or a scan of ``/proc``)."""
    found: list[int] = []
    tasks = Path(f"/proc/{pid}/task")
    try:
        for task in tasks.iterdir():
            with contextlib.suppress(OSError):
                found += [int(p) for p in (task / "children").read_text().split()]
        if found or (tasks / str(pid) / "children").exists():
            return found
    except OSError:
        return []
    for entry in Path("/proc").iterdir():  # a kernel without the children files
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[1] == pid:
                found.append(int(entry.name))
    return found


def descendants(root: int) -> list[int]:
    """Every live process below `root` (children first, then theirs; zombies left out)."""
    out: list[int] = []
    todo = [root]
    while todo:
        for child in children(todo.pop()):
            if child not in out and alive(child):
                out.append(child)
                todo.append(child)
    return out


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def end_tree(root: int, include_root: bool = True, wait_s: float = END_WAIT_S) -> list[int]:
    """SIGKILL `root`'s whole process tree (and `root` itself when `include_root`).

    The tree is first stopped (SIGSTOP) so that no process in it can fork while it is
    being listed; then every process of it gets SIGKILL. Returns the pids that were
    signalled; waits up to `wait_s` for them to be gone (reaped, or zombies awaiting a
    parent: either way their files and locks are released).
    """
    frozen: list[int] = []
    if include_root and alive(root):
        _signal(root, signal.SIGSTOP)
        frozen.append(root)
    while True:
        new = [pid for pid in descendants(root) if pid not in frozen]
        if not new:
            break
        for pid in new:
            _signal(pid, signal.SIGSTOP)
        frozen += new
    for pid in frozen:
        _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + wait_s
    while any(alive(pid) for pid in frozen) and time.monotonic() < deadline:
        time.sleep(0.01)
    return frozen


def end_descendants(wait_s: float = END_WAIT_S) -> list[int]:
    """End every process this process started, directly or not (see :func:`end_tree`)."""
    return end_tree(os.getpid(), include_root=False, wait_s=wait_s)


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
    """The argv that runs `command` under the guard (see the module docstring)."""
    argv = [python, "-m", "pipelines.lifetime"]
    if parent is not None:
        argv += ["--parent", str(parent)]
    if grace_s:
        argv += ["--grace", f"{grace_s:g}"]
    if status is not None:
        argv += ["--status", str(status)]
    return [*argv, "--", *command]


def read_status(path: str | Path) -> dict[str, Any] | None:
    """The guard's status file (see the module docstring), or None when there is none."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_status(path: Path, body: dict[str, object]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(body, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


_WATCHED = (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP)


def guard(command: Sequence[str], parent: int | None, grace_s: float, status: Path | None) -> int:
    """Run `command` as the guard does (module docstring); its exit status."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The signals the guard acts on are taken synchronously (sigtimedwait), never by handlers.
    signal.pthread_sigmask(signal.SIG_BLOCK, _WATCHED)
    kernel_watches = die_with_parent(parent, signal.SIGTERM) if parent is not None else False
    become_subreaper()
    report: dict[str, object] = {"pid": os.getpid(), "started": start_time(os.getpid())}
    report.update(exit_code=None, signal=None, stopped=None)

    def orphaned() -> bool:
        # A parent with several threads hands its children to another of its threads while
        # it ends (the kernel's signal comes when the forking thread ends): it counts as
        # ended once its main thread has.
        return parent is not None and (os.getppid() != parent or not alive(parent))

    if orphaned():  # the parent ended before the command could start: it does not
        report.update(stopped="its parent ended", ended_at=time.time())
        _report(status, report)
        return 128 + signal.SIGTERM
    _report(status, report)
    child = os.fork()
    if child == 0:  # the command: the signal state of a fresh process
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, [])
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.execvp(command[0], list(command))
        except BaseException as exc:
            print(f"guard: cannot run {command[0]}: {exc}", file=sys.stderr, flush=True)
        os._exit(127)

    code: int | None = None
    term_deadline: float | None = None
    while True:
        for pid, raw in _ended_children():  # the command, or orphans adopted from it
            if pid == child:
                code = os.waitstatus_to_exitcode(raw)
                if code < 0:  # ended by a signal
                    report["signal"], code = -code, 128 - code
        if code is not None:
            if not end_descendants():  # what the command left behind: nothing left
                break
            continue
        if report["stopped"] is None and not kernel_watches and orphaned():
            report["stopped"] = "its parent ended"
        if report["stopped"] is not None and term_deadline is None:
            if grace_s > 0:
                _signal(child, signal.SIGTERM)
                _signal(child, signal.SIGCONT)
            term_deadline = time.monotonic() + grace_s
        if term_deadline is not None and time.monotonic() >= term_deadline:
            end_descendants()
        wait = 0.5 if term_deadline is None else max(0.01, min(0.5, term_deadline - time.monotonic()))
        info = signal.sigtimedwait(_WATCHED, wait)
        if info is not None and info.si_signo != signal.SIGCHLD and report["stopped"] is None:
            report["stopped"] = "its parent ended" if orphaned() else "stopped"
    report.update(exit_code=code, ended_at=time.time())
    _report(status, report)
    return code


def _ended_children() -> list[tuple[int, int]]:
    """(pid, wait status) of every child that has ended, reaped."""
    out: list[tuple[int, int]] = []
    while True:
        try:
            pid, raw = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return out
        if pid == 0:
            return out
        out.append((pid, raw))


def _report(status: Path | None, body: dict[str, object]) -> None:
    if status is not None:
        with contextlib.suppress(OSError):
            _write_status(status, body)


def main(argv: list[str] | None = None) -> int:
    """``python -m pipelines.lifetime [--parent PID] [--grace S] [--status FILE] -- COMMAND ...``"""
    import argparse

    p = argparse.ArgumentParser(prog="python -m pipelines.lifetime", description=__doc__.split("\n")[0])
    p.add_argument("--parent", type=int, help="end the command's tree when this process (our parent) ends")
    p.add_argument("--grace", type=float, default=0.0, help="seconds between SIGTERM and SIGKILL on a stop")
    p.add_argument("--status", type=Path, help="JSON file written when done: exit_code, signal, stopped")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARG ...]")
    args = p.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        p.error("no command given (put it after --)")
    if args.grace < 0:
        p.error(f"--grace must not be negative, got {args.grace:g}")
    return guard(command, args.parent, args.grace, args.status)


if __name__ == "__main__":
    sys.exit(main())
