"""The cluster CLI and ``pipelines.clients.kfp`` against a local stand-in of the KFP v2beta1 REST API.

No cluster can run here, so a small ThreadingHTTPServer on 127.0.0.1 answers the
requests ``kfp.Client`` makes (health, pipelines and uploads, experiments, runs,
recurring runs) and records every one of them: method, path, query, headers and body
(multipart parts for uploads). The tests assert on what reached the "server": the
pipeline spec and parameters of a run, the recurring-run trigger, catch-up and
concurrency, auth headers, and how many polls a followed run took.
"""

from __future__ import annotations

import argparse
import email.parser
import email.policy
import itertools
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from pipelines.cli.cluster import add_cluster_commands
from pipelines.clients import kfp as kfp_client

API = "/apis/v2beta1"


# --------------------------------------------------------------------------- the stand-in


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    parts: dict[str, dict[str, Any]] = field(default_factory=dict)  # multipart: name -> filename, content

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


def _parse_multipart(content_type: str, body: bytes) -> dict[str, dict[str, Any]]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    parts = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        parts[str(name)] = {"filename": part.get_filename(), "content": part.get_payload(decode=True)}
    return parts


def _matches(item: dict[str, Any], filter_json: str | None) -> bool:
    if not filter_json:
        return True
    for pred in json.loads(filter_json).get("predicates", []):
        assert pred["operation"] in (1, "EQUALS"), pred  # kfp.Client sends the enum number
        if str(item.get(pred["key"])) != pred["stringValue"]:
            return False
    return True


class KfpStub:
    """In-memory KFP v2beta1 API: just enough state for kfp.Client, every request recorded."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.lock = threading.Lock()
        self.ids = itertools.count(1)
        self.pipelines: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, list[dict[str, Any]]] = {}
        self.experiments: dict[str, dict[str, Any]] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self.recurring: dict[str, dict[str, Any]] = {}
        self.run_states: list[str] = ["PENDING", "RUNNING", "SUCCEEDED"]  # GET /runs/{id} answers, in turn
        self.required_token: str | None = None
        self.login_redirect = False  # answer like a Kubeflow behind Dex without a session
        self.versions_filter_unsupported = False
        self.url = ""

    def _id(self, prefix: str) -> str:
        return f"{prefix}-{next(self.ids)}"

    def calls(self, method: str, pattern: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and re.fullmatch(pattern, r.path)]

    def handle(self, req: Recorded) -> tuple[int, Any]:
        with self.lock:
            self.requests.append(req)
            if self.login_redirect:
                return 302, {"location": "/dex/auth?client_id=kubeflow"}
            if self.required_token and req.header("Authorization") != f"Bearer {self.required_token}":
                return 401, {"error": "unauthenticated", "message": "bad token", "code": 16}
            return self._route(req)

    def _route(self, req: Recorded) -> tuple[int, Any]:
        m, p = req.method, req.path
        q = {k: v[0] for k, v in req.query.items()}
        if (m, p) == ("GET", f"{API}/healthz"):
            return 200, {"multi_user": False, "pipeline_store": "database"}
        if (m, p) == ("GET", f"{API}/pipelines"):
            items = [x for x in self.pipelines.values() if _matches(x, q.get("filter"))]
            return 200, {"pipelines": items, "total_size": len(items)} if items else {}
        if (m, p) == ("POST", f"{API}/pipelines/upload"):
            pid = self._id("pipeline")
            name = q.get("name") or q.get("display_name") or "unnamed"
            self.pipelines[pid] = {"pipeline_id": pid, "display_name": name, "name": name}
            # like KFP: the first version is named after the pipeline
            self.versions[pid] = [self._version(pid, name)]
            return 200, self.pipelines[pid]
        if (m, p) == ("POST", f"{API}/pipelines/upload_version"):
            pid = q["pipelineid"]
            version = self._version(pid, q["name"])
            self.versions[pid].append(version)
            return 200, version
        if m == "GET" and (hit := re.fullmatch(rf"{API}/pipelines/([^/]+)/versions", p)):
            if self.versions_filter_unsupported and q.get("filter"):
                return 400, {"error": "invalid filter key display_name", "code": 3}
            items = [v for v in self.versions.get(hit[1], []) if _matches(v, q.get("filter"))]
            return 200, {"pipeline_versions": items, "total_size": len(items)} if items else {}
        if (m, p) == ("GET", f"{API}/experiments"):
            items = [x for x in self.experiments.values() if _matches(x, q.get("filter"))]
            return 200, {"experiments": items, "total_size": len(items)} if items else {}
        if (m, p) == ("POST", f"{API}/experiments"):
            eid = self._id("experiment")
            self.experiments[eid] = {"experiment_id": eid, "display_name": req.json["display_name"]}
            return 200, self.experiments[eid]
        if (m, p) == ("POST", f"{API}/runs"):
            rid = self._id("run")
            self.runs[rid] = {**req.json, "run_id": rid, "state": "PENDING"}
            return 200, self.runs[rid]
        if (m, p) == ("GET", f"{API}/runs"):
            items = [
                r
                for r in self.runs.values()
                if q.get("experiment_id") in (None, r.get("experiment_id")) and _matches(r, q.get("filter"))
            ]
            if q.get("sort_by") == "created_at desc":
                items.reverse()  # ids grow with creation
            return 200, {"runs": items, "total_size": len(items)}
        if m == "GET" and (hit := re.fullmatch(rf"{API}/runs/([^/:]+)", p)):
            state = self.run_states.pop(0) if len(self.run_states) > 1 else self.run_states[0]
            self.runs[hit[1]]["state"] = state
            return 200, {"run_id": hit[1], "state": state}
        if (m, p) == ("POST", f"{API}/recurringruns"):
            # Like the API server (backend/src/apiserver/server/api_converter.go, toModelJob):
            # 1 to 10 runs at once; int64 travels as a string, an unset one is 0.
            concurrency = int(req.json.get("max_concurrency") or 0)
            if not 1 <= concurrency <= 10:
                message = (
                    "Failed to create a recurring run: Invalid input error: Max concurrency of a "
                    f"recurring run must be at least 1 and at most 10. Received {concurrency}"
                )
                return 400, {"error": message, "code": 3, "message": message, "details": []}
            rid = self._id("recurring")
            status = "ENABLED" if req.json.get("mode") == "ENABLE" else "DISABLED"
            self.recurring[rid] = {**req.json, "recurring_run_id": rid, "status": status}
            return 200, self.recurring[rid]
        if (m, p) == ("GET", f"{API}/recurringruns"):
            items = list(self.recurring.values())
            return 200, {"recurringRuns": items, "total_size": len(items)}  # sic: camelCase in v2beta1
        if m == "POST" and (hit := re.fullmatch(rf"{API}/recurringruns/([^/:]+):(enable|disable)", p)):
            if hit[1] not in self.recurring:
                return 404, {"error": "not found", "message": f"recurring run {hit[1]} not found", "code": 5}
            self.recurring[hit[1]]["status"] = "ENABLED" if hit[2] == "enable" else "DISABLED"
            return 200, {}
        if m == "DELETE" and (hit := re.fullmatch(rf"{API}/recurringruns/([^/:]+)", p)):
            self.recurring.pop(hit[1], None)
            return 200, {}
        return 404, {"error": f"stub has no route for {m} {p}", "code": 5}

    def _version(self, pid: str, name: str) -> dict[str, Any]:
        vid = self._id("version")
        return {"pipeline_id": pid, "pipeline_version_id": vid, "display_name": name, "name": name}


@pytest.fixture
def stub(local_http_server: Any) -> KfpStub:
    kfp = KfpStub()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            req = Recorded(self.command, parts.path, parse_qs(parts.query), dict(self.headers.items()), body)
            ctype = self.headers.get("Content-Type") or ""
            if ctype.startswith("multipart/form-data"):
                req.parts = _parse_multipart(ctype, body)
            try:
                status, payload = kfp.handle(req)
            except Exception as exc:  # a stub bug: answer it, so the test shows it
                status, payload = 500, {"error": f"stub failed: {exc!r}", "code": 13}
            data = json.dumps(payload).encode()
            self.send_response(status)
            if status == 302:
                self.send_header("Location", payload["location"])
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    kfp.url = local_http_server(Handler)
    return kfp


@pytest.fixture(autouse=True)
def _no_kfp_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KFP_HOST", "KFP_TOKEN", "KFP_TOKEN_FILE", "KFP_COOKIES"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dataops pipeline compiled once for the module."""
    from pipelines.compile import compile_all

    [path] = compile_all(tmp_path_factory.mktemp("compiled"), ["dataops"])
    return path


def cli(argv: list[str]) -> int:
    """Parse and run like ``python -m pipelines`` does, through add_cluster_commands."""
    parser = argparse.ArgumentParser(prog="python -m pipelines")
    add_cluster_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def _pipeline_spec(body: dict[str, Any]) -> dict[str, Any]:
    """The pipeline spec of a run / recurring run body (nested when a platform spec rides along)."""
    spec = body["pipeline_spec"]
    return spec.get("pipeline_spec", spec)


# --------------------------------------------------------------------------- submit


def test_submit_against_local_kfp_rest_stub_sends_the_compiled_spec_and_parameters(
    stub: KfpStub, capsys: pytest.CaptureFixture[str]
) -> None:
    # Through argparse, compiling the pipeline on the fly.
    code = cli(
        [
            "submit",
            "dataops",
            "--host",
            stub.url,
            "--token",
            "tok-abc",
            "--param",
            "mode=embedded",
            "--param",
            "airbyte_timeout_s=60",
            "--experiment",
            "nightly",
        ]
    )
    assert code == 0
    [create] = stub.calls("POST", f"{API}/runs")
    body = create.json
    spec = _pipeline_spec(body)
    assert spec["pipelineInfo"]["name"] == "dataops"
    assert "root" in spec and "deploymentSpec" in spec
    assert body["runtime_config"]["parameters"] == {"mode": "embedded", "airbyte_timeout_s": 60}
    assert body["service_account"] == "kfp-mlops-runner"
    [experiment] = stub.experiments.values()
    assert experiment["display_name"] == "nightly"
    assert body["experiment_id"] == experiment["experiment_id"]
    # every request, the health probe included, carried the token
    assert stub.requests and {r.header("Authorization") for r in stub.requests} == {"Bearer tok-abc"}
    [run_id] = stub.runs
    assert f"submitted dataops: run {run_id}" in capsys.readouterr().out
    assert not stub.calls("GET", rf"{API}/runs/[^/]+")  # no --wait: no polling


def _submit_wait(stub: KfpStub, package: Path, *extra: str) -> int:
    """``submit dataops --wait`` against the stand-in, polling fast (later flags win)."""
    return cli(
        [
            "submit",
            "dataops",
            "--host",
            stub.url,
            "--package",
            str(package),
            "--wait",
            "--poll-interval",
            "0.01",
            *extra,
        ]
    )


def test_submit_wait_against_local_kfp_rest_stub_exits_zero_when_the_run_succeeds(
    stub: KfpStub, package: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stub.run_states = ["PENDING", "RUNNING", "SUCCEEDED"]
    code = _submit_wait(stub, package)
    assert code == 0
    assert len(stub.calls("GET", rf"{API}/runs/run-\d+")) == 3
    out = capsys.readouterr().out
    assert out.index("PENDING") < out.index("RUNNING") < out.index("SUCCEEDED")


def test_submit_wait_against_local_kfp_rest_stub_fails_when_the_run_fails(
    stub: KfpStub, package: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stub.run_states = ["RUNNING", "FAILED"]
    code = _submit_wait(stub, package)
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: run run-") and "ended FAILED" in err and stub.url in err


@pytest.mark.timeout(30)
def test_submit_wait_against_local_kfp_rest_stub_stops_polling_on_canceled(
    stub: KfpStub, package: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # kfp.Client.wait_for_run_completion would poll a CANCELED run forever.
    stub.run_states = ["RUNNING", "CANCELED"]
    code = _submit_wait(stub, package)
    assert code == 1
    assert len(stub.calls("GET", rf"{API}/runs/run-\d+")) == 2
    assert "ended CANCELED" in capsys.readouterr().err


def test_submit_wait_against_local_kfp_rest_stub_gives_up_after_the_timeout(
    stub: KfpStub, package: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stub.run_states = ["RUNNING"]
    started = time.monotonic()
    code = _submit_wait(stub, package, "--timeout", "0.2", "--poll-interval", "0.02")
    assert code == 1
    assert time.monotonic() - started < 10
    assert "still RUNNING after" in capsys.readouterr().err


def test_wait_for_run_treats_every_final_state_as_final() -> None:
    class Run:
        def __init__(self, state: str) -> None:
            self.state = state

    class Client:
        def __init__(self, states: list[str]) -> None:
            self.states = iter(states)
            self.polls = 0

        def get_run(self, run_id: str) -> Run:
            self.polls += 1
            return Run(next(self.states))

    for final in ("SUCCEEDED", "FAILED", "SKIPPED", "CANCELED"):
        fake = Client(["PENDING", "RUNNING", "CANCELING" if final == "CANCELED" else "PAUSED", final])
        got = kfp_client.wait_for_run(fake, "r1", "http://h", timeout_s=60, poll_s=0, log=lambda s: None)
        assert (got, fake.polls) == (final, 4)


# --------------------------------------------------------------------------- upload


def test_upload_against_local_kfp_rest_stub_creates_then_is_a_no_op_for_the_same_version(
    stub: KfpStub, package: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["upload", "dataops", "--host", stub.url, "--version-name", "0.1.0-abc1234"]
    argv += ["--package-dir", str(package.parent)]
    assert cli(argv) == 0
    [create] = stub.calls("POST", f"{API}/pipelines/upload")
    assert create.query["name"] == ["dataops"]
    uploaded = create.parts["uploadfile"]
    assert uploaded["filename"] and uploaded["filename"].endswith(".yaml")
    assert yaml.safe_load_all(uploaded["content"]).__next__()["pipelineInfo"]["name"] == "dataops"
    [version] = stub.calls("POST", f"{API}/pipelines/upload_version")
    assert version.query["name"] == ["0.1.0-abc1234"]
    assert version.query["pipelineid"] == list(stub.pipelines)
    assert b"dataops" in version.parts["uploadfile"]["content"]
    first = capsys.readouterr().out
    assert "created pipeline" in first and "0.1.0-abc1234" in first

    # Same version name again: looked up, nothing uploaded.
    assert cli(argv) == 0
    assert len(stub.calls("POST", f"{API}/pipelines/upload")) == 1
    assert len(stub.calls("POST", f"{API}/pipelines/upload_version")) == 1
    assert "already uploaded" in capsys.readouterr().out

    # A new version name: one more version upload, still no second pipeline.
    argv[argv.index("0.1.0-abc1234")] = "0.1.0-def5678"
    assert cli(argv) == 0
    assert len(stub.calls("POST", f"{API}/pipelines/upload")) == 1
    assert [r.query["name"] for r in stub.calls("POST", f"{API}/pipelines/upload_version")] == [
        ["0.1.0-abc1234"],
        ["0.1.0-def5678"],
    ]


def test_upload_function_reports_created_pipeline_and_version(stub: KfpStub, package: Path) -> None:
    conn = kfp_client.Connection.resolve(host=stub.url)
    first = kfp_client.upload("dataops", package, conn, version="9.9.9-feed123")
    again = kfp_client.upload("dataops", package, conn, version="9.9.9-feed123")
    assert (first.created_pipeline, first.uploaded) == (True, True)
    assert (again.created_pipeline, again.uploaded) == (False, False)
    assert again.version_id == first.version_id
    assert again.pipeline_id == first.pipeline_id


def test_version_name_is_package_version_and_git_sha_or_nogit(tmp_path: Path) -> None:
    from components.images import package_version

    assert kfp_client.git_short_sha(tmp_path) == "nogit"
    assert kfp_client.version_name(tmp_path) == f"{package_version()}-nogit"
    sha = kfp_client.git_short_sha()
    assert sha == "nogit" or re.fullmatch(r"[0-9a-f]{4,40}", sha)


# --------------------------------------------------------------------------- schedule


def test_schedule_against_local_kfp_rest_stub_converts_cron_and_disables_catchup(
    stub: KfpStub, package: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli(
        [
            *("schedule", "dataops", "--cron", "0 3 * * *"),
            *("--host", stub.url, "--package", str(package), "--param", "mode=embedded"),
        ]
    )
    assert code == 0
    [create] = stub.calls("POST", f"{API}/recurringruns")
    body = create.json
    assert body["trigger"]["cron_schedule"]["cron"] == "0 0 3 * * *"
    assert "periodic_schedule" not in body["trigger"]
    assert body["no_catchup"] is True
    assert body["max_concurrency"] == "1"
    assert body["mode"] == "ENABLE"
    assert body["runtime_config"]["parameters"] == {"mode": "embedded"}
    assert _pipeline_spec(body)["pipelineInfo"]["name"] == "dataops"
    assert body["experiment_id"] in stub.experiments
    assert "cron '0 0 3 * * *', no catch-up, enabled" in capsys.readouterr().out


def test_schedule_against_local_kfp_rest_stub_every_interval_with_catchup(
    stub: KfpStub, package: Path
) -> None:
    code = cli(
        [
            *("schedule", "create", "dataops", "--every", "6h", "--catchup", "--max-concurrency", "2"),
            *("--host", stub.url, "--package", str(package), "--disabled"),
        ]
    )
    assert code == 0
    [create] = stub.calls("POST", f"{API}/recurringruns")
    body = create.json
    assert body["trigger"]["periodic_schedule"]["interval_second"] == "21600"
    assert "cron_schedule" not in body["trigger"]
    assert body["no_catchup"] is False
    assert body["max_concurrency"] == "2"
    assert body["mode"] == "DISABLE"


def test_schedule_list_enable_disable_delete_against_local_kfp_rest_stub(
    stub: KfpStub, package: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conn = kfp_client.Connection.resolve(host=stub.url)
    rid = kfp_client.schedule("dataops", package, conn, cron="30 2 * * 1-5").recurring_run_id
    capsys.readouterr()

    assert cli(["schedule", "list", "--host", stub.url]) == 0
    listing = capsys.readouterr().out
    assert rid in listing and "cron 0 30 2 * * 1-5" in listing and "ENABLED" in listing
    [listed] = stub.calls("GET", f"{API}/recurringruns")
    assert listed.query["sort_by"] == ["created_at desc"]

    assert cli(["schedule", "disable", rid, "--host", stub.url]) == 0
    assert stub.recurring[rid]["status"] == "DISABLED"
    assert cli(["schedule", "enable", rid, "--host", stub.url]) == 0
    assert stub.recurring[rid]["status"] == "ENABLED"
    assert cli(["schedule", "delete", rid, "--host", stub.url]) == 0
    assert rid not in stub.recurring
    assert [(r.method, r.path) for r in stub.requests if rid in r.path] == [
        ("POST", f"{API}/recurringruns/{rid}:disable"),
        ("POST", f"{API}/recurringruns/{rid}:enable"),
        ("DELETE", f"{API}/recurringruns/{rid}"),
    ]
    out = capsys.readouterr().out
    assert f"recurring run {rid}: disabled" in out and f"recurring run {rid}: deleted" in out

    # An unknown id: the server's 404 becomes one line, exit 1.
    assert cli(["schedule", "enable", "recurring-404", "--host", stub.url]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: KFP API at") and "404" in err and "\n" not in err


@pytest.mark.parametrize("value", ["0", "11", "-1"])
def test_schedule_refuses_max_concurrency_outside_1_to_10_before_anything_is_sent(
    stub: KfpStub, package: Path, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["schedule", "dataops", "--cron", "0 3 * * *", "--max-concurrency", value]
    code = cli([*argv, "--host", stub.url, "--package", str(package)])
    assert code == 2
    err = capsys.readouterr().err
    assert f"--max-concurrency {value}: the KFP API server takes 1 to 10 runs at once" in err
    assert stub.requests == []  # not even the health probe


def test_schedule_sends_max_concurrency_10_the_highest_the_server_takes(stub: KfpStub, package: Path) -> None:
    argv = ["schedule", "dataops", "--every", "1h", "--max-concurrency", "10"]
    assert cli([*argv, "--host", stub.url, "--package", str(package)]) == 0
    [create] = stub.calls("POST", f"{API}/recurringruns")
    assert create.json["max_concurrency"] == "10"


def test_kfp_stand_in_answers_400_for_max_concurrency_11_as_the_api_server_does(
    stub: KfpStub, package: Path
) -> None:
    # Past our own check, straight through kfp.Client: the stand-in refuses like the server.
    conn = kfp_client.Connection.resolve(host=stub.url)
    client = conn.client()
    experiment_id = client.create_experiment(name="e").experiment_id
    with pytest.raises(kfp_client.ClusterError) as refused, kfp_client.api_errors(stub.url):
        client.create_recurring_run(
            experiment_id=experiment_id,
            job_name="too many",
            interval_second="3600",
            max_concurrency="11",
            pipeline_package_path=str(package),
        )
    assert "HTTP 400" in str(refused.value)
    assert "must be at least 1 and at most 10. Received 11" in str(refused.value)
    assert stub.recurring == {}


def test_submit_types_params_by_the_pipelines_declared_parameters(
    stub: KfpStub, continual_package: Path
) -> None:
    params = ["workers=[0,1,2]", "margin=0.01", 'policy_json={"margin": 2}', "experiment=42"]
    argv = ["submit", "continual", "--host", stub.url, "--package", str(continual_package)]
    assert cli([*argv, *(x for p in params for x in ("--param", p))]) == 0
    [create] = stub.calls("POST", f"{API}/runs")
    assert create.json["runtime_config"]["parameters"] == {
        "workers": [0, 1, 2],  # LIST: JSON
        "margin": 0.01,  # NUMBER_DOUBLE: JSON
        "policy_json": '{"margin": 2}',  # STRING: the text as given, JSON or not
        "experiment": "42",
    }


def test_submit_refuses_a_loop_item_the_driver_would_refuse_and_sends_nothing(
    stub: KfpStub, continual_package: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["submit", "continual", "--host", stub.url, "--package", str(continual_package)]
    assert cli([*argv, "--param", 'workers=[0,"zero"]']) == 2
    err = capsys.readouterr().err
    assert "the KFP backend would refuse this run (1 problem; nothing was sent" in err
    # The iteration driver refuses the item for the loop's NUMBER_INTEGER item input.
    assert (
        'task for-loop-1 ("for-loop-1"), loop item pipelinechannel--workers-loop-item: type mismatch' in err
    )
    assert 'string "zero" (item 1 of list [0, "zero"], run parameter workers) reaches it' in err
    assert stub.requests == []
    # A parameter the pipeline does not declare: the API server's own rule.
    assert cli([*argv, "--param", "trials=3"]) == 2
    assert "parameter(s) provided are not required by pipeline: trials" in capsys.readouterr().err
    # --no-check sends it anyway (the server would take it; the run would fail at optimize).
    assert cli([*argv, "--param", 'workers=[0,"zero"]', "--no-check"]) == 0
    [create] = stub.calls("POST", f"{API}/runs")
    assert create.json["runtime_config"]["parameters"] == {"workers": [0, "zero"]}


def test_schedule_rejects_a_bad_cron_before_calling_the_server(
    stub: KfpStub, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli(["schedule", "dataops", "--cron", "0 24 * * *", "--host", stub.url])
    assert code == 2
    assert "cron hour field: 24 is out of range 0-23" in capsys.readouterr().err
    assert stub.requests == []


@pytest.mark.parametrize(
    "argv, message",
    [
        (["schedule", "dataops"], "exactly one of --cron EXPR or --every DURATION"),
        (["schedule", "enable"], "schedule enable needs exactly one ID"),
        (["schedule", "list", "extra"], "schedule list takes no argument"),
        (["schedule", "list", "--cron", "0 3 * * *"], "--cron only applies to schedule create"),
        (["schedule", "dataops", "--cron", "0 3 * * *", "--every", "6h"], "not allowed with argument"),
    ],
)
def test_schedule_usage_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli([*argv, "--host", "http://127.0.0.1:9"])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "given, expected",
    [
        ("0 3 * * *", "0 0 3 * * *"),
        ("*/15 * * * *", "0 */15 * * * *"),
        ("30 2 * * MON-FRI", "0 30 2 * * MON-FRI"),
        ("0 0 1 JAN,JUL ?", "0 0 0 1 JAN,JUL ?"),
        ("  5   4 * * 0 ", "0 5 4 * * 0"),
        ("15 0 3 * * *", "15 0 3 * * *"),  # already six fields
        ("@daily", "0 0 0 * * *"),
    ],
)
def test_to_kfp_cron(given: str, expected: str) -> None:
    assert kfp_client.to_kfp_cron(given) == expected


@pytest.mark.parametrize(
    "given, message",
    [
        ("0 3 * *", "has 4 fields; expected 5"),
        ("60 3 * * *", "minute field: 60 is out of range 0-59"),
        ("0 3 0 * *", "day of month field: 0 is out of range 1-31"),
        ("0 3 * 13 *", "month field: 13 is out of range 1-12"),
        ("0 3 * * 7", "day of week field: 7 is out of range 0-6"),
        ("0 3 * * FOO", "day of week field: 'FOO' is not a number"),
        ("*/0 * * * *", "step '0' must be a positive number"),
        ("0 ? * * *", "'?' is only allowed for day of month/week"),
        ("0 5-2 * * *", "range '5-2' runs backwards"),
        ("", "has 0 fields"),
    ],
)
def test_to_kfp_cron_errors_name_the_field(given: str, message: str) -> None:
    with pytest.raises(kfp_client.UsageError, match=re.escape(message)):
        kfp_client.to_kfp_cron(given)


@pytest.mark.parametrize(
    "given, seconds", [("6h", 21600), ("30m", 1800), ("1d", 86400), ("1h30m", 5400), ("90", 90), ("45s", 45)]
)
def test_parse_interval(given: str, seconds: int) -> None:
    assert kfp_client.parse_interval(given) == seconds


@pytest.mark.parametrize("given", ["6x", "h", "0m", "-5m", "6h 30m", ""])
def test_parse_interval_rejects(given: str) -> None:
    with pytest.raises(kfp_client.UsageError):
        kfp_client.parse_interval(given)


# --------------------------------------------------------------------------- runs, auth, errors


def test_runs_against_local_kfp_rest_stub_prints_a_table(
    stub: KfpStub, package: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conn = kfp_client.Connection.resolve(host=stub.url)
    first = kfp_client.submit("dataops", package, conn, run_name="first", log=lambda s: None)
    stub.runs[first.run_id]["state"] = "SUCCEEDED"
    assert cli(["runs", "--host", stub.url, "--limit", "5"]) == 0
    [listed] = stub.calls("GET", f"{API}/runs")
    assert listed.query["page_size"] == ["5"] and listed.query["sort_by"] == ["created_at desc"]
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "NAME", "STATE", "CREATED", "FINISHED"]
    assert first.run_id in lines[1] and "first" in lines[1] and "SUCCEEDED" in lines[1]


def test_token_file_against_local_kfp_rest_stub_sends_a_bearer_header(
    stub: KfpStub, package: Path, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("sa-token-xyz\n")
    stub.required_token = "sa-token-xyz"
    code = cli(
        ["submit", "dataops", "--host", stub.url, "--token-file", str(token_file), "--package", str(package)]
    )
    assert code == 0
    assert {r.header("Authorization") for r in stub.requests} == {"Bearer sa-token-xyz"}
    assert stub.calls("POST", f"{API}/runs")


def test_token_file_against_local_kfp_rest_stub_is_read_again_after_rotation(
    stub: KfpStub, package: Path, tmp_path: Path
) -> None:
    # A projected service-account token (the watcher's Deployment) is rotated by the kubelet.
    token_file = tmp_path / "token"
    token_file.write_text("first-token")
    conn = kfp_client.Connection.resolve(host=stub.url, token_file=str(token_file))
    stub.required_token = "first-token"
    kfp_client.submit("dataops", package, conn, log=lambda _: None)
    token_file.write_text("rotated-token")
    stub.required_token = "rotated-token"
    kfp_client.submit("dataops", package, conn, log=lambda _: None)
    assert len(stub.calls("POST", f"{API}/runs")) == 2
    assert "rotated-token" not in repr(conn) and "first-token" not in repr(conn)


def test_cookies_against_local_kfp_rest_stub_send_a_cookie_header(stub: KfpStub, package: Path) -> None:
    code = cli(
        [
            *("submit", "dataops", "--host", stub.url),
            *("--cookies", "authservice_session=abc123", "--package", str(package)),
        ]
    )
    assert code == 0
    assert {r.header("Cookie") for r in stub.requests} == {"authservice_session=abc123"}
    assert {r.header("Authorization") for r in stub.requests} == {None}


def test_host_and_token_from_the_environment(
    stub: KfpStub, package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KFP_HOST", stub.url)
    monkeypatch.setenv("KFP_TOKEN", "env-token-1")
    assert cli(["submit", "dataops", "--package", str(package)]) == 0
    assert {r.header("Authorization") for r in stub.requests} == {"Bearer env-token-1"}


def test_refused_credentials_are_one_line_exit_2(
    stub: KfpStub, package: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stub.required_token = "the-right-one"
    code = cli(["submit", "dataops", "--host", stub.url, "--token", "wrong", "--package", str(package)])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "refused the credentials (HTTP 401)" in err and stub.url in err
    assert len(stub.requests) == 1  # the probe only; nothing submitted


def test_a_login_redirect_is_one_line_exit_2(stub: KfpStub, capsys: pytest.CaptureFixture[str]) -> None:
    stub.login_redirect = True
    assert cli(["runs", "--host", stub.url]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: Kubeflow Pipelines at {stub.url} redirected to /dex/auth?client_id=kubeflow "
        "(a login page?): pass --cookies or --token\n"
    )


def test_upload_still_idempotent_when_the_server_cannot_filter_versions(stub: KfpStub, package: Path) -> None:
    stub.versions_filter_unsupported = True
    conn = kfp_client.Connection.resolve(host=stub.url)
    first = kfp_client.upload("dataops", package, conn, version="1.0.0-aaaa111")
    again = kfp_client.upload("dataops", package, conn, version="1.0.0-aaaa111")
    assert first.uploaded and not again.uploaded
    assert len(stub.calls("POST", f"{API}/pipelines/upload_version")) == 1
    unfiltered = [r for r in stub.calls("GET", rf"{API}/pipelines/[^/]+/versions") if "filter" not in r.query]
    assert unfiltered  # it fell back to scanning the versions


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("command", [["runs"], ["upload", "dataops"], ["schedule", "list"]])
def test_unreachable_host_is_one_line_naming_the_host_exit_2(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    host = f"http://127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    assert cli([*command, "--host", host]) == 2
    assert time.monotonic() - started < 10
    captured = capsys.readouterr()
    assert (
        captured.err
        == f"error: cannot reach Kubeflow Pipelines at {host} (connection refused or name not resolved)\n"
    )


def test_missing_host_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["runs"]) == 2
    assert "no KFP host: pass --host URL or set KFP_HOST" in capsys.readouterr().err


def test_unknown_pipeline_is_a_clear_error(stub: KfpStub, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["submit", "nosuch", "--host", stub.url]) == 2
    assert "unknown pipeline 'nosuch'; choose from dataops" in capsys.readouterr().err


def test_connection_repr_hides_secrets() -> None:
    conn = kfp_client.Connection.resolve(host="http://h:1", token="s3cret-token")
    assert "s3cret" not in repr(conn)
    with pytest.raises(kfp_client.UsageError, match="one of a token, a token file or cookies"):
        kfp_client.Connection.resolve(host="http://h:1", token="a", cookies="b=c")
    with pytest.raises(kfp_client.UsageError, match="must start with http"):
        kfp_client.Connection.resolve(host="localhost:8080")


# --------------------------------------------------------------------------- backfill


def backfill(argv: list[str]) -> int:
    """``python -m pipelines backfill ...`` as the CLI parses it."""
    from pipelines.triggers.backfill import add_backfill_command

    parser = argparse.ArgumentParser(prog="python -m pipelines")
    add_backfill_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


@pytest.fixture(scope="module")
def continual_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pipelines.compile import compile_all

    [path] = compile_all(tmp_path_factory.mktemp("compiled"), ["continual"])
    return path


def _backfill_args(stub: KfpStub, package: Path, *extra: str) -> list[str]:
    return [
        "backfill",
        "continual",
        "--host",
        stub.url,
        "--package",
        str(package),
        "--start",
        "2026-11-01",
        "--end",
        "2026-11-03T12:00:00Z",
        "--poll-interval",
        "0.01",
        *extra,
    ]


def test_backfill_against_local_kfp_rest_stub_starts_one_run_per_day_in_order(
    stub: KfpStub, continual_package: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stub.run_states = ["SUCCEEDED"]
    code = backfill(_backfill_args(stub, continual_package, "--param", "margin=0.01", "--json"))
    assert code == 0, capsys.readouterr().err
    bodies = [r.json for r in stub.calls("POST", f"{API}/runs")]
    expected = ["2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z"]
    assert [b["runtime_config"]["parameters"]["as_of"] for b in bodies] == expected
    assert [b["display_name"] for b in bodies] == [f"continual as_of {t}" for t in expected]
    assert all(b["runtime_config"]["parameters"]["margin"] == 0.01 for b in bodies)
    # each run was followed to its end before the next one started
    kinds = [(r.method, r.path.rsplit("/", 1)[-1]) for r in stub.requests if r.path.startswith(f"{API}/runs")]
    starts = [i for i, k in enumerate(kinds) if k == ("POST", "runs")]
    assert all(kinds[i + 1][0] == "GET" and kinds[i + 1][1].startswith("run-") for i in starts)
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [(r["as_of"], r["action"], r["state"]) for r in summary["runs"]] == [
        (t, "submitted", "SUCCEEDED") for t in expected
    ]


def test_backfill_against_local_kfp_rest_stub_stops_at_a_failure_and_resumes_there(
    stub: KfpStub, continual_package: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stub.run_states = ["SUCCEEDED", "FAILED"]
    assert backfill(_backfill_args(stub, continual_package)) == 1
    err = capsys.readouterr().err
    assert "backfill stopped at as_of 2026-11-02T00:00:00Z (1 of 3 done)" in err and "ended FAILED" in err
    assert len(stub.calls("POST", f"{API}/runs")) == 2  # the third day was not started

    stub.run_states = ["SUCCEEDED"]
    assert backfill(_backfill_args(stub, continual_package)) == 0
    out = capsys.readouterr().out
    assert "[1/3] as_of 2026-11-01T00:00:00Z: skipped, run run-" in out and "is SUCCEEDED" in out
    names = [r.json["display_name"] for r in stub.calls("POST", f"{API}/runs")]
    # the failed day is run again, the succeeded one is not
    assert names == [
        "continual as_of 2026-11-01T00:00:00Z",
        "continual as_of 2026-11-02T00:00:00Z",
        "continual as_of 2026-11-02T00:00:00Z",
        "continual as_of 2026-11-03T00:00:00Z",
    ]

    # --rerun starts all three again
    assert backfill(_backfill_args(stub, continual_package, "--rerun")) == 0
    assert len(stub.calls("POST", f"{API}/runs")) == 7


def test_backfill_against_local_kfp_rest_stub_no_wait_submits_all_and_skips_running(
    stub: KfpStub, continual_package: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert backfill(_backfill_args(stub, continual_package, "--no-wait")) == 0
    assert len(stub.calls("POST", f"{API}/runs")) == 3
    assert not stub.calls("GET", rf"{API}/runs/run-\d+")  # nothing followed
    # a second --no-wait finds the three still PENDING and starts nothing
    assert backfill(_backfill_args(stub, continual_package, "--no-wait")) == 0
    assert len(stub.calls("POST", f"{API}/runs")) == 3
    assert capsys.readouterr().out.count("skipped, run run-") == 3


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--start", "2026-11-05", "--end", "2026-11-01"], "--end 2026-11-01T00:00:00Z is before --start"),
        (["--start", "someday", "--end", "2026-11-01"], "--start='someday' is not an ISO 8601"),
        (["--start", "2026-01-01", "--end", "2026-12-31", "--every", "1h"], "more than --max-runs 100"),
        (["--start", "2026-11-01", "--end", "2026-11-02", "--every", "0d"], "must be longer than zero"),
        (
            ["--start", "2026-11-01", "--end", "2026-11-02", "--param", "as_of=x"],
            "conflicts with the backfill",
        ),
    ],
)
def test_backfill_rejects_bad_ranges_before_starting_anything(
    stub: KfpStub, continual_package: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    args = ["backfill", "continual", "--host", stub.url, "--package", str(continual_package), *argv]
    assert backfill(args) == 2
    assert message in capsys.readouterr().err
    assert not stub.calls("POST", f"{API}/runs")


def test_backfill_refuses_a_pipeline_without_as_of(
    stub: KfpStub, package: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["backfill", "dataops", "--host", stub.url, "--package", str(package)]
    assert backfill([*args, "--start", "2026-11-01", "--end", "2026-11-02"]) == 2
    assert "pipeline 'dataops' has no as_of parameter" in capsys.readouterr().err
    assert not stub.calls("POST", f"{API}/runs")


def test_local_backfill_refuses_an_unreadable_state_instead_of_starting_over(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipelines.triggers.backfill import STATE_FILE

    (tmp_path / STATE_FILE).write_text("{not json")
    args = [
        "backfill",
        "continual",
        "--start",
        "2026-11-01",
        "--end",
        "2026-11-02",
        "--stores",
        str(tmp_path),
    ]
    assert backfill(args) == 2
    assert f"state file {tmp_path / STATE_FILE} is unreadable" in capsys.readouterr().err
    (tmp_path / STATE_FILE).write_text('{"format": 1, "done": []}')
    assert backfill(args) == 2
    assert "is not a backfill state (format 1)" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # nothing ran


# --------------------------------------------------------------------------- watch --host


def test_watch_on_a_kfp_host_submits_once_per_change_and_again_for_a_source_that_went_back(
    stub: KfpStub, package: Path, tmp_path: Path
) -> None:
    """``watch --host`` against the stand-in: A, A, B, A submits A, B, A (named by version)."""
    from pipelines.triggers import watch
    from tagifai.sample import write_sample

    source, state = tmp_path / "source", tmp_path / "state.json"
    argv = ["--source", str(source), "--host", stub.url, "--package", str(package), "--pipeline", "dataops"]
    argv += ["--state", str(state), "--settle", "0", "--once"]
    for rows, seed in ((40, 1), (40, 1), (45, 2), (40, 1)):
        write_sample(source, rows=rows, seed=seed)
        assert watch.main(argv) == 0
    names = [r.json["display_name"] for r in stub.calls("POST", f"{API}/runs")]
    data = json.loads(state.read_text())
    a, b = data["runs"][0]["data_version"], data["runs"][1]["data_version"]
    assert names == [f"dataops data {a}", f"dataops data {b}", f"dataops data {a}"]
    assert [r["status"] for r in data["runs"]] == ["started"] * 3
    assert data["published"]["data_version"] == a and data["published"]["run"] == list(stub.runs)[-1]
