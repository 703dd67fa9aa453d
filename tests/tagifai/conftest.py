from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pytest

from tagifai.config import DataConfig


def labeled_frame(per_class: int = 10) -> pd.DataFrame:
    """Labeled projects, `per_class` for each of 4 classes, with separable vocabulary."""
    rows = []
    words = {
        "natural-language-processing": "text transformer sentence tokens language",
        "computer-vision": "image pixels detection segmentation convolution",
        "mlops": "deployment monitoring pipeline serving registry",
        "reinforcement-learning": "agent reward policy environment episode",
    }
    for tag, vocab in words.items():
        for i in range(per_class):
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


@pytest.fixture(scope="session")
def make_labeled() -> Callable[..., pd.DataFrame]:
    """`labeled_frame` itself, for fixtures wider than one test."""
    return labeled_frame


@pytest.fixture
def tiny_labeled() -> pd.DataFrame:
    """40 labeled projects, 10 per class, with separable vocabulary."""
    return labeled_frame()


@pytest.fixture
def tiny_cfg() -> DataConfig:
    return DataConfig(min_freq=5)
