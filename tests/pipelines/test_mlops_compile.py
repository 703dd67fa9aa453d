"""The compiled MLOps pipeline: typed outputs the KFP UI can show, images, the parallel
optimize loop and the promotion gate; and the command every compiled step runs."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from kfp import compiler, components

from components.catalog import IMAGES
from components.step import STEP_EXECUTOR
from pipelines.mlops import mlops
from pipelines.registry import PIPELINES, load


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("compiled") / "mlops.yaml"
    compiler.Compiler().compile(mlops, str(path))
    components.load_component_from_file(str(path))  # what users who download it get
    # the pipeline spec, then the Kubernetes platform spec (secrets, PVC, timeouts)
    return next(yaml.safe_load_all(path.read_text()))


def _outputs(spec: dict[str, Any]) -> dict[str, dict[str, str]]:
    """component name -> {output artifact: schema title}"""
    return {
        name: {
            a: d["artifactType"]["schemaTitle"]
            for a, d in c.get("outputDefinitions", {}).get("artifacts", {}).items()
        }
        for name, c in spec["components"].items()
    }


def test_declares_the_typed_outputs_the_ui_shows(spec) -> None:
    outs = _outputs(spec)
    assert outs["comp-train"] == {
        "model": "system.Model",
        "metrics": "system.Metrics",
        "confusion": "system.ClassificationMetrics",
    }
    assert outs["comp-study-summary"]["report"] == "system.HTML"
    assert outs["comp-evaluate"]["report"] == "system.Markdown"
    assert outs["comp-ge-validate"]["data_docs"] == "system.HTML"
    assert outs["comp-extract"]["dataset"] == "system.Dataset"


def test_every_step_runs_its_own_image_without_pip(spec) -> None:
    executors = spec["deploymentSpec"]["executors"]
    expected = {
        "exec-extract": IMAGES["extract"],
        "exec-ge-validate": IMAGES["ge_validate"],
        "exec-optimize": IMAGES["optimize"],
        "exec-study-summary": IMAGES["study_summary"],
        "exec-train": IMAGES["train"],
        "exec-evaluate": IMAGES["evaluate"],
        "exec-promote": IMAGES["promote"],
    }
    for name, image in expected.items():
        container = executors[name]["container"]
        assert container["image"] == image and not image.endswith(":latest")
        assert "pip install" not in " ".join(container["command"] + container.get("args", []))


def test_optimize_fans_out_and_promote_is_gated(spec) -> None:
    # mlops = extract -> the nested train-and-promote pipeline (which continual reuses)
    assert {t["componentRef"]["name"] for t in spec["root"]["dag"]["tasks"].values()} == {
        "comp-extract",
        "comp-train-and-promote",
    }
    root = spec["components"]["comp-train-and-promote"]["dag"]["tasks"]
    loop = next(t for t in root.values() if "parameterIterator" in t)
    assert loop["iteratorPolicy"]["parallelismLimit"] == 2
    gate = next(t for t in root.values() if t.get("triggerPolicy", {}).get("condition"))
    assert (
        "evaluate-decision" in gate["triggerPolicy"]["condition"]
        and "'promote'" in gate["triggerPolicy"]["condition"]
    )
    body = spec["components"][gate["componentRef"]["name"]]["dag"]["tasks"]
    assert [t["componentRef"]["name"] for t in body.values()] == ["comp-promote"]


def test_study_name_is_unique_per_run(spec) -> None:
    text = yaml.safe_dump(spec)
    assert text.count("{{$.pipeline_job_uuid}}") >= 2  # optimize workers and the study summary


def test_pipeline_parameters(spec) -> None:
    params = spec["root"]["inputDefinitions"]["parameters"]
    for name in (
        "warehouse",
        "tracking_uri",
        "optuna_storage",
        "workers",
        "trials_per_worker",
        "margin",
        "slice_tolerance",
        "param_overrides",
    ):
        assert name in params
    assert params["workers"]["parameterType"] == "LIST"


def test_platform_spec_wires_secrets_and_the_stores_volume(tmp_path) -> None:
    path = tmp_path / "mlops.yaml"
    compiler.Compiler().compile(mlops, str(path))
    platform = list(yaml.safe_load_all(path.read_text()))[1]["platforms"]["kubernetes"]["deploymentSpec"][
        "executors"
    ]
    train = platform["exec-train"]
    assert {p["secretName"] for p in train.get("secretAsEnv", [])} == {"mlflow-credentials"}
    assert train["pvcMount"][0]["mountPath"] == "/mnt/stores"
    assert "exec-extract" in platform and "exec-promote" in platform


def test_both_pipelines_use_the_six_step_images(tmp_path) -> None:
    from components.images import IMAGE_SPECS as STEPS
    from pipelines.compile import compile_all

    images = set()
    for path in compile_all(tmp_path, ["dataops", "mlops"]):
        spec = next(yaml.safe_load_all(path.read_text()))
        images |= {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {IMAGES[s] for s in STEPS} and len(images) == 6
    assert not any(i.endswith(":latest") for i in images)


def test_continual_compiles_reloads_and_branches(tmp_path) -> None:
    from pipelines.continual import continual

    path = tmp_path / "continual.yaml"
    compiler.Compiler().compile(continual, str(path))
    components.load_component_from_file(str(path))
    spec = next(yaml.safe_load_all(path.read_text()))
    conditions = sorted(
        t["triggerPolicy"]["condition"] for t in spec["root"]["dag"]["tasks"].values() if "triggerPolicy" in t
    )
    assert len(conditions) == 2
    assert "'improve'" in conditions[0] and "'rollback'" in conditions[1]
    assert "comp-train-and-promote" in spec["components"]  # the mlops pipeline, nested


def _task_inputs(spec: dict[str, Any], component: str) -> list[dict[str, Any]]:
    """The parameter inputs of every task (in any DAG) that calls `component`."""
    dags = [spec["root"]["dag"], *(c["dag"] for c in spec["components"].values() if "dag" in c)]
    return [
        t.get("inputs", {}).get("parameters", {})
        for dag in dags
        for t in dag["tasks"].values()
        if t["componentRef"]["name"] == component
    ]


def test_compiled_yaml_passes_the_scheduled_time_and_takes_as_of(tmp_path) -> None:
    from kfp import dsl

    from pipelines.compile import compile_all

    placeholder = dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER
    paths = dict(zip(["mlops", "continual"], compile_all(tmp_path, ["mlops", "continual"]), strict=True))
    # continual: only extract takes the time; monitor and compose read its snapshot.
    wired = {"mlops": ["comp-extract"], "continual": ["comp-extract"]}
    for name, path in paths.items():
        spec = next(yaml.safe_load_all(path.read_text()))
        assert spec["root"]["inputDefinitions"]["parameters"]["as_of"]["defaultValue"] == ""
        for component in wired[name]:
            [inputs] = _task_inputs(spec, component)
            assert inputs["scheduled_time"] == {"runtimeValue": {"constant": placeholder}}, (name, component)
            assert inputs["as_of"]["componentInputParameter"].endswith("as_of")
        for component in ("comp-monitor", "comp-compose"):
            assert all("scheduled_time" not in i and "as_of" not in i for i in _task_inputs(spec, component))


def _artifact_source(spec: dict[str, Any], component: str, name: str) -> tuple[str, str]:
    """(producer task, output key) of the artifact input `name` of the one task calling
    `component`, followed up through the DAGs (a dsl.If body gets it from its parent)."""
    parents: dict[str, dict[str, Any]] = {}  # DAG component -> the task that runs it
    dags = {"root": spec["root"]["dag"], **{n: c["dag"] for n, c in spec["components"].items() if "dag" in c}}
    for dag in dags.values():
        for task in dag["tasks"].values():
            if task["componentRef"]["name"] in dags:
                parents[task["componentRef"]["name"]] = task
    [(dag_name, task)] = [
        (n, t) for n, d in dags.items() for t in d["tasks"].values() if t["componentRef"]["name"] == component
    ]
    source = task["inputs"]["artifacts"][name]
    while "componentInputArtifact" in source:
        task = parents[dag_name]
        source = task["inputs"]["artifacts"][source["componentInputArtifact"]]
        dag_name = next(n for n, d in dags.items() if task in d["tasks"].values())
    out = source["taskOutputArtifact"]
    return out["producerTask"], out["outputArtifactKey"]


def test_continual_snapshots_once_and_monitor_and_compose_read_the_snapshot(tmp_path) -> None:
    from pipelines.compile import compile_all

    [path] = compile_all(tmp_path, ["continual"])  # the cluster build
    pipe, plat = yaml.safe_load_all(path.read_text())
    root = pipe["root"]["dag"]["tasks"]
    # extract runs first, in the root DAG, and is the one task that takes the warehouse.
    assert root["extract"]["componentRef"]["name"] == "comp-extract"
    assert root["extract"]["taskInfo"]["name"] == "snapshot labeled_projects"
    assert root["extract"]["inputs"]["parameters"]["warehouse"] == {"componentInputParameter": "warehouse"}
    assert root["monitor"]["dependentTasks"] == ["extract"]
    # The same snapshot feeds monitor and compose (inside the improve branch) ...
    assert _artifact_source(pipe, "comp-monitor", "dataset") == ("extract", "dataset")
    assert _artifact_source(pipe, "comp-compose", "dataset") == ("extract", "dataset")
    # ... and compose's retraining set feeds the nested mlops pipeline.
    assert _artifact_source(pipe, "comp-train-and-promote", "dataset") == ("compose", "retraining_set")
    for component in ("comp-monitor", "comp-compose"):
        declared = pipe["components"][component]["inputDefinitions"]
        assert set(declared["artifacts"]) == {"dataset"}
        assert declared["artifacts"]["dataset"]["artifactType"]["schemaTitle"] == "system.Dataset"
        assert not {"warehouse", "schema", "table", "as_of", "scheduled_time"} & set(declared["parameters"])
        [inputs] = _task_inputs(pipe, component)
        assert "warehouse" not in inputs and "tracking_uri" in inputs
    # The pipeline's own parameters are those callers (backfill, the watcher) pass.
    assert {"warehouse", "tracking_uri", "as_of", "policy_json"} <= set(
        pipe["root"]["inputDefinitions"]["parameters"]
    )
    # No warehouse credentials outside extract; MLflow's for monitor and compose (the registry).
    executors = plat["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    secrets = {
        label: {e["secretNameParameter"]["runtimeValue"]["constant"] for e in config.get("secretAsEnv", [])}
        for label, config in executors.items()
    }
    assert "bigquery-credentials" in secrets["exec-extract"]
    for label in ("exec-monitor", "exec-compose"):
        assert secrets[label] == {"mlflow-credentials"}, label
        assert "secretAsVolume" not in executors[label]


def test_the_local_builds_carry_no_time_placeholder(tmp_path) -> None:
    # kfp.local 2.17.3 fails on `{{$.pipeline_job_schedule_time_utc}}` (see docs/continual.md).
    from pipelines.continual import continual

    for pipeline in (mlops, continual):
        path = tmp_path / f"{pipeline.name}.yaml"
        compiler.Compiler().compile(pipeline, str(path))
        assert "pipeline_job_schedule_time_utc" not in path.read_text()


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_every_step_runs_kfps_executor_through_components_executor(name: str, tmp_path) -> None:
    # The compiled YAML a cluster runs: each step's script starts kfp's own executor module
    # through components.executor (same inputs, outputs and exit status; no teardown).
    path = tmp_path / f"{name}.yaml"
    compiler.Compiler().compile(load(name, cluster=True), str(path))
    executors = next(yaml.safe_load_all(path.read_text()))["deploymentSpec"]["executors"]
    assert executors
    for label, executor in executors.items():
        script = executor["container"]["command"][2]
        assert script.count(STEP_EXECUTOR) == 1, label
        assert script.replace(STEP_EXECUTOR, "").count("python3") == 0, label  # no other python


def test_step_component_refuses_a_command_it_does_not_know(monkeypatch: pytest.MonkeyPatch) -> None:
    from components import step
    from components.promote.component import promote

    monkeypatch.setattr(step, "KFP_EXECUTOR", "python3 -m some.other.runner")
    with pytest.raises(RuntimeError, match=r"no longer runs 'python3 -m some\.other\.runner' once"):
        step.step_component("promote_copy", image="train")(promote.python_func)
