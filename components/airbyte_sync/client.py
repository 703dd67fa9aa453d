"""Server mode: trigger an Airbyte connection sync and wait for it, over HTTP.

Speaks Airbyte's public API (``/api/public/v1``) and falls back to the older
configuration API (``/api/v1``) on installs that do not serve the public one.

- Authentication, timeouts and retries: :mod:`components.airbyte_sync.api`.
- A sync that is already running (409) is attached to, or refused with
  ``on_conflict="fail"``.
- A sync that outlives ``timeout`` is cancelled before :class:`AirbyteTimeout` is raised.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import requests

from components.airbyte_sync.api import CONFIG, PUBLIC, AirbyteAPIError, AirbyteError, AirbyteSession, reason
from components.airbyte_sync.jobs import JobState, SyncResult, config_job_state, public_job_state

log = logging.getLogger(__name__)

Api = Literal["auto", "public", "config"]
OnConflict = Literal["attach", "fail"]


class AirbyteConflict(AirbyteError):
    """A sync of the connection is already running and ``on_conflict="fail"`` was asked."""


class AirbyteSyncFailed(AirbyteError):
    """The job reached a final status other than succeeded."""

    def __init__(self, job_id: int, status: str, message: str) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.status = status


class AirbyteTimeout(AirbyteError):
    """The job did not finish in time; a cancel request was sent."""

    def __init__(self, job_id: int, waited_s: float, message: str) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.waited_s = waited_s


class AirbyteClient(AirbyteSession):
    """A small client for triggering and watching Airbyte syncs.

    Args:
        base_url: Airbyte's address, e.g. ``http://airbyte-webapp:8000`` (no API path).
        api: ``"auto"`` (public API, config API when the public one is absent),
            ``"public"`` or ``"config"``.
        on_conflict: What to do when a sync is already running: ``"attach"`` to it or ``"fail"``.
        **session: How to call Airbyte (:class:`~components.airbyte_sync.api.AirbyteSession`):
            ``client_id`` and ``client_secret``, or ``username`` and ``password``;
            ``timeout``, ``max_retries``, ``backoff``; ``session``, ``sleep``, ``clock`` (tests).
    """

    def __init__(
        self, base_url: str, *, api: Api = "auto", on_conflict: OnConflict = "attach", **session: Any
    ):
        super().__init__(base_url, **session)
        if api not in ("auto", "public", "config"):
            raise ValueError(f"api must be 'auto', 'public' or 'config', not {api!r}")
        if on_conflict not in ("attach", "fail"):
            raise ValueError(f"on_conflict must be 'attach' or 'fail', not {on_conflict!r}")
        self.on_conflict: OnConflict = on_conflict
        self._api: Literal["public", "config"] | None = None if api == "auto" else api

    def __repr__(self) -> str:  # never show credentials
        return f"AirbyteClient({self.base_url!r}, auth={self.auth}, api={self._api or 'auto'})"

    # ------------------------------------------------------------------ sync

    def sync(self, connection_id: str, *, poll_interval: float = 5, timeout: float = 3600) -> SyncResult:
        """Run one sync of a connection to its end.

        Args:
            connection_id: The Airbyte connection (uuid).
            poll_interval: Seconds between status polls.
            timeout: Seconds to wait for a final status; the job is cancelled after that.

        Returns:
            The succeeded job: id, records and bytes synced, duration.

        Raises:
            AirbyteSyncFailed: The job ended failed or cancelled.
            AirbyteTimeout: The job was still running after ``timeout`` (it was cancelled).
            AirbyteConflict: A sync was already running and ``on_conflict="fail"``.
            AirbyteAPIError: An HTTP call failed for good.
        """
        if not connection_id:
            raise ValueError("connection_id is empty")
        started = self._clock()
        job_id = self.trigger(connection_id)
        last_status = ""
        last_logged = started
        while True:
            state = self.get_job(job_id)
            elapsed = self._clock() - started
            if state.final:
                break
            # A line per status change, else one a minute: enough to follow, not to flood.
            if state.status != last_status or self._clock() - last_logged >= 60:
                log.info("airbyte job %s: %s (%.0f s)", job_id, state.status, elapsed)
                last_status, last_logged = state.status, self._clock()
            if elapsed >= timeout:
                self._cancel_after_timeout(job_id, elapsed)
            self._sleep(max(0.0, min(poll_interval, timeout - elapsed)))

        log.info("airbyte job %s: %s (%.0f s)", job_id, state.status, elapsed)
        if state.status != "succeeded":
            raise AirbyteSyncFailed(
                job_id,
                state.status,
                f"airbyte job {job_id} of connection {connection_id} ended {state.status} after "
                f"{elapsed:.0f} s; see the job's logs in Airbyte",
            )
        return SyncResult(
            job_id=job_id,
            status=state.status,
            records_synced=state.records_synced,
            bytes_synced=state.bytes_synced,
            duration_s=state.duration_s if state.duration_s is not None else elapsed,
        )

    def _cancel_after_timeout(self, job_id: int, elapsed: float) -> None:
        try:
            self.cancel(job_id)
            cancelled = "a cancel request was sent"
        except AirbyteError as exc:  # still report the timeout, which is the real problem
            log.warning("airbyte job %s: cancel after timeout failed: %s", job_id, exc)
            cancelled = f"cancelling it failed too ({exc})"
        raise AirbyteTimeout(
            job_id,
            elapsed,
            f"airbyte job {job_id} did not finish within {elapsed:.0f} s; {cancelled}",
        )

    # ------------------------------------------------------------------ jobs

    def trigger(self, connection_id: str) -> int:
        """Start a sync; on 409 attach to the running one (or raise AirbyteConflict)."""
        if self._api != "config":
            resp = self.request(
                "POST", f"{PUBLIC}/jobs", json={"connectionId": connection_id, "jobType": "sync"}
            )
            if resp.status_code == 404 and self._api is None:
                log.info("airbyte: no public API at %s (404); using the config API", self.base_url)
                self._api = "config"
            else:
                if resp.status_code < 400 or resp.status_code == 409:
                    self._api = "public"
                if resp.status_code == 409:
                    return self._on_conflict(connection_id, resp)
                body = self.body_of(resp, "trigger sync")
                job_id = int(body["jobId"])
                log.info("airbyte job %s started for connection %s", job_id, connection_id)
                return job_id
        resp = self.request("POST", f"{CONFIG}/connections/sync", json={"connectionId": connection_id})
        if resp.status_code == 404:
            raise AirbyteAPIError(
                f"trigger sync: Airbyte at {self.base_url} answered 404 for connection {connection_id} "
                f"({reason(resp)}): check the connection id and the Airbyte URL",
                status_code=404,
            )
        if resp.status_code == 409:
            return self._on_conflict(connection_id, resp)
        body = self.body_of(resp, "trigger sync")
        job_id = int(body["job"]["id"])
        log.info("airbyte job %s started for connection %s (config API)", job_id, connection_id)
        return job_id

    def get_job(self, job_id: int) -> JobState:
        """The job's current status and counters."""
        if self._api == "config":
            body = self.body_of(self.request("POST", f"{CONFIG}/jobs/get", json={"id": job_id}), "get job")
            return config_job_state(body)
        body = self.body_of(self.request("GET", f"{PUBLIC}/jobs/{job_id}"), "get job")
        return public_job_state(body)

    def cancel(self, job_id: int) -> None:
        """Ask Airbyte to cancel a job."""
        if self._api == "config":
            resp = self.request("POST", f"{CONFIG}/jobs/cancel", json={"id": job_id})
        else:
            resp = self.request("DELETE", f"{PUBLIC}/jobs/{job_id}")
        self.body_of(resp, "cancel job")
        log.warning("airbyte job %s: cancel requested", job_id)

    def running_job(self, connection_id: str) -> int | None:
        """The id of the connection's sync that is not finished yet, if any (newest first)."""
        if self._api == "config":
            body = self.body_of(
                self.request(
                    "POST", f"{CONFIG}/jobs/list", json={"configTypes": ["sync"], "configId": connection_id}
                ),
                "list jobs",
            )
            states = [config_job_state(j) for j in body.get("jobs", [])]
        else:
            states = []
            # `running` first; a sync that is still pending/queued also blocks a new one.
            for status in ("running", None):
                params = {"connectionId": connection_id, "jobType": "sync", "orderBy": "createdAt|DESC"}
                if status:
                    params["status"] = status
                body = self.body_of(self.request("GET", f"{PUBLIC}/jobs", params=params), "list jobs")
                data = body.get("data", []) if isinstance(body, dict) else body
                states = [public_job_state(j) for j in data]
                if any(not s.final for s in states):
                    break
        candidates = [s for s in states if not s.final]
        return max(candidates, key=lambda s: s.job_id).job_id if candidates else None

    def _on_conflict(self, connection_id: str, resp: requests.Response) -> int:
        if self.on_conflict == "fail":
            raise AirbyteConflict(
                f"a sync of connection {connection_id} is already running (409: {reason(resp)}); "
                "wait for it, or use on_conflict='attach' to follow it"
            )
        job_id = self.running_job(connection_id)
        if job_id is None:
            raise AirbyteConflict(
                f"Airbyte refused to start a sync of connection {connection_id} (409: {reason(resp)}) "
                "but lists no running job to attach to"
            )
        log.info("airbyte: a sync of %s is already running; attaching to job %s", connection_id, job_id)
        return job_id
