"""Acceptance on the lesson's real dataset (read from ../shared, never copied)."""

from __future__ import annotations

import pandas as pd
import pytest

from tagifai import data, evaluate, train

LESSON_F1 = 0.8265  # the lesson's published weighted test F1 (with the fallback)


@pytest.fixture(scope="module")
def real_splits(madewithml_dir):
    projects = pd.read_csv(madewithml_dir / "projects.csv")
    tags = pd.read_csv(madewithml_dir / "tags.csv")
    df = data.prepare(projects.merge(tags, on="id"))
    return data.split(df)


def test_lesson_split_sizes(real_splits) -> None:
    assert [len(s) for s in real_splits] == [668, 143, 144]


def test_default_model_beats_the_lesson_and_is_deterministic(real_splits) -> None:
    tr, va, te = real_splits
    first = train.train(tr, va)
    metrics = evaluate.evaluate_model(first, te)
    argmax = evaluate.evaluate_model(first, te, fallback=False)
    print(f"weighted test F1: fallback {metrics['overall']['f1']:.4f}, argmax {argmax['overall']['f1']:.4f}")
    assert metrics["overall"]["f1"] >= LESSON_F1
    assert metrics["overall"]["num_samples"] == 144
    assert set(metrics["slices"]) == {"nlp_cnn", "short_text"}
    again = evaluate.evaluate_model(train.train(tr, va), te)
    assert again["overall"] == metrics["overall"]
