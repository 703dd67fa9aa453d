"""Candidate vs. champion on the same test rows: overall, per class and slice metrics, and the gate.

The gate promotes when there is no champion yet, or when the candidate's weighted F1 is
at least the champion's plus a margin AND no slice's F1 drops more than a tolerance below
the champion's. Otherwise the champion stays, with a reason that names the numbers.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from components.parquet import read_parquet
from components.plots import confusion_svg, data_uri
from tagifai import tracking
from tagifai.config import DataConfig
from tagifai.data import prepare, split
from tagifai.evaluate import evaluate_model
from tagifai.predict import load

PROMOTE = "promote"
KEEP = "keep"
_EPS = 1e-12  # float noise must not flip a tie


GATE_DECISION_TAG = "gate_decision"
GATE_REASON_TAG = "gate_reason"


@dataclass(frozen=True)
class Evaluation:
    decision: str  # "promote" | "keep"
    reason: str
    candidate_version: str
    champion_version: str  # "" when there is no champion
    candidate: dict[str, Any]  # tagifai.evaluate.evaluate_model output
    champion: dict[str, Any] | None
    test_rows: int
    margin: float
    slice_tolerance: float


def _num(x: float) -> str:
    return f"{x:.2f}" if round(x, 2) == x else f"{x:g}"


def gate(
    candidate: dict[str, Any], champion: dict[str, Any] | None, margin: float, slice_tolerance: float
) -> tuple[str, str]:
    """(decision, reason) from two metric dicts (champion None: no champion yet)."""
    cand_f1 = float(candidate["overall"]["f1"])
    if champion is None:
        return PROMOTE, f"no champion yet: the candidate (f1 {cand_f1:.4f}) becomes the first champion"
    champ_f1 = float(champion["overall"]["f1"])
    if cand_f1 + _EPS < champ_f1 + margin:
        return KEEP, f"candidate f1 {cand_f1:.4f} < champion {champ_f1:.4f} + margin {_num(margin)}"
    drops = []
    for name, champ_slice in champion.get("slices", {}).items():
        cand_slice = candidate.get("slices", {}).get(name)
        if not cand_slice or not champ_slice["num_samples"] or not cand_slice["num_samples"]:
            continue  # a slice absent from the test rows says nothing
        drop = float(champ_slice["f1"]) - float(cand_slice["f1"])
        if drop > slice_tolerance + _EPS:
            drops.append(
                f"slice {name} f1 {cand_slice['f1']:.4f} is {drop:.4f} below champion "
                f"{champ_slice['f1']:.4f} (tolerance {_num(slice_tolerance)})"
            )
    if drops:
        return KEEP, "; ".join(drops)
    return PROMOTE, (
        f"candidate f1 {cand_f1:.4f} >= champion {champ_f1:.4f} + margin {_num(margin)} and no slice "
        f"dropped more than {_num(slice_tolerance)}"
    )


def split_test_rows(dataset_path: str | Path, cfg: DataConfig | None = None) -> pd.DataFrame:
    """The test split of the dataset: the same rows train evaluated on."""
    cfg = cfg or DataConfig()
    return split(prepare(read_parquet(dataset_path), cfg), cfg)[2]


def score_version(tracking_uri: str, version: str, test_df: pd.DataFrame, workdir: Path) -> dict[str, Any]:
    """Download a registered version and compute its metrics on `test_df`."""
    model_dir = tracking.download_model(tracking_uri, version, workdir / f"v{version}")
    return evaluate_model(load(model_dir), test_df)


def evaluate_candidate(
    dataset_path: str | Path,
    candidate_version: str,
    tracking_uri: str,
    *,
    margin: float = 0.0,
    slice_tolerance: float = 0.05,
    name: str = tracking.MODEL_NAME,
) -> Evaluation:
    """Score the candidate and the current champion on the same test rows and apply the gate."""
    test_df = split_test_rows(dataset_path)
    champ = tracking.get_alias(tracking_uri, tracking.CHAMPION, name)
    champion_version = str(champ.version) if champ is not None else ""
    with tempfile.TemporaryDirectory(prefix="evaluate-") as tmp:
        candidate = score_version(tracking_uri, candidate_version, test_df, Path(tmp))
        champion: dict[str, Any] | None = None
        if champion_version == str(candidate_version):
            decision, reason = KEEP, f"v{candidate_version} is already the champion"
            champion = candidate
        elif champion_version:
            try:
                champion = score_version(tracking_uri, champion_version, test_df, Path(tmp))
            except ValueError as exc:  # e.g. the data has a class the champion never saw
                decision, reason = PROMOTE, f"champion v{champion_version} cannot score this data: {exc}"
            else:
                decision, reason = gate(candidate, champion, margin, slice_tolerance)
        else:
            decision, reason = gate(candidate, None, margin, slice_tolerance)
    # Every version says what the gate decided about it, promoted or not.
    tracking.set_version_tags(
        tracking_uri,
        str(candidate_version),
        {
            GATE_DECISION_TAG: decision,
            GATE_REASON_TAG: reason[:5000],
            "gate_champion": champion_version or "none",
        },
        name=name,
    )
    return Evaluation(
        decision,
        reason,
        str(candidate_version),
        champion_version,
        candidate,
        champion,
        len(test_df),
        margin,
        slice_tolerance,
    )


def _row(label: str, cand: float, champ: float | None) -> str:
    if champ is None:
        return f"| {label} | {cand:.4f} | – | – |"
    return f"| {label} | {cand:.4f} | {champ:.4f} | {cand - champ:+.4f} |"


def confusion_figures(ev: Evaluation) -> dict[str, str]:
    """The candidate's and the champion's confusion matrices on the test rows, as SVG by file stem."""
    scored = {f"candidate v{ev.candidate_version}": ev.candidate}
    if ev.champion is not None and ev.champion_version != ev.candidate_version:
        scored[f"champion v{ev.champion_version}"] = ev.champion
    return {
        "confusion_" + label.split()[0]: confusion_svg(
            f"{label}: true tag (rows) vs predicted, {ev.test_rows} test rows",
            list(metrics["classes"]),
            metrics["confusion_matrix"],
        )
        for label, metrics in scored.items()
    }


def render_markdown(ev: Evaluation) -> str:
    """The comparison table, the decision and the reason, then the confusion matrices as images."""
    champ_label = f"champion v{ev.champion_version}" if ev.champion_version else "champion (none)"
    lines = [
        f"# Evaluation: candidate v{ev.candidate_version} vs {champ_label}",
        "",
        f"**Decision: {ev.decision}** — {ev.reason}",
        "",
        f"Test split: {ev.test_rows} rows. Margin {_num(ev.margin)}, slice tolerance {_num(ev.slice_tolerance)}.",
        "",
        f"| metric | candidate v{ev.candidate_version} | {champ_label} | Δ |",
        "|---|---:|---:|---:|",
    ]
    cand, champ = ev.candidate, ev.champion
    for key in ("f1", "precision", "recall"):
        lines.append(_row(f"overall {key}", cand["overall"][key], champ["overall"][key] if champ else None))
    for group, label in (("class", "class"), ("slices", "slice")):
        for name, vals in cand[group].items():
            other = (champ or {}).get(group, {}).get(name)
            lines.append(
                _row(
                    f"{label} `{name}` f1 (n={int(vals['num_samples'])})",
                    vals["f1"],
                    other["f1"] if other else None,
                )
            )
    pictures = confusion_figures(ev)
    if pictures:
        lines += ["", "## Confusion matrices", ""]
        lines += [f"![{stem.replace('_', ' ')}]({data_uri(svg)})" for stem, svg in pictures.items()]
    return "\n".join(lines) + "\n"
