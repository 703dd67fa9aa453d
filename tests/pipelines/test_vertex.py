"""The Vertex AI target: compiled YAML that google-cloud-aiplatform loads offline, the
conformance check with Vertex AI's rules, and ``submit --target vertex`` against a local
HTTP stand-in of the Vertex AI REST API."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from pipelines import conformance, vertex
from pipelines.__main__ import main
from pipelines.compile import compile_all
from pipelines.vertex import VertexSettings, VertexSettingsError

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "kfp-mlops-test"
SETTINGS = VertexSettings.resolve(
    project=PROJECT,
    region="europe-west4",
    tracking_uri="https://mlflow.internal.example.org",
    optuna_storage="postgresql://optuna@10.20.0.3:5432/optuna",
    env={},
)
VERTEX_OPTIONS = [
    "--target=vertex",
    f"--project={PROJECT}",
    "--region=europe-west4",
    "--tracking-uri=https://mlflow.internal.example.org",
    "--optuna-storage=postgresql://optuna@10.20.0.3:5432/optuna",
]
# Values a developer may have in the environment while compiling: none may reach the YAML.
FAKE_SECRETS = {
    "PGPASSWORD": "pg-Secret-4f1e",
    "MLFLOW_TRACKING_PASSWORD": "mlflow-Secret-77a2",
    "AIRBYTE_CLIENT_SECRET": "airbyte-Secret-9c0d",
}


class NetworkUsed(AssertionError):
    """A connection or name lookup left the machine's loopback."""


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Fail any connect or name lookup that is not to loopback; the list records the attempts."""
    attempts: list[Any] = []
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def local(host: Any) -> bool:
        return str(host) in ("localhost", "::1") or str(host).startswith("127.")

    def connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not local(address[0]):
            attempts.append(address)
            raise NetworkUsed(f"a connection to {address} was attempted")
        return real_connect(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not local(host):
            attempts.append(host)
            raise NetworkUsed(f"a name lookup of {host} was attempted")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    yield attempts


@pytest.fixture(scope="module")
def vertex_yaml(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every pipeline compiled with ``--target vertex``, with fake credentials in the environment."""
    out = tmp_path_factory.mktemp("vertex")
    env = {**os.environ, **FAKE_SECRETS}
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines", "compile", "--out", str(out), *VERTEX_OPTIONS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    paths = {Path(line).stem: Path(line) for line in proc.stdout.split()}
    assert sorted(paths) == ["continual", "dataops", "mlops"]
    return paths


def test_every_vertex_yaml_loads_in_aiplatform_pipelinejob_offline_with_one_document_and_no_pvc_or_kubernetes_secret(
    vertex_yaml: dict[str, Path], loopback_only: list[Any]
) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform

    with pytest.raises(NetworkUsed):  # the guard is on: nothing below can reach the network unseen
        socket.create_connection(("aiplatform.googleapis.com", 443), timeout=1)
    loopback_only.clear()
    for name, path in vertex_yaml.items():
        text = path.read_text()
        assert len([doc for doc in yaml.safe_load_all(text) if doc is not None]) == 1, name
        for kubernetes_only in (
            "platforms",
            "kubernetes",
            "pvcMount",
            "secretAsEnv",
            "secretAsVolume",
            "/mnt/stores",
        ):
            assert kubernetes_only not in text, (name, kubernetes_only)
        job = aiplatform.PipelineJob(
            display_name=f"{name} test",
            template_path=str(path),
            project=PROJECT,
            location="europe-west4",
            pipeline_root=f"gs://{PROJECT}-pipelines/root",
            credentials=AnonymousCredentials(),
        )
        resource = job._gca_resource
        assert job.job_id.startswith(f"{name}-")
        assert resource.runtime_config.gcs_output_directory == f"gs://{PROJECT}-pipelines/root"
        assert resource.pipeline_spec["pipelineInfo"]["name"] == name
        executors = resource.pipeline_spec["deploymentSpec"]["executors"]
        images = {e["container"]["image"] for e in executors.values()}
        assert images and all(
            i.startswith(f"europe-west4-docker.pkg.dev/{PROJECT}/kfp-mlops/kfp-mlops-") for i in images
        )
    assert loopback_only == []  # not one connection or name lookup


def test_vertex_defaults_are_bigquery_mlflow_url_optuna_rdb_and_airbyte_server(
    vertex_yaml: dict[str, Path],
) -> None:
    def defaults(name: str) -> dict[str, Any]:
        spec = yaml.safe_load(vertex_yaml[name].read_text())
        params = spec["root"]["inputDefinitions"]["parameters"]
        return {k: v.get("defaultValue") for k, v in params.items()}

    dataops, mlops, continual = defaults("dataops"), defaults("mlops"), defaults("continual")
    assert dataops["warehouse"] == mlops["warehouse"] == continual["warehouse"] == f"bigquery://{PROJECT}"
    assert (dataops["mode"], dataops["source"]) == ("server", "")
    for params in (mlops, continual):
        assert params["tracking_uri"] == "https://mlflow.internal.example.org"
        assert params["optuna_storage"] == "postgresql://optuna@10.20.0.3:5432/optuna"
    # The nested train-and-promote pipeline got the same defaults.
    nested = yaml.safe_load(vertex_yaml["mlops"].read_text())["components"]["comp-train-and-promote"]
    assert nested["inputDefinitions"]["parameters"]["optuna_storage"]["defaultValue"].startswith(
        "postgresql://optuna@10"
    )


def test_vertex_yaml_names_secret_manager_secrets_per_step_and_holds_no_secret_value(
    vertex_yaml: dict[str, Path],
) -> None:
    for name, path in vertex_yaml.items():
        text = path.read_text()
        for value in FAKE_SECRETS.values():
            assert value not in text, (name, value)
    spec = yaml.safe_load(vertex_yaml["mlops"].read_text())
    secrets = {
        label: json.loads(
            next(e["value"] for e in ex["container"].get("env", []) if e["name"] == "KFP_MLOPS_SECRETS")
        )
        for label, ex in spec["deploymentSpec"]["executors"].items()
        if any(e["name"] == "KFP_MLOPS_SECRETS" for e in ex["container"].get("env", []))
    }
    resource = f"projects/{PROJECT}/secrets/kfp-mlops-%s/versions/latest"
    assert secrets["exec-optimize"] == {
        "MLFLOW_TRACKING_PASSWORD": resource % "mlflow-tracking-password",
        "MLFLOW_TRACKING_USERNAME": resource % "mlflow-tracking-username",
        "PGPASSWORD": resource % "pgpassword",
    }
    assert set(secrets["exec-train"]) == {"MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_USERNAME"}
    # BigQuery is the job's service account: the warehouse steps get no secret at all.
    assert "exec-extract" not in secrets and "exec-ge-validate" not in secrets
    dataops = yaml.safe_load(vertex_yaml["dataops"].read_text())["deploymentSpec"]["executors"]
    airbyte = json.loads(dataops["exec-airbyte-sync"]["container"]["env"][-1]["value"])
    assert set(airbyte) == {
        "AIRBYTE_CLIENT_ID",
        "AIRBYTE_CLIENT_SECRET",
        "AIRBYTE_USERNAME",
        "AIRBYTE_PASSWORD",
    }


def test_vertex_yaml_passes_the_conformance_check_and_the_kfp_yaml_fails_it_for_vertex(
    vertex_yaml: dict[str, Path], tmp_path: Path
) -> None:
    for path in vertex_yaml.values():
        assert conformance.check(path, target="vertex") == []
        assert conformance.check(path) == []  # the KFP backend's rules hold for the same spec
    kfp_yaml = compile_all(tmp_path, ["mlops"])[0]
    lines = [p.line() for p in conformance.check(kfp_yaml, target="vertex")]
    assert any("2 YAML documents" in line for line in lines), lines
    assert any("platforms.kubernetes" in line for line in lines), lines
    assert main(["check", str(vertex_yaml["dataops"]), "--target", "vertex"]) == 0
    assert main(["check", str(kfp_yaml), "--target", "vertex"]) == 1


def test_vertex_check_reports_a_compiled_credential_a_password_url_and_a_bad_job_name() -> None:
    pipeline = vertex.build("mlops", SETTINGS)
    from google.protobuf import json_format

    spec = json_format.MessageToDict(pipeline.pipeline_spec)
    spec["pipelineInfo"]["name"] = "9 lives"
    spec["root"]["inputDefinitions"]["parameters"]["optuna_storage"]["defaultValue"] = (
        "postgresql://optuna:hunter2@db/optuna"
    )
    spec["deploymentSpec"]["executors"]["exec-train"]["container"]["env"] = [
        {"name": "PGPASSWORD", "value": "x"}
    ]
    lines = [p.line() for p in conformance.check(spec, target="vertex")]
    assert len(lines) == 3, lines
    assert (
        "job id '9-lives-20260101000000'" in lines[0]
        and "[google-cloud-aiplatform pipeline_jobs.py" in lines[0]
    )
    assert "exec-train env: env var PGPASSWORD is compiled into the YAML" in lines[1]
    assert "optuna_storage: the default is a URL with a password" in lines[2]


def test_vertex_settings_name_every_missing_or_malformed_value(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(VertexSettingsError) as missing:
        VertexSettings.resolve(env={})
    assert str(missing.value).count("is not set") == 3
    for option in ("--project or $GOOGLE_CLOUD_PROJECT", "--tracking-uri", "--optuna-storage"):
        assert option in str(missing.value)
    with pytest.raises(VertexSettingsError) as bad:
        VertexSettings.resolve("My_Project", "moon", "sqlite:///m.db", "sqlite:///o.db", env={})
    message = str(bad.value)
    assert "'My_Project' is not a project id" in message and "'moon' is not a region" in message
    assert "a Vertex task has no local store" in message and "is not a PostgreSQL or MySQL URL" in message
    env = {
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "KFP_MLOPS_VERTEX_TRACKING_URI": "http://mlflow:5000",
        "KFP_MLOPS_VERTEX_OPTUNA_STORAGE": "postgresql://optuna@db/optuna",
        "IMAGE_REGISTRY": "eu.gcr.io/team/",
    }
    from_env = VertexSettings.resolve(env=env)
    assert (from_env.region, from_env.registry, from_env.warehouse) == (
        "us-central1",
        "eu.gcr.io/team",
        f"bigquery://{PROJECT}",
    )
    assert main(["compile", "--target", "vertex", "--out", "/nonexistent/never"]) == 2
    assert "the Vertex AI build needs: project" in capsys.readouterr().err


# --------------------------------------------------------------------------- submit: the stand-in


class VertexStandIn(BaseHTTPRequestHandler):
    """A local stand-in of the Vertex AI REST API (v1 ``pipelineJobs``: create, get). It records
    every request; a job moves PENDING, RUNNING, then ``final_state`` on each get."""

    requests: ClassVar[list[tuple[str, str, Any]]] = []
    final_state = "PIPELINE_STATE_SUCCEEDED"
    jobs: ClassVar[dict[str, dict[str, Any]]] = {}
    gets: ClassVar[dict[str, int]] = {}

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
        type(self).requests.append(("GET", self.path, None))
        path = self.path.split("?")[0]
        name = path.removeprefix("/v1/")
        job = type(self).jobs.get(name)
        if job is None:
            self._send(404, {"error": {"code": 404, "message": f"{name} not found", "status": "NOT_FOUND"}})
            return
        count = type(self).gets[name] = type(self).gets.get(name, 0) + 1
        states = ["PIPELINE_STATE_PENDING", "PIPELINE_STATE_RUNNING", type(self).final_state]
        self._send(200, {**job, "state": states[min(count - 1, 2)]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        type(self).requests.append(("POST", self.path, body))
        path, _, query = self.path.partition("?")
        job_id = dict(q.split("=", 1) for q in query.split("&") if "=" in q).get("pipelineJobId", "job")
        name = f"{path.removeprefix('/v1/')}/{job_id}"
        job = {**body, "name": name, "state": "PIPELINE_STATE_PENDING", "createTime": "2026-12-01T00:00:00Z"}
        type(self).jobs[name] = job
        self._send(200, job)


@pytest.fixture
def vertex_api(local_http_server: Any, monkeypatch: pytest.MonkeyPatch) -> type[VertexStandIn]:
    VertexStandIn.requests, VertexStandIn.jobs, VertexStandIn.gets = [], {}, {}
    VertexStandIn.final_state = "PIPELINE_STATE_SUCCEEDED"
    url = local_http_server(VertexStandIn)
    monkeypatch.setenv("KFP_MLOPS_VERTEX_API_ENDPOINT", url)
    return VertexStandIn


def test_submit_target_vertex_creates_the_pipeline_job_on_a_local_stand_in_of_the_vertex_api(
    vertex_api: type[VertexStandIn],
    vertex_yaml: dict[str, Path],
    loopback_only: list[Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["submit", "mlops", "--package", str(vertex_yaml["mlops"]), *VERTEX_OPTIONS]
    argv += ["--pipeline-root", f"gs://{PROJECT}-pipelines/runs", "--param", "workers=[0,1,2]"]
    argv += ["--param", "margin=0.02", "--service-account", f"runner@{PROJECT}.iam.gserviceaccount.com"]
    argv += ["--wait", "--poll-interval", "0.01"]
    assert main(argv) == 0, capsys.readouterr().err

    # One create, then the gets of --wait: no bucket lookup or creation, nothing else.
    creates = [(p, b) for m, p, b in vertex_api.requests if m == "POST"]
    assert len(creates) == 1 and {m for m, _, _ in vertex_api.requests} == {"POST", "GET"}
    assert all(
        p.startswith(f"/v1/projects/{PROJECT}/locations/europe-west4/pipelineJobs")
        for _, p, _ in vertex_api.requests
    )
    path, body = creates[0]
    assert path.startswith(f"/v1/projects/{PROJECT}/locations/europe-west4/pipelineJobs?pipelineJobId=mlops-")
    assert body["serviceAccount"] == f"runner@{PROJECT}.iam.gserviceaccount.com"
    assert body["pipelineSpec"]["pipelineInfo"]["name"] == "mlops"
    runtime = body["runtimeConfig"]
    assert runtime["gcsOutputDirectory"] == f"gs://{PROJECT}-pipelines/runs"
    # Typed by the pipeline's declarations: a list of integers and a number, not text.
    assert runtime["parameterValues"]["workers"] == [0, 1, 2]
    assert runtime["parameterValues"]["margin"] == 0.02
    out = capsys.readouterr().out
    assert "submitted mlops to Vertex AI: pipeline job mlops-" in out and "PIPELINE_STATE_SUCCEEDED" in out
    assert loopback_only == []  # the stand-in was all it talked to


def test_submit_target_vertex_refuses_bad_input_before_sending_and_reports_a_failed_run(
    vertex_api: type[VertexStandIn],
    vertex_yaml: dict[str, Path],
    loopback_only: list[Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = ["submit", "mlops", "--package", str(vertex_yaml["mlops"]), *VERTEX_OPTIONS]
    assert main([*base, "--pipeline-root", "/tmp/root"]) == 2
    assert "Vertex AI writes the run's artifacts under a gs://BUCKET/PATH" in capsys.readouterr().err
    assert main([*base, "--pipeline-root", "gs://b/r", "--param", 'workers=[0,"a"]']) == 2
    assert "the Vertex AI backend would refuse this run" in capsys.readouterr().err
    assert main([*base, "--pipeline-root", "gs://b/r", "--param", "nonsense=1"]) == 2
    assert vertex_api.requests == []  # nothing was sent

    vertex_api.final_state = "PIPELINE_STATE_FAILED"
    assert main([*base, "--pipeline-root", "gs://b/r", "--wait", "--poll-interval", "0.01"]) == 1
    assert "ended PIPELINE_STATE_FAILED" in capsys.readouterr().err
    assert loopback_only == []
