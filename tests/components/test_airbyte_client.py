"""airbyte_sync server mode: the HTTP client against a local Airbyte stand-in.

Every test runs the real client over real HTTP against ``airbyte_stub`` (a
ThreadingHTTPServer on 127.0.0.1, see conftest.py) that records each request and
answers from a script. Time is simulated: sleeping advances a fake clock.
"""

from __future__ import annotations

import base64
import logging
import socket
from pathlib import Path
from typing import Any

import pytest
from kfp import dsl

from components.airbyte_sync.client import (
    AirbyteAPIError,
    AirbyteClient,
    AirbyteConflict,
    AirbyteSyncFailed,
    AirbyteTimeout,
)
from components.airbyte_sync.component import airbyte_sync
from components.artifacts import TableRef, read_table_ref

CONN = "9a1b2c3d-0000-4000-8000-00000000abcd"
JOBS = "/api/public/v1/jobs"
TOKEN = "/api/public/v1/applications/token"


class FakeTime:
    """A monotonic clock that only moves when the client sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def _client(stub: Any, fake_time: FakeTime, **kwargs: Any) -> AirbyteClient:
    auth = (
        {} if {"username", "client_id"} & kwargs.keys() else {"client_id": "cid", "client_secret": "s3cret"}
    )
    return AirbyteClient(
        stub.url, timeout=5, backoff=1.0, sleep=fake_time.sleep, clock=fake_time.clock, **auth, **kwargs
    )


def _job(job_id: int, status: str, **extra: Any) -> tuple[int, dict[str, Any]]:
    return 200, {"jobId": job_id, "status": status, "jobType": "sync", "connectionId": CONN, **extra}


def _token(stub: Any, *tokens: str) -> None:
    stub.script(
        "POST",
        TOKEN,
        *[(200, {"access_token": t, "token_type": "Bearer", "expires_in": 900}) for t in tokens],
    )


def test_sync_against_local_airbyte_stub_succeeds(airbyte_stub, fake_time, caplog):
    _token(airbyte_stub, "tok-1")
    airbyte_stub.script("POST", JOBS, _job(42, "pending"))
    airbyte_stub.script(
        "GET",
        f"{JOBS}/42",
        _job(42, "pending"),
        _job(42, "running"),
        _job(42, "succeeded", rowsSynced=955, bytesSynced=123456, duration="PT1M5S"),
    )
    caplog.set_level(logging.INFO, logger="components.airbyte_sync.client")

    result = _client(airbyte_stub, fake_time).sync(CONN, poll_interval=5, timeout=600)

    assert (result.job_id, result.status, result.records_synced, result.bytes_synced) == (
        42,
        "succeeded",
        955,
        123456,
    )
    assert result.duration_s == 65.0
    [trigger] = airbyte_stub.calls("POST", JOBS)
    assert trigger.body == {"connectionId": CONN, "jobType": "sync"}
    assert trigger.headers["authorization"] == "Bearer tok-1"
    [token] = airbyte_stub.calls("POST", TOKEN)
    assert token.body == {"client_id": "cid", "client_secret": "s3cret", "grant-type": "client_credentials"}
    assert "authorization" not in token.headers
    assert len(airbyte_stub.calls("GET", f"{JOBS}/42")) == 3
    assert fake_time.sleeps == [5, 5]
    assert "airbyte job 42: running (5 s)" in caplog.text
    assert "s3cret" not in caplog.text and "tok-1" not in caplog.text


@pytest.mark.parametrize("final", ["failed", "cancelled"])
def test_sync_against_local_airbyte_stub_raises_on_failed_or_cancelled_job(airbyte_stub, fake_time, final):
    _token(airbyte_stub, "tok-1")
    airbyte_stub.script("POST", JOBS, _job(43, "running"))
    airbyte_stub.script("GET", f"{JOBS}/43", _job(43, "running"), _job(43, final))

    with pytest.raises(AirbyteSyncFailed, match=f"airbyte job 43 .* ended {final}") as err:
        _client(airbyte_stub, fake_time).sync(CONN, poll_interval=2)

    assert (err.value.job_id, err.value.status) == (43, final)
    assert not airbyte_stub.calls("DELETE", f"{JOBS}/43")


def test_sync_against_local_airbyte_stub_attaches_to_running_job_on_409(airbyte_stub, fake_time):
    _token(airbyte_stub, "tok-1")
    airbyte_stub.script("POST", JOBS, (409, {"title": "conflict", "detail": "A sync is already running"}))
    airbyte_stub.script("GET", JOBS, (200, {"data": [{"jobId": 7, "status": "running"}], "next": None}))
    airbyte_stub.script("GET", f"{JOBS}/7", _job(7, "running"), _job(7, "succeeded", rowsSynced=12))

    result = _client(airbyte_stub, fake_time).sync(CONN, poll_interval=1)

    assert (result.job_id, result.records_synced) == (7, 12)
    assert len(airbyte_stub.calls("POST", JOBS)) == 1  # a conflict is not retried
    [listing] = airbyte_stub.calls("GET", JOBS)
    assert listing.query["connectionId"] == CONN
    assert listing.query["status"] == "running"


def test_sync_against_local_airbyte_stub_fails_on_409_when_asked(airbyte_stub, fake_time):
    _token(airbyte_stub, "tok-1")
    airbyte_stub.script("POST", JOBS, (409, {"detail": "A sync is already running"}))

    with pytest.raises(AirbyteConflict, match=f"sync of connection {CONN} is already running"):
        _client(airbyte_stub, fake_time, on_conflict="fail").sync(CONN)

    assert not airbyte_stub.calls("GET", JOBS)


def test_sync_against_local_airbyte_stub_retries_transient_5xx_then_succeeds(airbyte_stub, fake_time):
    _token(airbyte_stub, "tok-1")
    airbyte_stub.script("POST", JOBS, (503, {"message": "unavailable"}), _job(44, "running"))
    airbyte_stub.script(
        "GET", f"{JOBS}/44", (502, None), (500, {"message": "oops"}), _job(44, "succeeded", rowsSynced=3)
    )

    result = _client(airbyte_stub, fake_time, max_retries=3).sync(CONN, poll_interval=5)

    assert result.records_synced == 3
    assert len(airbyte_stub.calls("POST", JOBS)) == 2
    assert len(airbyte_stub.calls("GET", f"{JOBS}/44")) == 3
    assert fake_time.sleeps == [1.0, 1.0, 2.0]  # exponential backoff, restarted per request


def test_sync_against_local_airbyte_stub_gives_up_on_permanent_5xx(airbyte_stub, fake_time):
    _token(airbyte_stub, "tok-1")
    airbyte_stub.script("POST", JOBS, (500, {"message": "database is down"}))

    with pytest.raises(AirbyteAPIError, match="answered 500: database is down") as err:
        _client(airbyte_stub, fake_time, max_retries=2).sync(CONN)

    assert err.value.status_code == 500
    assert len(airbyte_stub.calls("POST", JOBS)) == 3  # the first try and max_retries more
    assert fake_time.sleeps == [1.0, 2.0]


def test_sync_against_local_airbyte_stub_does_not_retry_4xx(airbyte_stub, fake_time):
    _token(airbyte_stub, "tok-1")
    airbyte_stub.script("POST", JOBS, (400, {"detail": "connectionId is not a uuid"}))

    with pytest.raises(AirbyteAPIError, match="answered 400: connectionId is not a uuid"):
        _client(airbyte_stub, fake_time).sync("not-a-uuid")

    assert len(airbyte_stub.calls("POST", JOBS)) == 1
    assert fake_time.sleeps == []


def test_sync_against_local_airbyte_stub_refreshes_token_on_401(airbyte_stub, fake_time):
    _token(airbyte_stub, "tok-1", "tok-2")
    airbyte_stub.script("POST", JOBS, _job(45, "running"))
    airbyte_stub.script(
        "GET", f"{JOBS}/45", (401, {"message": "token expired"}), _job(45, "succeeded", rowsSynced=1)
    )

    result = _client(airbyte_stub, fake_time).sync(CONN)

    assert result.status == "succeeded"
    assert len(airbyte_stub.calls("POST", TOKEN)) == 2
    polls = airbyte_stub.calls("GET", f"{JOBS}/45")
    assert [p.headers["authorization"] for p in polls] == ["Bearer tok-1", "Bearer tok-2"]


def test_sync_against_local_airbyte_stub_fails_after_second_401(airbyte_stub, fake_time):
    _token(airbyte_stub, "tok-1", "tok-2")
    airbyte_stub.script("POST", JOBS, (401, {"message": "bad credentials"}))

    with pytest.raises(AirbyteAPIError, match="answered 401"):
        _client(airbyte_stub, fake_time).sync(CONN)

    assert len(airbyte_stub.calls("POST", JOBS)) == 2
    assert len(airbyte_stub.calls("POST", TOKEN)) == 2


def test_sync_against_local_airbyte_stub_renews_token_before_expiry(airbyte_stub, fake_time):
    airbyte_stub.script(
        "POST",
        TOKEN,
        (200, {"access_token": "tok-1", "expires_in": 180}),
        (200, {"access_token": "tok-2", "expires_in": 180}),
    )
    airbyte_stub.script("POST", JOBS, _job(46, "running"))
    airbyte_stub.script("GET", f"{JOBS}/46", _job(46, "running"), _job(46, "succeeded"))

    _client(airbyte_stub, fake_time).sync(CONN, poll_interval=200)

    polls = airbyte_stub.calls("GET", f"{JOBS}/46")
    assert [p.headers["authorization"] for p in polls] == ["Bearer tok-1", "Bearer tok-2"]


def test_sync_against_local_airbyte_stub_cancels_job_on_timeout(airbyte_stub, fake_time):
    _token(airbyte_stub, "tok-1")
    airbyte_stub.script("POST", JOBS, _job(47, "running"))
    airbyte_stub.script("GET", f"{JOBS}/47", _job(47, "running"))
    airbyte_stub.script("DELETE", f"{JOBS}/47", _job(47, "cancelled"))

    with pytest.raises(AirbyteTimeout, match="did not finish within 30 s; a cancel request was sent") as err:
        _client(airbyte_stub, fake_time).sync(CONN, poll_interval=10, timeout=30)

    assert err.value.job_id == 47
    [cancel] = airbyte_stub.calls("DELETE", f"{JOBS}/47")
    assert cancel.headers["authorization"] == "Bearer tok-1"
    assert len(airbyte_stub.calls("GET", f"{JOBS}/47")) == 4  # at 0, 10, 20, 30 s
    assert airbyte_stub.requests[-1].method == "DELETE"


def test_sync_against_local_airbyte_stub_falls_back_to_config_api(airbyte_stub, fake_time):
    # No public API scripted: POST /api/public/v1/jobs answers 404.
    airbyte_stub.script("POST", "/api/v1/connections/sync", (200, {"job": {"id": 9, "status": "running"}}))
    airbyte_stub.script(
        "POST",
        "/api/v1/jobs/get",
        (200, {"job": {"id": 9, "status": "running"}, "attempts": []}),
        (
            200,
            {
                "job": {"id": 9, "status": "succeeded", "createdAt": 1700000000, "updatedAt": 1700000042},
                "attempts": [
                    {"attempt": {"id": 0, "status": "failed", "recordsSynced": 100, "bytesSynced": 10}},
                    {"attempt": {"id": 1, "status": "succeeded", "recordsSynced": 955, "bytesSynced": 999}},
                ],
            },
        ),
    )

    result = _client(airbyte_stub, fake_time, username="airbyte", password="password").sync(CONN)

    assert (result.job_id, result.records_synced, result.bytes_synced, result.duration_s) == (
        9,
        955,
        999,
        42.0,
    )
    assert len(airbyte_stub.calls("POST", JOBS)) == 1
    [trigger] = airbyte_stub.calls("POST", "/api/v1/connections/sync")
    assert trigger.body == {"connectionId": CONN}
    assert [r.body for r in airbyte_stub.calls("POST", "/api/v1/jobs/get")] == [{"id": 9}, {"id": 9}]


def test_sync_against_local_airbyte_stub_config_api_attach_and_cancel(airbyte_stub, fake_time):
    airbyte_stub.script("POST", "/api/v1/connections/sync", (409, {"message": "sync already running"}))
    airbyte_stub.script(
        "POST",
        "/api/v1/jobs/list",
        (
            200,
            {
                "jobs": [
                    {"job": {"id": 11, "status": "running"}, "attempts": [{"id": 0, "status": "running"}]},
                    {"job": {"id": 10, "status": "succeeded"}, "attempts": []},
                ]
            },
        ),
    )
    airbyte_stub.script("POST", "/api/v1/jobs/get", (200, {"job": {"id": 11, "status": "running"}}))
    airbyte_stub.script("POST", "/api/v1/jobs/cancel", (200, {"job": {"id": 11, "status": "cancelled"}}))

    with pytest.raises(AirbyteTimeout):
        _client(airbyte_stub, fake_time, api="config", username="u", password="p").sync(
            CONN, poll_interval=5, timeout=10
        )

    [listing] = airbyte_stub.calls("POST", "/api/v1/jobs/list")
    assert listing.body == {"configTypes": ["sync"], "configId": CONN}
    [cancel] = airbyte_stub.calls("POST", "/api/v1/jobs/cancel")
    assert cancel.body == {"id": 11}


def test_sync_against_local_airbyte_stub_sends_basic_auth(airbyte_stub, fake_time):
    airbyte_stub.script("POST", JOBS, _job(48, "running"))
    airbyte_stub.script("GET", f"{JOBS}/48", _job(48, "succeeded"))

    _client(airbyte_stub, fake_time, username="airbyte", password="pa:ss").sync(CONN)

    expected = "Basic " + base64.b64encode(b"airbyte:pa:ss").decode()
    assert {r.headers["authorization"] for r in airbyte_stub.requests} == {expected}
    assert not airbyte_stub.calls("POST", TOKEN)


def test_unreachable_airbyte_fails_after_bounded_retries(fake_time):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = AirbyteClient(
        f"http://127.0.0.1:{port}", max_retries=2, timeout=2, sleep=fake_time.sleep, clock=fake_time.clock
    )

    with pytest.raises(AirbyteAPIError, match=r"unreachable .* after 3 tries"):
        client.sync(CONN)

    assert fake_time.sleeps == [1.0, 2.0]


def test_component_server_mode_against_local_airbyte_stub(airbyte_stub, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("AIRBYTE_CLIENT_ID", "cid")
    monkeypatch.setenv("AIRBYTE_CLIENT_SECRET", "s3cret")
    _token(airbyte_stub, "tok-1")
    airbyte_stub.script("POST", JOBS, _job(50, "running"))
    airbyte_stub.script("GET", f"{JOBS}/50", _job(50, "running"), _job(50, "succeeded", rowsSynced=955))
    table = dsl.Dataset(name="table", uri=str(tmp_path / "table"), metadata={})
    warehouse = f"duckdb:///{tmp_path}/wh.duckdb"

    out = airbyte_sync.python_func(
        stream="projects",
        warehouse=warehouse,
        table=table,
        mode="server",
        connection_id=CONN,
        airbyte_url=airbyte_stub.url,
        poll_interval_s=0.01,
        timeout_s=30,
    )

    assert (out.job_id, out.status, out.records) == ("50", "succeeded", 955)
    assert read_table_ref(table.path) == TableRef(
        warehouse=warehouse, schema="mlops_course", table="projects", rows=955, data_version="airbyte-job-50"
    )
    assert table.metadata["job_id"] == "50" and table.metadata["mode"] == "server"
    assert airbyte_stub.calls("POST", JOBS)[0].headers["authorization"] == "Bearer tok-1"
