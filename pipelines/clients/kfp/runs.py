"""Start runs, follow them to a final state, and list them."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pipelines.clients.kfp.connection import (
    DEFAULT_EXPERIMENT,
    DEFAULT_SERVICE_ACCOUNT,
    FINAL_STATES,
    Connection,
    RunNotSucceeded,
    UsageError,
    api_errors,
    display_time,
    quiet_sdk,
)


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
    with api_errors(conn.host), quiet_sdk():
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


# (name, low, high, names) of the five standard cron fields; KFP adds seconds in front.
def runs(conn: Connection, limit: int = 20) -> list[dict[str, str]]:
    """The most recent runs, newest first."""
    client = conn.client()
    with api_errors(conn.host), quiet_sdk():
        page = client.list_runs(page_size=limit, sort_by="created_at desc")
    return [
        {
            "id": run.run_id or "",
            "name": run.display_name or "",
            "state": str(run.state or ""),
            "created": display_time(run.created_at),
            "finished": display_time(run.finished_at),
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
    with api_errors(conn.host), quiet_sdk():
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
