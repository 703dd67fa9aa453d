"""optimize + study_summary: two real worker processes share one Optuna study (sqlite, and a real
PostgreSQL server as on a cluster) and one MLflow parent run; the summary accounts for every trial
and writes a self-contained report."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
from kfp import dsl

from components.optimize.core import ROLE_TAG, STUDY_TAG, load_shared_study, run_worker, study_parent_run
from components.study import StorageUnavailable, open_storage, redact, resolve_storage_url
from components.study_summary.component import study_summary
from components.study_summary.core import LostTrials, param_importances
from tagifai import tracking
from tagifai.config import TrainParams

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 2
TRIALS_PER_WORKER = 3
EPOCHS = 6

# Each worker is its own Python process, as on a cluster (one pod per worker).
WORKER_SCRIPT = """
import json, sys, time
from kfp import dsl
from components.optimize.component import optimize
args = json.loads(sys.argv[1])
dataset = dsl.Dataset(uri=args.pop("dataset"))
started = time.time()
finished = optimize.python_func(dataset=dataset, **args).finished_trials
print("RESULT=" + json.dumps({"finished": finished, "started": started, "ended": time.time()}))
"""


def run_workers(
    madewithml_dir: Path, tmp: Path, storage: str, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Start two optimize workers at the same time on the lesson's data, as two processes on one
    study in `storage`; wait for both. Returns what they shared and what each reported."""
    projects = pd.read_csv(madewithml_dir / "projects.csv")
    projects.merge(pd.read_csv(madewithml_dir / "tags.csv"), on="id").to_parquet(tmp / "labeled.parquet")
    shared = {
        "study_name": "mlops-test-study",
        "storage": storage,
        "tracking_uri": f"sqlite:///{tmp / 'mlflow.db'}",
        "artifact_root": str(tmp / "mlartifacts"),
    }
    procs = []
    t0 = time.monotonic()
    for worker in range(WORKERS):
        args = {
            **shared,
            "dataset": str(tmp / "labeled.parquet"),
            "worker": worker,
            "n_trials": TRIALS_PER_WORKER,
            "num_epochs": EPOCHS,
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", WORKER_SCRIPT, json.dumps(args)],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, **(env or {})},
            )
        )
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"worker failed:\n{err[-4000:]}"
        results.append(
            {
                **json.loads(out.rsplit("RESULT=", 1)[1]),
                "progress": re.findall(r"^\[progress\] (.*)$", out, re.M),
            }
        )
    return {**shared, "tmp": tmp, "results": results, "seconds": time.monotonic() - t0}


@pytest.fixture(scope="module")
def study(madewithml_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two optimize workers run concurrently on one sqlite study."""
    tmp = tmp_path_factory.mktemp("optimize")
    return run_workers(madewithml_dir, tmp, f"sqlite:///{tmp / 'stores' / 'optuna.db'}")


def test_each_worker_prints_its_trials_done_of_its_total_and_the_study_best(study: dict[str, Any]) -> None:
    for worker, result in enumerate(study["results"]):
        lines = result["progress"]
        assert len(lines) == TRIALS_PER_WORKER, lines
        for done, line in enumerate(lines, start=1):
            assert re.fullmatch(
                rf"worker {worker}: trial {done}/{TRIALS_PER_WORKER} \(#\d+\) (val F1 0\.\d{{4}}|pruned|fail); "
                r"(study best 0\.\d{4}|no completed trial yet)",
                line,
            ), line


def assert_no_trial_lost(study: dict[str, Any]) -> optuna.Study:
    """Every trial of both workers is in the study, and the workers really overlapped."""
    assert [r["finished"] for r in study["results"]] == [TRIALS_PER_WORKER] * WORKERS
    loaded = optuna.load_study(study_name=study["study_name"], storage=study["storage"])
    trials = loaded.get_trials()
    assert len(trials) == WORKERS * TRIALS_PER_WORKER  # none lost
    assert sorted(t.number for t in trials) == list(range(WORKERS * TRIALS_PER_WORKER))
    assert all(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for t in trials)
    by_worker = {w: [t for t in trials if t.user_attrs["worker"] == w] for w in range(WORKERS)}
    assert {w: len(ts) for w, ts in by_worker.items()} == {0: TRIALS_PER_WORKER, 1: TRIALS_PER_WORKER}
    # The workers really ran at the same time: their trial windows overlap.
    windows = [
        (min(t.datetime_start for t in ts), max(t.datetime_complete for t in ts)) for ts in by_worker.values()
    ]
    assert max(w[0] for w in windows) < min(w[1] for w in windows)
    # Different seeds: the workers proposed different points.
    assert {tuple(sorted(t.params.items())) for t in by_worker[0]}.isdisjoint(
        {tuple(sorted(t.params.items())) for t in by_worker[1]}
    )
    assert loaded.user_attrs["base_params"]["num_epochs"] == EPOCHS
    return loaded


def test_two_concurrent_workers_share_one_study(study: dict[str, Any]) -> None:
    assert_no_trial_lost(study)


def test_trials_are_child_runs_of_one_shared_parent(study: dict[str, Any]) -> None:
    client = tracking.client(study["tracking_uri"])
    exp = client.get_experiment_by_name("tagifai")
    assert exp.artifact_location.endswith("mlartifacts")
    runs = client.search_runs(
        [exp.experiment_id], filter_string=f"tags.{STUDY_TAG} = '{study['study_name']}'"
    )
    parents = [r for r in runs if r.data.tags[ROLE_TAG] == "study"]
    children = [r for r in runs if r.data.tags[ROLE_TAG] == "trial"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == WORKERS * TRIALS_PER_WORKER
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    assert sorted(int(c.data.tags["optuna_trial"]) for c in children) == list(
        range(WORKERS * TRIALS_PER_WORKER)
    )
    for child in children:
        assert child.data.params["num_epochs"] == str(EPOCHS)
        assert set(child.data.params) == {f.name for f in fields(TrainParams)}
        if child.data.tags["optuna_state"] == "COMPLETE":
            assert 0 < child.data.metrics["val_f1"] <= 1


def summarize(study: dict[str, Any]) -> tuple[float, dsl.Artifact, dsl.HTML, optuna.Study]:
    """Run the study_summary step on what the workers left; returns its outputs and the study."""
    tmp: Path = study["tmp"]
    best_params = dsl.Artifact(uri=str(tmp / "summary" / "best_params"))
    report = dsl.HTML(uri=str(tmp / "summary" / "report"))
    best = study_summary.python_func(
        study_name=study["study_name"],
        storage=study["storage"],
        expected_trials=WORKERS * TRIALS_PER_WORKER,
        best_params=best_params,
        report=report,
    ).best_f1
    loaded = optuna.load_study(study_name=study["study_name"], storage=study["storage"])
    assert best == pytest.approx(loaded.best_value)
    assert best_params.metadata["finished_trials"] == WORKERS * TRIALS_PER_WORKER
    return best, best_params, report, loaded


def test_study_summary_writes_best_params_and_a_self_contained_report(
    study: dict[str, Any], self_contained: Any
) -> None:
    best, best_params, report, loaded = summarize(study)
    assert 0.5 < best <= 1
    params = json.loads(Path(best_params.path).read_text())
    assert set(params) == {f.name for f in fields(TrainParams)}
    # trials may train shorter; the final model trains for the full default
    assert TrainParams().num_epochs != EPOCHS and params["num_epochs"] == TrainParams().num_epochs
    assert {k: params[k] for k in loaded.best_params} == loaded.best_params
    assert TrainParams.from_dict(params).analyzer == loaded.best_params["analyzer"]

    html = Path(report.path).read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert self_contained(html) == [] and "<script" not in html
    assert "<svg" in html and "<polyline" in html
    assert html.count("<tr") >= WORKERS * TRIALS_PER_WORKER + len(params)
    assert f"{loaded.best_value:.4f}" in html and "none lost" in html
    # Parameter importance, as a picture: one bar per parameter every completed trial has.
    importances, _ = param_importances(loaded)
    assert param_importances(loaded)[0] == importances  # seeded: the same figures every time
    chart = html.split("<h2>Parameter importance</h2>", 1)[1].split("<h2>", 1)[0]
    assert 'aria-label="parameter importance"' in chart and chart.count("<rect") == len(importances) > 0
    top = next(iter(importances))
    assert f">{top}</text>" in chart and f">{importances[top]:.3f}</text>" in chart


def test_study_summary_catches_a_lost_trial(study: dict[str, Any]) -> None:
    tmp: Path = study["tmp"]
    best_params = dsl.Artifact(uri=str(tmp / "lost" / "best_params"))
    report = dsl.HTML(uri=str(tmp / "lost" / "report"))
    expected = WORKERS * TRIALS_PER_WORKER + 1
    with pytest.raises(LostTrials, match=rf"has 6 finished trials .* but {expected} were expected"):
        study_summary.python_func(
            study_name=study["study_name"],
            storage=study["storage"],
            expected_trials=expected,
            best_params=best_params,
            report=report,
            tracking_uri=study["tracking_uri"],
        )
    assert "MISMATCH" in Path(report.path).read_text()  # the report is written first, for debugging
    assert not Path(best_params.path).exists()
    # The study's MLflow parent run says so too: it ends FAILED, not left as the workers left it.
    client = tracking.client(study["tracking_uri"])
    exp_id = client.get_experiment_by_name("tagifai").experiment_id
    [parent] = tracking.study_runs(study["tracking_uri"], exp_id, study["study_name"])
    assert client.get_run(parent).info.status == "FAILED"
    assert client.get_run(parent).info.run_name == f"optuna-study-{study['study_name']}"
    # ... with the report that says why attached to it.
    attached = Path(client.download_artifacts(parent, "reports/study.html", str(tmp / "lost-download")))
    assert "MISMATCH" in attached.read_text()
    with pytest.raises(LostTrials, match="does not exist"):
        study_summary.python_func(
            study_name="never-ran",
            storage=study["storage"],
            expected_trials=1,
            best_params=best_params,
            report=report,
        )


def test_parent_run_is_shared_when_workers_start_together(study: dict[str, Any]) -> None:
    uri, experiment = study["tracking_uri"], "parent-race"
    barrier = threading.Barrier(3)
    ids: list[str] = []

    def worker() -> None:
        barrier.wait()
        ids.append(study_parent_run(uri, experiment, "race"))

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    client = tracking.client(uri)
    exp_id = client.get_experiment_by_name(experiment).experiment_id
    active = client.search_runs([exp_id], filter_string=f"tags.{ROLE_TAG} = 'study'")
    assert len(ids) == 3 and len(set(ids)) == 1
    assert [r.info.run_id for r in active] == ids[:1]
    assert study_parent_run(uri, experiment, "race") == ids[0]  # later workers find it


def test_storage_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "deep" / "optuna.db"
    storage = open_storage(f"sqlite:///{db}")
    assert isinstance(storage, optuna.storages.RDBStorage) and db.parent.is_dir()
    assert storage.engine_kwargs == {"connect_args": {"timeout": 60}}
    pg = "postgresql://optuna:s3cret@db:5432/optuna"
    assert open_storage(pg) == pg  # passes through unchanged
    assert "s3cret" not in redact(pg) and "db:5432" in redact(pg)
    monkeypatch.setenv("OPTUNA_STORAGE_URL", pg)
    assert resolve_storage_url("env:OPTUNA_STORAGE_URL") == pg
    with pytest.raises(ValueError, match="OPTUNA_STORAGE_MISSING is not set"):
        resolve_storage_url("env:OPTUNA_STORAGE_MISSING")
    with pytest.raises(ValueError, match="not an RDB URL"):
        open_storage(str(db))
    with pytest.raises(ValueError, match="without quotes"):  # it goes into an MLflow filter
        run_worker(
            tmp_path / "x.parquet", study_name="it's", storage=pg, worker=0, n_trials=1, tracking_uri=""
        )


# --------------------------------------------------------------------------- on PostgreSQL
# Slow: the pg_study fixture trains in two worker processes (~25 s).


@pytest.fixture(scope="module")
def pg_study(
    madewithml_dir: Path, tmp_path_factory: pytest.TempPathFactory, postgres_server
) -> dict[str, Any]:
    """Two optimize workers started together on one study in a real PostgreSQL, as on a cluster:
    the storage URL names no password, each worker process gets it as PGPASSWORD."""
    tmp = tmp_path_factory.mktemp("optimize-pg")
    storage = postgres_server.url("optuna")
    assert "@" in storage and postgres_server.passwords["optuna"] not in storage
    return {
        **run_workers(madewithml_dir, tmp, storage, env=postgres_server.env("optuna")),
        "server": postgres_server,
    }


@pytest.mark.slow
def test_two_workers_on_one_postgresql_study_lose_no_trial(pg_study: dict[str, Any], monkeypatch) -> None:
    monkeypatch.setenv("PGPASSWORD", pg_study["server"].passwords["optuna"])
    loaded = assert_no_trial_lost(pg_study)
    # The trials are rows of the optuna database, not of some local file.
    [(rows,)] = pg_study["server"].query(
        "optuna",
        "select count(*) from trials join studies using (study_id) "
        f"where studies.study_name = '{pg_study['study_name']}'",
    )
    assert rows == len(loaded.trials) == WORKERS * TRIALS_PER_WORKER
    assert not list(pg_study["tmp"].glob("**/optuna.db"))


@pytest.mark.slow
def test_the_study_summary_reads_every_trial_from_postgresql(pg_study: dict[str, Any], monkeypatch) -> None:
    monkeypatch.setenv("PGPASSWORD", pg_study["server"].passwords["optuna"])
    best, _, report, loaded = summarize(pg_study)
    assert best == loaded.best_value and 0.5 < best <= 1
    assert "none lost" in Path(report.path).read_text(encoding="utf-8")


@pytest.mark.slow
def test_a_postgresql_storage_without_its_password_fails_naming_pgpassword(
    pg_study: dict[str, Any], monkeypatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    url = pg_study["storage"]
    with pytest.raises(
        StorageUnavailable, match=rf"Optuna storage {re.escape(url)} cannot be opened: .*PGPASSWORD"
    ):
        study_summary.python_func(
            study_name=pg_study["study_name"],
            storage=url,
            expected_trials=1,
            best_params=dsl.Artifact(uri=str(tmp_path / "best_params")),
            report=dsl.HTML(uri=str(tmp_path / "report")),
        )
    monkeypatch.setenv("PGPASSWORD", "not-the-password")
    with pytest.raises(StorageUnavailable, match="password authentication failed") as raised:
        load_shared_study("another-study", url)
    assert "not-the-password" not in str(raised.value)
