"""New-data trigger: bring what a pipeline published in line with the data it watches.

    python -m pipelines watch (--source DIR | --warehouse URI)
        [--local | --host URL | --exec CMD] [--pipeline NAME] [--interval 60] [--once]
        [--state PATH] [--stores DIR] [--settle 5] [--grace 30]

Every ``--interval`` seconds the watcher computes the *data version* of what it watches
(:mod:`pipelines.triggers.probes`: a source folder, or the published warehouse table) and
compares it with the version **the last run it started successfully** was for — the one that
run published. When they differ, it starts a run (:mod:`pipelines.triggers.starters`):
``--local`` runs ``python -m pipelines run`` here (the default), ``--host`` submits the
compiled pipeline to Kubeflow Pipelines, ``--exec`` runs any command. A source that goes
A -> B -> A is published A, then B, then A again.

The state file (default ``<stores>/watch-state.json``) is written atomically (temp file,
fsync, rename) at each step, so a kill leaves the old or the new file: every run with its
data version and status — ``running`` (recorded before a local run starts, with the file
in which its guard reports on it), then ``succeeded``, ``failed`` or ``interrupted``; or
``started`` (submitted to KFP) — and ``published``, the version of the last success.

A run of a version that failed is not started again by itself (the same data would fail
the same way) until another version has been published; delete its entry to retry. An
interrupted run, and a start that raised (host unreachable), are tried again at the next poll.

A local run never outlives the watcher and is never run twice at once:

- the run's process tree ends with the watcher, however the watcher ends (SIGKILL too): the
  run's guard gets SIGTERM from the kernel, the run stops its tasks and releases its stores,
  and after ``--grace`` seconds whatever is left is killed (:mod:`pipelines.local.guard`);
- a restarted watcher first settles every run left ``running``: from its guard's report
  when it ended, else it waits for the run's processes to be gone (re-attaching to it,
  stopping it on shutdown) — and only then decides whether to start one;
- every local run takes the stores with ``--if-busy wait``: whatever else still holds the
  stores folder (a manual run, a run a killed watcher left stopping) is waited for, so two
  runs never write one stores folder at the same time, whatever the state file says.

SIGTERM / SIGINT: the current poll finishes (a local run in progress is stopped and recorded
as interrupted), the state is saved and the watcher exits 0. One watcher per state file (a
lock file next to it). ``--once`` polls once and exits (cron, tests): 0 unless the poll failed.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.local.lifetime import read_status
from pipelines.triggers.probes import DEFAULT_SETTLE_S, DataVersion, Probe, SourceProbe, WarehouseProbe
from pipelines.triggers.starters import (
    DEFAULT_GRACE_S,
    FAILED,
    INTERRUPTED,
    CommandStarter,
    KfpStarter,
    LocalStarter,
    Started,
    Starter,
    WatchError,
    follow,
    outcome,
)
from pipelines.triggers.state import FAILED_BEFORE, PUBLISHED, STATE_FILE, State, now, state_lock

MIN_INTERVAL_S = 5.0
MAX_INTERVAL_S = 24 * 3600.0
DEFAULT_INTERVAL_S = 60.0
RUNS_FOLDER = "watch-runs"  # the guards' reports on local runs, beside the state file


def check_interval(seconds: float) -> float:
    """The polling interval, or a WatchError naming the bounds."""
    if not MIN_INTERVAL_S <= seconds <= MAX_INTERVAL_S:
        raise WatchError(
            f"--interval must be between {MIN_INTERVAL_S:g} and {MAX_INTERVAL_S:g} seconds, got {seconds:g}"
        )
    return seconds


# --------------------------------------------------------------------------- watcher


UNCHANGED, WAITING, ERROR = "unchanged", "waiting", "error"


class Watcher:
    """Polls a probe and starts a run, through a starter, when the data differs from what
    the last successful run published."""

    def __init__(
        self,
        probe: Probe,
        starter: Starter,
        state_path: str | Path,
        log: Callable[[str], None] | None = None,
    ):
        self.probe = probe
        self.starter = starter
        self.state_path = Path(state_path)
        self.log = log or _print
        # A plain flag, set from signal handlers: an Event's lock could be held by the very
        # frame the handler interrupts.
        self._stopping = False

    def stop(self) -> None:
        self._stopping = True

    @property
    def stopping(self) -> bool:
        return self._stopping

    def _sleep(self, seconds: float) -> None:
        """Sleep in short steps so that a stop request is noticed within a quarter second."""
        deadline = time.monotonic() + seconds
        while not self._stopping:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(0.25, left))

    def settle(self, state: State) -> None:
        """Find out how the runs a previous watcher left ``running`` ended; wait for (and,
        on shutdown, stop) one that is still going."""
        for entry in state.running():
            report = Path(entry["report"]) if entry.get("report") else None
            last = read_status(report) if report is not None else None
            if last is not None and "ended_at" not in last:
                self.log(
                    f"the run of data version {entry['data_version']} started at {entry['at']} is still "
                    f"going (pid {last.get('pid')}); waiting for it to end"
                )
            last = follow(report, lambda: self.stopping, self._grace()) if report is not None else None
            if last is not None and "ended_at" not in last and self.stopping:
                return  # still stopping when the watcher leaves: settled by the next one
            codes: frozenset[int] = getattr(self.starter, "interrupted_codes", frozenset())
            status, detail = outcome(last, codes)
            state.finish(entry, Started(status, entry["run"], detail))
            self.log(
                f"the run of data version {entry['data_version']} started at {entry['at']}: {status} ({detail})"
            )
            state.save()
            if report is not None:
                with contextlib.suppress(OSError):
                    report.unlink()

    def _grace(self) -> float:
        return float(getattr(self.starter, "grace_s", DEFAULT_GRACE_S))

    def _start(self, state: State, version: DataVersion) -> Started:
        """Start a run of `version` (a local one recorded as ``running`` first); how it ended."""
        should_stop = lambda: self.stopping  # noqa: E731
        if not isinstance(self.starter, CommandStarter):
            return self.starter.start(version, should_stop)
        folder = self.state_path.parent / RUNS_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        report = folder / f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{version.key}.json"
        entry = state.begin(version, self.starter.description, report)

        def started(pid: int) -> None:
            entry["pid"] = pid
            state.save()

        try:
            result = self.starter.start(version, should_stop, status=report, on_start=started)
        except BaseException:
            state.forget(entry)
            raise
        state.finish(entry, result)
        with contextlib.suppress(OSError):
            report.unlink()
        return result

    def poll(self, state: State) -> str:
        """One poll: returns its outcome and saves the state."""
        key, message = None, ""
        try:
            self.settle(state)
            version = self.probe.current()
        except Exception as exc:
            version, result, message = None, ERROR, f"cannot read {self.probe.description}: {exc}"
            self.log(message)
        else:
            decision, entry = (None, None) if version is None else state.decide(version.key)
            if version is None:
                result, message = WAITING, self.probe.problem
                self.log(f"waiting: {message}")
            elif decision == PUBLISHED:
                key, result = version.key, UNCHANGED
                when = (entry or {}).get("at", "?")
                self.log(
                    f"data version {version.describe()} is what the last run published (started {when}); nothing to do"
                )
            elif decision == FAILED_BEFORE:
                key, result = version.key, UNCHANGED
                message = (
                    f"its run failed ({(entry or {}).get('detail')}, {(entry or {}).get('at')}); not retried "
                    f"by itself: delete its entry from {self.state_path} to retry"
                )
                self.log(f"data version {version.describe()}: {message}")
            elif self.stopping:
                key, result, message = version.key, INTERRUPTED, "shutting down: not starting"
            else:
                key = version.key
                self.log(
                    f"data version {version.describe()} differs from what was published "
                    f"({state.published or 'nothing yet'}): starting {self.starter.description}"
                )
                try:
                    started = self._start(state, version)
                except Exception as exc:  # not recorded: tried again on the next poll
                    result, message = ERROR, f"could not start a run: {exc}"
                    self.log(message)
                else:
                    result, message = started.status, started.detail
                    if not isinstance(self.starter, CommandStarter):
                        state.record(version, started)
                    if started.status == INTERRUPTED:
                        self.log(f"run interrupted ({started.detail}); it starts again on the next poll")
                    else:
                        self.log(f"run {started.status}: {started.run} {started.detail}".rstrip())
        state.data["last_poll"] = {"at": now(), "outcome": result, "data_version": key, "message": message}
        state.save()
        return result

    def run(self, interval: float = DEFAULT_INTERVAL_S, once: bool = False) -> int:
        """Poll until stopped (or once). Exit code: 0, or 1 when `once` and the poll failed."""
        check_interval(interval)
        with state_lock(self.state_path), self._signals():
            state = State.load(self.state_path, self.probe.description)
            self.log(f"watching {self.probe.description} every {interval:g}s; state {self.state_path}")
            while True:
                result = self.poll(state)
                if once:
                    return 1 if result in (ERROR, FAILED) else 0
                self._sleep(interval)
                if self._stopping:
                    break
            self.log("stopped; state saved")
            return 0

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: Any) -> None:
            # Only set a flag here: the poll in progress finishes, then the loop ends.
            self._stopping = True

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)


def _print(message: str) -> None:
    print(f"{datetime.now():%H:%M:%S} watch: {message}", flush=True)


# --------------------------------------------------------------------------- CLI


def _add_arguments(p: argparse.ArgumentParser) -> None:
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--source", metavar="DIR", help="folder with projects.csv and tags.csv to watch")
    what.add_argument(
        "--warehouse", metavar="URI", help="warehouse to watch, e.g. duckdb:///abs/warehouse.duckdb"
    )
    p.add_argument("--schema", default="mlops_course", help="schema of the watched table (--warehouse)")
    p.add_argument("--table", default="labeled_projects", help="watched table (--warehouse)")
    how = p.add_argument_group("how to start a run (default --local)")
    how.add_argument("--local", action="store_true", help="run `python -m pipelines run` here (kfp.local)")
    how.add_argument("--exec", metavar="CMD", help="run this command instead (version in KFP_MLOPS_DATA_*)")
    p.add_argument(
        "--pipeline",
        help="pipeline to start (default: all for --source / mlops for --warehouse locally; "
        "dataops / mlops on a KFP host)",
    )
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="pipeline parameter")
    p.add_argument(
        "--package", metavar="YAML", help="compiled pipeline to submit (--host; default: compile now)"
    )
    p.add_argument("--experiment", help="KFP experiment (--host)")
    p.add_argument("--stores", help="local stores folder (default: $KFP_MLOPS_STORES or stores/)")
    p.add_argument("--state", metavar="PATH", help=f"state file (default: <stores>/{STATE_FILE})")
    p.add_argument(
        "--interval",
        type=float,
        default=DEFAULT_INTERVAL_S,
        metavar="SECONDS",
        help=f"seconds between polls ({MIN_INTERVAL_S:g} to {MAX_INTERVAL_S:g}; default {DEFAULT_INTERVAL_S:g})",
    )
    p.add_argument(
        "--settle",
        type=float,
        default=DEFAULT_SETTLE_S,
        metavar="SECONDS",
        help="source files changed more recently than this are still being written (--source)",
    )
    p.add_argument(
        "--grace",
        type=float,
        default=DEFAULT_GRACE_S,
        metavar="SECONDS",
        help="a local run being stopped (shutdown, or the watcher died) gets this long to stop its tasks "
        f"before it is killed (--local, --exec; default {DEFAULT_GRACE_S:g})",
    )
    p.add_argument("--once", action="store_true", help="poll once and exit (cron, tests)")


DESCRIPTION = (
    "Poll a source folder or the warehouse table and start a pipeline run whenever its data version "
    "(row count, latest created_on, content hash) differs from the one the last successful run published, "
    "remembered across restarts in a state file. A local run ends with the watcher and is never run twice "
    "at once. SIGTERM/SIGINT finish the current poll, save the state and exit 0."
)


def add_watch_command(subparsers: Any) -> None:
    """Register ``watch`` on a subparsers object (``python -m pipelines watch``)."""
    from pipelines.cli.cluster import _connection_options

    p = subparsers.add_parser(
        "watch",
        parents=[_connection_options()],
        help="start a run once per new data version",
        description=DESCRIPTION,
    )
    _add_arguments(p)
    p.set_defaults(func=cmd_watch)


def build_parser() -> argparse.ArgumentParser:
    from pipelines.cli.cluster import _connection_options

    p = argparse.ArgumentParser(
        prog="python -m pipelines.triggers.watch", parents=[_connection_options()], description=DESCRIPTION
    )
    _add_arguments(p)
    return p


def _probe(args: argparse.Namespace) -> Probe:
    if args.source:
        folder = Path(args.source).expanduser()
        if not folder.is_dir():
            raise WatchError(f"--source {args.source} is not a folder")
        return SourceProbe(folder, settle_s=args.settle)
    return WarehouseProbe(args.warehouse, args.schema, args.table)


def cmd_watch(args: argparse.Namespace) -> int:
    from pipelines.clients import kfp as kfp_client
    from pipelines.settings import LocalSettings

    try:
        check_interval(args.interval)
        if args.grace < 0:
            raise WatchError(f"--grace must not be negative, got {args.grace:g}")
        modes = [m for m, on in (("--local", args.local), ("--exec", args.exec), ("--host", args.host)) if on]
        if len(modes) > 1:
            raise WatchError(f"choose one of {', '.join(modes)}")
        probe = _probe(args)
        settings = LocalSettings.from_env(args.stores)
        state_path = Path(args.state).expanduser() if args.state else settings.stores / STATE_FILE
        with contextlib.ExitStack() as stack:
            starter: Starter
            if args.exec:
                starter = CommandStarter(shlex.split(args.exec), grace_s=args.grace)
            elif args.host:
                pipeline = args.pipeline or ("dataops" if args.source else "mlops")
                conn = kfp_client.Connection.resolve(
                    host=args.host, token=args.token, token_file=args.token_file, cookies=args.cookies
                )
                package = args.package
                if not package:
                    from pipelines.compile import compile_all

                    tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="kfp-mlops-watch-"))
                    package = str(compile_all(Path(tmp), [pipeline])[0])
                from pipelines.cli.cluster import parse_params

                starter = KfpStarter(conn, pipeline, package, parse_params(args.param), args.experiment)
            else:
                pipeline = args.pipeline or ("all" if args.source else "mlops")
                starter = LocalStarter(
                    pipeline,
                    settings.stores,
                    source=Path(args.source).resolve() if args.source else None,
                    warehouse=args.warehouse,
                    params=args.param,
                    grace_s=args.grace,
                )
            return Watcher(probe, starter, state_path).run(args.interval, once=args.once)
    except (WatchError, kfp_client.ClusterError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except SystemExit as exc:  # registry.load on an unknown pipeline
        print(f"error: {exc}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    return cmd_watch(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
