from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = (ROOT.parent / "shared" / "data" / "madewithml").resolve()


@pytest.fixture(scope="session")
def madewithml_dir() -> Path:
    """The lesson's real dataset, read in place from ../shared (never copied into the repo)."""
    if not (SHARED_DATA / "projects.csv").exists():
        pytest.fail(f"the shared dataset is missing: {SHARED_DATA} (CI puts ../shared beside the clone)")
    return SHARED_DATA


LocalServer = Callable[[Any], str]


@pytest.fixture
def local_http_server() -> Iterator[LocalServer]:
    """Start HTTP stand-ins on 127.0.0.1 (for services that cannot run here): call it with a
    request handler class, get the server's base URL. Every server is stopped after the test."""
    started: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def start(handler: Any) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        thread.start()
        started.append((server, thread))
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server, thread in started:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
