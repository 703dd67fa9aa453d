"""Recurring runs: create (cron or interval), list, enable / disable / delete."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.clients.kfp.connection import (
    DEFAULT_EXPERIMENT,
    DEFAULT_SERVICE_ACCOUNT,
    Connection,
    UsageError,
    api_errors,
    display_time,
    quiet_sdk,
)
from pipelines.clients.kfp.cron import parse_interval, to_kfp_cron
from pipelines.clients.kfp.runs import run_arguments

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
    with api_errors(conn.host), quiet_sdk():
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
    with api_errors(conn.host), quiet_sdk():
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
                "created": display_time(job.created_at),
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
    with api_errors(conn.host), quiet_sdk():
        calls[action](recurring_run_id)
