"""The champion's reference: the rows of a snapshot it was trained on, and those it held out.

Drift is measured against what the champion learned from, not against a calendar window:
the *reference* is its training rows, the *new window* every other row of the snapshot.
monitor and compose locate them the same way (:func:`locate_reference`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from components.cutoff import created_times
from components.registry import VersionInfo
from components.versions import frame_version
from tagifai.config import DataConfig
from tagifai.data import prepare, split
from tagifai.evaluate import evaluate_model

# Where the champion's training data ends, as train logs it (params of its run).
DATA_MAX_ID = "data_max_id"
DATA_MAX_CREATED_ON = "data_max_created_on"


@dataclass(frozen=True)
class Reference:
    """The champion's training rows and the rows added since, and how they were found."""

    rows: pd.DataFrame
    new: pd.DataFrame
    method: str  # max_id | max_created_on | unknown (nothing logged) | none (no champion)
    verified: bool  # the reference's content hash equals the champion's data_version
    note: str


def _split_by(df: pd.DataFrame, mask: pd.Series, method: str, data_version: str, note: str) -> Reference:
    ref = df[mask]
    verified = bool(data_version) and frame_version(ref) == data_version
    return Reference(ref, df[~mask], method, verified, note)


def locate_reference(df: pd.DataFrame, info: VersionInfo | None) -> Reference:
    """Which rows of the snapshot the champion was trained on; the rest is the new window.

    1. ``data_max_id`` logged by train: reference = rows with id <= it;
    2. ``data_max_created_on`` (training data without ids): rows created on or before it;
    3. neither (a version train did not log): everything is reference, the new window is
       empty (``continue``, and the report says why).

    The reference is *verified* when its content hash equals the champion's ``data_version``.
    """
    if info is None:
        return Reference(df.iloc[0:0], df, "none", False, "no champion: every row is new")
    data_version = info.get("data_version") or ""
    max_id = info.get(DATA_MAX_ID)
    if max_id is not None:
        try:
            limit = float(max_id)
        except ValueError:
            limit = math.nan
        if math.isfinite(limit):
            ids = pd.to_numeric(df["id"], errors="coerce")
            return _split_by(df, ids <= limit, "max_id", data_version, f"rows with id <= {max_id}")
    max_created = info.get(DATA_MAX_CREATED_ON)
    if max_created is not None:
        limit_t = pd.to_datetime(max_created, errors="coerce")
        if not pd.isna(limit_t):
            if limit_t.tzinfo is not None:
                limit_t = limit_t.tz_convert("UTC").tz_localize(None)
            mask = created_times(df["created_on"]) <= limit_t
            return _split_by(
                df, mask, "max_created_on", data_version, f"rows created on or before {max_created}"
            )
    return Reference(
        df,
        df.iloc[0:0],
        "unknown",
        False,
        f"the champion's run does not record where its training data ends "
        f"({DATA_MAX_ID}, {DATA_MAX_CREATED_ON})",
    )


def heldout_rows(info: VersionInfo, reference: Reference, model: Any) -> tuple[pd.DataFrame | None, str]:
    """Reference rows the champion never trained on (prepared: with `text`), and how found.

    They are the val + test splits of the reference, re-made with `tagifai.data.split`, when
    the champion's F1 on the re-made test split equals its logged ``test_f1`` (the split was
    reproduced exactly — not so for a model trained on a composed set). Otherwise there are
    none: scoring training rows would make the champion look more confident than it is on
    any new data, so the confidence test is skipped instead.
    """
    expected = info.baseline_f1
    if expected is None or not reference.verified:
        return None, "the champion's held-out rows are unknown (reference not verified or no test_f1)"
    tol = 1e-9 if "test_f1" in info.metrics else 5e-5  # the version tag has 4 decimals
    try:
        # `split` orders rows by id itself: the table's row order does not matter.
        _, val, test = split(prepare(reference.rows), DataConfig())
        f1 = float(evaluate_model(model, test)["overall"]["f1"])
    except ValueError as exc:  # e.g. a class too small to stratify, or unknown to the model
        return None, f"the champion's train/test split could not be re-made: {exc}"
    if abs(f1 - expected) > tol:
        return None, (
            f"the re-made test split does not reproduce the champion's test F1 ({f1:.4f} vs {expected:.4f}): "
            "it was not trained on this split"
        )
    return pd.concat(
        [val, test], ignore_index=True
    ), f"{len(val) + len(test)} rows of the re-made val + test splits"
