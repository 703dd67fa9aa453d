"""Fixtures shared by component tests. Airbyte's: a local HTTP stand-in (``airbyte_stub``)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest


@dataclass
class AirbyteStubRequest:
    """One request the stub received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class AirbyteStub:
    """A real HTTP server on 127.0.0.1 that plays a scripted Airbyte.

    ``script(method, path, *answers)`` queues answers (``(status, json_body)``) for a route;
    the last answer repeats. Unscripted routes answer 404, as a server without that API
    would. Every request is recorded in ``requests``.
    """

    url: str = ""
    requests: list[AirbyteStubRequest] = field(default_factory=list)
    _routes: dict[tuple[str, str], list[tuple[int, Any]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def script(self, method: str, path: str, *answers: tuple[int, Any]) -> None:
        self._routes[(method, path)] = list(answers)

    def calls(self, method: str, path: str) -> list[AirbyteStubRequest]:
        return [r for r in self.requests if r.method == method and r.path == path]

    def answer(self, request: AirbyteStubRequest) -> tuple[int, Any]:
        with self._lock:
            self.requests.append(request)
            queue = self._routes.get((request.method, request.path))
            if not queue:
                return 404, {"message": f"no route {request.method} {request.path}"}
            return queue.pop(0) if len(queue) > 1 else queue[0]


def _handler(stub: AirbyteStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            status, payload = stub.answer(
                AirbyteStubRequest(
                    method=self.command,
                    path=parts.path,
                    query=dict(parse_qsl(parts.query)),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
            )
            data = json.dumps(payload).encode() if payload is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            pass

    return Handler


@pytest.fixture
def airbyte_stub(local_http_server: Any) -> AirbyteStub:
    """A started local Airbyte stand-in; stopped after the test."""
    stub = AirbyteStub()
    stub.url = local_http_server(_handler(stub))
    return stub


# ===================================================================== mlflow_server ===
# A real MLflow tracking server on loopback, for the MLOps step tests (train, evaluate,
# promote against a server rather than a sqlite URI). Owned by the MLOps components;
# imports are local so this block stays self-contained.

MLFLOW_SERVER_START_TIMEOUT_S = 180.0


def _mlflow_free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _mlflow_stop(proc: Any) -> None:
    """SIGTERM the server's own process group (it spawns uvicorn), then SIGKILL if it lingers."""
    import os
    import signal
    import subprocess

    for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mlflow server`` on 127.0.0.1 (sqlite backend, proxied artifacts); yields its URL."""
    import os
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    root = tmp_path_factory.mktemp("mlflow_server")
    port = _mlflow_free_port()
    cmd = [
        str(Path(sys.executable).with_name("mlflow")),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination",
        str(root / "artifacts"),
    ]
    # No background job runner: the tests need tracking and the registry only.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    log_path = root / "server.log"
    timeout = float(os.environ.get("MLFLOW_SERVER_START_TIMEOUT_S", MLFLOW_SERVER_START_TIMEOUT_S))
    with log_path.open("wb") as log:
        # Own session: the server and its uvicorn child form one process group we can stop.
        proc = subprocess.Popen(
            cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"mlflow server exited with {proc.returncode}:\n{log_path.read_text()}")
                try:
                    with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                        if resp.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"mlflow server not healthy after {timeout:.0f} s:\n{log_path.read_text()[-4000:]}"
                    )
                time.sleep(0.25)
            yield url
        finally:
            _mlflow_stop(proc)
