"""The watcher's state file (:mod:`pipelines.triggers.watch`): every run it started, with its data
version and status, and the version the last successful run published.

Statuses: ``running`` (a local run, recorded before it starts, with the file its guard
reports to), then ``succeeded``, ``failed`` or ``interrupted``; or ``started`` (submitted to
Kubeflow Pipelines, which runs it). ``published`` is the last ``succeeded`` / ``started``
run's version. Every change is saved atomically (temp file, fsync, rename).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.triggers.probes import DataVersion
from pipelines.triggers.starters import FAILED, RUNNING, STARTED, SUCCEEDED, Started, WatchError

STATE_FORMAT = 1
STATE_FILE = "watch-state.json"
KEEP_RUNS = 500  # entries kept in the state file (newest)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# What a poll decides for the current data version.
PUBLISHED, FAILED_BEFORE, START = "published", "failed before", "start"


class State:
    """The watcher's memory (see the module docstring). Saved atomically (a temp file in the
    same folder, fsync, rename), so a crash leaves the old or the new file."""

    def __init__(self, path: Path, data: dict[str, Any]):
        self.path = path
        self.data = data

    @classmethod
    def load(cls, path: Path, watching: str) -> State:
        from pipelines.triggers.files import read_state

        try:
            data = read_state(path, "watch", STATE_FORMAT, "runs", list)
        except ValueError as exc:
            raise WatchError(str(exc)) from None
        if data is None:
            data = {"format": STATE_FORMAT, "watching": watching, "runs": [], "published": None}
            data["last_poll"] = None
        data["watching"] = watching
        if "published" not in data:  # written before the state kept it: the last success
            done = [r for r in data["runs"] if r.get("status") in (SUCCEEDED, STARTED)]
            data["published"] = _published(done[-1]) if done else None
        return cls(path, data)

    @property
    def published(self) -> str | None:
        """The data version the last successful run (or submission) was for."""
        return (self.data.get("published") or {}).get("data_version")

    def decide(self, key: str) -> tuple[str, dict[str, Any] | None]:
        """What to do about data version `key`: PUBLISHED (nothing), FAILED_BEFORE (its run
        failed since the last publish: not again by itself) or START; with the entry concerned."""
        if key == self.published:
            return PUBLISHED, self.data["published"]
        for entry in reversed(self.data["runs"]):
            if entry.get("status") in (SUCCEEDED, STARTED):
                break
            if entry.get("data_version") == key and entry.get("status") == FAILED:
                return FAILED_BEFORE, entry
        return START, None

    def running(self) -> list[dict[str, Any]]:
        """Entries of local runs that had not ended when the state was last saved."""
        return [r for r in self.data["runs"] if r.get("status") == RUNNING]

    def _add(self, version: DataVersion, run: str) -> dict[str, Any]:
        entry = {"data_version": version.key, "rows": version.rows, "max_created_on": version.max_created_on}
        entry.update(status=RUNNING, run=run, detail="", at=now())
        self.data["runs"] = [*self.data["runs"], entry][-KEEP_RUNS:]
        return entry

    def begin(self, version: DataVersion, run: str, report: Path) -> dict[str, Any]:
        """Record (and save) a local run as ``running`` before it starts; its guard reports to `report`."""
        entry = self._add(version, run)
        entry["report"] = str(report)
        self.save()
        return entry

    def finish(self, entry: dict[str, Any], started: Started) -> None:
        """Record how a run ended (or that it was submitted); a success is what is published."""
        entry.update(status=started.status, run=started.run or entry["run"], detail=started.detail)
        entry["ended"] = now()
        if started.status in (SUCCEEDED, STARTED):
            self.data["published"] = _published(entry)

    def record(self, version: DataVersion, started: Started) -> None:
        """Record a run started elsewhere (a KFP submission) in one step."""
        self.finish(self._add(version, started.run), started)

    def forget(self, entry: dict[str, Any]) -> None:
        """Drop an entry whose run never started (its start raised)."""
        self.data["runs"] = [r for r in self.data["runs"] if r is not entry]

    def save(self) -> None:
        from pipelines.triggers.files import write_json_atomic

        write_json_atomic(self.path, self.data)


def _published(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: entry.get(k) for k in ("data_version", "rows", "max_created_on", "run", "at")}


@contextlib.contextmanager
def state_lock(path: Path) -> Iterator[None]:
    """Hold ``<state>.lock`` for the watcher's lifetime: two watchers on one state would both start."""
    import fcntl

    lock = path.with_name(path.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WatchError(f"another watcher is using {path} (lock {lock})") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
