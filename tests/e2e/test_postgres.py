"""`run all` the way the cluster is set up: MLflow is a real `mlflow server` whose backend store is
PostgreSQL, and the Optuna workers share a study in PostgreSQL (the ``postgres_server`` fixture,
databases and roles made by the manifests' init script). Neither URL carries a password: the
server and the pipeline's tasks get theirs as PGPASSWORD, as the pods get them from Secrets."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tagifai import tracking

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
TRIALS = 2  # one per worker: enough to share a study, little CI time


def wait_for_health(
    url: str, alive: Callable[[], bool], log: Callable[[], str], timeout: float = 180
) -> None:
    """Poll `url`/health until the server answers (its first start creates MLflow's schema);
    fail with the end of its log when it exits or does not answer in time."""
    deadline = time.monotonic() + timeout
    while True:
        if not alive():
            raise AssertionError(f"mlflow server exited:\n{log()[-4000:]}")
        try:
            if requests.get(f"{url}/health", timeout=2).ok:
                return
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"mlflow server not healthy in {timeout:.0f} s:\n{log()[-4000:]}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def mlflow_server(postgres_server, free_port, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server` from the venv on 127.0.0.1, backend store in PostgreSQL, artifacts served
    from a temp folder (as the Deployment does); stopped after the module."""
    tmp = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    backend = postgres_server.url("mlflow")
    log = (tmp / "server.log").open("w")
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--host=127.0.0.1",
            f"--port={port}",
            "--workers=1",
            f"--backend-store-uri={backend}",
            "--serve-artifacts",
            f"--artifacts-destination={tmp / 'artifacts'}",
        ],
        env={**os.environ, **postgres_server.env("mlflow"), "HOME": str(tmp)},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, lambda: server.poll() is None, lambda: (tmp / "server.log").read_text())
        yield url
    finally:
        # The whole group: the server's workers and its job consumers. The data is thrown
        # away, so the consumers' slow drain (~30 s) is not waited for.
        os.killpg(server.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)  # whatever of the group is left
        server.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def run_on_postgres(
    mlflow_server: str, postgres_server, madewithml_dir: Path, pipelines_cli, tmp_path_factory
) -> dict[str, Any]:
    stores = tmp_path_factory.mktemp("stores-pg")
    # The server is the session's: other tests' studies may be there already.
    [(has_schema,)] = postgres_server.query("optuna", "select to_regclass('studies') is not null")
    studies_before = (
        {name for (name,) in postgres_server.query("optuna", "select study_name from studies")}
        if has_schema
        else set()
    )
    env = {
        "MLFLOW_TRACKING_URI": mlflow_server,
        "OPTUNA_STORAGE": postgres_server.url("optuna"),
        **postgres_server.env("optuna"),  # what the optimize and study_summary pods get
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        summary = pipelines_cli(
            "run", "all", "--local", "--source", str(madewithml_dir), "--trials", str(TRIALS), stores=stores
        )
    return {"summary": summary, "stores": stores, "studies_before": studies_before}


def test_mlops_registers_its_model_in_the_server_whose_store_is_postgresql(
    run_on_postgres: dict[str, Any], mlflow_server: str, postgres_server
) -> None:
    s = run_on_postgres["summary"]
    assert s["status"] == "SUCCEEDED" and s["tracking_uri"] == mlflow_server
    assert s["model_version"] == "1" and s["champion_version"] == "1"
    [version] = tracking.list_versions(mlflow_server)
    assert str(version.version) == "1" and version.run_id
    champion = tracking.get_alias(mlflow_server)
    assert champion is not None and champion.run_id == version.run_id
    # The registry is rows of the mlflow database: the server wrote them there.
    rows = postgres_server.query("mlflow", "select name, version, run_id from model_versions")
    assert rows == [(tracking.MODEL_NAME, 1, version.run_id)]
    [(alias,)] = postgres_server.query("mlflow", "select version from registered_model_aliases")
    assert alias == 1
    # Nothing of either store went to files under stores/.
    stores: Path = run_on_postgres["stores"]
    assert not (stores / "mlflow.db").exists() and not (stores / "optuna.db").exists()


def test_the_optuna_workers_shared_one_study_in_postgresql(
    run_on_postgres: dict[str, Any], postgres_server
) -> None:
    s = run_on_postgres["summary"]
    assert sorted(t["name"] for t in s["tasks"] if t["name"].startswith("optimize")) == [
        "optimize",
        "optimize #2",
    ]
    rows = postgres_server.query(
        "optuna",
        "select s.study_name, count(*) from studies s join trials t using (study_id) "
        "where t.state in ('COMPLETE', 'PRUNED') group by s.study_name",
    )
    mine = [(name, n) for name, n in rows if name not in run_on_postgres["studies_before"]]
    assert len(mine) == 1 and mine[0][1] == TRIALS, rows  # one study of this run, every trial


@pytest.mark.docker
def test_the_mlflow_server_image_runs_the_deployments_command_on_postgresql(
    postgres_server, free_port, docker_engine, tmp_path: Path
) -> None:
    """The image of manifests/mlflow-server, built here, with the Deployment's args, user,
    read-only root and environment; only the database address is the tests' server."""
    import yaml
    from sqlalchemy.engine import make_url

    kubectl = Path(sys.executable).parent / "kubectl"
    rendered = subprocess.run(
        [str(kubectl), "kustomize", str(ROOT / "manifests" / "overlays" / "kind")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    [deployment] = [
        d
        for d in yaml.safe_load_all(rendered)
        if d and (d["kind"], d["metadata"]["name"]) == ("Deployment", "mlflow")
    ]
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    backend = make_url(postgres_server.url("mlflow"))
    port = free_port()
    args = []
    for arg in container["args"]:
        flag = arg.split("=", 1)[0]
        if flag == "--backend-store-uri":
            manifest_url = make_url(arg.split("=", 1)[1])
            assert (manifest_url.username, manifest_url.database) == (backend.username, backend.database)
            arg = f"{flag}={backend.render_as_string()}"
        elif flag == "--host":
            arg = "--host=127.0.0.1"
        elif flag == "--port":
            arg = f"--port={port}"
        args.append(arg)
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    env.update(postgres_server.env("mlflow"))  # what the Secret gives the pod as PGPASSWORD
    user = f"{pod['securityContext']['runAsUser']}:{pod['securityContext']['runAsGroup']}"
    tag = "kfp-mlops-test/mlflow-server:postgres-check"  # a tag of this test's own
    build = subprocess.run(
        ["docker", "build", "-q", "-f", "manifests/mlflow-server/Dockerfile", "-t", tag, "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    name = f"kfp-mlops-mlflow-check-{port}"
    run = [
        *("docker", "run", "-d", "--name", name, "--network", "host", "--user", user, "--read-only"),
        *("--tmpfs", "/tmp", "--tmpfs", f"/mlflow:uid={pod['securityContext']['runAsUser']}"),
        *(f"--env={k}={v}" for k, v in env.items() if k != "PGPASSWORD"),
        "--env=PGPASSWORD",  # from this process's environment: never on a command line
        tag,
        *args,
    ]
    started = subprocess.run(run, capture_output=True, text=True, env={**os.environ, **env}, timeout=60)
    try:
        assert started.returncode == 0, started.stderr

        def running() -> bool:
            inspect = ["docker", "inspect", "-f", "{{.State.Running}}", name]
            return subprocess.run(inspect, capture_output=True, text=True).stdout.strip() == "true"

        def logs() -> str:
            return subprocess.run(["docker", "logs", name], capture_output=True, text=True).stderr

        url = f"http://127.0.0.1:{port}"
        wait_for_health(url, running, logs)
        created = requests.post(
            f"{url}/api/2.0/mlflow/registered-models/create", json={"name": "image-check"}, timeout=30
        )
        assert created.ok, created.text
        rows = postgres_server.query(
            "mlflow", "select name from registered_models where name = 'image-check'"
        )
        assert rows == [("image-check",)]
    finally:
        # The image stays, so a rerun builds from the layer cache in seconds.
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
