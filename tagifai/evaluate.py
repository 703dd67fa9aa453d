"""Weighted precision / recall / F1: overall, per class and on slices."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from tagifai.config import SliceConfig

SliceFn = Callable[[pd.DataFrame], pd.Series]


def nlp_cnn(df: pd.DataFrame, cfg: SliceConfig | None = None) -> pd.Series:
    """NLP projects that mention convolutions: a known hard case (CNN words suggest vision)."""
    cfg = cfg or SliceConfig()
    pattern = "|".join(cfg.nlp_cnn_terms)
    return (df["tag"] == "natural-language-processing") & df["text"].str.contains(pattern, regex=True)


def short_text(df: pd.DataFrame, cfg: SliceConfig | None = None) -> pd.Series:
    """Projects whose cleaned text has fewer than `short_text_max_words` words."""
    cfg = cfg or SliceConfig()
    return df["text"].map(lambda t: len(str(t).split())) < cfg.short_text_max_words


SLICES: dict[str, SliceFn] = {"nlp_cnn": nlp_cnn, "short_text": short_text}


def _prf(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average="weighted", zero_division=0)
    return {"precision": float(p), "recall": float(r), "f1": float(f), "num_samples": float(len(y_true))}


def get_metrics(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    classes: Sequence[str],
    df: pd.DataFrame | None = None,
    slices: dict[str, SliceFn] | None = None,
) -> dict[str, Any]:
    """Metrics overall, per class and per slice (slices need `df` with text and tag columns)."""
    yt, yp = np.asarray(y_true), np.asarray(y_pred)
    metrics: dict[str, Any] = {"overall": _prf(yt, yp), "class": {}, "slices": {}}
    p, r, f, s = precision_recall_fscore_support(
        yt, yp, labels=list(range(len(classes))), average=None, zero_division=0
    )
    for i, name in enumerate(classes):
        metrics["class"][name] = {
            "precision": float(p[i]),
            "recall": float(r[i]),
            "f1": float(f[i]),
            "num_samples": float(s[i]),
        }
    if df is not None:
        for name, fn in (slices or SLICES).items():
            mask = fn(df).to_numpy(dtype=bool)
            if mask.any():
                metrics["slices"][name] = _prf(yt[mask], yp[mask])
            else:
                metrics["slices"][name] = {"precision": 0.0, "recall": 0.0, "f1": 0.0, "num_samples": 0.0}
    return metrics


def confusion(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> list[list[int]]:
    return confusion_matrix(y_true, y_pred, labels=list(range(n_classes))).tolist()


def flatten(metrics: dict[str, Any], prefix: str = "test") -> dict[str, float]:
    """Flat metric names for a tracker: test_f1, test_class_mlops_f1, test_slice_nlp_cnn_f1, ..."""
    flat: dict[str, float] = {}
    for key in ("precision", "recall", "f1"):
        flat[f"{prefix}_{key}"] = metrics["overall"][key]
    for group, tag in (("class", "class"), ("slices", "slice")):
        for name, vals in metrics[group].items():
            safe = name.replace("-", "_")
            for key in ("precision", "recall", "f1", "num_samples"):
                flat[f"{prefix}_{tag}_{safe}_{key}"] = vals[key]
    return flat


def evaluate_model(model: Any, df: pd.DataFrame, fallback: bool = True) -> dict[str, Any]:
    """Metrics of a TagModel on a prepared frame (text, tag)."""
    y_true = model.label_encoder.encode(df["tag"])
    y_pred = model.predict_indices(list(df["text"]), fallback=fallback)
    out = get_metrics(y_true, y_pred, model.classes, df)
    out["confusion_matrix"] = confusion(y_true, y_pred, len(model.classes))
    out["classes"] = list(model.classes)
    return out
