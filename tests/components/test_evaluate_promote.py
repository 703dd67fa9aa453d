"""The gate: train -> evaluate -> promote on real MLflow, with a sqlite store and a real server."""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from kfp import dsl

from components.evaluate.component import evaluate
from components.evaluate.core import KEEP, PROMOTE, gate
from components.promote.component import promote
from components.promote.core import ChampionChanged
from components.train.component import train
from tagifai import tracking
from tagifai.config import TrainParams

GOOD = TrainParams(analyzer="char_wb", ngram_max_range=5, num_epochs=10)
WORSE = json.dumps({"num_epochs": 1, "learning_rate": 1e-5})


@pytest.fixture(scope="module")
def inputs(madewithml_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("gate_inputs")
    projects = pd.read_csv(madewithml_dir / "projects.csv")
    projects.merge(pd.read_csv(madewithml_dir / "tags.csv"), on="id").to_parquet(tmp / "labeled.parquet")
    (tmp / "best_params.json").write_text(json.dumps(GOOD.to_dict()))
    return tmp


def _train(inputs: Path, out: Path, uri: str, artifact_root: str, overrides: str = "{}") -> Any:
    return train.python_func(
        dataset=dsl.Dataset(uri=str(inputs / "labeled.parquet"), metadata={"data_version": "dv1"}),
        best_params=dsl.Artifact(uri=str(inputs / "best_params.json")),
        tracking_uri=uri,
        model=dsl.Model(uri=str(out / "model")),
        metrics=dsl.Metrics(uri=str(out / "metrics")),
        confusion=dsl.ClassificationMetrics(uri=str(out / "confusion")),
        artifact_root=artifact_root,
        param_overrides=overrides,
    )


def _evaluate(inputs: Path, out: Path, uri: str, version: str) -> tuple[Any, str]:
    report = dsl.Markdown(uri=str(out / "report"))
    result = evaluate.python_func(
        dataset=dsl.Dataset(uri=str(inputs / "labeled.parquet")),
        candidate_version=version,
        tracking_uri=uri,
        report=report,
    )
    assert report.metadata["decision"] == result.decision
    return result, Path(report.path).read_text()


def _champion(uri: str) -> tuple[str, dict[str, str]]:
    mv = tracking.get_alias(uri)
    assert mv is not None
    return str(mv.version), dict(mv.tags)


def _gate_flow(inputs: Path, tmp: Path, uri: str, artifact_root: str) -> dict[str, Any]:
    """First model -> promote; a worse second model -> keep, the champion stays."""
    t1 = _train(inputs, tmp / "t1", uri, artifact_root)
    e1, _ = _evaluate(inputs, tmp / "e1", uri, t1.version)
    assert (t1.version, e1.decision, e1.champion_version) == ("1", PROMOTE, "")
    assert f"(f1 {t1.test_f1:.4f})" in e1.reason  # evaluate scored the same test rows as train
    assert promote.python_func(version=t1.version, tracking_uri=uri, reason=e1.reason).champion_version == "1"
    version, tags = _champion(uri)
    assert (version, tags["promoted_from"], tags["promotion_reason"]) == ("1", "none", e1.reason)

    t2 = _train(inputs, tmp / "t2", uri, artifact_root, overrides=WORSE)
    assert t2.version == "2" and t2.test_f1 < t1.test_f1
    e2, report = _evaluate(inputs, tmp / "e2", uri, t2.version)
    assert (e2.decision, e2.champion_version) == (KEEP, "1")
    assert e2.reason == f"candidate f1 {t2.test_f1:.4f} < champion {t1.test_f1:.4f} + margin 0.00"
    assert _champion(uri)[0] == "1"  # nothing promoted
    assert "**Decision: keep**" in report and e2.reason in report
    assert "| metric | candidate v2 | champion v1 | Δ |" in report
    assert f"| overall f1 | {t2.test_f1:.4f} | {t1.test_f1:.4f} | {t2.test_f1 - t1.test_f1:+.4f} |" in report
    assert "class `mlops` f1" in report and "slice `short_text` f1 (n=6)" in report

    # Idempotent: promoting the champion again changes nothing.
    before = _champion(uri)
    assert promote.python_func(version="1", tracking_uri=uri, reason="again").champion_version == "1"
    assert _champion(uri) == before
    return {"t1": t1, "t2": t2}


def test_gate_promotes_the_first_model_and_keeps_the_champion_against_a_worse_one(
    inputs: Path, tmp_path: Path
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _gate_flow(inputs, tmp_path, uri, str(tmp_path / "mlartifacts"))
    e, _ = _evaluate(inputs, tmp_path / "e3", uri, "1")
    assert (e.decision, e.reason) == (KEEP, "v1 is already the champion")


def test_every_version_records_the_gate_and_mlflow_is_set_up_for_model_training(
    inputs: Path, tmp_path: Path
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    flow = _gate_flow(inputs, tmp_path, uri, str(tmp_path / "mlartifacts"))
    client = tracking.client(uri)
    kept = client.get_model_version(tracking.MODEL_NAME, flow["t2"].version)  # not promoted
    assert kept.tags["gate_decision"] == KEEP and kept.tags["gate_champion"] == "1"
    assert kept.tags["gate_reason"].startswith(f"candidate f1 {flow['t2'].test_f1:.4f} < champion")
    first = client.get_model_version(tracking.MODEL_NAME, flow["t1"].version)
    assert first.tags["gate_decision"] == PROMOTE and first.tags["gate_champion"] == "none"
    assert "gate" in client.get_registered_model(tracking.MODEL_NAME).description
    # The comparison is attached to the candidate's training run.
    assert [a.path for a in client.list_artifacts(kept.run_id, "reports")] == ["reports/evaluation.md"]
    report = Path(client.download_artifacts(kept.run_id, "reports/evaluation.md", str(tmp_path)))
    assert "**Decision: keep**" in report.read_text()
    # Both models' confusion matrices on the same test rows: pictures in MLflow and in the report.
    plots = [a.path for a in client.list_artifacts(kept.run_id, "plots/evaluation")]
    assert plots == ["plots/evaluation/confusion_candidate.svg", "plots/evaluation/confusion_champion.svg"]
    images = re.findall(
        r"!\[(confusion \w+)\]\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)", report.read_text()
    )
    assert [title for title, _ in images] == ["confusion candidate", "confusion champion"]
    titles = [f"candidate v{flow['t2'].version}:", "champion v1:"]
    for (_, encoded), path, title in zip(images, plots, titles, strict=True):
        logged = Path(client.download_artifacts(kept.run_id, path, str(tmp_path))).read_text()
        assert base64.b64decode(encoded).decode() == logged and title in logged
    experiment = client.get_experiment_by_name("tagifai")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert experiment.tags["mlflow.note.content"]

    # A manual promotion (e.g. a rollback drill) records what it replaced, and back again.
    assert promote.python_func(version="2", tracking_uri=uri, reason="manual").champion_version == "2"
    assert _champion(uri)[0] == "2"
    assert {k: _champion(uri)[1][k] for k in ("promoted_from", "promotion_reason")} == {
        "promoted_from": "1",
        "promotion_reason": "manual",
    }
    e, _ = _evaluate(inputs, tmp_path / "e4", uri, "1")
    assert e.decision == PROMOTE and e.champion_version == "2"
    promote.python_func(version="1", tracking_uri=uri, reason=e.reason)
    assert _champion(uri)[1]["promoted_from"] == "2"
    with pytest.raises(ValueError, match=r"tagifai v9 does not exist in the registry"):
        promote.python_func(version="9", tracking_uri=uri)


def test_a_candidate_is_not_promoted_over_a_champion_it_was_not_compared_with(
    inputs: Path, tmp_path: Path
) -> None:
    # Two runs evaluate against champion v1; the first promotes its v2; the second's v3 was
    # never compared with v2 and must not replace it, whatever its own gate said.
    uri, root = f"sqlite:///{tmp_path / 'mlflow.db'}", str(tmp_path / "mlartifacts")
    versions = [_train(inputs, tmp_path / f"t{i}", uri, root).version for i in (1, 2, 3)]
    promote.python_func(version=versions[0], tracking_uri=uri, compared_with="")
    seen = [_evaluate(inputs, tmp_path / f"e{v}", uri, v)[0].champion_version for v in versions[1:]]
    assert seen == ["1", "1"]
    assert (
        promote.python_func(version=versions[1], tracking_uri=uri, compared_with=seen[0]).champion_version
        == "2"
    )
    with pytest.raises(ChampionChanged, match=r"compared with champion v1, but the champion is now v2"):
        promote.python_func(version=versions[2], tracking_uri=uri, compared_with=seen[1])
    assert _champion(uri)[0] == "2"
    assert "promoted_from" not in tracking.client(uri).get_model_version(tracking.MODEL_NAME, "3").tags
    with pytest.raises(ChampionChanged, match=r"compared with champion none"):
        promote.python_func(version=versions[2], tracking_uri=uri, compared_with="")


@pytest.mark.slow
def test_gate_against_a_real_mlflow_server(inputs: Path, tmp_path: Path, mlflow_server: str) -> None:
    started = time.monotonic()
    runs = _gate_flow(inputs, tmp_path, mlflow_server, artifact_root="")
    client = tracking.client(mlflow_server)
    # Artifacts went through the server's artifact proxy, not to a local path of ours.
    assert client.get_run(runs["t1"].run_id).info.artifact_uri.startswith("mlflow-artifacts:")
    assert {Path(f.path).name for f in client.list_artifacts(runs["t1"].run_id, "model")} >= {"model.skops"}
    assert time.monotonic() - started < 120


def _metrics(f1: float, slices: dict[str, tuple[float, float]]) -> dict[str, Any]:
    return {
        "overall": {"f1": f1},
        "slices": {k: {"f1": v, "num_samples": n} for k, (v, n) in slices.items()},
    }


def test_gate_rules() -> None:
    champ = _metrics(0.80, {"short_text": (0.78, 6), "nlp_cnn": (0.9, 0)})
    assert gate(_metrics(0.9, {}), None, 0.0, 0.05)[0] == PROMOTE
    assert gate(_metrics(0.80, {"short_text": (0.74, 6)}), champ, 0.0, 0.05)[0] == PROMOTE  # tie, small drop
    decision, reason = gate(_metrics(0.81, {"short_text": (0.78, 6)}), champ, 0.02, 0.05)
    assert (decision, reason) == (KEEP, "candidate f1 0.8100 < champion 0.8000 + margin 0.02")
    decision, reason = gate(_metrics(0.85, {"short_text": (0.70, 6), "nlp_cnn": (0.0, 0)}), champ, 0.0, 0.05)
    assert decision == KEEP and reason.startswith(
        "slice short_text f1 0.7000 is 0.0800 below champion 0.7800"
    )
    assert "nlp_cnn" not in reason  # a slice with no test rows says nothing
