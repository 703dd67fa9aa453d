"""`python -m pipelines params`: every pipeline's parameters, as `run --param` takes them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines import registry
from pipelines.cli.main import main
from pipelines.cli.run import coerce_params


def test_params_lists_every_declared_parameter_with_its_type_default_and_local_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["params", "--json", "--stores", str(tmp_path)]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert list(listed) == list(registry.PIPELINES)
    for name, rows in listed.items():
        inputs = registry.load(name).component_spec.inputs
        assert [r["name"] for r in rows] == list(inputs)
        assert {r["name"]: r["default"] for r in rows} == {k: v.default for k, v in inputs.items()}
        # Each listed name and default is what `run NAME --param` accepts.
        raw = {
            r["name"]: r["default"] if isinstance(r["default"], str) else json.dumps(r["default"])
            for r in rows
        }
        assert set(coerce_params(registry.load(name), raw)) == set(inputs)
    mlops = {r["name"]: r for r in listed["mlops"]}
    assert mlops["trials_per_worker"]["type"] == "Integer"
    assert mlops["tracking_uri"]["local"] == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert mlops["tracking_uri"]["default"].startswith("http://mlflow.")


def test_params_text_marks_what_a_local_run_sets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["params", "dataops", "--stores", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("dataops: 8 parameters (run dataops --param NAME=VALUE)")
    assert "source" in out and "locally sample" in out
    assert "audit_schema" in out and "default mlops_course_audit" in out


def test_params_refuses_an_unknown_pipeline_with_the_known_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["params", "mlopz"]) == 2
    assert "unknown pipeline 'mlopz'; choose from dataops, mlops, continual" in capsys.readouterr().err
