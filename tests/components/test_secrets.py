"""components.secrets (the Vertex AI build's credentials) against local HTTP stand-ins of
the GCE metadata server and the Secret Manager API, and through components.executor."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import pytest

from components import secrets

ROOT = Path(__file__).resolve().parents[2]
RESOURCE = "projects/p1/secrets/kfp-mlops-%s/versions/latest"


class GoogleStandIn(BaseHTTPRequestHandler):
    """The metadata server's token endpoint and Secret Manager's ``:access``, on one port.
    Secret ``kfp-mlops-pgpassword`` exists, ``kfp-mlops-forbidden`` is refused (403), any other
    is missing (404). Requests are recorded with their auth headers."""

    requests: ClassVar[list[tuple[str, dict[str, str]]]] = []
    values: ClassVar[dict[str, str]] = {"kfp-mlops-pgpassword": "s3cret-pg"}

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        type(self).requests.append((self.path, dict(self.headers)))
        if self.path == secrets.TOKEN_PATH:
            if self.headers.get("Metadata-Flavor") != "Google":
                self._send(403, {})
                return
            self._send(200, {"access_token": "tok-123", "expires_in": 3599, "token_type": "Bearer"})
            return
        if self.headers.get("Authorization") != "Bearer tok-123":
            self._send(401, {"error": {"code": 401}})
            return
        secret = self.path.split("/secrets/")[1].split("/")[0]
        if secret == "kfp-mlops-forbidden":
            self._send(403, {"error": {"code": 403, "message": "Permission denied"}})
        elif secret in type(self).values:
            data = base64.b64encode(type(self).values[secret].encode()).decode()
            self._send(200, {"name": self.path, "payload": {"data": data}})
        else:
            self._send(404, {"error": {"code": 404}})


@pytest.fixture
def google(local_http_server: Any) -> dict[str, str]:
    GoogleStandIn.requests = []
    url = local_http_server(GoogleStandIn)
    return {secrets.METADATA_HOST_ENV: url.removeprefix("http://"), secrets.ENDPOINT_ENV: url}


def test_resolve_sets_each_named_variable_from_the_secret_manager_stand_in(google: dict[str, str]) -> None:
    env = {
        **google,
        secrets.SECRETS_ENV: json.dumps(
            {
                "PGPASSWORD": RESOURCE % "pgpassword",
                "MLFLOW_TRACKING_PASSWORD": RESOURCE % "mlflow-tracking-password",
            }
        ),
    }
    assert secrets.resolve(env, sleep=lambda s: None) == ["PGPASSWORD"]
    assert env["PGPASSWORD"] == "s3cret-pg"
    assert "MLFLOW_TRACKING_PASSWORD" not in env  # that secret does not exist: the variable stays unset
    paths = [path for path, _ in GoogleStandIn.requests]
    assert paths[0] == secrets.TOKEN_PATH
    assert sorted(paths[1:]) == sorted(
        f"/v1/{RESOURCE % s}:access" for s in ("pgpassword", "mlflow-tracking-password")
    )
    # A variable the task already has is kept, and nothing is asked for it.
    GoogleStandIn.requests = []
    kept = {
        **google,
        "PGPASSWORD": "given",
        secrets.SECRETS_ENV: json.dumps({"PGPASSWORD": RESOURCE % "pgpassword"}),
    }
    assert secrets.resolve(kept) == [] and kept["PGPASSWORD"] == "given" and GoogleStandIn.requests == []


def test_resolve_fails_naming_the_secret_not_its_value_and_refuses_a_malformed_map(
    google: dict[str, str],
) -> None:
    env = {**google, secrets.SECRETS_ENV: json.dumps({"PGPASSWORD": RESOURCE % "forbidden"})}
    with pytest.raises(
        secrets.SecretError,
        match=r"Secret Manager refused projects/p1/secrets/kfp-mlops-forbidden.*\(for PGPASSWORD\): HTTP 403",
    ):
        secrets.resolve(env, sleep=lambda s: None)
    for bad in (
        "not json",
        "[1]",
        json.dumps({"PGPASSWORD": "kfp-mlops-pgpassword"}),
        json.dumps({"1X": RESOURCE % "a"}),
    ):
        with pytest.raises(secrets.SecretError, match="KFP_MLOPS_SECRETS"):
            secrets.resolve({**google, secrets.SECRETS_ENV: bad})


def test_a_step_started_by_the_executor_sees_its_secret_manager_variables(
    google: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "show_env.py").write_text(
        "import os\nprint('PGPASSWORD=' + os.environ.get('PGPASSWORD', '<unset>'))\n"
    )
    env = {
        **os.environ,
        **google,
        "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}",
        secrets.SECRETS_ENV: json.dumps({"PGPASSWORD": RESOURCE % "pgpassword"}),
    }
    env.pop("PGPASSWORD", None)
    run = subprocess.run(
        [sys.executable, "-m", "components.executor", "show_env"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (run.returncode, run.stdout.strip()) == (0, "PGPASSWORD=s3cret-pg"), run.stderr
    env[secrets.SECRETS_ENV] = json.dumps({"PGPASSWORD": RESOURCE % "forbidden"})
    run = subprocess.run(
        [sys.executable, "-m", "components.executor", "show_env"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1 and "PGPASSWORD=" not in run.stdout  # the step never ran
    assert "error: Secret Manager refused projects/p1/secrets/kfp-mlops-forbidden" in run.stderr
