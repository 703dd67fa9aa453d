"""train: real training on the lesson's data, real MLflow (sqlite) tracking and registry."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from kfp import dsl

from components.train.component import train
from components.versions import frame_version
from tagifai import tracking
from tagifai.config import TrainParams
from tagifai.predict import load, predict

PARAMS = TrainParams(analyzer="char_wb", ngram_max_range=5, num_epochs=10)
CLASSES = ["computer-vision", "mlops", "natural-language-processing", "other"]


@pytest.fixture(scope="module")
def stores(madewithml_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("train")
    projects = pd.read_csv(madewithml_dir / "projects.csv")
    labeled = projects.merge(pd.read_csv(madewithml_dir / "tags.csv"), on="id")
    labeled.to_parquet(tmp / "labeled.parquet")
    (tmp / "best_params.json").write_text(json.dumps(PARAMS.to_dict()))
    return {
        "tmp": tmp,
        "labeled": labeled,
        "tracking_uri": f"sqlite:///{tmp / 'mlflow.db'}",
        "artifact_root": str(tmp / "mlartifacts"),
    }


def _run(stores: dict[str, Any], name: str, metadata: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    tmp: Path = stores["tmp"]
    arts = {
        "model": dsl.Model(uri=str(tmp / name / "model")),
        "metrics": dsl.Metrics(uri=str(tmp / name / "metrics")),
        "confusion": dsl.ClassificationMetrics(uri=str(tmp / name / "confusion")),
    }
    out = train.python_func(
        dataset=dsl.Dataset(uri=str(tmp / "labeled.parquet"), metadata=dict(metadata or {})),
        best_params=dsl.Artifact(uri=str(tmp / "best_params.json")),
        tracking_uri=stores["tracking_uri"],
        artifact_root=stores["artifact_root"],
        **arts,
        **kwargs,
    )
    return out, arts


def test_train_registers_a_version_tagged_with_the_data_version(stores: dict[str, Any]) -> None:
    uri = stores["tracking_uri"]
    out, arts = _run(stores, "first", metadata={"data_version": "dv-extract-1"})
    assert out.version == "1" and 0.75 < out.test_f1 <= 1

    # Registry: version 1 of tagifai, tagged with the data version and the run.
    (mv,) = tracking.list_versions(uri)
    assert (str(mv.version), mv.run_id) == ("1", out.run_id)
    assert mv.tags["data_version"] == "dv-extract-1" and mv.tags["run_id"] == out.run_id

    # The run: params, overall / class / slice metrics, the model folder and a metrics JSON.
    client = tracking.client(uri)
    run = client.get_run(out.run_id)
    m = run.data.metrics
    assert m["test_f1"] == pytest.approx(out.test_f1)
    for key in ("test_precision", "test_recall", "test_f1_argmax", "threshold"):
        assert key in m
    assert {f"test_class_{c.replace('-', '_')}_f1" for c in CLASSES} <= set(m)
    assert {"test_slice_short_text_f1", "test_slice_nlp_cnn_f1"} <= set(m)
    assert run.data.params["num_epochs"] == "10" and run.data.params["analyzer"] == "char_wb"
    assert run.data.tags["data_version"] == "dv-extract-1"
    assert run.info.artifact_uri.startswith(("file://" + stores["artifact_root"], stores["artifact_root"]))
    model_files = {Path(f.path).name for f in client.list_artifacts(out.run_id, "model")}
    assert {"model.skops", "label_encoder.json", "model.json"} <= model_files
    metrics_json = json.loads(
        Path(client.download_artifacts(out.run_id, "metrics/test_metrics.json")).read_text()
    )
    assert metrics_json["metrics"]["overall"]["f1"] == pytest.approx(out.test_f1)
    assert metrics_json["rows"] == {"train": 668, "val": 143, "test": 144}

    # KFP outputs: a loadable model folder, overall metrics, a 4-class confusion matrix.
    model = load(arts["model"].path)
    assert model.classes == CLASSES
    assert predict(model, ["Transformers for machine translation of text"])[0]["predicted_tag"] == (
        "natural-language-processing"
    )
    assert arts["metrics"].metadata["f1"] == pytest.approx(out.test_f1)
    assert set(arts["metrics"].metadata) == {"f1", "precision", "recall", "threshold"}
    cm = arts["confusion"].metadata["confusionMatrix"]
    assert [s["displayName"] for s in cm["annotationSpecs"]] == CLASSES
    assert sum(map(sum, (r["row"] for r in cm["rows"]))) == 144  # every test row once
    assert arts["model"].metadata["version"] == "1"


def test_train_recomputes_the_data_version_and_applies_overrides(stores: dict[str, Any]) -> None:
    uri = stores["tracking_uri"]
    out, _ = _run(stores, "worse", param_overrides='{"num_epochs": 1, "learning_rate": 1e-5}')
    mv = tracking.client(uri).get_model_version("tagifai", out.version)
    assert mv.tags["data_version"] == frame_version(pd.read_parquet(stores["tmp"] / "labeled.parquet"))
    params = tracking.client(uri).get_run(out.run_id).data.params
    assert (params["num_epochs"], float(params["learning_rate"])) == ("1", 1e-5)

    with pytest.raises(ValueError, match=r"unknown key\(s\) \['epochs'\]"):
        _run(stores, "typo", param_overrides='{"epochs": 1}')


def test_the_training_run_holds_its_confusion_picture_validation_report_and_pipeline_run(
    stores: dict[str, Any], self_contained: Any
) -> None:
    uri, tmp = stores["tracking_uri"], stores["tmp"]
    page = tmp / "validation.html"
    page.write_text(
        "<!doctype html><html><body><h1>labeled_projects: 12 of 12 expectations</h1></body></html>"
    )
    out, _ = _run(
        stores,
        "traced",
        validation_report=dsl.HTML(uri=str(page)),
        pipeline_run_id="0f3c-run-id",
        pipeline_run_name="mlops-2026-12-02-10-00-00-000001",
    )
    client = tracking.client(uri)
    run = client.get_run(out.run_id)
    assert run.data.tags["kfp.pipeline_run_id"] == "0f3c-run-id"
    assert run.data.tags["kfp.pipeline_run_name"] == "mlops-2026-12-02-10-00-00-000001"
    assert run.data.tags["kfp_step"] == "train"
    version = client.get_model_version("tagifai", out.version)
    assert version.tags["kfp.pipeline_run_id"] == "0f3c-run-id"
    attached = Path(client.download_artifacts(out.run_id, "reports/validation.html", str(tmp / "dl")))
    assert attached.read_text() == page.read_text()
    svg = Path(
        client.download_artifacts(out.run_id, "plots/confusion_matrix.svg", str(tmp / "dl"))
    ).read_text()
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg"') and self_contained(svg) == []
    # One cell per (true, predicted) pair, labelled with its count: the whole test split.
    counts = [int(n) for n in re.findall(r'text-anchor="middle" fill="#[0-9a-f]{3,6}">(\d+)</text>', svg)]
    assert len(counts) == len(CLASSES) ** 2 and sum(counts) == 144


def test_a_step_run_by_hand_has_no_pipeline_run_tags_and_a_placeholder_is_refused(
    stores: dict[str, Any],
) -> None:
    out, _ = _run(stores, "by-hand")
    tags = tracking.client(stores["tracking_uri"]).get_run(out.run_id).data.tags
    assert not {"kfp.pipeline_run_id", "kfp.pipeline_run_name"} & set(tags)
    with pytest.raises(ValueError, match="unresolved KFP placeholder"):
        _run(stores, "unresolved", pipeline_run_id="{{$.pipeline_job_uuid}}")
