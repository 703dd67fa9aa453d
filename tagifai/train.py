"""Training: TF-IDF and/or sentence embeddings + SGDClassifier (log loss) over epochs, and the
`other` fallback threshold."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import f1_score, log_loss

from tagifai import features
from tagifai.config import OTHER, TrainParams
from tagifai.data import LabelEncoder, oversample_indices
from tagifai.features import make_vectorizer
from tagifai.model import TagModel, apply_fallback

if TYPE_CHECKING:
    from tagifai.embeddings import EmbeddingCache

# Called after each epoch with (epoch, validation F1); may raise to stop training
# (the Optuna objective raises TrialPruned from here).
EpochCallback = Callable[[int, float], None]


QUANTILE_CANDIDATES = tuple(round(q, 2) for q in np.arange(0.0, 0.55, 0.05))


def fallback_threshold(
    val_proba: np.ndarray, y_val: np.ndarray, quantile: float | None, other_index: int | None
) -> tuple[float, float]:
    """(threshold, quantile) for the `other` fallback, from the validation split.

    The threshold is a quantile of the winning-class probability. With `quantile=None` the
    candidate quantile with the best validation F1 wins (ties go to the smaller quantile:
    fewer predictions overridden).
    """
    top = val_proba.max(axis=1)
    if quantile is not None:
        return float(np.quantile(top, quantile)), quantile
    best = (-1.0, 0.0, 0.0)
    for q in QUANTILE_CANDIDATES:
        th = float(np.quantile(top, q)) if q > 0 else 0.0
        pred = apply_fallback(val_proba, th, other_index)
        f1 = float(f1_score(y_val, pred, average="weighted", zero_division=0))
        if f1 > best[0] + 1e-12:
            best = (f1, th, q)
    return best[1], best[2]


HISTORY_ROWS = 20_000


def _subset(rng: np.random.RandomState, n: int, limit: int) -> np.ndarray:
    return np.arange(n) if n <= limit else np.sort(rng.choice(n, size=limit, replace=False))


def train(
    train_df: pd.DataFrame,
    val_df: pd.DataFrame,
    params: TrainParams | None = None,
    label_encoder: LabelEncoder | None = None,
    oversample: bool = True,
    on_epoch: EpochCallback | None = None,
    embeddings: EmbeddingCache | None = None,
) -> TagModel:
    """Fit the model on `train_df` (columns text, tag) and set the threshold on `val_df`.

    `params.features` picks the feature blocks. The embedding block comes from `embeddings`
    (a study passes one cache to every trial, so no row is encoded twice); without one, a
    cache on the process's shared encoder is made for this call. A missing encoder package
    raises `tagifai.embeddings.EncoderUnavailable`, naming it.
    """
    params = params or TrainParams()
    if params.num_epochs < 1:
        raise ValueError("num_epochs must be at least 1")
    encoder = label_encoder or LabelEncoder.fit(train_df["tag"])
    vectorizer, embed, described = None, None, None
    if features.uses_embeddings(params.features):
        from tagifai.embeddings import EmbeddingCache

        cache = embeddings if embeddings is not None else EmbeddingCache()
        embed, described = cache.embed, cache.encoder.describe()
    train_texts, val_texts = list(train_df["text"]), list(val_df["text"])
    if features.uses_tfidf(params.features):
        vectorizer = make_vectorizer(params).fit(train_texts)
    x_train = features.join(train_texts, vectorizer, embed)
    y_train = encoder.encode(train_df["tag"])
    if oversample:
        idx = oversample_indices(y_train, params.seed)
        x_train, y_train = x_train[idx], y_train[idx]
    x_val = features.join(val_texts, vectorizer, embed)
    y_val = encoder.encode(val_df["tag"])

    clf = SGDClassifier(
        loss="log_loss",
        penalty="l2",
        alpha=params.alpha,
        learning_rate="invscaling",
        eta0=params.learning_rate,
        power_t=params.power_t,
        random_state=params.seed,
    )
    classes = np.arange(len(encoder))
    # Per-epoch curves are computed on bounded subsets so large datasets stay cheap.
    rng = np.random.RandomState(params.seed)
    tr_idx = _subset(rng, x_train.shape[0], HISTORY_ROWS)
    va_idx = _subset(rng, x_val.shape[0], HISTORY_ROWS)
    x_tr_h, y_tr_h, x_va_h, y_va_h = x_train[tr_idx], y_train[tr_idx], x_val[va_idx], y_val[va_idx]
    history: list[dict[str, float]] = []
    for epoch in range(params.num_epochs):
        # partial_fit makes one pass in an order shuffled from the estimator's random state.
        clf.partial_fit(x_train, y_train, classes=classes)
        val_proba = clf.predict_proba(x_va_h)
        val_f1 = float(f1_score(y_va_h, val_proba.argmax(axis=1), average="weighted", zero_division=0))
        history.append(
            {
                "epoch": epoch,
                "train_loss": float(log_loss(y_tr_h, clf.predict_proba(x_tr_h), labels=classes)),
                "val_loss": float(log_loss(y_va_h, val_proba, labels=classes)),
                "val_f1": val_f1,
            }
        )
        if on_epoch is not None:
            on_epoch(epoch, val_f1)

    threshold, quantile = fallback_threshold(
        clf.predict_proba(x_val), y_val, params.threshold_quantile, encoder.index.get(OTHER)
    )
    return TagModel(
        vectorizer,
        clf,
        encoder,
        threshold,
        params,
        history,
        threshold_quantile=quantile,
        encoder_info=described,
        embed=embed,
    )
