"""What the image builds are made of, without Docker: the requirement sets
(images/requirements.py), the site-packages slimming (images/slim.py) and the Dockerfiles'
shared layers and kfp runtime split. tests/e2e/test_images.py checks the built images."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

from components.images import SDK_STEP, STEPS

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


# The extra each image installs (images/<step>/Dockerfile).
EXTRA = {
    "airbyte_sync": "airbyte",
    "ge_validate": "gx",
    "dbt_transform": "dbt",
    "extract": "extract",
    "optimize": "optimize",
    "train": "train",
}


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


@pytest.mark.parametrize("step", STEPS)
def test_each_image_installs_its_own_extra(step: str) -> None:
    own = (ROOT / "images" / step / "Dockerfile").read_text().split("# This step's own dependencies", 1)[1]
    assert re.findall(r"requirements\.py (\w+) ", own)[0] == EXTRA[step]
    assert f"(the `{EXTRA[step]}` extra)" in own


def _sections(step: str) -> tuple[str, str]:
    text = (ROOT / "images" / step / "Dockerfile").read_text()
    shared, own = text.split("# This step's own dependencies", 1)
    # the first two lines name the image
    return "\n".join(shared.splitlines()[2:]), own


def test_every_image_shares_the_same_first_layers() -> None:
    first = _sections(STEPS[0])[0]
    assert "pip install -q --no-deps -c /tmp/build/constraints.txt -r /tmp/build/kfp.txt" in first
    assert "python /tmp/build/slim.py" in first
    for step in STEPS[1:]:
        assert _sections(step)[0] == first, f"{step}: its shared layers differ (no cache reuse)"


@pytest.mark.parametrize("step", STEPS)
def test_only_the_sdk_image_installs_the_sdk(step: str) -> None:
    own = _sections(step)[1]
    installs_sdk = "requirements.py base" in own
    runtime_mode = "ENV _KFP_RUNTIME=true" in own
    assert installs_sdk == (step == SDK_STEP)
    assert runtime_mode == (step != SDK_STEP)
    assert own.count("python /tmp/build/slim.py") == 1  # the extra's layer is slimmed too


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
