from __future__ import annotations

import optuna
import pandas as pd
import pytest

from tagifai import data, optimize, tracking
from tagifai.config import SearchSpace, TrainParams

BASE = TrainParams(num_epochs=12)
SPACE = SearchSpace(analyzers=("word",), ngram_max_range=(1, 2))


@pytest.fixture
def splits(tiny_labeled, tiny_cfg):
    df = data.prepare(pd.concat([tiny_labeled] * 3, ignore_index=True).assign(id=range(120)), tiny_cfg)
    return data.split(df, tiny_cfg)


def test_objective_reports_the_metric_it_returns(splits) -> None:
    tr, va, _ = splits
    study = optimize.create_study("t", seed=3)
    seen = []
    study.optimize(
        optimize.make_objective(tr, va, BASE, SPACE, on_trial=lambda t, p, v, m: seen.append((p, v))),
        n_trials=3,
    )
    for trial in study.trials:
        assert trial.state == optuna.trial.TrialState.COMPLETE
        last_step = max(trial.intermediate_values)
        assert trial.value == trial.intermediate_values[last_step]  # same metric, same scale
    assert len(seen) == 3 and study.direction == optuna.study.StudyDirection.MAXIMIZE
    best = optimize.best_params(study, BASE)
    assert best.analyzer == "word" and best.num_epochs == 12


def test_pruner_prunes_a_hopeless_trial(splits) -> None:
    tr, va, _ = splits
    study = optimize.create_study("p", seed=0, startup_trials=1)
    study.optimize(optimize.make_objective(tr, va, BASE, SPACE), n_trials=1)
    # A trial reporting near-zero F1 is below the median of the completed one: pruned.
    trial = study.ask()
    pruned = False
    for step in range(10):
        trial.report(0.01, step)
        if trial.should_prune():
            pruned = True
            break
    assert pruned


def test_workers_share_a_sqlite_study(splits, tmp_path) -> None:
    tr, va, _ = splits
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    for seed in (1, 2):
        optimize.create_study("shared", storage, seed=seed).optimize(
            optimize.make_objective(tr, va, BASE, SPACE), n_trials=2
        )
    assert len(optuna.load_study(study_name="shared", storage=storage).trials) == 4


def test_tracking_logs_registers_aliases_and_downloads(tmp_path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    (model_dir / "model.json").write_text("{}")
    assert tracking.get_alias(uri) is None
    run_id = tracking.log_run(
        uri,
        "exp",
        run_name="r",
        params={"a": 1},
        metrics={"test_f1": 0.5, "nan": float("nan")},
        artifacts={"model": model_dir},
        tags={"data_version": "v1"},
        artifact_location=str(tmp_path / "art"),
    )
    assert tracking.run_metrics(uri, run_id) == {"test_f1": 0.5}
    version = tracking.register_model(uri, run_id, tags={"data_version": "v1"})
    assert version == "1" and tracking.get_alias(uri) is None
    tracking.set_alias(uri, version)
    champ = tracking.get_alias(uri)
    assert str(champ.version) == "1" and champ.tags["data_version"] == "v1"
    local = tracking.download_model(uri, version, tmp_path / "dl")
    assert (local / "model.json").read_text() == "{}"
    assert [str(v.version) for v in tracking.list_versions(uri)] == ["1"]


def test_add_fixed_trial_records_a_finished_trial_with_those_params(splits) -> None:
    tr, va, _ = splits
    study = optimize.create_study("fixed", seed=0)
    params = {"analyzer": "word", "ngram_max_range": 2, "learning_rate": 0.1, "power_t": 0.2}
    trial = optimize.add_fixed_trial(study, optimize.make_objective(tr, va, BASE, SPACE), params, SPACE)
    assert trial.state == optuna.trial.TrialState.COMPLETE
    # The searched params it leaves out take the lesson's defaults (TF-IDF, alpha 1e-4).
    assert trial.params == {**params, "features": "tfidf", "alpha": 1e-4}
    assert 0 < trial.value <= 1 and "threshold" in trial.user_attrs
    study.optimize(optimize.make_objective(tr, va, BASE, SPACE), n_trials=1)  # the study goes on from it
    assert len(study.trials) == 2
