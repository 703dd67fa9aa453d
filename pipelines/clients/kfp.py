"""Talk to a Kubeflow Pipelines server: upload, submit, schedule, list runs.

A thin layer over ``kfp.Client`` (KFP REST API v2beta1) that adds what a CLI and a CI
job need: one-line errors for an unreachable host, idempotent uploads, cron
validation, and a wait loop that ends on every final state (``kfp.Client``'s own
``wait_for_run_completion`` does not treat CANCELED as final and would poll forever).

Connection: the host comes from ``--host`` or ``KFP_HOST``; authentication from one
of a bearer token (``--token`` / ``KFP_TOKEN``), a token file such as a Kubernetes
service-account token (``--token-file`` / ``KFP_TOKEN_FILE``), or cookies
(``--cookies`` / ``KFP_COOKIES``, e.g. an ``authservice_session=...`` cookie of a
Kubeflow platform behind Dex). Explicit flags win over the environment.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]  # the repository (a source checkout)
HEALTHZ = "/apis/v2beta1/healthz"

# Final run states of the v2beta1 API. PAUSED and CANCELING are not final.
FINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "SKIPPED", "CANCELED"})
DEFAULT_EXPERIMENT = "kfp-mlops"
DEFAULT_SERVICE_ACCOUNT = "kfp-mlops-runner"


class ClusterError(Exception):
    """A problem to report in one line; ``exit_code`` is what the CLI returns."""

    exit_code = 1


class ConnectionProblem(ClusterError):
    """The host is unreachable, is not a KFP server, or refused our credentials."""

    exit_code = 2


class UsageError(ClusterError):
    """Bad input from the user (cron expression, interval, parameters)."""

    exit_code = 2


class RunNotSucceeded(ClusterError):
    """A followed run ended in a state other than SUCCEEDED, or did not end in time."""

    exit_code = 1


# --------------------------------------------------------------------------- connection


@dataclass(frozen=True)
class Connection:
    """Where the KFP API is and how to authenticate. Never printed with its secrets."""

    host: str
    token: str | None = field(default=None, repr=False)
    token_file: str | None = None  # read on every use (see `bearer`)
    cookies: str | None = field(default=None, repr=False)
    probe_timeout_s: float = 10.0

    @classmethod
    def resolve(
        cls,
        host: str | None = None,
        token: str | None = None,
        token_file: str | None = None,
        cookies: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Connection:
        """Build a connection from flags, falling back to ``KFP_*`` environment variables."""
        env = os.environ if env is None else env
        host = (host or env.get("KFP_HOST") or "").strip()
        if not host:
            raise UsageError("no KFP host: pass --host URL or set KFP_HOST (e.g. http://localhost:8080)")
        if not re.match(r"^https?://", host):
            raise UsageError(f"KFP host {host!r} must start with http:// or https://")
        if not (token or token_file or cookies):  # flags first, then the environment
            token = env.get("KFP_TOKEN") or None
            token_file = env.get("KFP_TOKEN_FILE") or None
            cookies = env.get("KFP_COOKIES") or None
        if sum(bool(x) for x in (token, token_file, cookies)) > 1:
            raise UsageError("choose one of a token, a token file or cookies")
        if token_file:
            _read_token(token_file)  # fail now, in one line, if it cannot be read
        return cls(
            host=host.rstrip("/"), token=token or None, token_file=token_file or None, cookies=cookies or None
        )

    def bearer(self) -> str | None:
        """The bearer token to send. A token file is read again on every use: projected
        service-account tokens are rotated by the kubelet while a watcher runs for days."""
        return _read_token(self.token_file) if self.token_file else self.token

    def headers(self) -> dict[str, str]:
        out = {}
        token = self.bearer()
        if token:
            out["Authorization"] = f"Bearer {token}"
        if self.cookies:
            out["Cookie"] = self.cookies
        return out

    def probe(self) -> None:
        """One quick health check, so that a wrong host fails in seconds with one line.

        (``kfp.Client`` retries its own health check 5 times, 5 s apart.)
        """
        import requests

        session = requests.Session()
        session.trust_env = False  # like kfp.Client: no proxy from the environment
        try:
            resp = session.get(
                self.host + HEALTHZ,
                headers=self.headers(),
                timeout=self.probe_timeout_s,
                allow_redirects=False,  # a redirect means a login page, not the API
            )
        except requests.RequestException as exc:
            reason = type(exc).__name__
            if isinstance(exc, requests.ConnectionError):
                reason = "connection refused or name not resolved"
            elif isinstance(exc, requests.Timeout):
                reason = f"no answer within {self.probe_timeout_s:.0f}s"
            raise ConnectionProblem(f"cannot reach Kubeflow Pipelines at {self.host} ({reason})") from None
        if resp.status_code in (401, 403):
            raise ConnectionProblem(
                f"Kubeflow Pipelines at {self.host} refused the credentials (HTTP {resp.status_code}); "
                "check --token / --token-file / --cookies"
            )
        if 300 <= resp.status_code < 400:
            where = resp.headers.get("Location", "elsewhere")
            raise ConnectionProblem(
                f"Kubeflow Pipelines at {self.host} redirected to {where} (a login page?): "
                "pass --cookies or --token"
            )
        if resp.status_code != 200 or not _is_json(resp.text):
            raise ConnectionProblem(
                f"{self.host} answered HTTP {resp.status_code} on {HEALTHZ} without the KFP health "
                "JSON: is it a KFP v2 API endpoint?"
            )

    def client(self) -> Any:
        """A ``kfp.Client`` for this connection (after a successful probe)."""
        self.probe()
        import kfp

        with _quiet():
            return kfp.Client(host=self.host, existing_token=self.bearer(), cookies=self.cookies)


def _read_token(path: str) -> str:
    try:
        token = Path(path).read_text().strip()
    except OSError as exc:
        raise UsageError(f"cannot read token file {path}: {exc.strerror}") from None
    if not token:
        raise UsageError(f"token file {path} is empty")
    return token


def _is_json(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence kfp.Client's prints ("Experiment details: ...") and its FutureWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.redirect_stdout(io.StringIO()):
            yield


@contextlib.contextmanager
def api_errors(host: str) -> Iterator[None]:
    """Turn kfp_server_api exceptions into one-line ClusterErrors."""
    import kfp_server_api
    import urllib3

    try:
        yield
    except kfp_server_api.ApiException as exc:
        raise ClusterError(
            f"KFP API at {host}: HTTP {exc.status} {exc.reason}: {_api_message(exc)}"
        ) from None
    except urllib3.exceptions.HTTPError as exc:
        raise ConnectionProblem(f"lost the connection to Kubeflow Pipelines at {host} ({exc})") from None


def _api_message(exc: Any) -> str:
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        return str(exc.body or "").strip()[:300]
    return str(body.get("message") or body.get("error") or body)[:300]


# --------------------------------------------------------------------------- versions


def git_short_sha(cwd: Path = ROOT) -> str:
    """``git rev-parse --short HEAD``, or ``"nogit"`` outside a repository."""
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return "nogit"
    sha = proc.stdout.strip()
    return sha if proc.returncode == 0 and sha else "nogit"


def version_name(cwd: Path = ROOT) -> str:
    """Name of an uploaded pipeline version: ``<package version>-<git short sha>``."""
    from components.images import package_version

    return f"{package_version()}-{git_short_sha(cwd)}"


# --------------------------------------------------------------------------- upload


@dataclass(frozen=True)
class UploadResult:
    pipeline: str
    pipeline_id: str
    version: str
    version_id: str
    created_pipeline: bool
    uploaded: bool  # False: that version name was already there (no-op)

    def describe(self) -> str:
        if not self.uploaded:
            return (
                f"{self.pipeline}: version {self.version} already uploaded ({self.version_id}); nothing to do"
            )
        head = "created pipeline" if self.created_pipeline else "pipeline"
        return (
            f"{self.pipeline}: {head} {self.pipeline_id}, uploaded version {self.version} ({self.version_id})"
        )


def _eq_filter(key: str, value: str) -> str:
    # operation 1 is EQUALS in the v2beta1 filter proto (what kfp.Client itself sends)
    return json.dumps({"predicates": [{"operation": 1, "key": key, "stringValue": value}]})


def find_version(client: Any, pipeline_id: str, name: str) -> Any | None:
    """The pipeline version called ``name``, if any (filtered by the server, checked here)."""
    import kfp_server_api

    token = ""
    where: str | None = _eq_filter("display_name", name)
    while True:
        try:
            page = client.list_pipeline_versions(
                pipeline_id=pipeline_id, page_token=token, page_size=100, filter=where
            )
        except kfp_server_api.ApiException as exc:
            if exc.status != 400 or where is None:
                raise
            where = None  # a server that does not filter versions by name: scan them all
            continue
        for version in page.pipeline_versions or []:
            if name in (version.display_name, getattr(version, "name", None)):
                return version
        token = page.next_page_token or ""
        if not token:
            return None


def upload(
    pipeline_name: str,
    package_path: Path,
    conn: Connection,
    version: str | None = None,
    description: str | None = None,
) -> UploadResult:
    """Create the pipeline, or add version ``version`` to it; a no-op if that version exists.

    Args:
        pipeline_name: Display name of the pipeline on the server (e.g. ``"dataops"``).
        package_path: The compiled pipeline YAML.
        conn: Where and how to connect.
        version: Version name; default ``<package version>-<git short sha>``.
        description: Shown in the UI for a new pipeline / version.

    Returns:
        What happened: ids, names, and whether anything was uploaded.
    """
    version = version or version_name()
    client = conn.client()
    with api_errors(conn.host), _quiet():
        try:
            pipeline_id = client.get_pipeline_id(pipeline_name)
        except ValueError as exc:  # several pipelines with that name
            raise ClusterError(f"KFP API at {conn.host}: {exc}") from None
        created = pipeline_id is None
        if created:
            # KFP also makes a first version named after the pipeline; ours follows it.
            pipeline_id = client.upload_pipeline(
                str(package_path), pipeline_name=pipeline_name, description=description
            ).pipeline_id
        existing = find_version(client, pipeline_id, version)
        if existing is not None:
            return UploadResult(
                pipeline_name, pipeline_id, version, existing.pipeline_version_id, created, uploaded=False
            )
        new = client.upload_pipeline_version(
            str(package_path), pipeline_version_name=version, pipeline_id=pipeline_id, description=description
        )
    return UploadResult(pipeline_name, pipeline_id, version, new.pipeline_version_id, created, uploaded=True)


# --------------------------------------------------------------------------- submit


@dataclass(frozen=True)
class SubmitResult:
    run_id: str
    url: str
    state: str | None = None  # the final state when followed


def run_url(host: str, run_id: str) -> str:
    return f"{host}/#/runs/details/{run_id}"


def submit(
    pipeline_name: str,
    package_path: Path,
    conn: Connection,
    params: Mapping[str, Any] | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    run_name: str | None = None,
    service_account: str | None = DEFAULT_SERVICE_ACCOUNT,
    wait: bool = False,
    timeout_s: float = 6 * 3600,
    poll_s: float = 5.0,
    log: Callable[[str], None] = print,
    check: bool = True,
) -> SubmitResult:
    """Start a run of a compiled pipeline; with ``wait``, follow it to a final state.

    ``params`` given as text (``--param k=v``) are typed by the pipeline's declared
    parameters (:func:`run_arguments`); with ``check``, nothing is sent when the run would
    break the backend's rules.

    Raises:
        UsageError: The parameters or the pipeline break the backend's rules (nothing sent).
        RunNotSucceeded: When followed and the run ended other than SUCCEEDED, or
            was still going after ``timeout_s``.
    """
    arguments = run_arguments(package_path, params, check)
    client = conn.client()
    run_name = run_name or f"{pipeline_name} {datetime.now():%Y-%m-%d %H:%M:%S}"
    with api_errors(conn.host), _quiet():
        result = client.create_run_from_pipeline_package(
            str(package_path),
            arguments=arguments,
            run_name=run_name,
            experiment_name=experiment,
            service_account=service_account or None,
        )
    run_id = result.run_id
    url = run_url(conn.host, run_id)
    log(f"submitted {pipeline_name}: run {run_id} in experiment {experiment!r}\n  {url}")
    if not wait:
        return SubmitResult(run_id, url)
    state = wait_for_run(client, run_id, conn.host, timeout_s=timeout_s, poll_s=poll_s, log=log)
    if state != "SUCCEEDED":
        raise RunNotSucceeded(f"run {run_id} ended {state}: {url}")
    return SubmitResult(run_id, url, state)


def run_arguments(
    package_path: Path, params: Mapping[str, Any] | None, check: bool = True, target: str = "kfp"
) -> dict[str, Any]:
    """A run's parameters, typed by the compiled pipeline's declarations and (with `check`)
    checked by the backend's rules (:mod:`pipelines.conformance`): the API server's rules for a
    run's parameters, and what the values do downstream (a list whose items feed an int input).

    Raises:
        UsageError: The package is not a compiled pipeline, or the check found problems.
    """
    from pipelines import conformance

    try:
        pipeline = conformance.load(package_path)
    except conformance.NotAPipeline as exc:
        raise UsageError(str(exc)) from None
    arguments = conformance.typed_arguments(pipeline, params or {})
    problems = conformance.check(pipeline, arguments=arguments, target=target) if check else []
    if problems:
        lines = "".join(f"\n  {problem.line()}" for problem in problems)
        raise UsageError(
            f"{pipeline.name}: the {'Vertex AI' if target == 'vertex' else 'KFP'} backend would refuse this run ({len(problems)} "
            f"problem{'s' * (len(problems) != 1)}; nothing was sent; --no-check sends it anyway):{lines}"
        )
    return arguments


def wait_for_run(
    client: Any,
    run_id: str,
    host: str,
    timeout_s: float,
    poll_s: float = 5.0,
    log: Callable[[str], None] = print,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Poll a run until SUCCEEDED, FAILED, SKIPPED or CANCELED; returns that state."""
    deadline = clock() + timeout_s
    last = None
    while True:
        with api_errors(host):
            run = client.get_run(run_id)
        state = str(run.state or "PENDING")
        if state != last:
            log(f"  {datetime.now():%H:%M:%S} {state}")
            last = state
        if state in FINAL_STATES:
            return state
        if clock() >= deadline:
            raise RunNotSucceeded(
                f"run {run_id} still {state} after {timeout_s:.0f}s (it goes on): {run_url(host, run_id)}"
            )
        sleep(poll_s)


# --------------------------------------------------------------------------- schedule

# (name, low, high, names) of the five standard cron fields; KFP adds seconds in front.
_CRON_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")),
    ("day of week", 0, 6, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")),
)
_SECONDS_FIELD = ("second", 0, 59, ())
_DESCRIPTORS = {
    "@yearly": "0 0 0 1 1 *",
    "@annually": "0 0 0 1 1 *",
    "@monthly": "0 0 0 1 * *",
    "@weekly": "0 0 0 * * 0",
    "@daily": "0 0 0 * * *",
    "@midnight": "0 0 0 * * *",
    "@hourly": "0 0 * * * *",
}


def _check_value(token: str, spec: tuple[str, int, int, tuple[str, ...]], expr: str) -> int:
    name, low, high, names = spec
    if token.upper() in names:
        return names.index(token.upper()) + low
    if not token.isdigit():
        raise UsageError(f"cron {name} field: {token!r} is not a number in {expr!r}")
    value = int(token)
    if not low <= value <= high:
        raise UsageError(f"cron {name} field: {value} is out of range {low}-{high} in {expr!r}")
    return value


def _check_field(text: str, spec: tuple[str, int, int, tuple[str, ...]], expr: str) -> None:
    name = spec[0]
    for part in text.split(","):
        if not part:
            raise UsageError(f"cron {name} field: empty list item in {expr!r}")
        base, slash, step = part.partition("/")
        if slash and (not step.isdigit() or int(step) == 0):
            raise UsageError(f"cron {name} field: step {step!r} must be a positive number in {expr!r}")
        if base in ("*", "?"):
            if base == "?" and name not in ("day of month", "day of week"):
                raise UsageError(f"cron {name} field: '?' is only allowed for day of month/week in {expr!r}")
            continue
        lo, dash, hi = base.partition("-")
        start = _check_value(lo, spec, expr)
        if dash and _check_value(hi, spec, expr) < start:
            raise UsageError(f"cron {name} field: range {base!r} runs backwards in {expr!r}")


def to_kfp_cron(expr: str) -> str:
    """A cron expression in KFP's 6-field form (seconds first).

    Accepts the standard 5 fields (``"0 3 * * *"`` -> ``"0 0 3 * * *"``), 6 fields
    (already with seconds), or a descriptor such as ``@daily``. Raises UsageError
    naming the bad field.
    """
    text = " ".join(expr.split())
    if text.lower() in _DESCRIPTORS:
        return _DESCRIPTORS[text.lower()]
    fields = text.split(" ") if text else []
    if len(fields) == 5:
        specs = _CRON_FIELDS
        fields = ["0", *fields]
    elif len(fields) == 6:
        specs = _CRON_FIELDS
    else:
        raise UsageError(
            f"cron expression {expr!r} has {len(fields)} fields; expected 5 "
            "(minute hour day-of-month month day-of-week), e.g. '0 3 * * *' for 03:00 every day"
        )
    _check_field(fields[0], _SECONDS_FIELD, expr)
    for text_field, spec in zip(fields[1:], specs, strict=True):
        _check_field(text_field, spec, expr)
    return " ".join(fields)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_interval(text: str) -> int:
    """``"6h"``, ``"30m"``, ``"1d"``, ``"1h30m"`` or plain seconds -> seconds."""
    value = text.strip().lower()
    if value.isdigit():
        seconds = int(value)
    else:
        parts = re.findall(r"(\d+)([smhd])", value)
        if not parts or "".join(n + u for n, u in parts) != value:
            raise UsageError(f"interval {text!r}: use a number with a unit, e.g. 30m, 6h, 1d, 1h30m")
        seconds = sum(int(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise UsageError(f"interval {text!r} must be longer than zero")
    return seconds


# The API server takes 1 to 10 runs of a recurring run at once
# (backend/src/apiserver/server/api_converter.go, toModelJob: "Max concurrency of a
# recurring run must be at least 1 and at most 10").
MAX_CONCURRENCY = range(1, 11)


def check_max_concurrency(value: int) -> None:
    """Refuse what the API server refuses, before anything is sent."""
    if value not in MAX_CONCURRENCY:
        raise UsageError(
            f"--max-concurrency {value}: the KFP API server takes {MAX_CONCURRENCY.start} to "
            f"{MAX_CONCURRENCY.stop - 1} runs at once for a recurring run"
        )


@dataclass(frozen=True)
class ScheduleResult:
    recurring_run_id: str
    trigger: str


def schedule(
    pipeline_name: str,
    package_path: Path,
    conn: Connection,
    cron: str | None = None,
    every: str | None = None,
    catchup: bool = False,
    max_concurrency: int = 1,
    params: Mapping[str, Any] | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    name: str | None = None,
    enabled: bool = True,
    service_account: str | None = DEFAULT_SERVICE_ACCOUNT,
    check: bool = True,
) -> ScheduleResult:
    """Create a recurring run from a compiled pipeline (cron or fixed interval).

    Catch-up is off unless asked for: a schedule paused for a week then resumed
    starts one run, not one per missed slot. Parameters are typed and checked as for
    :func:`submit`; nothing is sent when they, the trigger or the concurrency are refused.
    """
    if (cron is None) == (every is None):
        raise UsageError("give exactly one of --cron EXPR or --every DURATION")
    check_max_concurrency(max_concurrency)
    kfp_cron = to_kfp_cron(cron) if cron is not None else None
    interval = parse_interval(every) if every is not None else None
    arguments = run_arguments(package_path, params, check)
    trigger = f"cron {kfp_cron!r}" if kfp_cron else f"every {interval}s"
    client = conn.client()
    with api_errors(conn.host), _quiet():
        experiment_id = client.create_experiment(name=experiment).experiment_id
        # int64 fields travel as strings in the v2beta1 JSON (as the API's own models declare).
        job = client.create_recurring_run(
            experiment_id=experiment_id,
            job_name=name or f"{pipeline_name} ({trigger})",
            cron_expression=kfp_cron,
            interval_second=str(interval) if interval is not None else None,
            max_concurrency=str(max_concurrency),
            no_catchup=not catchup,
            params=arguments,
            pipeline_package_path=str(package_path),
            enabled=enabled,
            service_account=service_account or None,
        )
    return ScheduleResult(job.recurring_run_id, trigger)


def list_schedules(conn: Connection, limit: int = 50) -> list[dict[str, str]]:
    client = conn.client()
    with api_errors(conn.host), _quiet():
        page = client.list_recurring_runs(page_size=limit, sort_by="created_at desc")
    rows = []
    for job in page.recurring_runs or []:
        trig = job.trigger
        if trig is not None and trig.cron_schedule is not None:
            when = f"cron {trig.cron_schedule.cron}"
        elif trig is not None and trig.periodic_schedule is not None:
            when = f"every {trig.periodic_schedule.interval_second}s"
        else:
            when = "-"
        rows.append(
            {
                "id": job.recurring_run_id or "",
                "name": job.display_name or "",
                "status": str(job.status or job.mode or ""),
                "trigger": when,
                "catchup": "no" if job.no_catchup else "yes",
                "created": _when(job.created_at),
            }
        )
    return rows


def set_schedule(conn: Connection, recurring_run_id: str, action: str) -> None:
    """``enable``, ``disable`` or ``delete`` a recurring run."""
    client = conn.client()
    calls = {
        "enable": client.enable_recurring_run,
        "disable": client.disable_recurring_run,
        "delete": client.delete_recurring_run,
    }
    with api_errors(conn.host), _quiet():
        calls[action](recurring_run_id)


# --------------------------------------------------------------------------- runs


def _when(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        if value.year <= 1970:  # the API's zero time for "not finished"
            return "-"
        return f"{value:%Y-%m-%d %H:%M}"
    return str(value)


def runs(conn: Connection, limit: int = 20) -> list[dict[str, str]]:
    """The most recent runs, newest first."""
    client = conn.client()
    with api_errors(conn.host), _quiet():
        page = client.list_runs(page_size=limit, sort_by="created_at desc")
    return [
        {
            "id": run.run_id or "",
            "name": run.display_name or "",
            "state": str(run.state or ""),
            "created": _when(run.created_at),
            "finished": _when(run.finished_at),
        }
        for run in page.runs or []
    ]


@dataclass(frozen=True)
class RunRef:
    run_id: str
    name: str
    state: str


def runs_named(conn: Connection, experiment: str, names: set[str], max_pages: int = 50) -> dict[str, RunRef]:
    """The runs of `experiment` whose display name is in `names`, one per name: a SUCCEEDED
    run if any, else one still going, else the newest (a missing experiment has none)."""
    client = conn.client()
    with api_errors(conn.host), _quiet():
        try:
            experiment_id = client.get_experiment(experiment_name=experiment).experiment_id
        except ValueError:  # kfp.Client: "No experiment is found with name ..."
            return {}
        found: list[RunRef] = []
        token = ""
        for _ in range(max_pages):
            page = client.list_runs(
                experiment_id=experiment_id, page_size=100, page_token=token, sort_by="created_at desc"
            )
            found += [
                RunRef(r.run_id or "", r.display_name or "", str(r.state or "PENDING"))
                for r in page.runs or []
                if r.display_name in names
            ]
            token = page.next_page_token or ""
            if not token:
                break

    def rank(ref: RunRef) -> int:  # lower is better; newest first within a rank (stable sort)
        return 0 if ref.state == "SUCCEEDED" else 1 if ref.state not in FINAL_STATES else 2

    best: dict[str, RunRef] = {}
    for ref in sorted(found, key=rank):
        best.setdefault(ref.name, ref)
    return best


def table(rows: Sequence[Mapping[str, str]], columns: Sequence[str]) -> str:
    """A plain fixed-width table; an empty list says so."""
    if not rows:
        return "(none)"
    widths = [max(len(col), *(len(str(r.get(col, ""))) for r in rows)) for col in columns]
    lines = ["  ".join(col.upper().ljust(w) for col, w in zip(columns, widths, strict=True)).rstrip()]
    for row in rows:
        cells = (str(row.get(col, "")).ljust(w) for col, w in zip(columns, widths, strict=True))
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
