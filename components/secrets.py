"""Secret Manager secrets as a step's environment variables (the Vertex AI build).

On Vertex AI no Kubernetes Secret reaches a task. The Vertex build of the pipelines
(``pipelines/vertex.py``) gives each step that needs credentials the env var
``KFP_MLOPS_SECRETS``: a JSON object from variable name to the Secret Manager resource it
comes from, e.g. ``{"PGPASSWORD": "projects/P/secrets/kfp-mlops-pgpassword/versions/latest"}``:
names only, never a value. :func:`resolve` runs in ``components.executor`` before the step's
code: it asks the metadata server for the task's service-account token and reads each
secret version (``GET https://secretmanager.googleapis.com/v1/NAME:access``), setting the
variable. As with the optional Kubernetes Secrets of the KFP build, a secret that does not
exist leaves its variable unset (an MLflow server without auth needs no password); any other
refusal (no permission, a bad name) fails the step naming the secret, never a value. A
variable the task already has is kept.

Only the standard library is used (the executor imports nothing else before the step).
``GCE_METADATA_HOST`` (as google-auth reads it) and ``KFP_MLOPS_SECRET_MANAGER_ENDPOINT``
move the two endpoints, for tests against local stand-ins.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, MutableMapping
from typing import Any

SECRETS_ENV = "KFP_MLOPS_SECRETS"
METADATA_HOST_ENV = "GCE_METADATA_HOST"
ENDPOINT_ENV = "KFP_MLOPS_SECRET_MANAGER_ENDPOINT"
METADATA_HOST = "metadata.google.internal"
TOKEN_PATH = "/computeMetadata/v1/instance/service-accounts/default/token"
SECRET_MANAGER = "https://secretmanager.googleapis.com"
TIMEOUT_S = 10.0
ATTEMPTS = 4  # 0.5 s, 1 s, 2 s between them, on 429, 5xx and connection errors
_RESOURCE = re.compile(r"^projects/[^/]+/secrets/[A-Za-z0-9_-]{1,255}/versions/[A-Za-z0-9_-]+$")
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SecretError(RuntimeError):
    """A secret could not be read; the message names the secret and the variable, not a value."""


def requested(env: MutableMapping[str, str]) -> dict[str, str]:
    """The variable -> secret resource map in ``KFP_MLOPS_SECRETS`` (empty when unset).

    Raises:
        SecretError: It is not a JSON object of variable names to secret version resources.
    """
    text = env.get(SECRETS_ENV, "").strip()
    if not text:
        return {}
    try:
        mapping = json.loads(text)
    except ValueError:
        raise SecretError(f"{SECRETS_ENV} is not JSON") from None
    if not isinstance(mapping, dict):
        raise SecretError(f"{SECRETS_ENV} must be a JSON object of variable -> secret resource")
    for variable, resource in mapping.items():
        if (
            not _VARIABLE.match(str(variable))
            or not isinstance(resource, str)
            or not _RESOURCE.match(resource)
        ):
            raise SecretError(
                f"{SECRETS_ENV}: {variable!r} -> {resource!r} is not VARIABLE -> "
                "projects/PROJECT/secrets/SECRET/versions/VERSION"
            )
    return {str(k): str(v) for k, v in mapping.items()}


def _call(url: str, headers: dict[str, str], what: str, sleep: Callable[[float], None]) -> Any:
    """GET `url` as JSON; retried on 429, 5xx and connection errors; None on 404."""
    delay = 0.5
    for attempt in range(ATTEMPTS):
        try:
            with urllib.request.urlopen(
                urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S
            ) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            if (exc.code != 429 and exc.code < 500) or attempt == ATTEMPTS - 1:
                raise SecretError(f"{what}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            if attempt == ATTEMPTS - 1:
                raise SecretError(f"{what}: {getattr(exc, 'reason', exc)}") from None
        sleep(delay)
        delay *= 2
    raise AssertionError("unreachable")


def resolve(
    env: MutableMapping[str, str] | None = None, sleep: Callable[[float], None] = time.sleep
) -> list[str]:
    """Set each variable of ``KFP_MLOPS_SECRETS`` from Secret Manager; returns those set.

    Raises:
        SecretError: The map is malformed, no token could be had, or a secret was refused.
    """
    env = os.environ if env is None else env
    wanted = {var: res for var, res in requested(env).items() if not env.get(var)}
    if not wanted:
        return []
    host = env.get(METADATA_HOST_ENV) or METADATA_HOST
    token_doc = _call(
        f"http://{host}{TOKEN_PATH}",
        {"Metadata-Flavor": "Google"},
        f"the task's service-account token from the metadata server at {host}",
        sleep,
    )
    token = (token_doc or {}).get("access_token")
    if not token:
        raise SecretError(f"the metadata server at {host} gave no service-account token")
    endpoint = (env.get(ENDPOINT_ENV) or SECRET_MANAGER).rstrip("/")
    done = []
    for variable, resource in sorted(wanted.items()):
        doc = _call(
            f"{endpoint}/v1/{resource}:access",
            {"Authorization": f"Bearer {token}"},
            f"Secret Manager refused {resource} (for {variable})",
            sleep,
        )
        if doc is None:
            print(f"[secrets] {resource} does not exist: {variable} stays unset", file=sys.stderr)
            continue
        try:
            value = base64.b64decode(doc["payload"]["data"]).decode()
        except (KeyError, TypeError, ValueError):
            raise SecretError(f"Secret Manager's answer for {resource} holds no text payload") from None
        env[variable] = value
        done.append(variable)
    return done
