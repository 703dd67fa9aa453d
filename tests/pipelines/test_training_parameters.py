"""The training parameters, declared once in pipelines.training.Training: train_and_promote,
mlops and continual take them from there, in its order, with its types and defaults."""

import importlib
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kfp import compiler, dsl
from kfp.dsl import Dataset, Input

import pipelines
import pipelines.continual
import pipelines.mlops
from pipelines import training
from pipelines.training import DEFAULTS, training_parameters

# How the compiled YAML types a parameter of each annotation the declaration uses.
PARAMETER_TYPES = {str: "STRING", int: "NUMBER_INTEGER", float: "NUMBER_DOUBLE", list[int]: "LIST"}


def _compiled(pipeline: Any, path: Path) -> dict[str, Any]:
    compiler.Compiler().compile(pipeline, str(path))
    return next(yaml.safe_load_all(path.read_text()))


def _declared(exclude: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    """What the compiled YAML says of each training parameter, from the declaration."""
    return {
        p.name: {
            "parameterType": PARAMETER_TYPES[p.annotation],
            "defaultValue": p.default,
            "isOptional": True,
        }
        for p in training.parameters(exclude)
    }


def test_the_three_pipelines_take_the_training_parameters_as_training_declares_them(tmp_path: Path) -> None:
    mlops_yaml = _compiled(pipelines.mlops.mlops, tmp_path / "mlops.yaml")
    continual_yaml = _compiled(pipelines.continual.continual, tmp_path / "continual.yaml")
    compiled = {
        "train_and_promote": (mlops_yaml["components"]["comp-train-and-promote"], {"dataset"}, ()),
        "mlops": (mlops_yaml["root"], {"warehouse", "as_of"}, ()),
        "continual": (continual_yaml["root"], {"warehouse", "policy_json", "as_of"}, ("param_overrides",)),
    }
    for name, (component, own, excluded) in compiled.items():
        parameters = component["inputDefinitions"]["parameters"]
        taken = {n: d for n, d in parameters.items() if n not in own}
        assert taken == _declared(excluded), name
    nested = continual_yaml["components"]["comp-train-and-promote"]["inputDefinitions"]
    assert nested == mlops_yaml["components"]["comp-train-and-promote"]["inputDefinitions"]


def test_the_pipelines_list_their_parameters_in_the_declarations_order() -> None:
    names = [p.name for p in training.parameters()]
    stores, tuning = names[: names.index("optuna_storage") + 1], names[names.index("optuna_storage") + 1 :]
    assert list(pipelines.mlops.train_and_promote.component_spec.inputs) == ["dataset", *names]
    assert list(pipelines.mlops.mlops.component_spec.inputs) == ["warehouse", *names, "as_of"]
    assert list(pipelines.continual.continual.component_spec.inputs) == [
        "warehouse",
        *stores,
        "policy_json",
        *(n for n in tuning if n != "param_overrides"),
        "as_of",
    ]


def test_the_defaults_are_the_declarations() -> None:
    assert asdict(DEFAULTS) == {
        "tracking_uri": "http://mlflow.kfp-mlops.svc.cluster.local:5000",
        "artifact_root": "",
        "optuna_storage": "postgresql://optuna@postgres.kfp-mlops.svc.cluster.local:5432/optuna",
        "workers": [0, 1],
        "trials_per_worker": 10,
        "expected_trials": 20,
        "trial_epochs": 30,
        "experiment": "tagifai",
        "param_overrides": "{}",
        "margin": 0.0,
        "slice_tolerance": 0.05,
    }
    assert training.Training(workers=[0, 1, 2], trials_per_worker=4).expected_trials == 12


@pytest.fixture
def extended(monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """mlops and continual imported afresh with a parameter added to the declaration (the
    modules already imported come back after the test)."""

    @dataclass(frozen=True)
    class Training(training.Training):
        warmup_epochs: int = 3

    monkeypatch.setattr(training, "Training", Training)
    for name in ("mlops", "continual"):
        monkeypatch.delitem(sys.modules, f"pipelines.{name}")
        monkeypatch.delattr(pipelines, name)
    return importlib.import_module("pipelines.mlops"), importlib.import_module("pipelines.continual")


def test_a_parameter_added_to_the_declaration_reaches_all_three_pipelines(
    extended: tuple[Any, Any], tmp_path: Path
) -> None:
    mlops, continual = extended
    for pipeline in (mlops.train_and_promote, mlops.mlops, continual.continual):
        inputs = pipeline.component_spec.inputs
        added = inputs["warmup_epochs"]
        assert (added.type, added.default) == ("Integer", 3), pipeline.name
        assert list(inputs).index("warmup_epochs") == list(inputs).index("slice_tolerance") + 1, pipeline.name
    # The outer pipelines hand it on to the nested train_and_promote.
    spec = _compiled(mlops.mlops, tmp_path / "mlops.yaml")
    nested = spec["root"]["dag"]["tasks"]["train-and-promote"]["inputs"]["parameters"]
    assert nested["warmup_epochs"] == {"componentInputParameter": "warmup_epochs"}
    spec = _compiled(continual.continual, tmp_path / "continual.yaml")
    improve = spec["components"]["comp-condition-1"]["dag"]
    nested = improve["tasks"]["train-and-promote"]["inputs"]["parameters"]
    assert nested["warmup_epochs"] == {"componentInputParameter": "pipelinechannel--warmup_epochs"}


@dsl.component
def _echo(text: str, epochs: int) -> str:
    return text * epochs


def test_a_pipeline_gets_its_own_parameters_around_the_training_ones() -> None:
    seen: dict[str, Any] = {}

    @dsl.pipeline(name="throwaway")
    @training_parameters(exclude=("param_overrides", "margin"), after={"note": "artifact_root"})
    def throwaway(data: Input[Dataset], note: str = "n", *, last: int = 1, **training: Any) -> str:
        seen.update(training, data=data, note=note, last=last)
        return _echo(text=training["experiment"], epochs=training["trial_epochs"]).output

    names = [p.name for p in training.parameters(("param_overrides", "margin"))]
    at = names.index("artifact_root") + 1
    assert list(throwaway.component_spec.inputs) == ["data", *names[:at], "note", *names[at:], "last"]
    assert throwaway.component_spec.inputs["note"].default == "n"
    assert throwaway.component_spec.inputs["last"].type == "Integer"
    # KFP called it with a channel per parameter, by position.
    assert [seen[n].name for n in names] == names
    assert [seen[n].name for n in ("data", "note", "last")] == ["data", "note", "last"]
    task = throwaway.pipeline_spec.root.dag.tasks["echo"]
    assert task.inputs.parameters["epochs"].component_input_parameter == "trial_epochs"


def test_the_decorator_refuses_what_it_cannot_place() -> None:
    def no_training(warehouse: str = "") -> str:
        return warehouse

    def with_training(warehouse: str = "", **training: Any) -> str:
        return warehouse

    def declares_one(margin: float = 1.0, **training: Any) -> str:
        return ""

    with pytest.raises(TypeError, match=r"no_training takes no \*\*training"):
        training_parameters()(no_training)
    with pytest.raises(ValueError, match=r"no training parameter margn"):
        training_parameters(exclude=("margn",))(with_training)
    with pytest.raises(ValueError, match=r"after names as_of, margn"):
        training_parameters(after={"as_of": "margn"})(with_training)
    with pytest.raises(ValueError, match=r"declares training parameters itself: margin"):
        training_parameters()(declares_one)
