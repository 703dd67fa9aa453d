"""The BigQuery client every step uses: the project's credentials, or a local emulator.

``BIGQUERY_EMULATOR_HOST`` (``http://HOST:PORT``), when set, sends every BigQuery call of the
steps to that endpoint instead of Google's, without credentials: a local BigQuery emulator
(the tests start ``bqemulator`` on loopback). google-cloud-bigquery itself reads the same
variable for its endpoint; :func:`bigquery_client` adds anonymous credentials and a quick
check that something answers there, so a missing emulator fails in seconds, not after the
client's 600 s of retries.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlparse

from components.warehouse import WarehouseError, WarehouseURI

BIGQUERY_EMULATOR_ENV = "BIGQUERY_EMULATOR_HOST"
# How long the check that an emulator answers may take.
EMULATOR_PROBE_S = 5.0


def bigquery_endpoint() -> str:
    """The BigQuery API endpoint that replaces Google's (``$BIGQUERY_EMULATOR_HOST``), or ``""``.

    Raises:
        WarehouseError: The variable is set but is not an ``http(s)://HOST[:PORT]`` URL.
    """
    value = os.environ.get(BIGQUERY_EMULATOR_ENV, "").strip()
    if not value:
        return ""
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.path not in ("", "/"):
        raise WarehouseError(
            f"{BIGQUERY_EMULATOR_ENV}={value!r} is not an endpoint URL: use http://HOST:PORT "
            "(the BigQuery emulator's REST address)"
        )
    return value.rstrip("/")


def bigquery_client(wh: WarehouseURI) -> Any:
    """A BigQuery client for the warehouse's project and location.

    Credentials come from the environment (ADC: a mounted key file, Workload Identity, a
    Vertex AI task's service account). With ``BIGQUERY_EMULATOR_HOST`` set, the client talks
    to that endpoint with anonymous credentials, once a quick request shows it answers.

    Raises:
        WarehouseError: ``BIGQUERY_EMULATOR_HOST`` is malformed or nothing answers there.
    """
    from google.cloud import bigquery

    endpoint = bigquery_endpoint()
    if not endpoint:
        return bigquery.Client(project=wh.project, location=wh.location or None)
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials

    _probe_emulator(endpoint)
    return bigquery.Client(
        project=wh.project,
        location=wh.location or None,
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=endpoint),
    )


def _probe_emulator(endpoint: str) -> None:
    """One request with a short timeout: the client would retry a dead endpoint for 600 s."""
    import requests

    try:
        requests.get(f"{endpoint}/bigquery/v2/projects", timeout=EMULATOR_PROBE_S)
    except requests.RequestException as exc:
        raise WarehouseError(
            f"no BigQuery emulator answers at {endpoint} ({BIGQUERY_EMULATOR_ENV}): {type(exc).__name__}"
        ) from None
