from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tagifai import data
from tagifai.config import OTHER, DataConfig


def test_clean_text_lowercases_drops_links_punctuation_and_stopwords() -> None:
    out = data.clean_text("The BERT model, see https://x.io/a?b=1 -- it's GREAT!")
    assert out == "bert model s great"


def test_clean_text_keeps_case_and_stopwords_when_asked() -> None:
    assert data.clean_text("The Model", lower=False, stopwords=None) == "The Model"


def test_map_tags_sends_unaccepted_and_rare_classes_to_other() -> None:
    tags = pd.Series(["mlops"] * 2 + ["computer-vision"] * 5 + ["time-series"] * 9)
    mapped = data.map_tags(tags, ("mlops", "computer-vision"), min_freq=3)
    assert mapped.value_counts().to_dict() == {OTHER: 11, "computer-vision": 5}


def test_prepare_builds_text_maps_tags_and_drops_untagged(tiny_labeled: pd.DataFrame) -> None:
    df = tiny_labeled.copy()
    df.loc[0, "tag"] = None
    out = data.prepare(df, DataConfig(min_freq=5))
    assert len(out) == len(df) - 1
    assert set(out["tag"]) == {"natural-language-processing", "computer-vision", "mlops", OTHER}
    assert out.loc[0, "text"] == "project 1 transformer text transformer sentence tokens language item 1"


def test_prepare_names_missing_columns() -> None:
    with pytest.raises(ValueError, match="description"):
        data.prepare(pd.DataFrame({"title": ["a"], "tag": ["mlops"]}))


def test_label_encoder_round_trip(tmp_path) -> None:
    enc = data.LabelEncoder.fit(["b", "a", "c", "a"])
    assert enc.classes == ["a", "b", "c"]
    assert enc.encode(["c", "a"]).tolist() == [2, 0]
    enc.save(tmp_path / "l.json")
    again = data.LabelEncoder.load(tmp_path / "l.json")
    assert again.decode([1, 2]) == ["b", "c"]
    with pytest.raises(ValueError, match="unknown class 'z'"):
        enc.encode(["z"])


def test_split_is_stratified_deterministic_and_disjoint(tiny_labeled, tiny_cfg) -> None:
    df = data.prepare(pd.concat([tiny_labeled] * 5, ignore_index=True).assign(id=range(200)), tiny_cfg)
    train, val, test = data.split(df, tiny_cfg)
    assert (len(train), len(val), len(test)) == (140, 30, 30)
    assert set(train["id"]).isdisjoint(val["id"]) and set(val["id"]).isdisjoint(test["id"])
    counts = test["tag"].value_counts()
    assert len(counts) == 4 and counts.max() - counts.min() <= 1  # each class keeps its share
    again = data.split(df, tiny_cfg)
    assert again[2]["id"].tolist() == test["id"].tolist()


def test_split_rejects_bad_sizes(tiny_labeled) -> None:
    with pytest.raises(ValueError, match="bad split sizes"):
        data.split(tiny_labeled, DataConfig(train_size=0.9, val_size=0.2))


def test_oversample_balances_classes_deterministically() -> None:
    y = np.array([0] * 8 + [1] * 3 + [2] * 1)
    idx = data.oversample_indices(y, seed=1)
    assert np.bincount(y[idx]).tolist() == [8, 8, 8]
    assert set(np.flatnonzero(y == 0)) <= set(idx)  # originals kept
    assert data.oversample_indices(y, seed=1).tolist() == idx.tolist()


def test_split_does_not_depend_on_row_order(tiny_labeled, tiny_cfg) -> None:
    df = data.prepare(pd.concat([tiny_labeled] * 5, ignore_index=True).assign(id=range(200)), tiny_cfg)
    shuffled = df.sample(frac=1.0, random_state=3)
    for a, b in zip(data.split(df, tiny_cfg), data.split(shuffled, tiny_cfg), strict=True):
        assert a["id"].tolist() == b["id"].tolist()
