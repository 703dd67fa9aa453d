from __future__ import annotations

import pandas as pd
import pytest

from tagifai.config import DataConfig


@pytest.fixture
def tiny_labeled() -> pd.DataFrame:
    """40 labeled projects, 10 per class, with separable vocabulary."""
    rows = []
    words = {
        "natural-language-processing": "text transformer sentence tokens language",
        "computer-vision": "image pixels detection segmentation convolution",
        "mlops": "deployment monitoring pipeline serving registry",
        "reinforcement-learning": "agent reward policy environment episode",
    }
    for tag, vocab in words.items():
        for i in range(10):
            rows.append(
                {
                    "id": len(rows) + 1,
                    "created_on": "2020-02-20 06:43:18",
                    "title": f"Project {i} about {vocab.split()[i % 5]}",
                    "description": f"The {vocab} of item {i}.",
                    "tag": tag,
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture
def tiny_cfg() -> DataConfig:
    return DataConfig(min_freq=5)
