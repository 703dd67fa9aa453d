"""The search never looks at the test split: a study on the lesson's data whose test rows are
replaced by noise runs the very same trials, with the same validation F1s, as on the real
rows. Were any trial (or its embedding pass) to read the test rows, the values would move."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest

from components.optimize.core import load_shared_study, run_worker
from tagifai import data

TRIALS = 3  # the two warm-start trials (TF-IDF, both), then one of TPE
EPOCHS = 3


def _study(tmp: Path, name: str, labeled: pd.DataFrame) -> list[tuple[Any, ...]]:
    path = tmp / f"{name}.parquet"
    labeled.to_parquet(path)
    storage = f"sqlite:///{tmp / name / 'optuna.db'}"
    run_worker(
        path,
        study_name=name,
        storage=storage,
        worker=0,
        n_trials=TRIALS,
        tracking_uri=f"sqlite:///{tmp / name / 'mlflow.db'}",
        artifact_root=str(tmp / name / "mlartifacts"),
        num_epochs=EPOCHS,
    )
    study = load_shared_study(name, storage)
    return [(t.params, t.value, t.state) for t in sorted(study.trials, key=lambda t: t.number)]


@pytest.mark.slow
def test_a_study_is_blind_to_the_test_rows(madewithml_dir: Path, tmp_path: Path) -> None:
    projects = pd.read_csv(madewithml_dir / "projects.csv")
    labeled = projects.merge(pd.read_csv(madewithml_dir / "tags.csv"), on="id")
    test_ids = set(data.split(data.prepare(labeled))[2]["id"])
    assert len(test_ids) == 144
    # The split depends on ids and tags only: new text leaves every row in its split.
    noisy = labeled.copy()
    on_test = noisy["id"].isin(test_ids)
    noisy.loc[on_test, "title"] = "zebra quartz"
    noisy.loc[on_test, "description"] = noisy.loc[on_test, "id"].map(lambda i: f"noise {i} lorem ipsum")
    assert set(data.split(data.prepare(noisy))[2]["id"]) == test_ids

    real = _study(tmp_path, "real", labeled)
    blind = _study(tmp_path, "blind", noisy)
    assert [s for _, _, s in real] == [optuna.trial.TrialState.COMPLETE] * TRIALS
    assert {p["features"] for p, _, _ in real[:2]} == {"tfidf", "both"}
    assert blind == real
