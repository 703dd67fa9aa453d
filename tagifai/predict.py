"""Load a trained model directory and predict tags (with the `other` fallback)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tagifai.config import DataConfig
from tagifai.data import clean_texts
from tagifai.model import TagModel, apply_fallback


def load(model_dir: str | Path) -> TagModel:
    """Load a model saved by `TagModel.save` (a directory)."""
    return TagModel.load(model_dir)


def predict(
    model: TagModel, texts: list[str], cfg: DataConfig | None = None, fallback: bool = True
) -> list[dict[str, Any]]:
    """Predict a tag for each raw text (title + description); cleaning is applied here."""
    cleaned = clean_texts(texts, cfg)
    proba = model.predict_proba(cleaned)  # one pass over the features (embeddings: batched)
    tags = model.label_encoder.decode(apply_fallback(proba, model.threshold, model.other_index, fallback))
    return [
        {
            "input_text": raw,
            "predicted_tag": tag,
            "probabilities": dict(zip(model.classes, map(float, p), strict=True)),
        }
        for raw, tag, p in zip(texts, tags, proba, strict=True)
    ]
