"""Kubernetes wiring (``pipelines.platform``) as it lands in compiled YAML.

A tiny pipeline of trivial components is wired per step, compiled to ``tmp_path`` and
read back: the ``platforms.kubernetes`` section must name the Secrets, keys, env vars,
the stores PVC and the call policy; and secret values present in the compiling
process's environment must appear nowhere in the YAML.
"""

# No `from __future__ import annotations`: kfp reads the component signature at runtime.

from pathlib import Path
from typing import Any

import pytest
import yaml
from kfp import compiler, dsl

from components.catalog import IMAGES, STEPS
from pipelines import platform
from pipelines.settings import CLUSTER_STORES


@dsl.component(base_image="python:3.11-slim")
def touch(name: str) -> str:
    return name


def _compile(tmp_path: Path, steps: list[str]) -> tuple[dict[str, Any], str]:
    @dsl.pipeline(name="wired")
    def wired() -> None:
        for step in steps:
            task = touch(name=step).set_display_name(step)
            platform.wire(task, step)

    path = tmp_path / "wired.yaml"
    compiler.Compiler().compile(wired, str(path))
    text = path.read_text()
    docs = list(yaml.safe_load_all(text))
    assert len(docs) == 2, "expected a pipeline spec followed by a platform spec"
    return {"pipeline": docs[0], "platform": docs[1]}, text


def _executors(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Kubernetes executor config keyed by the step (display name) that uses it."""
    pipe = spec["pipeline"]
    by_executor = spec["platform"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    out = {}
    for task in pipe["root"]["dag"]["tasks"].values():
        label = pipe["components"][task["componentRef"]["name"]]["executorLabel"]
        out[task["taskInfo"]["name"]] = by_executor.get(label, {})
    return out


def _env_from(config: dict[str, Any]) -> dict[str, tuple[str, str, bool]]:
    """env var -> (secret name, secret key, optional)."""
    out = {}
    for item in config.get("secretAsEnv", []):
        name = item["secretNameParameter"]["runtimeValue"]["constant"]
        for pair in item["keyToEnv"]:
            out[pair["envVar"]] = (name, pair["secretKey"], item.get("optional", False))
    return out


def _tasks_by_name(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["taskInfo"]["name"]: t for t in spec["pipeline"]["root"]["dag"]["tasks"].values()}


def test_airbyte_sync_gets_airbyte_and_warehouse_secrets_stores_and_call_policy(tmp_path: Path) -> None:
    spec, _ = _compile(tmp_path, ["airbyte_sync"])
    config = _executors(spec)["airbyte_sync"]

    env = _env_from(config)
    for var in ("AIRBYTE_CLIENT_ID", "AIRBYTE_CLIENT_SECRET", "AIRBYTE_USERNAME", "AIRBYTE_PASSWORD"):
        assert env[var] == ("airbyte-credentials", var, True)
    assert env["GOOGLE_APPLICATION_CREDENTIALS"] == (
        "bigquery-credentials",
        "GOOGLE_APPLICATION_CREDENTIALS",
        True,
    )
    [volume] = config["secretAsVolume"]
    assert volume["secretNameParameter"]["runtimeValue"]["constant"] == "bigquery-credentials"
    assert volume["mountPath"] == "/var/secrets/google"
    assert volume["optional"] is True
    [pvc] = config["pvcMount"]
    assert pvc["pvcNameParameter"]["runtimeValue"]["constant"] == "kfp-mlops-stores"
    assert pvc["mountPath"] == CLUSTER_STORES == "/mnt/stores"
    assert int(config["activeDeadlineSeconds"]) == platform.EXTERNAL_TIMEOUT_S

    retry = _tasks_by_name(spec)["airbyte_sync"]["retryPolicy"]
    assert retry["maxRetryCount"] == platform.EXTERNAL_RETRIES
    assert retry["backoffDuration"] == "20s"
    assert retry["backoffFactor"] == 2.0
    # Argo's window counts from the first attempt: 4 attempts of 2 h plus 20 + 40 + 80 s.
    assert retry["backoffMaxDuration"] == "28940s"


@pytest.mark.parametrize("step", ["ge_validate", "dbt_transform", "extract", "publish"])
def test_warehouse_steps_get_warehouse_credentials_and_stores_only(tmp_path: Path, step: str) -> None:
    spec, _ = _compile(tmp_path, [step])
    config = _executors(spec)[step]
    assert set(_env_from(config)) == {"GOOGLE_APPLICATION_CREDENTIALS"}
    assert [v["mountPath"] for v in config["secretAsVolume"]] == ["/var/secrets/google"]
    assert [p["mountPath"] for p in config["pvcMount"]] == ["/mnt/stores"]
    assert "activeDeadlineSeconds" not in config
    assert "retryPolicy" not in _tasks_by_name(spec)[step]


MLFLOW_STEPS = ["optimize", "study_summary", "train", "evaluate", "promote", "monitor", "compose", "rollback"]
# The steps that open the Optuna storage themselves.
OPTUNA_STEPS = {"optimize", "study_summary"}


@pytest.mark.parametrize("step", MLFLOW_STEPS)
def test_mlflow_steps_get_mlflow_credentials_and_stores_only(tmp_path: Path, step: str) -> None:
    spec, _ = _compile(tmp_path, [step])
    config = _executors(spec)[step]
    optuna = (
        {"PGPASSWORD": ("optuna-storage-credentials", "PGPASSWORD", True)} if step in OPTUNA_STEPS else {}
    )
    assert _env_from(config) == {
        "MLFLOW_TRACKING_USERNAME": ("mlflow-credentials", "MLFLOW_TRACKING_USERNAME", True),
        "MLFLOW_TRACKING_PASSWORD": ("mlflow-credentials", "MLFLOW_TRACKING_PASSWORD", True),
        **optuna,
    }
    assert "secretAsVolume" not in config
    assert [p["pvcNameParameter"]["runtimeValue"]["constant"] for p in config["pvcMount"]] == [
        "kfp-mlops-stores"
    ]


def test_retries_can_be_turned_off_but_the_deadline_stays(tmp_path: Path) -> None:
    @dsl.pipeline(name="no-retries")
    def no_retries() -> None:
        platform.wire(touch(name="x").set_display_name("airbyte_sync"), "airbyte_sync", retries=0)

    path = tmp_path / "no-retries.yaml"
    compiler.Compiler().compile(no_retries, str(path))
    pipe, plat = yaml.safe_load_all(path.read_text())
    [task] = pipe["root"]["dag"]["tasks"].values()
    assert "retryPolicy" not in task
    [config] = plat["platforms"]["kubernetes"]["deploymentSpec"]["executors"].values()
    assert int(config["activeDeadlineSeconds"]) == platform.EXTERNAL_TIMEOUT_S


def test_without_retries_copies_the_pipeline_for_local_runs(tmp_path: Path) -> None:
    @dsl.pipeline(name="retried")
    def retried() -> None:
        platform.wire(touch(name="a"), "airbyte_sync")
        with dsl.ParallelFor([1, 2]):
            platform.wire(touch(name="b"), "airbyte_sync")

    def retry_counts(pipeline: Any) -> list[int]:
        spec = pipeline.pipeline_spec
        dags = [spec.root.dag, *(c.dag for c in spec.components.values() if c.HasField("dag"))]
        return [t.retry_policy.max_retry_count for d in dags for t in d.tasks.values()]

    local = platform.without_retries(retried)
    assert sorted(retry_counts(retried)) == [0, 3, 3]  # the loop's own task, and the two steps
    assert retry_counts(local) == [0, 0, 0]
    # The copy still compiles, with the Kubernetes wiring intact.
    path = tmp_path / "local.yaml"
    compiler.Compiler().compile(local, str(path))
    assert "retryPolicy" not in path.read_text() and "airbyte-credentials" in path.read_text()


def test_every_step_with_an_image_has_a_wiring() -> None:
    assert set(IMAGES) == set(STEPS)
    assert all(platform.wirings(step) for step in STEPS.values())


def test_unknown_step_is_refused_with_the_known_names(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match=r"no step 'trian' is declared.*declared: airbyte_sync"):
        _compile(tmp_path, ["trian"])


def test_secret_values_in_the_environment_never_reach_the_compiled_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = {
        "AIRBYTE_CLIENT_ID": "client-id-7f3a9",
        "AIRBYTE_CLIENT_SECRET": "supersecret-123",
        "AIRBYTE_USERNAME": "airbyte-admin-x1",
        "AIRBYTE_PASSWORD": "pa55word-q9z",
        "MLFLOW_TRACKING_USERNAME": "mlflow-user-k2",
        "MLFLOW_TRACKING_PASSWORD": "mlflow-pw-88c1",
        "PGPASSWORD": "optuna-pg-pw-5e2d",
        "OPTUNA_STORAGE": "postgresql://optuna:inline-pw-77b0@db.example:5432/optuna",
        "GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "sa-key-file-4411.json"),
    }
    key_json = '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----MIIEvQ-fake-991"}'
    (tmp_path / "sa-key-file-4411.json").write_text(key_json)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GOOGLE_CREDENTIALS_JSON", key_json)

    spec, text = _compile(tmp_path, list(STEPS))

    assert len(_executors(spec)) == len(STEPS)  # every step compiled and wired
    for value in [*values.values(), key_json, "MIIEvQ-fake-991", "sa-key-file-4411", "inline-pw-77b0"]:
        assert value not in text
    # What is there are references: Secret names and keys.
    assert "supersecret" not in text and "airbyte-credentials" in text


@pytest.mark.parametrize("name", ["mlops", "continual"])
def test_the_compiled_optuna_storage_is_postgresql_without_a_password_which_comes_from_the_secret(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.engine import make_url

    from pipelines.compile import compile_all
    from pipelines.settings import CLUSTER_OPTUNA_STORAGE

    monkeypatch.setenv("PGPASSWORD", "pg-secret-31f7")
    monkeypatch.setenv("OPTUNA_STORAGE", "postgresql://optuna:url-secret-9a0c@db.example/optuna")
    [path] = compile_all(tmp_path, [name])
    text = path.read_text()
    pipe, plat = yaml.safe_load_all(text)
    assert "pg-secret-31f7" not in text and "url-secret-9a0c" not in text

    default = pipe["root"]["inputDefinitions"]["parameters"]["optuna_storage"]["defaultValue"]
    url = make_url(default)
    assert default == CLUSTER_OPTUNA_STORAGE and url.password is None
    assert (url.drivername, url.username, url.database) == ("postgresql", "optuna", "optuna")
    # the PostgreSQL Service of the manifests, reached from the runs namespace
    assert url.host == "postgres.kfp-mlops.svc.cluster.local" and url.port == 5432

    executors = plat["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    by_component = {
        component: executors.get(spec.get("executorLabel", ""), {})
        for component, spec in pipe["components"].items()
    }
    with_password = {c for c, config in by_component.items() if "PGPASSWORD" in _env_from(config)}
    assert with_password == {"comp-optimize", "comp-study-summary"}
    for component in with_password:
        assert _env_from(by_component[component])["PGPASSWORD"] == (
            "optuna-storage-credentials",
            "PGPASSWORD",
            True,
        )


def test_the_stores_volume_is_chosen_at_compile_time_and_can_be_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def claims(step: str) -> list[str]:
        spec, _ = _compile(tmp_path, [step])
        config = _executors(spec)[step]
        return [p["pvcNameParameter"]["runtimeValue"]["constant"] for p in config.get("pvcMount", [])]

    monkeypatch.setenv(platform.STORES_PVC_ENV, "")  # empty: the default claim
    assert claims("train") == ["kfp-mlops-stores"]
    monkeypatch.setenv(platform.STORES_PVC_ENV, "stores-rwx")
    assert claims("extract") == ["stores-rwx"]
    monkeypatch.setenv(platform.STORES_PVC_ENV, "None")
    for step in STEPS:
        assert claims(step) == [], step
    # everything else is still wired
    spec, _ = _compile(tmp_path, ["optimize"])
    assert "PGPASSWORD" in _env_from(_executors(spec)["optimize"])
    monkeypatch.setenv(platform.STORES_PVC_ENV, "My_Stores")
    with pytest.raises(
        ValueError, match=r"KFP_MLOPS_STORES_PVC='My_Stores' is not a PersistentVolumeClaim name"
    ):
        _compile(tmp_path, ["train"])
