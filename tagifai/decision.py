"""The continual-learning decision: ``continue``, ``improve``, ``inspect`` or ``rollback``.

:func:`decide` turns a :class:`tagifai.drift.DriftReport` and the live F1 of the champion
and of the previous version on newly labeled rows (:func:`live_f1`) into the action and
its reasons, with the thresholds of a :class:`tagifai.drift.DriftPolicy`. Pure functions:
no kfp, no env reads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tagifai.config import OTHER, DataConfig
from tagifai.data import map_tags, model_texts
from tagifai.drift import DriftPolicy, DriftReport
from tagifai.evaluate import evaluate_model

CONTINUE, IMPROVE, INSPECT, ROLLBACK = "continue", "improve", "inspect", "rollback"


@dataclass(frozen=True)
class LiveF1:
    """A model version's weighted F1 on newly labeled rows, and its F1 at training time."""

    version: str
    f1: float
    baseline: float | None  # registered test F1 (None when unknown)
    rows: int

    @property
    def drop(self) -> float | None:
        return None if self.baseline is None else self.baseline - self.f1

    def describe(self) -> str:
        base = "unknown" if self.baseline is None else f"{self.baseline:.4f}"
        drop = "" if self.drop is None else f", drop {self.drop:+.4f}"
        return f"v{self.version} live F1 {self.f1:.4f} on {self.rows} new labeled rows (at training {base}{drop})"


def align_labels(tags: pd.Series, classes: Sequence[str], cfg: DataConfig | None = None) -> pd.Series:
    """Map raw tags onto a model's classes: unaccepted tags and classes it lacks become `other`.

    `tagifai.data.prepare` decides rare classes by their frequency in the frame it is given;
    on a small window that would disagree with the model, so the model's classes decide here.
    Rows whose tag cannot be expressed (no `other` class) become NaN.
    """
    cfg = cfg or DataConfig()
    mapped = map_tags(tags.astype(str), cfg.accepted_tags, min_freq=0)
    known = set(classes)
    fallback: Any = OTHER if OTHER in known else np.nan
    return mapped.where(mapped.isin(known), fallback)


def live_f1(model: Any, labeled: pd.DataFrame, cfg: DataConfig | None = None) -> tuple[float, int]:
    """(weighted F1, rows scored) of a TagModel on raw labeled rows (title, description, tag).

    Tags are aligned to the model's classes first (see `align_labels`); the `other`
    fallback is applied as in production.
    """
    rows = labeled[labeled["tag"].notna()].copy()
    if rows.empty:
        return math.nan, 0
    rows["tag"] = align_labels(rows["tag"], model.classes, cfg)
    rows = rows[rows["tag"].notna()]
    if rows.empty:
        return math.nan, 0
    rows["text"] = model_texts(rows, cfg)
    return float(evaluate_model(model, rows.reset_index(drop=True))["overall"]["f1"]), len(rows)


def decide(
    report: DriftReport,
    live_f1_champion: LiveF1 | None,
    live_f1_previous: LiveF1 | None,
    policy: DriftPolicy,
) -> tuple[str, list[str]]:
    """The action, and the reasons with their numbers. First match wins:

    1. fewer than ``min_window`` new rows: ``continue`` (too little to judge);
    2. the champion degraded on new labels (live F1 more than ``f1_drop_tolerance`` below
       its training F1) while the previous version did not, and the previous version beats
       it by at least ``rollback_margin``: ``rollback``;
    3. label drift, or the champion degraded with nothing better to go back to, or
       confidence drift with at least ``min_labels`` new labels: ``improve``;
    4. text-length or confidence drift without labels to act on: ``inspect``;
    5. otherwise ``continue``.
    """
    tol = policy.f1_drop_tolerance
    if report.n_new < policy.min_window:
        return CONTINUE, [
            f"{report.n_new} new rows since the champion's training data (< min_window {policy.min_window}): "
            "too few to judge"
        ]
    labeled_ok = report.n_new_labeled >= policy.min_labels
    champ = live_f1_champion if labeled_ok else None
    prev = live_f1_previous if labeled_ok else None
    champ_drop = champ.drop if champ is not None and champ.rows >= policy.min_labels else None
    degraded = champ_drop is not None and champ_drop > tol
    notes = [t.describe() for t in report.tests if t.fired]

    if (
        degraded
        and champ is not None
        and prev is not None
        and prev.drop is not None
        and prev.drop <= tol
        and prev.f1 >= champ.f1 + policy.rollback_margin
    ):
        return ROLLBACK, [
            f"champion {champ.describe()}: more than the tolerance {tol:g} below its training F1",
            f"previous {prev.describe()}: within tolerance and at least {policy.rollback_margin:g} better",
            *notes,
        ]

    improve: list[str] = []
    if report.label.fired:
        improve.append(report.label.describe())
    if degraded and champ is not None:
        if prev is None:
            why = "no previous version to roll back to"
        elif prev.drop is None:
            why = f"previous {prev.describe()}: its training F1 is unknown"
        elif prev.drop > tol:
            why = f"previous {prev.describe()} degraded too"
        else:
            why = f"previous {prev.describe()} is not at least {policy.rollback_margin:g} better"
        improve.append(f"champion {champ.describe()}: more than the tolerance {tol:g} below; {why}")
    if report.confidence.fired and labeled_ok:
        improve.append(f"{report.confidence.describe()} with {report.n_new_labeled} new labels to learn from")
    if improve:
        others = [n for n in notes if not any(n in i for i in improve)]
        return IMPROVE, improve + others

    if report.text_length.fired or report.confidence.fired:
        labels = (
            f"only {report.n_new_labeled} new labeled rows (< min_labels {policy.min_labels})"
            if not labeled_ok
            else "the champion's live F1 is within tolerance"
        )
        return INSPECT, [*notes, f"{labels}: a person should look before anything changes"]

    reasons = ["no drift test fired"]
    if champ is not None:
        reasons.append(f"champion {champ.describe()}: within tolerance {tol:g}")
    elif not labeled_ok:
        reasons.append(
            f"{report.n_new_labeled} new labeled rows (< min_labels {policy.min_labels}): live F1 not judged"
        )
    skipped = [t.describe() for t in report.tests if t.skipped]
    return CONTINUE, reasons + skipped
