"""The connection to a KFP server: host, authentication, one health check, one-line errors."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import warnings
from collections.abc import Iterator, Mapping
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

        with quiet_sdk():
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
def quiet_sdk() -> Iterator[None]:
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


def display_time(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        if value.year <= 1970:  # the API's zero time for "not finished"
            return "-"
        return f"{value:%Y-%m-%d %H:%M}"
    return str(value)
