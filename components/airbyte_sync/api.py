"""Airbyte's HTTP API as the client calls it: authentication, timeouts, bounded retries, error answers.

- Auth: a bearer token from application credentials (client id + secret), fetched
  from ``/api/public/v1/applications/token`` and fetched again before it expires or
  when the server answers 401; or HTTP basic auth; or none.
- Every request has a timeout; 5xx answers and connection errors are retried a bounded
  number of times with exponential backoff; other 4xx are returned to the caller.

No secret is ever logged or put in an exception message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests

log = logging.getLogger(__name__)

PUBLIC = "/api/public/v1"
CONFIG = "/api/v1"


class AirbyteError(RuntimeError):
    """Base class of the errors of this client."""


class AirbyteAPIError(AirbyteError):
    """An HTTP call failed: the message names the method, path, status and server's reason."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class AirbyteSession:
    """Calls to one Airbyte install, authenticated, each with a timeout and bounded retries.

    Args:
        base_url: Airbyte's address, e.g. ``http://airbyte-webapp:8000`` (no API path).
        client_id: Application client id (bearer-token auth), with ``client_secret``.
        client_secret: Application client secret.
        username: Basic-auth user (older installs), with ``password``.
        password: Basic-auth password.
        timeout: Seconds per HTTP request.
        max_retries: Retries after the first try on a 5xx answer or a connection error.
        backoff: First retry delay in seconds; doubles each retry (capped at 60 s).
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
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self._client_id = client_id
        self._client_secret = client_secret
        self._basic = (username, password) if username and password else None
        self._session = session or requests.Session()
        self._sleep = sleep
        self._clock = clock
        self._token: str | None = None
        self._token_expires_at = 0.0

    @property
    def auth(self) -> str:
        """How calls authenticate: ``token``, ``basic`` or ``none`` (never the credentials)."""
        return "token" if self._client_id else "basic" if self._basic else "none"

    def request(
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
            resp = self.request(
                "POST",
                f"{PUBLIC}/applications/token",
                json={
                    "client_id": self._client_id,
                    "client_secret": self._client_secret,
                    "grant-type": "client_credentials",
                },
                authenticate=False,
            )
            body = self.body_of(resp, "get access token")
            token = body.get("access_token")
            if not token:
                raise AirbyteAPIError("POST /applications/token: the answer holds no access_token")
            self._token = str(token)
            # Renew a little before the server's expiry; without one, rely on the 401 refresh.
            expires_in = float(body.get("expires_in") or 0)
            self._token_expires_at = self._clock() + expires_in - 30 if expires_in > 60 else float("inf")
        return self._token

    @staticmethod
    def body_of(resp: requests.Response, what: str) -> Any:
        """The JSON body of an answer (``{}`` when empty); an error status raises, naming `what` failed."""
        if resp.status_code >= 400:
            path = urlsplit(resp.url).path if resp.url else ""
            raise AirbyteAPIError(
                f"{what}: {resp.request.method if resp.request else ''} {path} answered "
                f"{resp.status_code}: {reason(resp)}",
                status_code=resp.status_code,
            )
        if not resp.content:
            return {}
        try:
            return resp.json()
        except ValueError as exc:
            raise AirbyteAPIError(f"{what}: answer is not JSON ({resp.text[:200]!r})") from exc


def reason(resp: requests.Response) -> str:
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
