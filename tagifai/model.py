"""The trained model: vectorizer + classifier + labels + fallback threshold, saved as a directory."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import SGDClassifier

from tagifai.config import OTHER, TrainParams
from tagifai.data import LabelEncoder

MODEL_FILE = "model.skops"
LABELS_FILE = "label_encoder.json"
META_FILE = "model.json"
FORMAT_VERSION = 1

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
    vectorizer: TfidfVectorizer
    classifier: SGDClassifier
    label_encoder: LabelEncoder
    threshold: float
    params: TrainParams
    history: list[dict[str, float]] = field(default_factory=list)
    threshold_quantile: float = 0.0  # the quantile the threshold came from

    @property
    def classes(self) -> list[str]:
        return self.label_encoder.classes

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return self.classifier.predict_proba(self.vectorizer.transform(texts))

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
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"unsupported model format {meta.get('format_version')!r} in {src}")
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
            params=TrainParams.from_dict(meta["params"]),
            history=list(meta.get("history", [])),
            threshold_quantile=float(meta.get("threshold_quantile", 0.0)),
        )


def apply_fallback(
    proba: np.ndarray, threshold: float, other_index: int | None, enabled: bool = True
) -> np.ndarray:
    pred = proba.argmax(axis=1)
    if enabled and other_index is not None:
        pred = np.where(proba.max(axis=1) < threshold, other_index, pred)
    return pred
