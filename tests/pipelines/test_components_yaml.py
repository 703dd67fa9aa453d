"""`compile --components`: every step as a component YAML that loads back with kfp's own
loader (same image, inputs, outputs), a catalogue of them, and a loaded one run in a pipeline.
No `from __future__ import annotations`: a pipeline's signature is read by kfp."""

from pathlib import Path

import pandas as pd
import pytest
from kfp import components, dsl

from components.catalog import STEPS
from components.warehouse import duckdb_connect
from pipelines import local
from pipelines.cli.main import main
from pipelines.components_yaml import step_components


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("build")
    assert main(["compile", "--components", "--out", str(out)]) == 0
    return out / "components"


def test_every_step_loads_back_from_its_file_with_its_image_inputs_and_outputs(written: Path) -> None:
    assert sorted(p.stem for p in written.glob("*.yaml")) == sorted(STEPS)
    for name, original in step_components().items():
        loaded = components.load_component_from_file(str(written / f"{name}.yaml"))
        spec, want = loaded.component_spec, original.component_spec
        assert loaded.name == original.name
        assert spec.implementation.container.image == STEPS[name].image_ref
        assert {k: (str(v.type), v.default) for k, v in (spec.inputs or {}).items()} == {
            k: (str(v.type), v.default) for k, v in (want.inputs or {}).items()
        }
        assert {k: str(v.type) for k, v in (spec.outputs or {}).items()} == {
            k: str(v.type) for k, v in (want.outputs or {}).items()
        }


def test_the_catalogue_lists_every_step_with_its_image_and_parameters(written: Path) -> None:
    text = (written / "README.md").read_text()
    for name, step in STEPS.items():
        section = text.split(f"## {name} (`{name}.yaml`)", 1)[1].split("\n## ", 1)[0]
        assert f"- image: `{step.image_ref}`" in section
        for param in step_components()[name].component_spec.inputs or {}:
            assert f"| `{param}` |" in section, (name, param)
    assert '| `as_of` | `String` = `""` |' in text  # extract's input, with its default


def test_a_loaded_component_runs_in_a_pipeline(written: Path, tmp_path: Path) -> None:
    warehouse = tmp_path / "wh.duckdb"
    rows = pd.DataFrame(
        {
            "id": [1, 2, 3],
            "created_on": pd.to_datetime(["2020-01-01", "2020-02-01", "2020-03-01"]),
            "title": ["a", "b", "c"],
            "description": ["x", "y", "z"],
            "tag": ["mlops", "computer-vision", "mlops"],
        }
    )
    with duckdb_connect(warehouse) as con:
        con.execute("create schema mlops_course")
        con.register("frame", rows)
        con.execute("create table mlops_course.labeled_projects as select * from frame")
    extract = components.load_component_from_file(str(written / "extract.yaml"))

    @dsl.pipeline(name="uses-a-loaded-component")
    def uses(warehouse: str) -> None:
        extract(warehouse=warehouse, as_of="2020-02-15T00:00:00Z")

    result = local.run(uses, {"warehouse": f"duckdb:///{warehouse}"}, tmp_path / "runs")
    assert result.status == local.SUCCEEDED, result.error
    [meta] = result.outputs["extract"]["artifacts"]["dataset"]
    assert meta["rows"] == 2 and meta["kind"] == "parquet"  # cut at as_of, as the step does


def test_compile_of_a_step_name_points_at_components(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", "train"]) == 2
    err = capsys.readouterr().err
    assert (
        "unknown pipeline 'train'" in err
        and "train: a step; --components writes each step's component YAML" in err
    )
