"""The retraining set: the champion's training data + the newly labeled rows, balanced.

1. read extract's snapshot of the published table (the same parquet dataset the monitor
   read, so both see the same rows; the warehouse is never read here); locate the
   champion's reference and the new window exactly as the monitor does
   (`components.reference.locate_reference`); the pool is the labeled rows of both;
2. hold out a **fixed evaluation set**: a row is an eval row when a hash of its id (salted
   with the seed) falls below ``eval_fraction``. Membership depends on the id alone, so an
   eval row stays an eval row in every later run, whatever else arrives, and never enters
   a training set: every candidate can be scored on the same unseen rows
   (`eval_mask` recomputes the set from any snapshot);
3. balance classes by stratified down-sampling: each class (tags mapped as train maps them)
   keeps at most ``max_class_ratio`` times the rows of the smallest class (never fewer than
   train's ``min_freq``, so no class turns into `other`). Within a class the kept rows are
   spread over strata — slice membership (`tagifai.evaluate.SLICES`) x old/new — in
   proportion to their sizes, and picked by a seeded hash of the id: deterministic, and
   stable when rows are added.

The output has extract's columns (id, created_on, title, description, tag), sorted by id, so
the mlops steps consume it unchanged.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.parquet import write_parquet
from components.reference import locate_reference
from components.registry import version_info
from components.snapshot import NO_ORIGIN, Origin, read_snapshot
from components.versions import frame_version
from tagifai import tracking
from tagifai.config import DataConfig
from tagifai.data import map_tags, model_texts
from tagifai.evaluate import SLICES

COLUMNS = ("id", "created_on", "title", "description", "tag")


def id_hash_unit(ids: pd.Series, salt: str, seed: int) -> np.ndarray:
    """A uniform number in [0, 1) per id, fixed by (salt, seed): the same id always maps the same."""
    key = hashlib.sha256(f"{salt}:{seed}".encode()).hexdigest()[:16]
    h = pd.util.hash_array(np.asarray(ids.astype(str), dtype=object), hash_key=key)
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def eval_mask(ids: pd.Series, fraction: float, seed: int) -> np.ndarray:
    """True for ids in the fixed evaluation set (about `fraction` of all ids)."""
    if not 0 <= fraction < 1:
        raise ValueError(f"eval_fraction must be in [0, 1), got {fraction}")
    return id_hash_unit(ids, "eval", seed) < fraction


def _quotas(sizes: dict[str, int], total: int) -> dict[str, int]:
    """Split `total` over strata in proportion to their sizes (largest remainder, ties by name)."""
    n = sum(sizes.values())
    if total >= n:
        return dict(sizes)
    exact = {k: total * v / n for k, v in sizes.items()}
    out = {k: math.floor(x) for k, x in exact.items()}
    rest = total - sum(out.values())
    for k in sorted(exact, key=lambda k: (-(exact[k] - out[k]), k))[:rest]:
        out[k] += 1
    return out


def balance(
    pool: pd.DataFrame, is_new: np.ndarray, max_class_ratio: float, seed: int, cfg: DataConfig | None = None
) -> pd.DataFrame:
    """Stratified down-sampling of the labeled pool (see the module docstring)."""
    cfg = cfg or DataConfig()
    if max_class_ratio < 1:
        raise ValueError(f"max_class_ratio must be at least 1, got {max_class_ratio}")
    if pool.empty:
        return pool
    mapped = map_tags(pool["tag"].astype(str), cfg.accepted_tags, cfg.min_freq).to_numpy()
    counts = pd.Series(mapped).value_counts()
    cap = max(math.ceil(max_class_ratio * int(counts.min())), cfg.min_freq)
    frame = pool.assign(text=model_texts(pool, cfg))
    slices = np.column_stack([fn(frame).to_numpy(dtype=bool) for fn in SLICES.values()])
    stratum = np.array(
        [
            "".join("1" if b else "0" for b in row) + ("n" if new else "o")
            for row, new in zip(slices, is_new, strict=True)
        ]
    )
    rank = id_hash_unit(pool["id"], "sample", seed)
    keep: list[np.ndarray] = []
    for label in sorted(counts.index):
        members = np.flatnonzero(mapped == label)
        if len(members) <= cap:
            keep.append(members)
            continue
        groups = {s: members[stratum[members] == s] for s in sorted(set(stratum[members]))}
        quota = _quotas({s: len(g) for s, g in groups.items()}, cap)
        for s, g in groups.items():
            keep.append(g[np.argsort(rank[g], kind="stable")[: quota[s]]])
    chosen = np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=int)
    return pool.iloc[chosen]


@dataclass(frozen=True)
class Composed:
    path: Path
    rows: int
    data_version: str
    class_counts: dict[str, int]  # tags as train maps them, after balancing
    pool_class_counts: dict[str, int]  # before balancing
    eval_rows: int  # labeled rows held out as the fixed evaluation set
    reference_rows: int  # labeled rows of the champion's training data in the pool
    new_rows: int  # newly labeled rows in the pool
    reference_method: str
    champion: str

    def metadata(self) -> dict[str, Any]:
        """Every field but the path: what the retraining set's artifact records."""
        return {name: value for name, value in asdict(self).items() if name != "path"}


def compose(
    dataset_path: str | Path,
    tracking_uri: str,
    out_path: str | Path,
    *,
    eval_fraction: float = 0.15,
    seed: int = 1234,
    max_class_ratio: float = 3.0,
    origin: Origin = NO_ORIGIN,
    name: str = tracking.MODEL_NAME,
) -> Composed:
    """Write the retraining set as parquet to `out_path` and describe it.

    Args:
        dataset_path: extract's parquet snapshot of the published table (file or folder).
        tracking_uri: MLflow tracking (and registry) URI; locates the champion's training data.
        out_path: Where the retraining set is written (parquet).
        eval_fraction: Share of ids in the fixed evaluation set (0 disables it).
        seed: Seed of the eval-set and sampling hashes.
        max_class_ratio: Largest class size allowed, as a multiple of the smallest class.
        origin: The table the snapshot was taken of and the cutoff extract applied, for
            messages; the cutoff is not applied again (the snapshot is already cut).
        name: Registered model name.
    """
    cfg = DataConfig()
    df = read_snapshot(dataset_path, origin.table)
    where = f"the snapshot of {origin.table} at {dataset_path}" + (
        f" ({origin.cutoff.note})" if origin.cutoff.at is not None else ""
    )
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{where} lacks column(s) {missing}; compose needs {list(COLUMNS)}")
    champ = tracking.get_alias(tracking_uri, tracking.CHAMPION, name)
    ref = locate_reference(df, version_info(tracking_uri, champ) if champ is not None else None)
    new_ids = set(ref.new["id"].tolist())
    labeled = pd.concat([ref.rows, ref.new])
    labeled = labeled[labeled["tag"].notna()]
    held_out = eval_mask(labeled["id"], eval_fraction, seed)
    pool = labeled[~held_out].reset_index(drop=True)
    is_new = pool["id"].isin(new_ids).to_numpy()
    out_df = balance(pool, is_new, max_class_ratio, seed, cfg)[list(COLUMNS)]
    out_df = out_df.sort_values("id", kind="stable").reset_index(drop=True)
    if out_df.empty:
        raise ValueError(f"{where} has no labeled rows outside the eval set: nothing to train on")
    out = write_parquet(out_df, out_path)

    def mapped_counts(frame: pd.DataFrame) -> dict[str, int]:
        tags = map_tags(frame["tag"].astype(str), cfg.accepted_tags, cfg.min_freq)
        return {str(k): int(v) for k, v in sorted(tags.value_counts().items())}

    return Composed(
        path=out,
        rows=len(out_df),
        data_version=frame_version(out_df),
        class_counts=mapped_counts(out_df),
        pool_class_counts=mapped_counts(pool),
        eval_rows=int(held_out.sum()),
        reference_rows=int((~is_new).sum()),
        new_rows=int(is_new.sum()),
        reference_method=ref.method,
        champion=str(champ.version) if champ is not None else "",
    )
