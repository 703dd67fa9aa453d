"""The trained model: feature blocks + classifier + labels + fallback threshold, saved as a directory.

The feature blocks are a fitted TF-IDF vectorizer, the sentence encoder's embeddings
(tagifai.embeddings; the encoder is an installed package, so the model directory records
which release it was and refuses another), or both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import SGDClassifier

from tagifai import features
from tagifai.config import OTHER, TrainParams
from tagifai.data import LabelEncoder

MODEL_FILE = "model.skops"
LABELS_FILE = "label_encoder.json"
META_FILE = "model.json"
# 2 records the feature family and the encoder; 1 (TF-IDF only) still loads.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
# Rows scored at a time: bounds the memory of feature rows (embeddings are dense).
PREDICT_BATCH = 4096

# The only types a saved model may contain; anything else is refused at load time.
_TRUSTED_TYPES = [
    "builtins.dict",
    "builtins.list",
    "builtins.tuple",
    "numpy.dtype",
    "numpy.float64",
    "numpy.int64",
    "numpy.ndarray",
    "scipy.sparse._csr.csr_matrix",
    "sklearn.feature_extraction.text.TfidfTransformer",
    "sklearn.feature_extraction.text.TfidfVectorizer",
    "sklearn.linear_model._sgd_fast.Hinge",
    "sklearn.linear_model._sgd_fast.Log",
    "sklearn.linear_model._sgd_fast.ModifiedHuber",
    "sklearn.linear_model._sgd_fast.SquaredLoss",
    "sklearn.linear_model._stochastic_gradient.SGDClassifier",
    "sklearn.utils._bunch.Bunch",
]


@dataclass
class TagModel:
    vectorizer: TfidfVectorizer | None  # None when the model reads embeddings only
    classifier: SGDClassifier
    label_encoder: LabelEncoder
    threshold: float
    params: TrainParams
    history: list[dict[str, float]] = field(default_factory=list)
    threshold_quantile: float = 0.0  # the quantile the threshold came from
    # The sentence encoder the embedding block came from (EncoderFiles.describe()), and
    # what computes that block for new texts; both None for TF-IDF only.
    encoder_info: dict[str, str] | None = None
    embed: features.Embedder | None = field(default=None, repr=False, compare=False)

    @property
    def classes(self) -> list[str]:
        return self.label_encoder.classes

    @property
    def family(self) -> str:
        """The feature family: tfidf, embeddings or both."""
        return self.params.features

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """Class probabilities per text, scored `PREDICT_BATCH` rows at a time."""
        if features.uses_embeddings(self.family) and self.embed is None:
            from tagifai import embeddings

            self.embed = embeddings.shared_cache().embed
        parts = [
            self.classifier.predict_proba(
                features.join(texts[i : i + PREDICT_BATCH], self.vectorizer, self.embed)
            )
            for i in range(0, len(texts), PREDICT_BATCH)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, len(self.classes)))

    def predict_indices(self, texts: list[str], fallback: bool = True) -> np.ndarray:
        """Argmax class per text; with `fallback`, low-confidence predictions become `other`."""
        return apply_fallback(self.predict_proba(texts), self.threshold, self.other_index, fallback)

    @property
    def other_index(self) -> int | None:
        return self.label_encoder.index.get(OTHER)

    def predict(self, texts: list[str], fallback: bool = True) -> list[str]:
        return self.label_encoder.decode(self.predict_indices(texts, fallback))

    def save(self, directory: str | Path) -> Path:
        import skops.io as sio

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        sio.dump({"vectorizer": self.vectorizer, "classifier": self.classifier}, out / MODEL_FILE)
        self.label_encoder.save(out / LABELS_FILE)
        meta = {
            "format_version": FORMAT_VERSION,
            "features": self.family,
            "encoder": self.encoder_info,
            "threshold": self.threshold,
            "threshold_quantile": self.threshold_quantile,
            "params": self.params.to_dict(),
            "history": self.history,
        }
        (out / META_FILE).write_text(json.dumps(meta, indent=2))
        return out

    @classmethod
    def load(cls, directory: str | Path) -> TagModel:
        import skops.io as sio

        src = Path(directory)
        for name in (MODEL_FILE, LABELS_FILE, META_FILE):
            if not (src / name).exists():
                raise FileNotFoundError(f"{src} is not a tagifai model directory: {name} is missing")
        meta: dict[str, Any] = json.loads((src / META_FILE).read_text())
        if meta.get("format_version") not in READABLE_VERSIONS:
            raise ValueError(f"unsupported model format {meta.get('format_version')!r} in {src}")
        params = TrainParams.from_dict(meta["params"])
        encoder = meta.get("encoder")
        if features.uses_embeddings(params.features):
            from tagifai import embeddings

            # Names the missing package when the encoder is not installed.
            embeddings.check_compatible(encoder or {}, embeddings.locate())
        untrusted = sio.get_untrusted_types(file=src / MODEL_FILE)
        unexpected = sorted(set(untrusted) - set(_TRUSTED_TYPES))
        if unexpected:
            raise ValueError(f"refusing to load {src / MODEL_FILE}: unexpected types {unexpected}")
        parts = sio.load(src / MODEL_FILE, trusted=untrusted)
        return cls(
            vectorizer=parts["vectorizer"],
            classifier=parts["classifier"],
            label_encoder=LabelEncoder.load(src / LABELS_FILE),
            threshold=float(meta["threshold"]),
            params=params,
            history=list(meta.get("history", [])),
            threshold_quantile=float(meta.get("threshold_quantile", 0.0)),
            encoder_info=encoder,
        )


def apply_fallback(
    proba: np.ndarray, threshold: float, other_index: int | None, enabled: bool = True
) -> np.ndarray:
    pred = proba.argmax(axis=1)
    if enabled and other_index is not None:
        pred = np.where(proba.max(axis=1) < threshold, other_index, pred)
    return pred
