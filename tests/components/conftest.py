"""Fixtures shared by component tests. Airbyte's: a local HTTP stand-in (``airbyte_stub``)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
def airbyte_stub() -> Iterator[AirbyteStub]:
    """A started local Airbyte stand-in; stopped after the test."""
    stub = AirbyteStub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(stub))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    stub.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
