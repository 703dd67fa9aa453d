"""How the watcher (:mod:`pipelines.triggers.watch`) starts a run for a data version, and follows it.

- :class:`KfpStarter` submits the compiled pipeline to Kubeflow Pipelines: the run goes on
  there, and the watcher only knows that it was submitted (``started``).
- :class:`CommandStarter` (``--exec``) and :class:`LocalStarter` (``--local``: ``python -m
  pipelines run``) run it here and wait for it: ``succeeded``, ``failed`` or ``interrupted``.

A run started here is a process tree that ends with the watcher: its command runs under the
guard (:mod:`pipelines.local.guard`), in a session of its own (a terminal's Ctrl-C reaches the
watcher, not the run), and the guard asks the kernel for SIGTERM when the watcher ends —
SIGKILL included. The guard then gives the command ``grace_s`` seconds (``python -m
pipelines run`` stops its tasks and releases its stores on SIGTERM) before it kills the
whole tree. The guard's status file says, to a watcher that is not its parent (the next
one, after a restart), whether that run is still going (:func:`follow`) and how it ended.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pipelines.local import lifetime
from pipelines.triggers.probes import DataVersion

STARTED, SUCCEEDED, FAILED, INTERRUPTED = "started", "succeeded", "failed", "interrupted"
# A local run in progress (in the state file while it runs; a restart finds out how it ended).
RUNNING = "running"
DEFAULT_GRACE_S = 30.0


class WatchError(Exception):
    """A problem to report in one line (bad flags, unreadable state, a second watcher)."""

    exit_code = 2


@dataclass(frozen=True)
class Started:
    """What a starter did: ``started`` (submitted, runs elsewhere), ``succeeded`` or ``failed``
    (ran here), or ``interrupted`` (stopped before it ended: started again at the next poll)."""

    status: str
    run: str = ""  # run id, or the command
    detail: str = ""  # run URL, exit code


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


def outcome(
    report: Mapping[str, Any] | None, interrupted_codes: frozenset[int] = frozenset()
) -> tuple[str, str]:
    """(status, detail) of a run from its guard's final report (None: the guard left none).

    A run that exited 0 succeeded, even if a stop came as it ended; one that the guard
    stopped, that exited with one of `interrupted_codes`, or whose guard was killed before
    it could report, was interrupted; any other exit code is a failure.
    """
    if report is None or "ended_at" not in report:
        return INTERRUPTED, "ended without a report (its guard was killed)"
    code, stopped = report.get("exit_code"), report.get("stopped")
    if code == 0:
        return SUCCEEDED, "exit code 0"
    if stopped:
        return INTERRUPTED, f"stopped: {stopped}" + (f" (exit code {code})" if code is not None else "")
    if code in interrupted_codes:
        return INTERRUPTED, f"exit code {code} (interrupted)"
    return FAILED, f"exit code {code}"


def follow(
    status: Path, should_stop: Callable[[], bool], grace_s: float = DEFAULT_GRACE_S, poll_s: float = 0.2
) -> dict[str, Any] | None:
    """Wait for a run started by another process (a watcher before a restart) to end.

    The run is the session of the guard named in `status`; it is over when the guard has
    reported its end, or when no process of that session is left. On `should_stop` the
    session gets SIGTERM, then SIGKILL after `grace_s`. Returns the guard's last report
    (None when it never wrote one: the run never started).
    """
    report = lifetime.read_status(status)
    if report is None:
        return None
    session = int(report["pid"])
    stop_at: float | None = None
    while "ended_at" not in report and lifetime.session_members(session):
        if should_stop() and stop_at is None:
            _signal_session(session, signal.SIGTERM)
            stop_at = time.monotonic()
        if stop_at is not None and time.monotonic() - stop_at > grace_s:
            _signal_session(session, signal.SIGKILL)
        time.sleep(poll_s)
        report = lifetime.read_status(status) or report
    return report


def _signal_session(session: int, sig: int) -> None:
    for pid in lifetime.session_members(session):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


class CommandStarter:
    """Runs a command under the guard and waits for it; the data version is in ``KFP_MLOPS_DATA_*``.

    On shutdown the command gets SIGTERM, and the whole run SIGKILL after `grace_s`; when the
    watcher dies, the guard does the same. `start` writes the guard's report to `status`.
    """

    # Exit codes of the command that mean "it was stopped", not "it failed".
    interrupted_codes: frozenset[int] = frozenset()

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        grace_s: float = DEFAULT_GRACE_S,
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

    def start(
        self,
        version: DataVersion,
        should_stop: Callable[[], bool],
        status: Path | None = None,
        on_start: Callable[[int], None] = lambda pid: None,
    ) -> Started:
        env = {**os.environ, **self.env, **version_env(version)}
        argv = lifetime.guard_command(self.argv, parent=os.getpid(), grace_s=self.grace_s, status=status)
        proc = subprocess.Popen(argv, env=env, cwd=self.cwd, start_new_session=True)
        on_start(proc.pid)
        while True:
            try:
                code = proc.wait(timeout=self.poll_s)
                break
            except subprocess.TimeoutExpired:
                if should_stop():
                    self._stop(proc)
                    return Started(INTERRUPTED, self.description, f"stopped (pid {proc.pid})")
        report = lifetime.read_status(status) if status is not None else None
        if report is None:  # no report asked for: the guard's exit status is the command's
            report = {"exit_code": code, "stopped": None, "ended_at": time.time()}
        result, detail = outcome(report, self.interrupted_codes)
        return Started(result, self.description, detail)

    def _stop(self, proc: subprocess.Popen[Any]) -> None:
        # The guard passes SIGTERM on to the command and kills the tree after the grace.
        for sig, wait in ((signal.SIGTERM, self.grace_s + 5.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue


class LocalStarter(CommandStarter):
    """``python -m pipelines run PIPELINE --local --stores DIR --if-busy wait [--source DIR]``.

    ``--if-busy wait``: a run that another process still holds the stores for (a manual run,
    a run a killed watcher left stopping) is waited for, never overlapped. Exit 130 / 143
    (the run got SIGINT / SIGTERM from elsewhere) counts as interrupted.
    """

    interrupted_codes = frozenset({128 + signal.SIGINT, 128 + signal.SIGTERM})

    def __init__(
        self,
        pipeline: str,
        stores: str | Path,
        source: str | Path | None = None,
        warehouse: str | None = None,
        params: Sequence[str] = (),
        python: str = sys.executable,
        grace_s: float = DEFAULT_GRACE_S,
    ):
        argv = [python, "-m", "pipelines", "run", pipeline, "--local", "--stores", str(stores)]
        argv += ["--if-busy", "wait"]
        if source is not None and pipeline in ("dataops", "all"):
            argv += ["--source", str(source)]
        for item in params:
            argv += ["--param", item]
        # The local settings read the warehouse from WAREHOUSE_URI (default: under stores).
        super().__init__(argv, env={"WAREHOUSE_URI": warehouse} if warehouse else None, grace_s=grace_s)


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
        from pipelines.clients import kfp as kfp_client

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
