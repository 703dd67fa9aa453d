"""What the image builds are made of, without Docker: the requirement sets
(images/requirements.py), the site-packages slimming (images/slim.py), and the one template
(images/Dockerfile) with each image's build arguments (components/images.py): its shared
layers and the kfp runtime split. tests/e2e/test_images.py checks the built images."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

from components.images import IMAGE_SPECS, SDK_IMAGE

STEPS = list(IMAGE_SPECS)

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "images" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_runtime_requirements_are_the_base_ones_without_the_sdk(project: dict) -> None:
    req = _load("requirements")
    base = req.requirements(project, "base")
    runtime = req.requirements(project, "runtime")
    (kfp,) = req.requirements(project, "kfp")
    assert re.fullmatch(r"kfp==[\d.]+", kfp) and kfp in base
    assert not any(req.name_of(r) in ("kfp", "kfp-kubernetes") for r in runtime)
    assert {req.name_of(r) for r in base} - {req.name_of(r) for r in runtime} == {"kfp", "kfp-kubernetes"}


def test_extras_resolve_their_self_references(project: dict) -> None:
    req = _load("requirements")
    train = req.requirements(project, "train")
    assert "fastparquet>=2024.11" in train and not any(r.startswith("kfp-mlops") for r in train)
    assert {"duckdb", "fastparquet", "google-cloud-bigquery"} <= {
        req.name_of(r) for r in req.requirements(project, "extract")
    }


# The extra each image installs (its build argument EXTRA).
EXTRA = {name: image.extra for name, image in IMAGE_SPECS.items()}


def test_the_model_images_hold_no_warehouse_client_and_only_their_own_tools(project: dict) -> None:
    # train and optimize read and write parquet datasets only (continual snapshots the
    # warehouse with extract first): no DuckDB, no BigQuery client, no pyarrow. Optuna is
    # optimize's alone, skops (model files) train's alone.
    req = _load("requirements")
    names = {step: {req.name_of(r) for r in req.requirements(project, EXTRA[step])} for step in EXTRA}
    for step in ("train", "optimize"):
        assert not names[step] & {"duckdb", "google-cloud-bigquery", "pyarrow"}, step
        assert {"fastparquet", "scikit-learn", "mlflow-skinny"} <= names[step], step
    assert "optuna" in names["optimize"] and "optuna" not in names["train"]
    assert "skops" in names["train"] and "skops" not in names["optimize"]
    assert {"sqlalchemy", "alembic"} <= names["train"]  # MLflow's sqlite tracking store
    # The PostgreSQL driver goes where a step opens the Optuna storage itself (optimize,
    # study_summary); train and the others reach the registry over HTTP.
    assert {step for step in EXTRA if "psycopg" in names[step]} == {"optimize"}
    assert not any("pyarrow" in names[step] for step in EXTRA)
    # Only the steps that write or read datasets with pandas carry fastparquet.
    assert {step for step in EXTRA if "fastparquet" in names[step]} == {"extract", "optimize", "train"}


TEMPLATE = (ROOT / "images" / "Dockerfile").read_text()


def test_the_images_are_the_extras_the_issue_names() -> None:
    assert EXTRA == {
        "airbyte_sync": "airbyte",
        "ge_validate": "gx",
        "dbt_transform": "dbt",
        "extract": "extract",
        "optimize": "optimize",
        "train": "train",
    }
    assert SDK_IMAGE == "extract"


@pytest.mark.parametrize("step", STEPS)
def test_each_image_installs_its_own_extra(step: str) -> None:
    args = IMAGE_SPECS[step].build_args("1.2.3")
    assert args["EXTRA"] == EXTRA[step] and args["REPOSITORY"] == f"kfp-mlops-{step.replace('_', '-')}"
    own = TEMPLATE.split("ARG EXTRA", 1)[1]
    assert 'requirements.py "${EXTRA}"' in own


def test_every_image_shares_the_same_first_layers() -> None:
    # The shared layers read no build argument (but the base image), so every image reuses
    # the first one's cache for them.
    first = TEMPLATE.split("ARG EXTRA", 1)[0].split("FROM ${BASE_IMAGE}", 1)[1]
    assert "pip install -q --no-deps -c /tmp/build/constraints.txt -r /tmp/build/kfp.txt" in first
    assert "python /tmp/build/slim.py" in first
    assert "ARG " not in first and "${" not in first.replace("${BASE_IMAGE}", "")


@pytest.mark.parametrize("step", STEPS)
def test_only_the_sdk_image_installs_the_sdk(step: str) -> None:
    args = IMAGE_SPECS[step].build_args("1.2.3")
    assert (args["SDK"] == "true") == (step == SDK_IMAGE)
    assert (args["KFP_RUNTIME"] == "true") == (step != SDK_IMAGE)
    own = TEMPLATE.split("ARG EXTRA", 1)[1]
    assert 'if [ "${SDK}" = true ]; then python /tmp/build/requirements.py base' in own
    assert "ENV _KFP_RUNTIME=${KFP_RUNTIME}" in own
    assert own.split("COPY README.md", 1)[0].count("python /tmp/build/slim.py") == 1  # the extra's layer


def test_the_data_projects_go_only_where_their_step_runs() -> None:
    assert {name: image.data for name, image in IMAGE_SPECS.items() if image.data} == {
        "ge_validate": ("great_expectations",),
        "dbt_transform": ("dbt_transforms",),
    }


def test_slim_drops_test_suites_and_stubs_and_keeps_data(tmp_path: Path) -> None:
    slim = _load("slim")
    site = tmp_path / "site-packages"
    files = {
        "pkg/__init__.py": "",
        "pkg/core.py": "x = 1\n",
        "pkg/core.pyi": "x: int\n",
        "pkg/tests/__init__.py": "",
        "pkg/tests/test_core.py": "def test(): pass\n",
        "pkg/_core/tests/test_math.py": "def test(): pass\n",  # a test suite without __init__
        "pkg/_core/tests/data/table.csv": "a,b\n",
        "pkg/testing/__init__.py": "",  # helpers a package may import at runtime
        "dbt/include/global_project/macros/tests/unique.sql": "select 1\n",  # data, not tests
        "tests/__init__.py": "",  # a top-level package is not ours to judge
    }
    for rel, text in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(text)
    removed, freed = slim.slim(site)
    left = {str(p.relative_to(site)) for p in site.rglob("*") if p.is_file()}
    assert left == {
        "pkg/__init__.py",
        "pkg/core.py",
        "pkg/testing/__init__.py",
        "dbt/include/global_project/macros/tests/unique.sql",
        "tests/__init__.py",
    }
    assert removed == 3 and freed == sum(
        len(files[k]) for k in files if k.startswith(("pkg/tests/", "pkg/_core/tests/")) or k.endswith(".pyi")
    )
