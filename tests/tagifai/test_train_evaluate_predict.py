from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tagifai import data, evaluate, predict, train
from tagifai.config import OTHER, TrainParams
from tagifai.model import TagModel, apply_fallback

FAST = TrainParams(num_epochs=15, analyzer="word", ngram_max_range=2)


@pytest.fixture
def splits(tiny_labeled, tiny_cfg):
    df = data.prepare(pd.concat([tiny_labeled] * 3, ignore_index=True).assign(id=range(120)), tiny_cfg)
    return data.split(df, tiny_cfg)


def test_train_learns_tiny_data_and_records_history(splits) -> None:
    tr, va, te = splits
    model = train.train(tr, va, FAST)
    assert len(model.history) == 15
    assert model.history[-1]["train_loss"] < model.history[0]["train_loss"]
    metrics = evaluate.evaluate_model(model, te)
    assert metrics["overall"]["f1"] > 0.9
    assert metrics["classes"] == ["computer-vision", "mlops", "natural-language-processing", OTHER]


def test_train_is_deterministic(splits) -> None:
    tr, va, _ = splits
    a, b = train.train(tr, va, FAST), train.train(tr, va, FAST)
    assert a.history == b.history and a.threshold == b.threshold


def test_train_rejects_zero_epochs(splits) -> None:
    with pytest.raises(ValueError, match="num_epochs"):
        train.train(splits[0], splits[1], FAST.with_(num_epochs=0))


def test_on_epoch_callback_sees_val_f1_and_can_stop_training(splits) -> None:
    seen: list[tuple[int, float]] = []

    def stop_at_three(epoch: int, f1: float) -> None:
        seen.append((epoch, f1))
        if epoch == 3:
            raise StopIteration

    with pytest.raises(StopIteration):
        train.train(splits[0], splits[1], FAST, on_epoch=stop_at_three)
    assert [e for e, _ in seen] == [0, 1, 2, 3] and all(0 <= f <= 1 for _, f in seen)


def test_fallback_threshold_fixed_quantile_and_auto() -> None:
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.95, 0.05]])
    y = np.array([0, 1, 1, 0])
    th, q = train.fallback_threshold(proba, y, 0.25, other_index=1)
    assert q == 0.25 and th == pytest.approx(np.quantile([0.9, 0.6, 0.8, 0.95], 0.25))
    # argmax gets row 1 wrong; a threshold above 0.6 sends it to `other` (index 1): all right.
    th, q = train.fallback_threshold(proba, y, None, other_index=1)
    assert apply_fallback(proba, th, 1).tolist() == y.tolist() and q > 0
    # When the fallback cannot help, the auto mode picks quantile 0 (no override).
    th, q = train.fallback_threshold(proba, np.array([0, 0, 1, 0]), None, other_index=1)
    assert (th, q) == (0.0, 0.0)


def test_apply_fallback_only_below_threshold_and_only_with_other() -> None:
    proba = np.array([[0.7, 0.2, 0.1], [0.4, 0.35, 0.25]])
    assert apply_fallback(proba, 0.5, other_index=2).tolist() == [0, 2]
    assert apply_fallback(proba, 0.5, other_index=None).tolist() == [0, 0]
    assert apply_fallback(proba, 0.5, other_index=2, enabled=False).tolist() == [0, 0]


def test_get_metrics_overall_class_and_slices() -> None:
    df = pd.DataFrame(
        {
            "text": ["cnn text model", "image pixels", "short", "a long enough text with many words in it"],
            "tag": ["natural-language-processing", "computer-vision", "mlops", "mlops"],
        }
    )
    classes = ["computer-vision", "mlops", "natural-language-processing"]
    y_true = [2, 0, 1, 1]
    y_pred = [0, 0, 1, 1]
    m = evaluate.get_metrics(y_true, y_pred, classes, df)
    assert m["overall"]["recall"] == pytest.approx(0.75)
    assert m["class"]["natural-language-processing"]["recall"] == 0.0
    assert m["class"]["computer-vision"]["precision"] == 0.5
    assert m["slices"]["nlp_cnn"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "num_samples": 1.0}
    assert m["slices"]["short_text"]["num_samples"] == 3.0
    flat = evaluate.flatten(m)
    assert flat["test_f1"] == m["overall"]["f1"]
    assert "test_class_natural_language_processing_f1" in flat and "test_slice_nlp_cnn_f1" in flat


def test_confusion_matrix_has_every_class() -> None:
    assert evaluate.confusion([0, 1], [0, 0], 3) == [[1, 0, 0], [1, 0, 0], [0, 0, 0]]


def test_save_load_round_trip_and_predict(splits, tmp_path) -> None:
    tr, va, te = splits
    model = train.train(tr, va, FAST)
    model.save(tmp_path / "model")
    loaded = predict.load(tmp_path / "model")
    assert loaded.params == FAST and loaded.threshold == model.threshold
    texts = list(te["text"])
    assert loaded.predict(texts) == model.predict(texts)
    out = predict.predict(loaded, ["Transformers for sentence tokens and language", "Pixels of an image"])
    assert [o["predicted_tag"] for o in out] == ["natural-language-processing", "computer-vision"]
    assert sum(out[0]["probabilities"].values()) == pytest.approx(1.0)


def test_load_refuses_non_model_dirs_and_foreign_types(splits, tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="not a tagifai model directory"):
        TagModel.load(tmp_path)
    from collections import Counter

    import skops.io as sio

    model = train.train(splits[0], splits[1], FAST)
    model.save(tmp_path / "m")
    sio.dump({"vectorizer": Counter(a=1), "classifier": None}, tmp_path / "m" / "model.skops")
    with pytest.raises(ValueError, match="unexpected types"):
        TagModel.load(tmp_path / "m")


def test_params_from_dict_casts_and_ignores_unknown() -> None:
    p = TrainParams.from_dict(
        {"ngram_max_range": "5", "learning_rate": "0.5", "junk": 1, "threshold_quantile": None}
    )
    assert p.ngram_max_range == 5 and p.learning_rate == 0.5 and p.threshold_quantile is None
