"""Typed defaults: the lesson's arguments, in one place."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

ACCEPTED_TAGS: tuple[str, ...] = ("natural-language-processing", "computer-vision", "mlops")
OTHER = "other"
SEED = 1234
# What a model reads: TF-IDF n-grams, sentence embeddings (tagifai.embeddings), or both.
FEATURE_FAMILIES: tuple[str, ...] = ("tfidf", "embeddings", "both")


@dataclass(frozen=True)
class DataConfig:
    """How raw projects become model inputs and splits."""

    lower: bool = True
    remove_stopwords: bool = True
    accepted_tags: tuple[str, ...] = ACCEPTED_TAGS
    # Classes with fewer rows than this (after the accepted-tags mapping) also become `other`.
    min_freq: int = 75
    train_size: float = 0.7
    val_size: float = 0.15  # the test split is the rest (0.15)
    oversample: bool = True
    seed: int = SEED


@dataclass(frozen=True)
class TrainParams:
    """Model hyperparameters; the defaults are the lesson's best run (TF-IDF features)."""

    features: str = "tfidf"  # one of FEATURE_FAMILIES
    analyzer: str = "char_wb"
    ngram_max_range: int = 7
    alpha: float = 1e-4
    learning_rate: float = 1e-1
    power_t: float = 0.1
    num_epochs: int = 100
    # The "other" fallback: predictions whose winning probability is below this quantile of
    # the winning probabilities on the validation split fall back to `other`. The lesson fixed
    # 0.25; None picks the quantile (0 to 0.5) that maximizes validation F1.
    threshold_quantile: float | None = None
    seed: int = SEED

    def __post_init__(self) -> None:
        if self.features not in FEATURE_FAMILIES:
            raise ValueError(
                f"unknown feature family {self.features!r}; known: {', '.join(FEATURE_FAMILIES)}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainParams:
        """Build from a dict, ignoring unknown keys and casting known ones to their types."""
        casts = {"str": str, "int": int, "float": float, "float | None": float}
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in data:
                value = data[f.name]
                kwargs[f.name] = None if value is None else casts[str(f.type)](value)
        return cls(**kwargs)

    def with_(self, **changes: Any) -> TrainParams:
        return replace(self, **changes)


@dataclass(frozen=True)
class SearchSpace:
    """The hyperparameter search space for Optuna: the lesson's, plus the feature family
    and the classifier's regularization."""

    features: tuple[str, ...] = FEATURE_FAMILIES
    alpha: tuple[float, float] = (1e-5, 1e-2)  # log-uniform
    analyzers: tuple[str, ...] = ("word", "char", "char_wb")
    ngram_max_range: tuple[int, int] = (3, 10)
    learning_rate: tuple[float, float] = (1e-2, 1e0)  # log-uniform
    power_t: tuple[float, float] = (0.1, 0.5)

    def tfidf_only(self) -> SearchSpace:
        """The same space without the families that need the sentence encoder."""
        return replace(self, features=tuple(f for f in self.features if f == "tfidf"))


@dataclass(frozen=True)
class SliceConfig:
    """Slices of the test split that get their own metrics."""

    short_text_max_words: int = 8  # `short_text`: fewer than this many words
    nlp_cnn_terms: tuple[str, ...] = field(default=("cnn", "convolution"))
