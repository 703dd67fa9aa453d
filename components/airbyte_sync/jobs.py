"""Airbyte jobs as this client sees them: a job's status and counters, from either API's answer."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

FINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})


@dataclass(frozen=True)
class JobState:
    """One observation of a job."""

    job_id: int
    status: str
    records_synced: int = 0
    bytes_synced: int = 0
    duration_s: float | None = None  # as reported by the server, when it does

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES


@dataclass(frozen=True)
class SyncResult:
    """A finished, successful sync."""

    job_id: int
    status: str
    records_synced: int
    bytes_synced: int
    duration_s: float


def public_job_state(body: Mapping[str, Any]) -> JobState:
    """A job as the public API describes it (``GET /api/public/v1/jobs/{id}``, or one of a list)."""
    return JobState(
        job_id=int(body["jobId"]),
        status=str(body.get("status", "")).lower(),
        records_synced=int(body.get("rowsSynced") or 0),
        bytes_synced=int(body.get("bytesSynced") or 0),
        duration_s=_iso_duration(body.get("duration")),
    )


def config_job_state(body: Mapping[str, Any]) -> JobState:
    """A job as the configuration API describes it (``/api/v1/jobs/get``, or one of ``jobs/list``)."""
    job = body["job"]
    # jobs/get wraps each attempt as {"attempt": {...}, "logs": ...}; jobs/list does not.
    attempts = [a.get("attempt", a) for a in body.get("attempts") or []]
    # The last attempt is the one whose output the destination kept (full refresh).
    last = attempts[-1] if attempts else {}
    created, updated = job.get("createdAt"), job.get("updatedAt")
    return JobState(
        job_id=int(job["id"]),
        status=str(job.get("status", "")).lower(),
        records_synced=int(last.get("recordsSynced") or 0),
        bytes_synced=int(last.get("bytesSynced") or 0),
        duration_s=float(updated - created) if created and updated else None,
    )


_DURATION = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


def _iso_duration(text: Any) -> float | None:
    """Seconds of an ISO 8601 duration such as ``PT8M12S`` (None when absent or unreadable)."""
    if not isinstance(text, str):
        return None
    m = _DURATION.match(text)
    if not m or text in ("P", "PT"):
        return None
    parts = {k: float(v) for k, v in m.groupdict().items() if v}
    return parts.get("d", 0) * 86400 + parts.get("h", 0) * 3600 + parts.get("m", 0) * 60 + parts.get("s", 0)
