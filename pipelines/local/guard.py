"""Process trees that end with the process that started them, and the guard program.

A local run is a tree of processes: ``python -m pipelines run`` (the CLI), the warm fork
server (:mod:`pipelines.local.warm`) and the tasks forked from it, or, with warm starts off, one
``sh`` + Python per task; a watcher (:mod:`pipelines.triggers.watch`) adds itself on top. When a
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

Run as a program, this is the **guard**: it starts a command, and ends the command's whole
process tree when its own parent ends, when it gets SIGTERM / SIGHUP, and when the command
ends (whatever the command left running)::

    python -m pipelines.local.guard [--parent PID] [--grace S] [--status FILE] -- COMMAND [ARG ...]

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

One guard starts per task when warm starts are off, so the module imports only ``os``,
``signal``, ``sys`` and ``time`` (``ctypes`` and ``json`` when needed) and runs without the
site packages (``python -S``, :func:`pipelines.local.lifetime.guard_command`): about 10 ms.
"""

from __future__ import annotations

import os
import signal
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PR_SET_CHILD_SUBREAPER = 36

# How long one pass of ending a tree waits for its processes to be gone.
END_WAIT_S = 5.0
USAGE = (
    "usage: python -m pipelines.local.guard [--parent PID] [--grace S] [--status FILE] -- COMMAND [ARG ...]"
)


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


def stat_fields(pid: int) -> list[bytes] | None:
    """The fields of ``/proc/PID/stat`` after ``pid (comm)``: state, ppid, pgrp, session, ...;
    None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _threads_alive(pid: int) -> bool:
    """Whether any thread of `pid` is still running (or ending). The main thread of a process
    whose other threads are still exiting already shows as a zombie, while those threads keep
    the process's open files, and so its file locks (a killed DuckDB process: its worker
    threads hold the warehouse's lock a moment longer)."""
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X"):
                    return True
        except (OSError, IndexError):
            continue
    return False


def ended(fields: list[bytes], pid: int) -> bool:
    """Whether a process whose stat `fields` were read has ended: a zombie with no thread left."""
    return fields[0] in (b"Z", b"X") and not _threads_alive(pid)


def _main_thread_ended(pid: int) -> bool:
    """Whether the process's main thread has ended (its other threads may still be ending)."""
    fields = stat_fields(pid)
    return fields is None or fields[0] in (b"Z", b"X")


def alive(pid: int) -> bool:
    """The process exists and has ended in none of its threads (a zombie whose threads have all
    ended has released its files and locks: only its exit status is left to reap)."""
    fields = stat_fields(pid)
    if fields is None:
        if os.path.exists("/proc/self/stat"):
            return False
        try:  # no /proc: ask the kernel
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return not ended(fields, pid)


def start_time(pid: int) -> str:
    """When the process started (clock ticks since boot), to tell a pid from a later one
    that reuses it; "" when unknown."""
    fields = stat_fields(pid)
    return fields[19].decode() if fields is not None and len(fields) > 19 else ""


def children(pid: int) -> list[int]:
    """The children of `pid` (``/proc/PID/task/*/children``, or a scan of ``/proc``)."""
    tasks = f"/proc/{pid}/task"
    try:
        threads = os.listdir(tasks)
    except OSError:
        return []
    found: list[int] = []
    for thread in threads:
        try:
            with open(f"{tasks}/{thread}/children") as f:
                found += [int(p) for p in f.read().split()]
        except OSError:
            continue
    if found or os.path.exists(f"{tasks}/{pid}/children"):
        return found
    for entry in os.listdir("/proc"):  # a kernel without the children files
        fields = stat_fields(int(entry)) if entry.isdigit() else None
        if fields is not None and int(fields[1]) == pid:
            found.append(int(entry))
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
    try:  # noqa: SIM105 (contextlib would be the slowest import of the guard)
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def end_tree(root: int, include_root: bool = True, wait_s: float = END_WAIT_S) -> list[int]:
    """SIGKILL `root`'s whole process tree (and `root` itself when `include_root`).

    The tree is first stopped (SIGSTOP) so that no process in it can fork while it is
    being listed; then every process of it gets SIGKILL. Returns the pids that were
    signalled; waits up to `wait_s` for them to be gone (a zombie counts as gone once all its
    threads have ended: it has released its files and locks; its parent reaps it).
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


# --------------------------------------------------------------------------- the guard

_WATCHED = (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP)


def guard(command: Sequence[str], parent: int | None, grace_s: float, status: str | None) -> int:
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
        return parent is not None and (os.getppid() != parent or _main_thread_ended(parent))

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


def _report(status: str | None, body: dict[str, object]) -> None:
    """Write the status file atomically (a temp file beside it, fsync, rename)."""
    if status is None:
        return
    import json

    tmp = os.path.join(os.path.dirname(status) or ".", f".{os.path.basename(status)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as f:
            json.dump(body, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, status)
    except OSError as exc:
        print(f"guard: cannot write {status}: {exc}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Parse the guard's arguments (by hand: argparse alone takes longer than the rest) and run it."""
    args = list(sys.argv[1:] if argv is None else argv)
    options: dict[str, str] = {}
    while args and args[0] != "--":
        name = args.pop(0)
        if name not in ("--parent", "--grace", "--status") or not args:
            print(f"{USAGE}\nguard: bad or incomplete option {name!r}", file=sys.stderr)
            return 2
        options[name] = args.pop(0)
    command = args[1:]
    try:
        parent = int(options["--parent"]) if "--parent" in options else None
        grace = float(options.get("--grace", "0"))
    except ValueError as exc:
        print(f"{USAGE}\nguard: {exc}", file=sys.stderr)
        return 2
    if not command or grace < 0:
        problem = (
            "no command given (put it after --)"
            if not command
            else f"--grace must not be negative, got {grace:g}"
        )
        print(f"{USAGE}\nguard: {problem}", file=sys.stderr)
        return 2
    return guard(command, parent, grace, options.get("--status"))


if __name__ == "__main__":
    sys.exit(main())
