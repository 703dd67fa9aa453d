"""The compiled DataOps pipeline: task graph, images, caching, names and parameters.

Compiles ``pipelines.dataops.dataops`` to YAML in a temp folder and reads it back twice:
as plain YAML (what a cluster receives) and through ``kfp.components.load_component_from_file``
(what a user who downloads the YAML gets).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import json_format
from kfp import compiler, components

from components.catalog import IMAGES
from pipelines.dataops import dataops

SYNC_STREAMS = ("projects", "tags")
SUITES = ("projects", "tags", "labeled_projects")
PARAMETERS = {"source", "mode", "warehouse", "airbyte_url", "projects_connection_id", "tags_connection_id"}
DISPLAY_NAMES = {
    "sync projects",
    "sync tags",
    "validate projects",
    "validate tags",
    "transform labeled_projects",
    "validate labeled_projects",
    "publish labeled_projects",
}
# Which image map entry each component's executor must use.
STEP_OF_COMPONENT = {
    "airbyte_sync": "airbyte_sync",
    "ge_validate": "ge_validate",
    "dbt_transform": "dbt_transform",
    "publish": "publish",
}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("compiled") / "dataops.yaml"
    compiler.Compiler().compile(dataops, str(path))
    return path


@pytest.fixture(scope="module")
def spec(compiled: Path) -> dict[str, Any]:
    # the pipeline spec, then the Kubernetes platform spec (secrets, PVC, timeouts)
    return next(yaml.safe_load_all(compiled.read_text()))


@pytest.fixture(scope="module")
def tasks(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Root DAG tasks keyed by display name."""
    out = {t["taskInfo"]["name"]: t for t in spec["root"]["dag"]["tasks"].values()}
    assert len(out) == len(spec["root"]["dag"]["tasks"]), "two tasks share a display name"
    return out


def _task_id(spec: dict[str, Any], display: str) -> str:
    return next(k for k, t in spec["root"]["dag"]["tasks"].items() if t["taskInfo"]["name"] == display)


def _function_of(spec: dict[str, Any], task: dict[str, Any]) -> str:
    """The Python function an executor runs (``--function_to_execute``)."""
    label = spec["components"][task["componentRef"]["name"]]["executorLabel"]
    args = spec["deploymentSpec"]["executors"][label]["container"]["args"]
    return args[args.index("--function_to_execute") + 1]


def _constant(task: dict[str, Any], name: str) -> Any:
    return task["inputs"]["parameters"][name]["runtimeValue"]["constant"]


def test_display_names(tasks: dict[str, dict[str, Any]]) -> None:
    assert set(tasks) == DISPLAY_NAMES


def test_two_syncs_one_per_stream(spec: dict[str, Any], tasks: dict[str, dict[str, Any]]) -> None:
    syncs = {n: t for n, t in tasks.items() if _function_of(spec, t) == "airbyte_sync"}
    assert set(syncs) == {f"sync {s}" for s in SYNC_STREAMS}
    for stream in SYNC_STREAMS:
        task = syncs[f"sync {stream}"]
        assert _constant(task, "stream") == stream
        assert "dependentTasks" not in task, "a sync must start the pipeline"
        params = task["inputs"]["parameters"]
        assert params["connection_id"]["componentInputParameter"] == f"{stream}_connection_id"
        for name in ("source", "mode", "warehouse", "airbyte_url"):
            assert params[name]["componentInputParameter"] == name


def test_three_validations_with_their_suites(spec: dict[str, Any], tasks: dict[str, dict[str, Any]]) -> None:
    checks = {n: t for n, t in tasks.items() if _function_of(spec, t) == "ge_validate"}
    assert set(checks) == {f"validate {s}" for s in SUITES}
    for suite in SUITES:
        assert _constant(checks[f"validate {suite}"], "suite") == suite
    # Each raw validation reads its own sync's table; the audit validation reads the mart.
    for stream in SYNC_STREAMS:
        dataset = checks[f"validate {stream}"]["inputs"]["artifacts"]["dataset"]["taskOutputArtifact"]
        assert dataset == {"producerTask": _task_id(spec, f"sync {stream}"), "outputArtifactKey": "table"}
    audit = checks["validate labeled_projects"]["inputs"]["artifacts"]["dataset"]["taskOutputArtifact"]
    assert audit == {
        "producerTask": _task_id(spec, "transform labeled_projects"),
        "outputArtifactKey": "labeled_projects",
    }


def test_transform_waits_for_both_raw_validations(
    spec: dict[str, Any], tasks: dict[str, dict[str, Any]]
) -> None:
    transform = tasks["transform labeled_projects"]
    assert _function_of(spec, transform) == "dbt_transform"
    deps = set(transform["dependentTasks"])
    assert {_task_id(spec, "validate projects"), _task_id(spec, "validate tags")} <= deps
    arts = transform["inputs"]["artifacts"]
    for stream in SYNC_STREAMS:
        assert arts[stream]["taskOutputArtifact"]["producerTask"] == _task_id(spec, f"sync {stream}")
    assert transform["inputs"]["parameters"]["target_schema"]["componentInputParameter"] == "audit_schema"


def test_publish_only_after_the_audit_validation(
    spec: dict[str, Any], tasks: dict[str, dict[str, Any]]
) -> None:
    publish = tasks["publish labeled_projects"]
    assert _function_of(spec, publish) == "publish"
    assert _task_id(spec, "validate labeled_projects") in publish["dependentTasks"]
    audited = publish["inputs"]["artifacts"]["audited"]["taskOutputArtifact"]
    assert audited["producerTask"] == _task_id(spec, "transform labeled_projects")
    # The pipeline returns publish's row count.
    out = spec["root"]["dag"]["outputs"]["parameters"]["Output"]["valueFromParameter"]
    assert out["producerSubtask"] == _task_id(spec, "publish labeled_projects")


def test_images_come_from_the_image_map(spec: dict[str, Any], tasks: dict[str, dict[str, Any]]) -> None:
    for name, task in tasks.items():
        label = spec["components"][task["componentRef"]["name"]]["executorLabel"]
        image = spec["deploymentSpec"]["executors"][label]["container"]["image"]
        step = STEP_OF_COMPONENT[_function_of(spec, task)]
        assert image == IMAGES[step], name
        assert not image.endswith(":latest") and re.search(r":[^/:]+$", image), f"{name}: untagged {image}"
    assert len(spec["deploymentSpec"]["executors"]) == len(tasks)


def test_nothing_is_pip_installed_at_start(spec: dict[str, Any]) -> None:
    for label, executor in spec["deploymentSpec"]["executors"].items():
        container = executor["container"]
        text = "\n".join(container.get("command", []) + container.get("args", []))
        assert not re.search(r"pip3?\s+install|uv\s+pip", text), label


def test_caching_off_for_syncs(spec: dict[str, Any], tasks: dict[str, dict[str, Any]]) -> None:
    for stream in SYNC_STREAMS:
        # kfp writes `enableCache: true` when caching is on and omits the (false) field when off.
        assert tasks[f"sync {stream}"]["cachingOptions"].get("enableCache", False) is False
    # Every step reads or writes the warehouse: none may be served from the cache.
    assert not any(t.get("cachingOptions", {}).get("enableCache") for t in tasks.values())


def test_pipeline_parameters(spec: dict[str, Any]) -> None:
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert set(params) >= PARAMETERS
    assert params["mode"]["defaultValue"] == "embedded"
    assert params["warehouse"]["defaultValue"].startswith("duckdb:///")
    assert spec["root"]["outputDefinitions"]["parameters"]["Output"]["parameterType"] == "NUMBER_INTEGER"
    # Credentials come from the environment (Kubernetes Secrets), never from parameters.
    names = set(params)
    for comp in spec["components"].values():
        names |= set(comp.get("inputDefinitions", {}).get("parameters", {}))
    assert not [n for n in names if re.search(r"secret|password|token|api_key|credential", n, re.I)]


def test_descriptions_compiled_from_docstrings(spec: dict[str, Any]) -> None:
    assert spec["pipelineInfo"]["name"] == "dataops"
    assert "publish" in spec["pipelineInfo"]["description"]
    for name, comp in spec["components"].items():
        inputs = comp.get("inputDefinitions", {})
        outputs = comp.get("outputDefinitions", {})
        for kind in (inputs, outputs):
            for group in ("parameters", "artifacts"):
                for key, definition in kind.get(group, {}).items():
                    assert definition.get("description"), f"{name}.{key} has no description"


def test_yaml_loads_back_as_a_component(compiled: Path, spec: dict[str, Any]) -> None:
    loaded = components.load_component_from_file(str(compiled))
    assert loaded.name == "dataops"
    assert set(loaded.component_spec.inputs) >= PARAMETERS
    assert set(loaded.component_spec.outputs) == {"Output"}
    reloaded = loaded.pipeline_spec
    assert set(reloaded.root.dag.tasks) == set(spec["root"]["dag"]["tasks"])
    for task_id, task in reloaded.root.dag.tasks.items():
        assert task.task_info.name == spec["root"]["dag"]["tasks"][task_id]["taskInfo"]["name"]
        assert set(task.dependent_tasks) == set(
            spec["root"]["dag"]["tasks"][task_id].get("dependentTasks", [])
        )
    # The deployment spec travels with the YAML: the same images as compiled.
    deployment = json_format.MessageToDict(reloaded.deployment_spec)
    images = {e["container"]["image"] for e in deployment["executors"].values()}
    assert images == {IMAGES[s] for s in STEP_OF_COMPONENT.values()}
