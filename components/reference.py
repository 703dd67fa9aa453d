"""The champion's reference: the rows of a snapshot it was trained on, and those it held out.

Drift is measured against what the champion learned from, not against a calendar window:
the *reference* is its training rows, the *new window* every other row of the snapshot.
monitor and compose locate them the same way (:func:`locate_reference`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.cutoff import created_times
from components.registry import VersionInfo
from components.versions import frame_version
from tagifai import tracking
from tagifai.config import DataConfig
from tagifai.data import prepare, split
from tagifai.evaluate import evaluate_model

# What train records about its data (params or tags of its run), newest first. Older runs
# only have `data_version` (+ train_rows / test_rows): then the reference is searched for.
MAX_ID_KEYS = ("data_max_id", "max_id")
MAX_CREATED_KEYS = ("data_max_created_on", "max_created_on")
# Optional run artifact: ids of the rows train held out (val + test), {"ids": [...]}.
HELDOUT_IDS_ARTIFACT = "reference/heldout_ids.json"


@dataclass(frozen=True)
class Reference:
    """The champion's training rows and the rows added since, and how they were found."""

    rows: pd.DataFrame
    new: pd.DataFrame
    method: str  # max_id | max_created_on | data_version | estimated | none
    verified: bool  # the reference's content hash equals the champion's data_version
    note: str


def order_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows in the order they arrived: created_on, then id."""
    key = pd.DataFrame({"t": created_times(df["created_on"]), "id": df["id"]}, index=df.index)
    return df.loc[key.sort_values(["t", "id"], kind="stable").index]


def _split_by(df: pd.DataFrame, mask: pd.Series, method: str, data_version: str, note: str) -> Reference:
    ref = df[mask]
    verified = bool(data_version) and frame_version(ref) == data_version
    return Reference(ref, df[~mask], method, verified, note)


def _labeled_candidates(info: VersionInfo) -> list[int]:
    """Labeled-row counts that train's logged split sizes allow (70/15/15: val = floor(rest/2))."""
    try:
        train_rows, test_rows = int(info.get("train_rows") or ""), int(info.get("test_rows") or "")
    except ValueError:
        return []
    return [train_rows + 2 * test_rows, train_rows + 2 * test_rows - 1]


def _prefix_versions(ordered: pd.DataFrame) -> Callable[[int], str]:
    """`frame_version` of the first n rows, for many n, hashing every row once.

    Mirrors `components.warehouse.frame_version` (sorted per-row hashes after the column
    names); a match is always confirmed with the real function, so a divergence can only
    miss, never mislead.
    """
    import hashlib

    rows = pd.util.hash_pandas_object(ordered, index=False).to_numpy()
    head = ",".join(map(str, ordered.columns)).encode()

    def version(n: int) -> str:
        h = hashlib.sha256(head)
        h.update(np.sort(rows[:n]).tobytes())
        return h.hexdigest()[:16]

    return version


def locate_reference(df: pd.DataFrame, info: VersionInfo | None) -> Reference:
    """Which rows of the table the champion was trained on; the rest is the new window.

    In order of preference:

    1. ``data_max_id`` logged by train: reference = rows with id <= it;
    2. ``data_max_created_on``: reference = rows created on or before it;
    3. the ``data_version`` content hash: the prefix of the table (by created_on, id)
       whose hash equals it, among the sizes train's logged split sizes allow;
    4. estimated: the first rows (by created_on, id) holding as many labeled rows as
       train's split sizes imply (not verified; noted in the report);
    5. none of it: everything is reference, the new window is empty (``continue``).
    """
    if info is None:
        return Reference(df.iloc[0:0], df, "none", False, "no champion: every row is new")
    data_version = info.get("data_version") or ""
    max_id = info.get(*MAX_ID_KEYS)
    if max_id is not None:
        try:
            limit = float(max_id)
        except ValueError:
            limit = math.nan
        if math.isfinite(limit):
            ids = pd.to_numeric(df["id"], errors="coerce")
            return _split_by(df, ids <= limit, "max_id", data_version, f"rows with id <= {max_id}")
    max_created = info.get(*MAX_CREATED_KEYS)
    if max_created is not None:
        limit_t = pd.to_datetime(max_created, errors="coerce")
        if not pd.isna(limit_t):
            if limit_t.tzinfo is not None:
                limit_t = limit_t.tz_convert("UTC").tz_localize(None)
            mask = created_times(df["created_on"]) <= limit_t
            return _split_by(
                df, mask, "max_created_on", data_version, f"rows created on or before {max_created}"
            )
    ordered = order_rows(df)
    labeled_cum = ordered["tag"].notna().to_numpy().cumsum()
    sizes = _labeled_candidates(info)
    if data_version and sizes:
        prefix_version = _prefix_versions(ordered)
        for labeled in sizes:
            ends = np.flatnonzero(labeled_cum == labeled)[:50] + 1  # prefix lengths holding that many
            for n in ends:
                # The fast hash finds the prefix; the real frame_version confirms it.
                if prefix_version(n) == data_version and frame_version(ordered.iloc[:n]) == data_version:
                    prefix = df.index.isin(ordered.index[:n])
                    note = f"the first {n} rows (by created_on, id) match data_version {data_version}"
                    return Reference(df[prefix], df[~prefix], "data_version", True, note)
    if sizes:
        ends = np.flatnonzero(labeled_cum >= sizes[0])
        n = int(ends[0]) + 1 if len(ends) else len(ordered)
        first = df.index.isin(ordered.index[:n])
        note = (
            f"estimated: the first {n} rows (by created_on, id), {sizes[0]} labeled as train's split sizes "
            f"imply; no data_max_id logged and no prefix matches data_version {data_version or '-'}"
        )
        return Reference(df[first], df[~first], "estimated", False, note)
    return Reference(
        df,
        df.iloc[0:0],
        "unknown",
        False,
        "the champion's run records neither its data's extent nor split sizes",
    )


def heldout_rows(
    tracking_uri: str, info: VersionInfo, reference: Reference, model: Any, workdir: Path
) -> tuple[pd.DataFrame | None, str]:
    """Reference rows the champion never trained on (prepared: with `text`), and how found.

    1. the run's ``reference/heldout_ids.json`` artifact, when train logged it;
    2. the val + test splits of the reference, re-made with `tagifai.data.split`, when the
       champion's F1 on the re-made test split equals its logged ``test_f1`` (the split was
       reproduced exactly — not so for a model trained on a composed set);
    3. otherwise none: scoring training rows would make the champion look more confident
       than it is on any new data, so the confidence test is skipped instead.
    """
    if info.run_id:
        try:
            local = tracking.client(tracking_uri).download_artifacts(
                info.run_id, HELDOUT_IDS_ARTIFACT, str(workdir)
            )
            ids = set(map(str, json.loads(Path(local).read_text())["ids"]))
        except Exception:  # no such artifact (older runs): reconstruct instead
            ids = set()
        if ids:
            prepared = prepare(reference.rows)
            held = prepared[prepared["id"].astype(str).isin(ids)]
            if len(held):
                return held, f"{len(held)} held-out rows logged by train"
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
