"""Server mode: trigger an Airbyte connection sync and wait for it, over HTTP.

Speaks Airbyte's public API (``/api/public/v1``) and falls back to the older
configuration API (``/api/v1``) on installs that do not serve the public one.

- Auth: a bearer token from application credentials (client id + secret), fetched
  from ``/api/public/v1/applications/token`` and fetched again before it expires or
  when the server answers 401; or HTTP basic auth; or none.
- Robustness: every request has a timeout; 5xx answers and connection errors are
  retried a bounded number of times with exponential backoff; other 4xx are not.
- A sync that is already running (409) is attached to, or refused with
  ``on_conflict="fail"``.
- A sync that outlives ``timeout`` is cancelled before :class:`AirbyteTimeout` is raised.

No secret is ever logged or put in an exception message.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import requests

log = logging.getLogger(__name__)

PUBLIC = "/api/public/v1"
CONFIG = "/api/v1"
FINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
RUNNING_STATUSES = frozenset({"pending", "queued", "running", "incomplete"})

Api = Literal["auto", "public", "config"]
OnConflict = Literal["attach", "fail"]


class AirbyteError(RuntimeError):
    """Base class of the errors of this client."""


class AirbyteAPIError(AirbyteError):
    """An HTTP call failed: the message names the method, path, status and server's reason."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


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


class AirbyteClient:
    """A small client for triggering and watching Airbyte syncs.

    Args:
        base_url: Airbyte's address, e.g. ``http://airbyte-webapp:8000`` (no API path).
        client_id: Application client id (bearer-token auth), with ``client_secret``.
        client_secret: Application client secret.
        username: Basic-auth user (older installs), with ``password``.
        password: Basic-auth password.
        timeout: Seconds per HTTP request.
        max_retries: Retries after the first try on a 5xx answer or a connection error.
        backoff: First retry delay in seconds; doubles each retry (capped at 60 s).
        api: ``"auto"`` (public API, config API when the public one is absent),
            ``"public"`` or ``"config"``.
        on_conflict: What to do when a sync is already running: ``"attach"`` to it or ``"fail"``.
        session: A ``requests.Session`` to use (tests, proxies).
        sleep: Injectable sleep (tests).
        clock: Injectable monotonic clock (tests).
    """

    def __init__(
        self,
        base_url: str,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30,
        max_retries: int = 3,
        backoff: float = 1.0,
        api: Api = "auto",
        on_conflict: OnConflict = "attach",
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not base_url:
            raise ValueError("Airbyte base_url is empty")
        if bool(client_id) != bool(client_secret):
            raise ValueError("give both client_id and client_secret (or neither)")
        if bool(username) != bool(password):
            raise ValueError("give both username and password (or neither)")
        if client_id and username:
            raise ValueError("give either client credentials or basic auth, not both")
        if api not in ("auto", "public", "config"):
            raise ValueError(f"api must be 'auto', 'public' or 'config', not {api!r}")
        if on_conflict not in ("attach", "fail"):
            raise ValueError(f"on_conflict must be 'attach' or 'fail', not {on_conflict!r}")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.on_conflict: OnConflict = on_conflict
        self._client_id = client_id
        self._client_secret = client_secret
        self._basic = (username, password) if username and password else None
        self._api: Literal["public", "config"] | None = None if api == "auto" else api
        self._session = session or requests.Session()
        self._sleep = sleep
        self._clock = clock
        self._token: str | None = None
        self._token_expires_at = 0.0

    def __repr__(self) -> str:  # never show credentials
        auth = "token" if self._client_id else "basic" if self._basic else "none"
        return f"AirbyteClient({self.base_url!r}, auth={auth}, api={self._api or 'auto'})"

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
            resp = self._request(
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
                body = self._json(resp, "trigger sync")
                job_id = int(body["jobId"])
                log.info("airbyte job %s started for connection %s", job_id, connection_id)
                return job_id
        resp = self._request("POST", f"{CONFIG}/connections/sync", json={"connectionId": connection_id})
        if resp.status_code == 404:
            raise AirbyteAPIError(
                f"trigger sync: Airbyte at {self.base_url} answered 404 for connection {connection_id} "
                f"({_reason(resp)}): check the connection id and the Airbyte URL",
                status_code=404,
            )
        if resp.status_code == 409:
            return self._on_conflict(connection_id, resp)
        body = self._json(resp, "trigger sync")
        job_id = int(body["job"]["id"])
        log.info("airbyte job %s started for connection %s (config API)", job_id, connection_id)
        return job_id

    def get_job(self, job_id: int) -> JobState:
        """The job's current status and counters."""
        if self._api == "config":
            body = self._json(self._request("POST", f"{CONFIG}/jobs/get", json={"id": job_id}), "get job")
            return _config_job_state(body)
        body = self._json(self._request("GET", f"{PUBLIC}/jobs/{job_id}"), "get job")
        return _public_job_state(body)

    def cancel(self, job_id: int) -> None:
        """Ask Airbyte to cancel a job."""
        if self._api == "config":
            resp = self._request("POST", f"{CONFIG}/jobs/cancel", json={"id": job_id})
        else:
            resp = self._request("DELETE", f"{PUBLIC}/jobs/{job_id}")
        self._json(resp, "cancel job")
        log.warning("airbyte job %s: cancel requested", job_id)

    def running_job(self, connection_id: str) -> int | None:
        """The id of the connection's sync that is not finished yet, if any (newest first)."""
        if self._api == "config":
            body = self._json(
                self._request(
                    "POST", f"{CONFIG}/jobs/list", json={"configTypes": ["sync"], "configId": connection_id}
                ),
                "list jobs",
            )
            states = [_config_job_state(j) for j in body.get("jobs", [])]
        else:
            states = []
            # `running` first; a sync that is still pending/queued also blocks a new one.
            for status in ("running", None):
                params = {"connectionId": connection_id, "jobType": "sync", "orderBy": "createdAt|DESC"}
                if status:
                    params["status"] = status
                body = self._json(self._request("GET", f"{PUBLIC}/jobs", params=params), "list jobs")
                data = body.get("data", []) if isinstance(body, dict) else body
                states = [_public_job_state(j) for j in data]
                if any(not s.final for s in states):
                    break
        candidates = [s for s in states if not s.final]
        return max(candidates, key=lambda s: s.job_id).job_id if candidates else None

    def _on_conflict(self, connection_id: str, resp: requests.Response) -> int:
        if self.on_conflict == "fail":
            raise AirbyteConflict(
                f"a sync of connection {connection_id} is already running (409: {_reason(resp)}); "
                "wait for it, or use on_conflict='attach' to follow it"
            )
        job_id = self.running_job(connection_id)
        if job_id is None:
            raise AirbyteConflict(
                f"Airbyte refused to start a sync of connection {connection_id} (409: {_reason(resp)}) "
                "but lists no running job to attach to"
            )
        log.info("airbyte: a sync of %s is already running; attaching to job %s", connection_id, job_id)
        return job_id

    # ------------------------------------------------------------------ HTTP

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        authenticate: bool = True,
    ) -> requests.Response:
        """One call with bounded retries (5xx, connection errors) and one 401 token refresh."""
        url = self.base_url + path
        retries = 0
        refreshed = False
        while True:
            headers = {"Accept": "application/json"}
            auth = None
            if authenticate and self._client_id:
                headers["Authorization"] = f"Bearer {self._bearer()}"
            elif authenticate and self._basic:
                auth = self._basic
            try:
                resp = self._session.request(
                    method, url, json=json, params=params, headers=headers, auth=auth, timeout=self.timeout
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                if retries >= self.max_retries:
                    raise AirbyteAPIError(
                        f"{method} {path}: Airbyte unreachable at {self.base_url} after "
                        f"{retries + 1} tries ({type(exc).__name__})"
                    ) from exc
                retries += 1
                self._pause(retries, method, path, type(exc).__name__)
                continue
            if resp.status_code == 401 and authenticate and self._client_id and not refreshed:
                # Tokens expire (~15 min, and a sync can take longer): fetch a new one once.
                log.info("airbyte: %s %s answered 401; refreshing the access token", method, path)
                self._token = None
                refreshed = True
                continue
            if resp.status_code >= 500 and retries < self.max_retries:
                retries += 1
                self._pause(retries, method, path, f"HTTP {resp.status_code}")
                continue
            return resp

    def _pause(self, retry: int, method: str, path: str, why: str) -> None:
        delay = min(self.backoff * 2 ** (retry - 1), 60.0)
        log.warning(
            "airbyte: %s %s failed (%s); retry %d/%d in %.1f s",
            method,
            path,
            why,
            retry,
            self.max_retries,
            delay,
        )
        self._sleep(delay)

    def _bearer(self) -> str:
        if self._token is None or self._clock() >= self._token_expires_at:
            resp = self._request(
                "POST",
                f"{PUBLIC}/applications/token",
                json={
                    "client_id": self._client_id,
                    "client_secret": self._client_secret,
                    "grant-type": "client_credentials",
                },
                authenticate=False,
            )
            body = self._json(resp, "get access token")
            token = body.get("access_token")
            if not token:
                raise AirbyteAPIError("POST /applications/token: the answer holds no access_token")
            self._token = str(token)
            # Renew a little before the server's expiry; without one, rely on the 401 refresh.
            expires_in = float(body.get("expires_in") or 0)
            self._token_expires_at = self._clock() + expires_in - 30 if expires_in > 60 else float("inf")
        return self._token

    @staticmethod
    def _json(resp: requests.Response, what: str) -> Any:
        if resp.status_code >= 400:
            path = urlsplit(resp.url).path if resp.url else ""
            raise AirbyteAPIError(
                f"{what}: {resp.request.method if resp.request else ''} {path} answered "
                f"{resp.status_code}: {_reason(resp)}",
                status_code=resp.status_code,
            )
        if not resp.content:
            return {}
        try:
            return resp.json()
        except ValueError as exc:
            raise AirbyteAPIError(f"{what}: answer is not JSON ({resp.text[:200]!r})") from exc


def _reason(resp: requests.Response) -> str:
    """The server's short explanation of an error answer (problem+json or plain text)."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text.strip()[:300] or resp.reason or ""
    if isinstance(body, dict):
        for key in ("detail", "message", "title"):
            if body.get(key):
                return str(body[key])[:300]
    return str(body)[:300]


def _public_job_state(body: Mapping[str, Any]) -> JobState:
    return JobState(
        job_id=int(body["jobId"]),
        status=str(body.get("status", "")).lower(),
        records_synced=int(body.get("rowsSynced") or 0),
        bytes_synced=int(body.get("bytesSynced") or 0),
        duration_s=_iso_duration(body.get("duration")),
    )


def _config_job_state(body: Mapping[str, Any]) -> JobState:
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
