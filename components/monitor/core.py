"""Monitor the champion: drift of the rows added since its training data, live F1, the decision.

Steps:

1. read the snapshot of the published table that extract wrote (a parquet dataset, already
   cut at the run's as_of / scheduled time: the warehouse is never read here); find the
   ``champion`` and its training run;
2. split the snapshot into the champion's *reference* (the rows it was trained on) and the
   *new window* (rows added since) — see `components.reference`;
3. run the drift tests of `tagifai.drift` (text length, labels, confidence on held-out
   reference rows vs. new rows);
4. score the champion and the previous version on the newly labeled rows (live F1);
5. `tagifai.decision.decide`: ``continue`` | ``improve`` | ``inspect`` | ``rollback``.

No champion: ``improve`` (nothing to monitor yet; a first model must be trained).
Nothing here writes to the registry.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.reference import heldout_rows, locate_reference
from components.registry import previous_version, version_info
from components.snapshot import NO_ORIGIN, Origin, read_snapshot
from tagifai import tracking
from tagifai.data import model_texts
from tagifai.decision import CONTINUE, IMPROVE, LiveF1, decide, live_f1
from tagifai.drift import DriftPolicy, DriftReport, drift_report, finite, max_probability, word_counts
from tagifai.predict import load

# Scoring more rows than this adds nothing to a KS test or an F1 but costs time.
MAX_SCORED_ROWS = 20_000


def _cap(df: pd.DataFrame, n: int = MAX_SCORED_ROWS) -> pd.DataFrame:
    return df if len(df) <= n else df.sample(n=n, random_state=0)


@dataclass
class Monitoring:
    """Everything the monitor found; the decision first."""

    decision: str
    reasons: list[str]
    champion: str  # "" without a champion
    previous: str  # "" without a previous version
    policy: DriftPolicy
    origin: Origin  # the table the snapshot was taken of, and its cutoff
    rows: int
    reference_method: str = ""
    reference_verified: bool = False
    reference_note: str = ""
    confidence_note: str = ""
    report: DriftReport | None = None
    live_champion: LiveF1 | None = None
    live_previous: LiveF1 | None = None
    # (reference, new) samples behind the histograms of the HTML report
    samples: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The details that go into artifact metadata (JSON-safe)."""

        def lf(x: LiveF1 | None) -> dict[str, Any] | None:
            if x is None:
                return None
            return {"version": x.version, "f1": x.f1, "baseline": x.baseline, "drop": x.drop, "rows": x.rows}

        return finite(
            {
                "decision": self.decision,
                "reasons": list(self.reasons),
                "champion": self.champion,
                "previous": self.previous,
                "table": self.origin.table,
                "rows": self.rows,
                **self.origin.cutoff.metadata(),
                "reference": {
                    "method": self.reference_method,
                    "verified": self.reference_verified,
                    "note": self.reference_note,
                    "held_out": self.confidence_note,
                },
                "statistics": self.report.to_dict() if self.report else None,
                "live_f1": {"champion": lf(self.live_champion), "previous": lf(self.live_previous)},
                "policy": self.policy.to_dict(),
            }
        )


def _live(model: Any, labeled: pd.DataFrame, version: str, baseline: float | None) -> LiveF1 | None:
    f1, rows = live_f1(model, labeled)
    return None if rows == 0 or not math.isfinite(f1) else LiveF1(version, f1, baseline, rows)


def monitor(
    dataset_path: str | Path,
    tracking_uri: str,
    policy: DriftPolicy | None = None,
    origin: Origin = NO_ORIGIN,
    name: str = tracking.MODEL_NAME,
) -> Monitoring:
    """Compare the new window with the champion's reference and decide.

    Args:
        dataset_path: extract's parquet snapshot of the published table (file or folder).
        tracking_uri: MLflow tracking (and registry) URI.
        policy: Drift thresholds (default ``DriftPolicy()``).
        origin: The table the snapshot was taken of and the cutoff extract applied (as_of /
            scheduled time), for messages and reports only: the snapshot is already cut,
            nothing is filtered here.
        name: Registered model name.
    """
    policy = policy or DriftPolicy()
    df = read_snapshot(dataset_path, origin.table)
    champ_mv = tracking.get_alias(tracking_uri, tracking.CHAMPION, name)
    if champ_mv is None:
        return Monitoring(
            IMPROVE,
            [
                f"no {tracking.CHAMPION} for {name} yet: nothing to monitor; train a first model on {len(df)} rows"
            ],
            champion="",
            previous="",
            policy=policy,
            origin=origin,
            rows=len(df),
        )
    info = version_info(tracking_uri, champ_mv)
    ref = locate_reference(df, info)
    prev_version = previous_version(tracking_uri, champ_mv, name) or ""
    new = ref.new
    labeled = _cap(new[new["tag"].notna()])
    with tempfile.TemporaryDirectory(prefix="monitor-") as tmp:
        work = Path(tmp)
        model = load(tracking.download_model(tracking_uri, info.version, work / f"v{info.version}", name))
        held, conf_note = heldout_rows(info, ref, model)
        ref_conf = new_conf = None
        if held is not None and len(new):
            ref_conf = max_probability(model, list(_cap(held)["text"]))
            new_conf = max_probability(model, model_texts(_cap(new)))
        report = drift_report(ref.rows, new, policy, ref_conf, new_conf, conf_note)
        live_champ = _live(model, labeled, info.version, info.baseline_f1) if len(labeled) else None
        live_prev = None
        if prev_version and len(labeled) >= policy.min_labels:
            prev_info = version_info(
                tracking_uri, tracking.client(tracking_uri).get_model_version(name, prev_version)
            )
            prev_model = load(
                tracking.download_model(tracking_uri, prev_version, work / f"v{prev_version}", name)
            )
            live_prev = _live(prev_model, labeled, prev_version, prev_info.baseline_f1)
    decision, reasons = decide(report, live_champ, live_prev, policy)
    if ref.method == "unknown" and decision == CONTINUE:
        reasons.append(f"reference unknown: {ref.note}")
    samples = {"words per project": (word_counts(ref.rows), word_counts(new))}
    if ref_conf is not None and new_conf is not None:
        samples["champion confidence"] = (ref_conf, new_conf)
    return Monitoring(
        decision,
        reasons,
        champion=info.version,
        previous=prev_version,
        policy=policy,
        origin=origin,
        rows=len(df),
        reference_method=ref.method,
        reference_verified=ref.verified,
        reference_note=ref.note,
        confidence_note=conf_note,
        report=report,
        live_champion=live_champ,
        live_previous=live_prev,
        samples=samples,
    )
