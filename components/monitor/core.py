"""Monitor the champion: drift of the rows added since its training data, live F1, the decision.

Steps:

1. read the snapshot of the published table that extract wrote (a parquet dataset, already
   cut at the run's as_of / scheduled time: the warehouse is never read here); find the
   ``champion`` and its training run;
2. split the snapshot into the champion's *reference* (the rows it was trained on) and the
   *new window* (rows added since) — see `locate_reference`;
3. run the drift tests of `tagifai.drift` (text length, labels, confidence on held-out
   reference rows vs. new rows);
4. score the champion and the previous version on the newly labeled rows (live F1);
5. `tagifai.drift.decide`: ``continue`` | ``improve`` | ``inspect`` | ``rollback``.

No champion: ``improve`` (nothing to monitor yet; a first model must be trained).
Nothing here writes to the registry.
"""

from __future__ import annotations

import html
import json
import math
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.cutoff import NO_CUTOFF, Cutoff, created_times
from components.parquet import read_parquet
from components.rollback.core import previous_version
from components.versions import frame_version
from components.warehouse import RAW_SCHEMA
from tagifai import tracking
from tagifai.config import DataConfig
from tagifai.data import prepare, split
from tagifai.drift import (
    CONTINUE,
    IMPROVE,
    DriftPolicy,
    DriftReport,
    LiveF1,
    decide,
    drift_report,
    live_f1,
    max_probability,
    model_texts,
    word_counts,
)
from tagifai.evaluate import evaluate_model
from tagifai.predict import load

# The published table extract snapshots (schema.table): named in messages and reports.
DEFAULT_TABLE = f"{RAW_SCHEMA}.labeled_projects"
# Scoring more rows than this adds nothing to a KS test or an F1 but costs time.
MAX_SCORED_ROWS = 20_000
# What train records about its data (params or tags of its run), newest first. Older runs
# only have `data_version` (+ train_rows / test_rows): then the reference is searched for.
MAX_ID_KEYS = ("data_max_id", "max_id")
MAX_CREATED_KEYS = ("data_max_created_on", "max_created_on")
# Optional run artifact: ids of the rows train held out (val + test), {"ids": [...]}.
HELDOUT_IDS_ARTIFACT = "reference/heldout_ids.json"


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class VersionInfo:
    """A registered version and what its training run recorded."""

    version: str
    run_id: str
    tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, float]
    mv: Any = field(repr=False, default=None)

    def get(self, *keys: str) -> str | None:
        for key in keys:
            for src in (self.params, self.tags):
                if src.get(key) not in (None, ""):
                    return src[key]
        return None

    @property
    def baseline_f1(self) -> float | None:
        """F1 at training time: the run's exact ``test_f1`` metric, else the version tag."""
        if "test_f1" in self.metrics:
            return float(self.metrics["test_f1"])
        tag = self.tags.get("test_f1")
        try:
            return float(tag) if tag is not None else None
        except ValueError:
            return None


def version_info(tracking_uri: str, mv: Any) -> VersionInfo:
    tags = {str(k): str(v) for k, v in (mv.tags or {}).items()}
    run_id = str(mv.run_id or tags.get("run_id", ""))
    params: dict[str, str] = {}
    metrics: dict[str, float] = {}
    if run_id:
        run = tracking.client(tracking_uri).get_run(run_id)
        params = {str(k): str(v) for k, v in run.data.params.items()}
        metrics = {str(k): float(v) for k, v in run.data.metrics.items()}
        tags = {**{str(k): str(v) for k, v in run.data.tags.items() if not k.startswith("mlflow.")}, **tags}
    return VersionInfo(str(mv.version), run_id, tags, params, metrics, mv)


# --------------------------------------------------------------------------- reference


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


# --------------------------------------------------------------------------- held-out rows


def _cap(df: pd.DataFrame, n: int = MAX_SCORED_ROWS) -> pd.DataFrame:
    return df if len(df) <= n else df.sample(n=n, random_state=0)


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


# --------------------------------------------------------------------------- monitor


@dataclass
class Monitoring:
    """Everything the monitor found; the decision first."""

    decision: str
    reasons: list[str]
    champion: str  # "" without a champion
    previous: str  # "" without a previous version
    policy: DriftPolicy
    table: str
    rows: int
    reference_method: str = ""
    reference_verified: bool = False
    reference_note: str = ""
    confidence_note: str = ""
    report: DriftReport | None = None
    live_champion: LiveF1 | None = None
    live_previous: LiveF1 | None = None
    cutoff: Cutoff = NO_CUTOFF  # the snapshot's cutoff: the table as of this time (rows created before it)
    # (reference, new) samples behind the histograms of the HTML report
    samples: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The details that go into artifact metadata (JSON-safe)."""
        from tagifai.drift import _finite

        def lf(x: LiveF1 | None) -> dict[str, Any] | None:
            if x is None:
                return None
            return {"version": x.version, "f1": x.f1, "baseline": x.baseline, "drop": x.drop, "rows": x.rows}

        return _finite(
            {
                "decision": self.decision,
                "reasons": list(self.reasons),
                "champion": self.champion,
                "previous": self.previous,
                "table": self.table,
                "rows": self.rows,
                **self.cutoff.metadata(),
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


def snapshot_origin(metadata: Mapping[str, Any]) -> tuple[str, Cutoff]:
    """The table (``schema.table``) and the cutoff that extract recorded on its snapshot."""
    return str(metadata.get("table") or DEFAULT_TABLE), Cutoff.from_metadata(metadata)


def read_snapshot(path: str | Path, table: str = DEFAULT_TABLE) -> pd.DataFrame:
    """The rows of extract's parquet snapshot (a file or a folder of parquet files), sorted by id.

    Raises:
        ValueError: The snapshot has no rows (extract never writes one, but a hand-made
            dataset could be empty).
        components.warehouse.WarehouseError: It is missing or not parquet.
    """
    df = read_parquet(path)
    if df.empty:
        raise ValueError(f"the snapshot of {table} at {path} has no rows: nothing to monitor or compose")
    # A folder of files has no order; what follows must not depend on it (extract sorted by id).
    if "id" in df.columns:
        df = df.sort_values("id", kind="stable")
    return df.reset_index(drop=True)


def monitor(
    dataset_path: str | Path,
    tracking_uri: str,
    policy: DriftPolicy | None = None,
    table: str = DEFAULT_TABLE,
    name: str = tracking.MODEL_NAME,
    cutoff: Cutoff = NO_CUTOFF,
) -> Monitoring:
    """Compare the new window with the champion's reference and decide.

    Args:
        dataset_path: extract's parquet snapshot of the published table (file or folder).
        tracking_uri: MLflow tracking (and registry) URI.
        policy: Drift thresholds (default ``DriftPolicy()``).
        table: The table the snapshot was taken of (``schema.table``), for messages and reports.
        name: Registered model name.
        cutoff: The cutoff extract applied (as_of / scheduled time), for the report only:
            the snapshot is already cut, nothing is filtered here.
    """
    policy = policy or DriftPolicy()
    df = read_snapshot(dataset_path, table)
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
            table=table,
            rows=len(df),
            cutoff=cutoff,
        )
    info = version_info(tracking_uri, champ_mv)
    ref = locate_reference(df, info)
    prev_version = previous_version(tracking_uri, champ_mv, name) or ""
    new = ref.new
    labeled = _cap(new[new["tag"].notna()])
    with tempfile.TemporaryDirectory(prefix="monitor-") as tmp:
        work = Path(tmp)
        model = load(tracking.download_model(tracking_uri, info.version, work / f"v{info.version}", name))
        held, conf_note = heldout_rows(tracking_uri, info, ref, model, work)
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
        table=table,
        rows=len(df),
        reference_method=ref.method,
        reference_verified=ref.verified,
        reference_note=ref.note,
        confidence_note=conf_note,
        report=report,
        live_champion=live_champ,
        live_previous=live_prev,
        samples=samples,
        cutoff=cutoff,
    )


# --------------------------------------------------------------------------- reports


def _fmt(x: float | None, spec: str = ".4f") -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def _test_rows(m: Monitoring) -> list[list[str]]:
    rows = []
    for t in m.report.tests if m.report else ():
        state = f"skipped: {t.skipped}" if t.skipped else ("**fired**" if t.fired else "ok")
        rows.append(
            [
                t.name,
                _fmt(t.statistic, ".4g"),
                _fmt(t.p_value, ".3g"),
                f"< {t.threshold:g}",
                _fmt(t.effect, ".3f"),
                f">= {t.min_effect:g}",
                f"{t.n_reference} / {t.n_new}",
                state,
            ]
        )
    return rows


TEST_HEADER = [
    "test",
    "statistic",
    "p-value",
    "fires at p",
    "effect",
    "fires at effect",
    "n ref / new",
    "result",
]
LIVE_HEADER = ["model", "version", "live F1", "F1 at training", "drop", "labeled rows"]


def _live_rows(m: Monitoring) -> list[list[str]]:
    rows = []
    for label, x in (("champion", m.live_champion), ("previous", m.live_previous)):
        if x is not None:
            rows.append(
                [label, f"v{x.version}", _fmt(x.f1), _fmt(x.baseline), _fmt(x.drop, "+.4f"), str(x.rows)]
            )
    return rows


def _label_rows(m: Monitoring) -> list[list[str]]:
    counts = (m.report.label.details.get("counts") if m.report else None) or {}
    n_ref = sum(c["reference"] for c in counts.values()) or 1
    n_new = sum(c["new"] for c in counts.values()) or 1
    return [
        [tag, str(c["reference"]), f"{c['reference'] / n_ref:.1%}", str(c["new"]), f"{c['new'] / n_new:.1%}"]
        for tag, c in counts.items()
    ]


LABEL_HEADER = ["tag", "reference", "share", "new", "share"]


def render_markdown(m: Monitoring) -> str:
    def table(header: list[str], rows: list[list[str]]) -> list[str]:
        if not rows:
            return ["(none)"]
        return [
            "| " + " | ".join(header) + " |",
            "|" + "---|" * len(header),
            *("| " + " | ".join(r) + " |" for r in rows),
        ]

    champ = f"v{m.champion}" if m.champion else "none"
    lines = [
        f"# Monitor: {m.table}, champion {champ}",
        "",
        f"**Decision: {m.decision}**",
        "",
        *(f"- {r}" for r in m.reasons),
        "",
        f"Data: {m.rows} rows of {m.table}; {m.cutoff.note}.",
        "",
    ]
    if m.report:
        lines += [
            f"Reference ({m.reference_method}{', verified' if m.reference_verified else ''}): "
            f"{m.report.n_reference} rows — {m.reference_note}. New window: {m.report.n_new} rows, "
            f"{m.report.n_new_labeled} labeled. Previous version: {('v' + m.previous) if m.previous else 'none'}.",
            "",
            "## Drift tests",
            "",
            *table(TEST_HEADER, _test_rows(m)),
            "",
            "## Live F1 on newly labeled rows",
            "",
            *table(LIVE_HEADER, _live_rows(m)),
            "",
            "## Tags",
            "",
            *table(LABEL_HEADER, _label_rows(m)),
            "",
        ]
    lines += ["Policy: `" + json.dumps(m.policy.to_dict(), sort_keys=True) + "`", ""]
    return "\n".join(lines)


def _svg_histogram(title: str, ref: np.ndarray, new: np.ndarray, bins: int = 30) -> str:
    """Overlaid density histograms (reference grey, new blue) as inline SVG."""
    ref, new = ref[np.isfinite(ref)], new[np.isfinite(new)]
    if not len(ref) or not len(new):
        return ""
    lo, hi = float(min(ref.min(), new.min())), float(max(ref.max(), new.max()))
    if hi <= lo:
        hi = lo + 1.0
    edges = np.linspace(lo, hi, bins + 1)
    h_ref = np.histogram(ref, edges)[0] / len(ref)
    h_new = np.histogram(new, edges)[0] / len(new)
    top = float(max(h_ref.max(), h_new.max())) or 1.0
    w, h, pad = 520, 180, 24
    bw = (w - 2 * pad) / bins
    bars = []
    for i in range(bins):
        for vals, color in ((h_ref, "#9aa0a6"), (h_new, "#1a73e8")):
            bh = (h - 2 * pad) * vals[i] / top
            bars.append(
                f'<rect x="{pad + i * bw:.1f}" y="{h - pad - bh:.1f}" width="{bw - 1:.1f}" '
                f'height="{bh:.1f}" fill="{color}" fill-opacity="0.55"/>'
            )
    return (
        f'<figure><svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" '
        f'aria-label="{html.escape(title)}">'
        f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="#555"/>'
        + "".join(bars)
        + f'<text x="{pad}" y="{h - 6}" font-size="11">{lo:.3g}</text>'
        f'<text x="{w - pad}" y="{h - 6}" font-size="11" text-anchor="end">{hi:.3g}</text>'
        f'<text x="{pad}" y="14" font-size="12">{html.escape(title)}: '
        f'<tspan fill="#5f6368">reference (n={len(ref)})</tspan> vs '
        f'<tspan fill="#1a73e8">new (n={len(new)})</tspan></text></svg></figure>'
    )


def render_html(m: Monitoring) -> str:
    """A self-contained page (inline CSS and SVG; no script, no external resource)."""
    e = html.escape

    def table(header: list[str], rows: list[list[str]]) -> str:
        if not rows:
            return "<p>(none)</p>"
        head = "".join(f"<th>{e(c)}</th>" for c in header)
        body = "".join(
            "<tr>" + "".join(f"<td>{e(c).replace('**', '')}</td>" for c in r) + "</tr>" for r in rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    color = {"continue": "#188038", "improve": "#1a73e8", "inspect": "#e37400", "rollback": "#d93025"}
    champ = f"v{m.champion}" if m.champion else "none"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Monitor: {e(m.decision)}</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem;color:#202124}"
        "table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{border:1px solid #dadce0;"
        "padding:.3rem .6rem;text-align:right}td:first-child,th:first-child{text-align:left}"
        ".decision{display:inline-block;padding:.3rem .8rem;border-radius:.3rem;color:#fff;"
        "font-weight:600}figure{margin:0 0 1rem}</style></head><body>",
        f"<h1>Monitor: {e(m.table)}, champion {e(champ)}</h1>",
        f"<p><span class='decision' style='background:{color.get(m.decision, '#5f6368')}'>"
        f"{e(m.decision)}</span></p>",
        "<ul>" + "".join(f"<li>{e(r)}</li>" for r in m.reasons) + "</ul>",
        f"<p>Data: {m.rows} rows of {e(m.table)}; {e(m.cutoff.note)}.</p>",
    ]
    if m.report:
        parts += [
            f"<p>Reference ({e(m.reference_method)}{', verified' if m.reference_verified else ''}): "
            f"{m.report.n_reference} rows — {e(m.reference_note)}. New window: {m.report.n_new} rows, "
            f"{m.report.n_new_labeled} labeled. Confidence reference: {e(m.confidence_note)}.</p>",
            "<h2>Drift tests</h2>",
            table(TEST_HEADER, _test_rows(m)),
            "<h2>Live F1 on newly labeled rows</h2>",
            table(LIVE_HEADER, _live_rows(m)),
            "<h2>Tags</h2>",
            table(LABEL_HEADER, _label_rows(m)),
            "<h2>Distributions</h2>",
            *(_svg_histogram(title, r, n) for title, (r, n) in m.samples.items()),
        ]
    parts += [
        "<h2>Policy</h2>",
        table(["threshold", "value"], [[k, str(v)] for k, v in m.policy.to_dict().items()]),
        "</body></html>",
    ]
    return "\n".join(parts)
