"""Cleaning, label encoding, the stratified split and oversampling."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
from sklearn.model_selection import train_test_split

from tagifai.config import OTHER, DataConfig

STOPWORDS: frozenset[str] = frozenset(ENGLISH_STOP_WORDS)
_URL = re.compile(r"https?://\S+|www\.\S+")
_NON_ALNUM = re.compile(r"[^a-zA-Z0-9]+")

REQUIRED_COLUMNS = ("title", "description", "tag")


def clean_text(text: str, lower: bool = True, stopwords: Iterable[str] | None = STOPWORDS) -> str:
    """Lower-case, drop links and punctuation, remove stop words, collapse spaces."""
    if lower:
        text = text.lower()
    text = _URL.sub(" ", text)
    text = _NON_ALNUM.sub(" ", text)
    stop = frozenset(stopwords or ())
    return " ".join(tok for tok in text.split() if tok not in stop)


def clean_texts(texts: Iterable[str], cfg: DataConfig | None = None) -> list[str]:
    """Each text cleaned as `cfg` says (lower-casing, stop words): what the model is given."""
    cfg = cfg or DataConfig()
    stop = STOPWORDS if cfg.remove_stopwords else None
    return [clean_text(t, lower=cfg.lower, stopwords=stop) for t in texts]


def raw_texts(df: pd.DataFrame) -> pd.Series:
    """Title + description as one string per row (missing parts are empty)."""
    return df["title"].fillna("").astype(str) + " " + df["description"].fillna("").astype(str)


def model_texts(df: pd.DataFrame, cfg: DataConfig | None = None) -> list[str]:
    """The cleaned text the model sees for each row (title + description), labeled or not."""
    return clean_texts(raw_texts(df), cfg)


def map_tags(tags: pd.Series, accepted: Sequence[str], min_freq: int) -> pd.Series:
    """Tags outside `accepted`, and classes with fewer than `min_freq` rows, become `other`."""
    mapped = tags.where(tags.isin(list(accepted)), OTHER)
    counts = mapped.value_counts()
    rare = [label for label, n in counts.items() if n < min_freq and label != OTHER]
    return mapped.where(~mapped.isin(rare), OTHER)


def prepare(df: pd.DataFrame, cfg: DataConfig | None = None) -> pd.DataFrame:
    """Labeled projects -> frame with `text` (title + description, cleaned) and mapped `tag`.

    Rows without a tag (projects the join found no tag for) cannot be trained on and are
    dropped; every other column is kept so slices can look at the raw fields.
    """
    cfg = cfg or DataConfig()
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"labeled projects are missing column(s): {', '.join(missing)}")
    out = df[df["tag"].notna()].copy()
    out["text"] = model_texts(out, cfg)
    out["tag"] = map_tags(out["tag"].astype(str), cfg.accepted_tags, cfg.min_freq)
    return out.reset_index(drop=True)


class LabelEncoder:
    """Maps class names to indices and back; classes are kept sorted for stability."""

    def __init__(self, classes: Sequence[str]):
        self.classes: list[str] = sorted(set(classes))
        self.index: dict[str, int] = {c: i for i, c in enumerate(self.classes)}

    @classmethod
    def fit(cls, labels: Iterable[str]) -> LabelEncoder:
        return cls(list(labels))

    def __len__(self) -> int:
        return len(self.classes)

    def encode(self, labels: Iterable[str]) -> np.ndarray:
        try:
            return np.array([self.index[label] for label in labels], dtype=np.int64)
        except KeyError as exc:
            raise ValueError(f"unknown class {exc.args[0]!r}; known: {self.classes}") from None

    def decode(self, indices: Iterable[int]) -> list[str]:
        return [self.classes[int(i)] for i in indices]

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"classes": self.classes}, indent=2))

    @classmethod
    def load(cls, path: str | Path) -> LabelEncoder:
        return cls(json.loads(Path(path).read_text())["classes"])


def split(df: pd.DataFrame, cfg: DataConfig | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Stratified train / val / test split (70/15/15 by default) with a fixed seed."""
    cfg = cfg or DataConfig()
    if not 0 < cfg.train_size < 1 or not 0 < cfg.val_size < 1 - cfg.train_size:
        raise ValueError(f"bad split sizes train={cfg.train_size} val={cfg.val_size}")
    if "id" in df.columns:
        # The split must not depend on the order rows arrived in (a warehouse scan has none).
        df = df.sort_values("id", kind="stable")
    train, rest = train_test_split(df, train_size=cfg.train_size, stratify=df["tag"], random_state=cfg.seed)
    # An integer count avoids float rounding (0.15 / 0.3 is 0.4999...); the test split gets
    # the odd row, as in the lesson (955 rows -> 668 / 143 / 144).
    n_val = math.floor(len(rest) * cfg.val_size / (1 - cfg.train_size) + 1e-9)
    val, test = train_test_split(rest, train_size=n_val, stratify=rest["tag"], random_state=cfg.seed)
    return train.reset_index(drop=True), val.reset_index(drop=True), test.reset_index(drop=True)


def oversample_indices(y: np.ndarray, seed: int) -> np.ndarray:
    """Row indices that bring every class up to the majority count (sampling with replacement).

    Used on the training split only, so validation and test keep the real class mix.
    """
    rng = np.random.RandomState(seed)
    classes, counts = np.unique(y, return_counts=True)
    target = counts.max()
    parts = []
    for cls, n in zip(classes, counts, strict=True):
        idx = np.flatnonzero(y == cls)
        extra = rng.choice(idx, size=target - n, replace=True) if n < target else idx[:0]
        parts.append(np.concatenate([idx, extra]))
    return np.sort(np.concatenate(parts))
