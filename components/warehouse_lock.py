"""Turns at a DuckDB warehouse file: one writer or many readers, waited for, with a named holder.

DuckDB lets one process open a file for writing, or several for reading; any other open
fails at once with ``IOException: Could not set lock on file``. On a cluster Argo starts
every task whose own upstreams are done (``backend/src/v2/compiler/argocompiler/dag.go``),
so the two syncs of a dataops run, or a validation and the other stream's sync, open the
warehouse on the stores PVC at the same time. Every DuckDB open of the project — the
steps' (:func:`components.warehouse.duckdb_connect`), dbt-duckdb's (around each dbt
command), the watcher's probe — first takes its turn here:

- an advisory ``flock`` on ``<file>.lock`` beside the warehouse: exclusive to write, shared
  to read, so readers overlap each other but never a writer. The kernel drops it when its
  process ends, however it ends, so a killed task never leaves the file locked;
- while it holds its turn a process keeps a small record of who it is (step, what it is
  doing, pid, host, since when) in ``<file>.holders/``, each record flocked by its writer,
  so a record whose writer is gone is recognised as stale and removed;
- a process that waits says so once (naming the holders), and gives up after a bounded
  time (``KFP_MLOPS_WAREHOUSE_LOCK_TIMEOUT`` seconds, default 900) with
  :class:`WarehouseBusy`, whose message names the holders' steps.

Turns are per thread and re-entrant: a nested open in the same thread rides on the turn it
holds (a read inside a write; a write inside a read is refused as a programming error).
``flock`` works between processes and containers on one machine and between pods on one
node, which is where a ReadWriteOnce stores volume is mounted.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

TIMEOUT_ENV = "KFP_MLOPS_WAREHOUSE_LOCK_TIMEOUT"
DEFAULT_TIMEOUT_S = 900.0
_POLL_FIRST_S, _POLL_MAX_S = 0.05, 1.0
# Say once that we wait, after this long (a turn usually comes within a second).
_ANNOUNCE_AFTER_S = 1.0


class WarehouseBusy(RuntimeError):
    """The warehouse stayed in other hands for the whole wait; the message names them."""


@dataclass
class _Turn:
    write: bool
    depth: int


_turns = threading.local()


def timeout_s() -> float:
    """The bounded wait for a turn: ``KFP_MLOPS_WAREHOUSE_LOCK_TIMEOUT`` or 900 s."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{TIMEOUT_ENV}={raw!r} is not a number of seconds") from None
    if value < 0:
        raise ValueError(f"{TIMEOUT_ENV}={raw!r} must not be negative")
    return value


def current_step() -> str:
    """The step this process runs: kfp's executor is given ``--function_to_execute NAME``."""
    argv = sys.argv
    if "--function_to_execute" in argv[:-1]:
        return argv[argv.index("--function_to_execute") + 1]
    return Path(argv[0]).name if argv and argv[0] else "python"


def _paths(database: str | Path) -> tuple[Path, Path]:
    db = Path(database).expanduser().resolve()
    return db.with_name(db.name + ".lock"), db.with_name(db.name + ".holders")


def holders(database: str | Path) -> list[dict[str, object]]:
    """Who holds a turn at `database` now (stale records of ended processes are removed)."""
    _, folder = _paths(database)
    found: list[dict[str, object]] = []
    for record in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            fd = os.open(record, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:  # its writer is alive and holds it
                with contextlib.suppress(OSError, ValueError):
                    found.append(json.loads(os.read(fd, 1 << 16) or b"{}"))
                continue
            with contextlib.suppress(OSError):  # nobody holds it: its process ended
                record.unlink()
        finally:
            os.close(fd)
    return found


def describe(records: list[dict[str, object]]) -> str:
    """``step airbyte_sync (load mlops_course.tags; write; pid 12 on host; since 10:00:01)``."""
    if not records:
        return "a process that keeps no record (another DuckDB client?)"
    parts = []
    for r in records:
        since = time.strftime("%H:%M:%S", time.localtime(float(str(r.get("since", 0)))))
        mode = "write" if r.get("write") else "read"
        parts.append(
            f"step {r.get('step', '?')} ({r.get('purpose', '?')}; {mode}; pid {r.get('pid', '?')} "
            f"on {r.get('host', '?')}; since {since})"
        )
    return ", ".join(parts)


@contextlib.contextmanager
def turn(
    database: str | Path,
    *,
    write: bool,
    purpose: str,
    wait_s: float | None = None,
    holder: str | None = None,
    noun: str = "DuckDB warehouse",
    hint: str = f"raise {TIMEOUT_ENV} to wait longer",
) -> Iterator[None]:
    """Hold a turn at the DuckDB file `database` for the block: exclusive when `write`.

    Args:
        database: The DuckDB file (it need not exist yet), or any path whose turns are
            taken the same way (``<path>.lock`` and ``<path>.holders/`` beside it).
        write: Exclusive (one writer) instead of shared (readers).
        purpose: What this turn is for, shown to whoever waits (``load mlops_course.tags``).
        wait_s: Longest wait for the turn; default :func:`timeout_s`.
        holder: Who is asking, as others will see it (default: this process's step).
        noun: What `database` is, in messages.
        hint: What to do about a wait that ran out, in its message.

    Raises:
        WarehouseBusy: Others held the file for the whole wait; names them.
        RuntimeError: A write was asked for inside this thread's own read turn.
    """
    key = str(Path(database).expanduser().resolve())
    held: dict[str, _Turn] = _turns.__dict__.setdefault("held", {})
    if key in held:
        current = held[key]
        if write and not current.write:
            raise RuntimeError(f"{key}: a write turn was asked for inside a read turn of the same thread")
        current.depth += 1
        try:
            yield
        finally:
            current.depth -= 1
        return

    lock_path, folder = _paths(database)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        _acquire(fd, database, write, purpose, timeout_s() if wait_s is None else wait_s, noun, hint)
        record = _record(folder, write, purpose, holder or current_step())
        held[key] = _Turn(write, 1)
        try:
            yield
        finally:
            del held[key]
            record_path, record_fd = record
            with contextlib.suppress(OSError):
                record_path.unlink()
            os.close(record_fd)
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def _acquire(
    fd: int, database: str | Path, write: bool, purpose: str, wait_s: float, noun: str, hint: str
) -> None:
    mode = (fcntl.LOCK_EX if write else fcntl.LOCK_SH) | fcntl.LOCK_NB
    started = time.monotonic()
    delay, announced = _POLL_FIRST_S, False
    while True:
        try:
            fcntl.flock(fd, mode)
            if announced:
                log.info(
                    "got the %s turn at %s after %.1f s",
                    "write" if write else "read",
                    database,
                    _since(started),
                )
            return
        except BlockingIOError:
            pass
        waited = _since(started)
        if waited >= wait_s:
            raise WarehouseBusy(
                f"{noun} {database} is busy: waited {waited:.0f} s to {purpose} "
                f"({'write' if write else 'read'}), held by {describe(holders(database))}; {hint}"
            )
        if not announced and waited >= _ANNOUNCE_AFTER_S:
            announced = True
            print(
                f"waiting for the {noun} {database} to {purpose}: held by {describe(holders(database))}",
                file=sys.stderr,
                flush=True,
            )
        time.sleep(min(delay, max(wait_s - waited, 0.0)))
        delay = min(delay * 2, _POLL_MAX_S)


def _since(started: float) -> float:
    return time.monotonic() - started


def _record(folder: Path, write: bool, purpose: str, holder: str) -> tuple[Path, int]:
    """Write this process's holder record and keep it flocked (alive) until the turn ends."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.json"
    # Flocked before it gets its name, so nobody ever sees it unheld and takes it for stale.
    partial = path.with_suffix(".partial")
    fd = os.open(partial, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o666)
    fcntl.flock(fd, fcntl.LOCK_EX)
    body = {
        "step": holder,
        "purpose": purpose,
        "write": write,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": time.time(),
    }
    os.write(fd, json.dumps(body).encode())
    partial.replace(path)
    return path, fd
