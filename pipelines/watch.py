"""New-data trigger: start a pipeline run once per new data version.

    python -m pipelines watch (--source DIR | --warehouse URI)
        [--local | --host URL | --exec CMD] [--pipeline NAME] [--interval 60] [--once]
        [--state PATH] [--stores DIR] [--settle 5]

Every ``--interval`` seconds the watcher computes the *data version* of what it watches —
a source folder (``projects.csv`` + ``tags.csv``) or the published warehouse table — as
row count, latest ``created_on`` and a content hash. A version it has not started a run
for starts one; the start is recorded in a JSON state file (default
``<stores>/watch-state.json``, written atomically), so a version starts one run even across
restarts. Starting is pluggable (`Starter`): ``--local`` runs ``python -m pipelines run``
as a subprocess (the default), ``--host`` submits the compiled pipeline to Kubeflow
Pipelines, ``--exec`` runs any command (with the version in ``KFP_MLOPS_DATA_*``).

What is recorded: a run that was submitted (KFP), or a local run that ended, succeeded or
failed — a failed run is not retried by itself (delete its entry from the state file to
retry). What is not: a start that raised (host unreachable) and a local run interrupted by
shutdown; both are started again on the next poll.

SIGTERM / SIGINT: the current poll finishes (a local run in progress is asked to stop and,
being interrupted, is not recorded), the state is saved and the watcher exits 0. One
watcher per state file (a lock file next to it). ``--once`` polls once and exits (cron,
tests): 0 unless the poll failed.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

MIN_INTERVAL_S = 5.0
MAX_INTERVAL_S = 24 * 3600.0
DEFAULT_INTERVAL_S = 60.0
DEFAULT_SETTLE_S = 5.0
STATE_FORMAT = 1
STATE_FILE = "watch-state.json"
KEEP_RUNS = 500  # entries kept in the state file (newest)
SOURCE_FILES = ("projects.csv", "tags.csv")


class WatchError(Exception):
    """A problem to report in one line (bad flags, unreadable state, a second watcher)."""

    exit_code = 2


def check_interval(seconds: float) -> float:
    """The polling interval, or a WatchError naming the bounds."""
    if not MIN_INTERVAL_S <= seconds <= MAX_INTERVAL_S:
        raise WatchError(
            f"--interval must be between {MIN_INTERVAL_S:g} and {MAX_INTERVAL_S:g} seconds, got {seconds:g}"
        )
    return seconds


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- data versions


@dataclass(frozen=True)
class DataVersion:
    """What the watched data looks like now; `key` (a content hash) identifies it."""

    key: str
    rows: int
    max_created_on: str

    def describe(self) -> str:
        return f"{self.key} ({self.rows} rows, latest created_on {self.max_created_on or '-'})"


class Probe(Protocol):
    """Computes the current data version; None when the data cannot be read right now."""

    description: str
    problem: str  # why the last `current()` returned None

    def current(self) -> DataVersion | None: ...


class SourceProbe:
    """A folder with ``projects.csv`` and ``tags.csv`` (what the dataops pipeline loads).

    Files modified less than `settle_s` seconds ago are being written: the poll waits.
    Unchanged files (size and mtime) are not read again.
    """

    def __init__(
        self, folder: str | Path, settle_s: float = DEFAULT_SETTLE_S, clock: Callable[[], float] = time.time
    ):
        self.folder = Path(folder).expanduser().resolve()
        self.settle_s = settle_s
        self.clock = clock
        self.description = f"source {self.folder}"
        self.problem = ""
        self._cache: tuple[Any, DataVersion] | None = None

    def current(self) -> DataVersion | None:
        paths = [self.folder / name for name in SOURCE_FILES]
        missing = [p.name for p in paths if not p.is_file()]
        if missing:
            self.problem = f"{self.folder} has no {', '.join(missing)}"
            return None
        stats = [p.stat() for p in paths]
        age = self.clock() - max(s.st_mtime for s in stats)
        if age < self.settle_s:
            self.problem = f"source files changed {age:.1f}s ago (settle time {self.settle_s:g}s)"
            return None
        fingerprint = tuple((s.st_size, s.st_mtime_ns) for s in stats)
        if self._cache is not None and self._cache[0] == fingerprint:
            return self._cache[1]
        digest = hashlib.sha256()
        for path in paths:
            digest.update(path.name.encode() + b"\0")
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
        import pandas as pd

        try:
            created = pd.read_csv(paths[0], usecols=["created_on"])["created_on"]
        except (ValueError, pd.errors.ParserError) as exc:
            self.problem = f"cannot read {paths[0]}: {exc}"
            return None
        version = DataVersion(
            digest.hexdigest()[:16], len(created), str(created.dropna().astype(str).max() or "")
        )
        self._cache = (fingerprint, version)
        return version


# How long a warehouse probe waits for its read turn before it reports the warehouse busy.
PROBE_WAIT_S = 10.0


class WarehouseProbe:
    """The published table: ``count(*)``, ``max(created_on)`` and a sum of row hashes.

    DuckDB computes all three in SQL. A run that holds the warehouse's write turn makes
    the probe wait up to ``PROBE_WAIT_S``, then report "busy" (naming the holder) and try
    again at the next poll. BigQuery: the table is read and hashed like extract's data_version.
    """

    def __init__(self, uri: str, schema: str = "mlops_course", table: str = "labeled_projects"):
        from components.warehouse import ident, parse_uri

        self.uri = uri
        self.wh = parse_uri(uri)
        self.schema, self.table = ident(schema), ident(table)
        self.description = f"warehouse {self.wh} table {schema}.{table}"
        self.problem = ""

    def current(self) -> DataVersion | None:
        if self.wh.kind != "duckdb":
            from components.warehouse import frame_version, read_table

            df = read_table(self.uri, self.schema, self.table)
            latest = str(df["created_on"].max()) if len(df) else ""
            return DataVersion(frame_version(df), len(df), latest)
        from components.warehouse import WarehouseError, duckdb_connect, duckdb_table_exists

        if not Path(self.wh.path).exists():
            self.problem = f"{self.wh.path} does not exist yet"
            return None
        try:
            # A short wait: a run that holds the write turn is reported, and polled again later.
            with duckdb_connect(
                self.wh.path, read_only=True, purpose="probe for new data", wait_s=PROBE_WAIT_S
            ) as con:
                if not duckdb_table_exists(con, self.schema, self.table):
                    self.problem = f"table {self.schema}.{self.table} does not exist yet"
                    return None
                row = con.execute(
                    f"select count(*), max(created_on)::varchar, coalesce(sum(hash(t)), 0)::varchar "
                    f'from "{self.schema}"."{self.table}" t'
                ).fetchone()
        except WarehouseError as exc:  # e.g. a pipeline holds the write turn
            self.problem = f"warehouse busy or unreadable: {str(exc).splitlines()[0]}"
            return None
        assert row is not None
        rows, latest, hashes = int(row[0]), str(row[1] or ""), str(row[2])
        key = hashlib.sha256(f"{rows}:{latest}:{hashes}".encode()).hexdigest()[:16]
        return DataVersion(key, rows, latest)


# --------------------------------------------------------------------------- starters


@dataclass(frozen=True)
class Started:
    """What a starter did: ``started`` (submitted, runs elsewhere), ``succeeded`` or ``failed``
    (ran here), or ``interrupted`` (stopped by shutdown: not recorded, started again later)."""

    status: str
    run: str = ""  # run id, or the command
    detail: str = ""  # run URL, exit code


STARTED, SUCCEEDED, FAILED, INTERRUPTED = "started", "succeeded", "failed", "interrupted"


class Starter(Protocol):
    """Starts one pipeline run for a data version. `should_stop` turns true on shutdown: a
    starter that runs the pipeline itself should then stop it and return ``interrupted``."""

    description: str

    def start(self, version: DataVersion, should_stop: Callable[[], bool]) -> Started: ...


def version_env(version: DataVersion) -> dict[str, str]:
    return {
        "KFP_MLOPS_DATA_VERSION": version.key,
        "KFP_MLOPS_DATA_ROWS": str(version.rows),
        "KFP_MLOPS_DATA_MAX_CREATED_ON": version.max_created_on,
    }


class CommandStarter:
    """Runs a command and waits for it; the data version is in ``KFP_MLOPS_DATA_*``.

    The command runs in its own session (a terminal's Ctrl-C reaches the watcher only); on
    shutdown it gets SIGTERM, then SIGKILL after `grace_s`.
    """

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        grace_s: float = 30.0,
        poll_s: float = 0.2,
        cwd: str | Path | None = None,
    ):
        if not argv:
            raise WatchError("empty command")
        self.argv = list(argv)
        self.env = dict(env or {})
        self.grace_s = grace_s
        self.poll_s = poll_s
        self.cwd = cwd
        self.description = shlex.join(self.argv)

    def start(self, version: DataVersion, should_stop: Callable[[], bool]) -> Started:
        env = {**os.environ, **self.env, **version_env(version)}
        proc = subprocess.Popen(self.argv, env=env, cwd=self.cwd, start_new_session=True)
        while True:
            try:
                code = proc.wait(timeout=self.poll_s)
                break
            except subprocess.TimeoutExpired:
                if should_stop():
                    self._stop(proc)
                    return Started(INTERRUPTED, self.description, f"stopped (pid {proc.pid})")
        return Started(SUCCEEDED if code == 0 else FAILED, self.description, f"exit code {code}")

    def _stop(self, proc: subprocess.Popen[Any]) -> None:
        for sig, wait in ((signal.SIGTERM, self.grace_s), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue


class LocalStarter(CommandStarter):
    """``python -m pipelines run PIPELINE --local --stores DIR [--source DIR]`` on this machine."""

    def __init__(
        self,
        pipeline: str,
        stores: str | Path,
        source: str | Path | None = None,
        warehouse: str | None = None,
        params: Sequence[str] = (),
        python: str = sys.executable,
    ):
        argv = [python, "-m", "pipelines", "run", pipeline, "--local", "--stores", str(stores)]
        if source is not None and pipeline in ("dataops", "all"):
            argv += ["--source", str(source)]
        for item in params:
            argv += ["--param", item]
        # The local settings read the warehouse from WAREHOUSE_URI (default: under stores).
        super().__init__(argv, env={"WAREHOUSE_URI": warehouse} if warehouse else None)


class KfpStarter:
    """Submits the compiled pipeline to Kubeflow Pipelines (``create_run_from_pipeline_package``)."""

    def __init__(
        self,
        conn: Any,
        pipeline: str,
        package: str | Path,
        params: Mapping[str, Any] | None = None,
        experiment: str | None = None,
        submit: Callable[..., Any] | None = None,
    ):
        from pipelines import client as kfp_client

        self.conn = conn
        self.pipeline = pipeline
        self.package = Path(package)
        self.params = dict(params or {})
        self.experiment = experiment or kfp_client.DEFAULT_EXPERIMENT
        self._submit = submit or kfp_client.submit
        self.description = f"{pipeline} on {conn.host}"

    def start(self, version: DataVersion, should_stop: Callable[[], bool]) -> Started:
        result = self._submit(
            self.pipeline,
            self.package,
            self.conn,
            params=self.params,
            experiment=self.experiment,
            run_name=f"{self.pipeline} data {version.key}",
            log=lambda line: None,
        )
        return Started(STARTED, str(result.run_id), str(result.url))


# --------------------------------------------------------------------------- state


class State:
    """The watcher's memory: runs started per data version, and the last poll. Saved atomically
    (a temp file in the same folder, fsync, rename), so a crash leaves the old or the new file."""

    def __init__(self, path: Path, data: dict[str, Any]):
        self.path = path
        self.data = data

    @classmethod
    def load(cls, path: Path, watching: str) -> State:
        from pipelines.files import read_state

        try:
            data = read_state(path, "watch", STATE_FORMAT, "runs", list)
        except ValueError as exc:
            raise WatchError(str(exc)) from None
        if data is None:
            return cls(path, {"format": STATE_FORMAT, "watching": watching, "runs": [], "last_poll": None})
        data["watching"] = watching
        return cls(path, data)

    def seen(self, key: str) -> bool:
        return any(r.get("data_version") == key for r in self.data["runs"])

    def record(self, version: DataVersion, started: Started) -> None:
        entry = {
            "data_version": version.key,
            "rows": version.rows,
            "max_created_on": version.max_created_on,
            "status": started.status,
            "run": started.run,
            "detail": started.detail,
            "at": _now(),
        }
        self.data["runs"] = [*self.data["runs"], entry][-KEEP_RUNS:]

    def save(self) -> None:
        from pipelines.files import write_json_atomic

        write_json_atomic(self.path, self.data)


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


# --------------------------------------------------------------------------- watcher


UNCHANGED, WAITING, ERROR = "unchanged", "waiting", "error"


class Watcher:
    """Polls a probe and starts a run, through a starter, once per new data version."""

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

    def poll(self, state: State) -> str:
        """One poll: returns its outcome and saves the state."""
        key, message = None, ""
        try:
            version = self.probe.current()
        except Exception as exc:
            version, outcome, message = None, ERROR, f"cannot read {self.probe.description}: {exc}"
            self.log(message)
        else:
            if version is None:
                outcome, message = WAITING, self.probe.problem
                self.log(f"waiting: {message}")
            elif state.seen(version.key):
                key, outcome = version.key, UNCHANGED
                self.log(f"data version {version.describe()}: already started; nothing to do")
            elif self.stopping:
                key, outcome, message = version.key, INTERRUPTED, "shutting down: not starting"
            else:
                key = version.key
                self.log(f"new data version {version.describe()}: starting {self.starter.description}")
                try:
                    started = self.starter.start(version, lambda: self.stopping)
                except Exception as exc:  # not recorded: tried again on the next poll
                    outcome, message = ERROR, f"could not start a run: {exc}"
                    self.log(message)
                else:
                    outcome, message = started.status, started.detail
                    if started.status == INTERRUPTED:
                        self.log(f"run interrupted ({started.detail}); it starts again on the next poll")
                    else:
                        state.record(version, started)
                        self.log(f"run {started.status}: {started.run} {started.detail}".rstrip())
        state.data["last_poll"] = {"at": _now(), "outcome": outcome, "data_version": key, "message": message}
        state.save()
        return outcome

    def run(self, interval: float = DEFAULT_INTERVAL_S, once: bool = False) -> int:
        """Poll until stopped (or once). Exit code: 0, or 1 when `once` and the poll failed."""
        check_interval(interval)
        with state_lock(self.state_path), self._signals():
            state = State.load(self.state_path, self.probe.description)
            self.log(f"watching {self.probe.description} every {interval:g}s; state {self.state_path}")
            while True:
                outcome = self.poll(state)
                if once:
                    return 1 if outcome in (ERROR, FAILED) else 0
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
    p.add_argument("--once", action="store_true", help="poll once and exit (cron, tests)")


DESCRIPTION = (
    "Poll a source folder or the warehouse table and start a pipeline run once per new data version "
    "(row count, latest created_on, content hash), remembered across restarts in a state file. "
    "SIGTERM/SIGINT finish the current poll, save the state and exit 0."
)


def add_watch_command(subparsers: Any) -> None:
    """Register ``watch`` on a subparsers object (``python -m pipelines watch``)."""
    from pipelines.cluster_cli import _connection_options

    p = subparsers.add_parser(
        "watch",
        parents=[_connection_options()],
        help="start a run once per new data version",
        description=DESCRIPTION,
    )
    _add_arguments(p)
    p.set_defaults(func=cmd_watch)


def build_parser() -> argparse.ArgumentParser:
    from pipelines.cluster_cli import _connection_options

    p = argparse.ArgumentParser(
        prog="python -m pipelines.watch", parents=[_connection_options()], description=DESCRIPTION
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
    from pipelines import client as kfp_client
    from pipelines.settings import LocalSettings

    try:
        check_interval(args.interval)
        modes = [m for m, on in (("--local", args.local), ("--exec", args.exec), ("--host", args.host)) if on]
        if len(modes) > 1:
            raise WatchError(f"choose one of {', '.join(modes)}")
        probe = _probe(args)
        settings = LocalSettings.from_env(args.stores)
        state_path = Path(args.state).expanduser() if args.state else settings.stores / STATE_FILE
        with contextlib.ExitStack() as stack:
            starter: Starter
            if args.exec:
                starter = CommandStarter(shlex.split(args.exec))
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
                from pipelines.cluster_cli import parse_params

                starter = KfpStarter(conn, pipeline, package, parse_params(args.param), args.experiment)
            else:
                pipeline = args.pipeline or ("all" if args.source else "mlops")
                starter = LocalStarter(
                    pipeline,
                    settings.stores,
                    source=Path(args.source).resolve() if args.source else None,
                    warehouse=args.warehouse,
                    params=args.param,
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
