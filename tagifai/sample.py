"""The generated sample: a deterministic stand-in for the lesson's projects and tags, at any size.

Projects get a title and description from their class's topics and sentences (with some
borrowed from another class, some terse, some mislabeled, as real annotations are), ids
from 1 and creation times spread evenly from 2020-02-20 to 2026-10-31. Generation runs in chunks of
``SAMPLE_CHUNK`` rows, so the output does not depend on how callers batch it and memory
stays bounded at any size (:func:`write_sample`).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_SAMPLE_ROWS = 2000

# The lesson's class mix (tags.csv of the real dataset: 388/356/79/56/45/31 of 955).
CLASS_MIX: dict[str, float] = {
    "natural-language-processing": 0.406,
    "computer-vision": 0.373,
    "mlops": 0.083,
    "reinforcement-learning": 0.059,
    "graph-learning": 0.047,
    "time-series": 0.032,
}

_TOPICS: dict[str, tuple[str, ...]] = {
    "natural-language-processing": (
        "text classification",
        "named entity recognition",
        "machine translation",
        "sentiment analysis",
        "question answering",
        "abstractive summarization",
        "language modeling",
        "tokenization",
        "BERT fine-tuning",
        "transformer encoders",
        "word embeddings",
        "semantic search over documents",
        "dialogue systems",
        "text generation with GPT",
        "spell correction",
        "topic modeling",
    ),
    "computer-vision": (
        "object detection",
        "semantic segmentation",
        "image classification",
        "pose estimation",
        "face recognition",
        "image super-resolution",
        "optical character recognition",
        "style transfer",
        "YOLO detectors",
        "GAN image synthesis",
        "depth estimation from images",
        "video action recognition",
        "instance segmentation with Mask R-CNN",
        "image captioning",
        "medical image analysis",
        "3D point clouds",
    ),
    "mlops": (
        "model serving",
        "feature stores",
        "experiment tracking",
        "data versioning",
        "model monitoring",
        "CI/CD for machine learning",
        "Kubernetes deployments",
        "pipeline orchestration",
        "model registry",
        "drift detection in production",
        "reproducible training",
        "inference latency optimization",
    ),
    "reinforcement-learning": (
        "policy gradients",
        "Q-learning agents",
        "multi-agent environments",
        "reward shaping",
        "actor-critic methods",
        "Atari game agents",
        "robot control with PPO",
        "offline reinforcement learning",
    ),
    "graph-learning": (
        "graph neural networks",
        "node classification",
        "link prediction",
        "knowledge graph embeddings",
        "graph attention networks",
        "molecular property prediction with GNNs",
        "community detection",
    ),
    "time-series": (
        "time series forecasting",
        "anomaly detection in sensor streams",
        "demand forecasting",
        "temporal convolution models",
        "stock price prediction",
        "seasonality decomposition",
    ),
}

_DETAILS: dict[str, tuple[str, ...]] = {
    "natural-language-processing": (
        "It fine-tunes a pretrained transformer on labeled sentences.",
        "Tokens are embedded and passed through an attention encoder.",
        "Evaluated on a benchmark corpus of news articles and reviews.",
        "Supports multilingual text and subword vocabularies.",
        "A character-level convolutional network classifies short texts.",
        "Includes a tokenizer, vocabulary builder and text preprocessing.",
    ),
    "computer-vision": (
        "A convolutional backbone extracts features from each image.",
        "Trained on annotated images with bounding boxes and masks.",
        "Runs in real time on video frames from a webcam.",
        "Uses data augmentation such as random crops and flips.",
        "Pixels are upsampled with a learned decoder.",
        "Compares CNN and vision transformer backbones.",
    ),
    "mlops": (
        "Models are packaged as containers and deployed behind an API.",
        "Metrics and artifacts are tracked for every training run.",
        "Alerts fire when production data drifts from the training data.",
        "Pipelines are scheduled and versioned end to end.",
        "Covers testing, monitoring and continuous delivery of models.",
    ),
    "reinforcement-learning": (
        "An agent learns a policy by maximizing cumulative reward.",
        "Environments are simulated and episodes are replayed.",
        "Exploration uses epsilon-greedy actions.",
    ),
    "graph-learning": (
        "Messages are passed between neighboring nodes of the graph.",
        "Edges and node features are embedded jointly.",
        "Scales to graphs with millions of nodes.",
    ),
    "time-series": (
        "Sequences are windowed and future values predicted.",
        "Handles trends, seasonality and missing timestamps.",
        "Recurrent and temporal models are compared on daily data.",
    ),
}

_FRAMES = (
    "A simple implementation of {t}",
    "{t} in PyTorch",
    "Awesome {t}",
    "A survey of {t}",
    "{t} made easy",
    "Tutorial: {t} from scratch",
    "Benchmarking {t}",
    "Lessons learned from {t}",
)
_GENERIC = (
    "Code and notebooks are open source.",
    "Written as a step-by-step tutorial.",
    "We release pretrained weights and a demo.",
    "Results are reported on public benchmarks.",
    "",
    "",
)
_SYLLABLES = (
    "ka",
    "lo",
    "mi",
    "ren",
    "ta",
    "vo",
    "zu",
    "ne",
    "ri",
    "sa",
    "tek",
    "ul",
    "ya",
    "bo",
    "chi",
    "da",
    "fen",
    "gor",
    "hal",
    "io",
    "jun",
    "kel",
    "lum",
    "mor",
    "nix",
    "ob",
    "pra",
    "quo",
    "rav",
    "sol",
)
SAMPLE_CHUNK = 100_000  # generation unit: output does not depend on how callers batch it
_START = np.datetime64("2020-02-20T06:43:18")
_SPAN_S = int((np.datetime64("2026-10-31T23:59:59") - _START) / np.timedelta64(1, "s"))


def _name(i: int) -> str:
    parts = []
    n = i + len(_SYLLABLES)  # at least two syllables
    while n:
        n, r = divmod(n, len(_SYLLABLES))
        parts.append(_SYLLABLES[r])
    return "".join(parts).capitalize()


def _chunk(start: int, stop: int, total: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng([seed, start // SAMPLE_CHUNK])
    n = stop - start
    classes = list(CLASS_MIX)
    probs = np.array(list(CLASS_MIX.values()))
    labels = rng.choice(len(classes), size=n, p=probs / probs.sum())
    # Ambiguity: some projects borrow a sentence from another class; some say very little.
    other_labels = rng.choice(len(classes), size=n, p=probs / probs.sum())
    confuse = rng.random(n) < 0.22
    cross_title = rng.random(n) < 0.10  # the title names another field's topic
    noisy = rng.random(n) < 0.04  # annotators disagree: the tag is another class
    terse = rng.random(n) < 0.08
    u = rng.random((n, 5))
    ids = np.arange(start + 1, stop + 1)
    step = _SPAN_S / max(total, 1)
    offsets = (np.arange(start, stop) * step + u[:, 4] * step).astype("int64")
    created = (_START + offsets.astype("timedelta64[s]")).astype(str)
    titles, descriptions, tags = [], [], []
    for k in range(n):
        tag = classes[labels[k]]
        details = _DETAILS[tag]
        topics = _TOPICS[classes[other_labels[k]] if cross_title[k] else tag]
        topic = topics[int(u[k, 0] * len(topics))]
        title = f"{_name(int(ids[k]))}: " + _FRAMES[int(u[k, 1] * len(_FRAMES))].format(t=topic)
        if terse[k]:
            desc = f"{topic.capitalize()}."
        else:
            sentences = [details[int(u[k, 2] * len(details))], _GENERIC[int(u[k, 3] * len(_GENERIC))]]
            if confuse[k]:
                odet = _DETAILS[classes[other_labels[k]]]
                sentences.insert(int(u[k, 3] * 2), odet[int(u[k, 1] * len(odet))])
            desc = " ".join(s for s in sentences if s)
        titles.append(title)
        descriptions.append(desc)
        tags.append(classes[other_labels[k]] if noisy[k] else tag)
    projects = pd.DataFrame({"id": ids, "created_on": created, "title": titles, "description": descriptions})
    projects["created_on"] = projects["created_on"].str.replace("T", " ", regex=False)
    return projects, pd.DataFrame({"id": ids, "tag": tags})


def iter_sample(rows: int, seed: int = 0) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """Yield (projects, tags) chunks of a deterministic sample of `rows` projects."""
    if rows < 1:
        raise ValueError("rows must be at least 1")
    for start in range(0, rows, SAMPLE_CHUNK):
        yield _chunk(start, min(start + SAMPLE_CHUNK, rows), rows, seed)


def generate_sample(rows: int = DEFAULT_SAMPLE_ROWS, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The whole sample in memory (use `write_sample` for large sizes)."""
    parts = list(iter_sample(rows, seed))
    return (
        pd.concat([p for p, _ in parts], ignore_index=True),
        pd.concat([t for _, t in parts], ignore_index=True),
    )


def write_sample(
    directory: str | Path,
    rows: int = DEFAULT_SAMPLE_ROWS,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write `projects.csv` and `tags.csv` chunk by chunk (bounded memory); atomic per folder."""
    out = Path(directory)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".sample-", dir=out.parent))
    try:
        with open(tmp / "projects.csv", "w", newline="") as pf, open(tmp / "tags.csv", "w", newline="") as tf:
            done = 0
            for i, (projects, tags) in enumerate(iter_sample(rows, seed)):
                projects.to_csv(pf, index=False, header=i == 0)
                tags.to_csv(tf, index=False, header=i == 0)
                done += len(projects)
                if progress:
                    progress(done, rows)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
