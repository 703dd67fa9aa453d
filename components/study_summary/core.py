"""Summarize a finished Optuna study: trial accounting, best params, a self-contained report.

The report is plain HTML with an inline SVG chart: no scripts and nothing fetched from the
network, so it renders in the KFP UI and offline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from html import escape
from pathlib import Path
from typing import Any

import optuna

from components.study import FINISHED_STATES, open_storage, redact, resolve_storage_url, storage_error
from tagifai.config import TrainParams
from tagifai.optimize import best_params as merge_best_params

TrialState = optuna.trial.TrialState


class LostTrials(RuntimeError):
    """The study does not hold the number of finished trials the workers were asked for."""


@dataclass
class StudySummary:
    study_name: str
    expected_trials: int
    counts: dict[str, int]  # trial state name -> count
    best_value: float | None = None
    best_trial: int | None = None
    best_params: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> int:
        return sum(self.counts.get(s.name, 0) for s in FINISHED_STATES)


def load(study_name: str, storage: str) -> optuna.Study:
    """Load an existing study; a clear error when it is absent or the storage cannot be opened."""
    from sqlalchemy.exc import OperationalError

    try:
        return optuna.load_study(study_name=study_name, storage=open_storage(storage))
    except OperationalError as exc:
        raise storage_error(storage, exc) from exc
    except KeyError:
        url = redact(resolve_storage_url(storage))
        raise LostTrials(
            f"study {study_name!r} does not exist in {url}: did the optimize workers run?"
        ) from None


def summarize(study: optuna.Study, expected_trials: int) -> StudySummary:
    """Counts per state and, when a trial completed, the best trial and full training params."""
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    summary = StudySummary(study.study_name, expected_trials, counts)
    if counts.get(TrialState.COMPLETE.name):
        best = study.best_trial
        base = TrainParams.from_dict(study.user_attrs.get("base_params", {}))
        summary.best_value = float(study.best_value)
        summary.best_trial = best.number
        # Trials may train for fewer epochs to save time; the final model trains for the
        # full default (override with train's param_overrides).
        summary.best_params = (
            merge_best_params(study, base).with_(num_epochs=TrainParams().num_epochs).to_dict()
        )
    return summary


def check(summary: StudySummary) -> None:
    """Raise when trials were lost (or added), or when no trial completed."""
    if summary.finished != summary.expected_trials:
        states = ", ".join(f"{k.lower()} {v}" for k, v in sorted(summary.counts.items())) or "none"
        raise LostTrials(
            f"study {summary.study_name!r} has {summary.finished} finished trials (complete + pruned) "
            f"but {summary.expected_trials} were expected (trials by state: {states}); a worker lost "
            "trials, or the study name was reused by another run"
        )
    if summary.best_value is None:
        raise LostTrials(f"study {summary.study_name!r}: every trial was pruned; no best params")


# ----------------------------------------------------------------------------- report

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:1.5rem;color:#222}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.6rem}
table{border-collapse:collapse;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.best{background:#e8f5e9}.muted{color:#777}
.COMPLETE{color:#1b5e20}.PRUNED{color:#8d6e00}.FAIL{color:#b71c1c}
"""


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-3 and value != 0 else f"{value:.4f}"
    return str(value)


def _last_value(t: optuna.trial.FrozenTrial) -> float | None:
    if t.value is not None:
        return float(t.value)
    if t.intermediate_values:
        return float(t.intermediate_values[max(t.intermediate_values)])
    return None


def history_svg(trials: list[optuna.trial.FrozenTrial], width: int = 640, height: int = 260) -> str:
    """Optimization history: completed values (dots), pruned trials' last value (rings), best so far."""
    points = [(t.number, _last_value(t), t.state) for t in sorted(trials, key=lambda t: t.number)]
    points = [(n, v, s) for n, v, s in points if v is not None]
    if not points:
        return ""
    left, right, top, bottom = 56, 16, 16, 36
    n_max = max(n for n, _, _ in points)
    values = [v for _, v, _ in points if v is not None]
    lo, hi = min(values), max(values)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.05, hi + 0.05

    def x(n: float) -> float:
        return left + (width - left - right) * (n / n_max if n_max else 0.5)

    def y(v: float) -> float:
        return top + (height - top - bottom) * (1 - (v - lo) / (hi - lo))

    parts = [
        f'<svg xmlns="{SVG_NS}" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'role="img" aria-label="optimization history" font-family="sans-serif">',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="#888"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#888"/>',
        f'<text x="{left - 6}" y="{y(hi) + 4:.1f}" font-size="11" text-anchor="end">{hi:.3f}</text>',
        f'<text x="{left - 6}" y="{y(lo) + 4:.1f}" font-size="11" text-anchor="end">{lo:.3f}</text>',
        f'<text x="{left}" y="{height - 18}" font-size="11" text-anchor="middle">0</text>',
        f'<text x="{x(n_max):.1f}" y="{height - 18}" font-size="11" text-anchor="middle">{n_max}</text>',
        f'<text x="{(left + width - right) / 2:.1f}" y="{height - 4}" font-size="11" '
        'text-anchor="middle">trial number</text>',
    ]
    best: float | None = None
    steps: list[str] = []
    for n, v, state in points:
        assert v is not None
        if state == TrialState.COMPLETE:
            if best is None or v > best:
                if best is not None:
                    steps.append(f"{x(n):.1f},{y(best):.1f}")
                best = v
            steps.append(f"{x(n):.1f},{y(best):.1f}")
            parts.append(
                f'<circle cx="{x(n):.1f}" cy="{y(v):.1f}" r="4" fill="#1f77b4"><title>trial {n}: {v:.4f}</title></circle>'
            )
        else:
            parts.append(
                f'<circle cx="{x(n):.1f}" cy="{y(v):.1f}" r="4" fill="none" stroke="#999">'
                f"<title>trial {n} ({state.name.lower()}): {v:.4f}</title></circle>"
            )
    if steps:
        parts.append(f'<polyline points="{" ".join(steps)}" fill="none" stroke="#d62728" stroke-width="2"/>')
    parts.append("</svg>")
    return "\n".join(parts)


IMPORTANCE_SEED = 0
SVG_NS = "http://www.w3.org/2000/svg"


def param_importances(study: optuna.Study) -> tuple[dict[str, float], str]:
    """How much each parameter explains the completed trials' values (Optuna's fANOVA, over the
    parameters every completed trial has), or ({}, why not) when it cannot be computed."""
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(completed) < 2:
        return {}, f"{len(completed)} completed trial(s): at least 2 are needed"
    try:
        evaluator = optuna.importance.FanovaImportanceEvaluator(
            seed=IMPORTANCE_SEED
        )  # the same figures every time
        importances = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (ValueError, RuntimeError) as exc:  # e.g. no parameter shared by every trial
        return {}, str(exc)
    return {k: float(v) for k, v in importances.items()}, ""


def importance_svg(importances: dict[str, float], width: int = 640, bar: int = 22) -> str:
    """Horizontal bars, most important first, each labelled with its share."""
    label_w, pad = 190, 8
    height = pad * 2 + bar * len(importances)
    top = max(importances.values(), default=0.0) or 1.0
    parts = [
        f'<svg xmlns="{SVG_NS}" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'role="img" aria-label="parameter importance" font-family="sans-serif">'
    ]
    for i, (name, value) in enumerate(importances.items()):
        y = pad + i * bar
        w = (width - label_w - 70) * value / top
        parts.append(
            f'<text x="{label_w - 6}" y="{y + bar * 0.65:.1f}" text-anchor="end" font-size="12">{escape(name)}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{bar - 6}" fill="#4c78a8"/>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + bar * 0.65:.1f}" font-size="12">{value:.3f}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def figures(trials: list[optuna.trial.FrozenTrial], importances: dict[str, float]) -> dict[str, str]:
    """The report's pictures by file stem (``optimization_history``, ``param_importance``): SVG
    documents, each left out when there is nothing to draw."""
    out = {"optimization_history": history_svg(trials)}
    if importances:
        out["param_importance"] = importance_svg(importances)
    return {stem: svg for stem, svg in out.items() if svg}


def render_html(study: optuna.Study, summary: StudySummary, pictures: dict[str, str], why_not: str) -> str:
    """The study report: accounting, best params, the `pictures` (:func:`figures`; `why_not`
    says why the parameter importance is missing), trials sorted by value."""
    trials = study.get_trials(deepcopy=False)
    param_names = sorted({k for t in trials for k in t.params})
    ok = summary.finished == summary.expected_trials
    counts = ", ".join(f"{escape(k.lower())} {v}" for k, v in sorted(summary.counts.items())) or "none"
    html = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Optuna study {escape(summary.study_name)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Optuna study <code>{escape(summary.study_name)}</code></h1>",
        f"<p>Trials: {counts}. Finished (complete + pruned): <b>{summary.finished}</b> of "
        f"{summary.expected_trials} expected — {'none lost' if ok else '<b>MISMATCH</b>'}.</p>",
    ]
    if summary.best_value is not None:
        html.append(
            f"<p>Best validation F1: <b>{summary.best_value:.4f}</b> (trial {summary.best_trial}).</p>"
        )
        html.append("<h2>Best parameters</h2><table><tr><th>parameter</th><th>value</th></tr>")
        for k, v in summary.best_params.items():
            tuned = " (tuned)" if k in param_names else ""
            html.append(f"<tr><td>{escape(k)}{tuned}</td><td>{escape(_fmt(v))}</td></tr>")
        html.append("</table>")
    html.append("<h2>Optimization history</h2>")
    history = pictures.get("optimization_history", "")
    html.append(
        history + '\n<p class="muted">Blue dots: completed trials; grey rings: pruned trials at their last '
        "reported epoch; red line: best value so far.</p>"
        if history
        else '<p class="muted">No trial reported a value.</p>'
    )
    html.append("<h2>Parameter importance</h2>")
    if "param_importance" in pictures:
        html.append(
            "<p>Share of the variance of the completed trials' values each parameter explains (fANOVA).</p>"
        )
        html.append(pictures["param_importance"])
    else:
        html.append(f"<p>Not computed: {escape(why_not)}.</p>")
    html.append("<h2>Trials (best first)</h2><table><tr><th>trial</th><th>state</th><th>value</th>")
    html.append("<th>worker</th><th>epochs</th><th>duration</th>")
    html.extend(f"<th>{escape(p)}</th>" for p in param_names)
    html.append("</tr>")

    def order(t: optuna.trial.FrozenTrial) -> tuple[int, float, int]:
        v = _last_value(t)
        return (0 if t.state == TrialState.COMPLETE else 1, -(v if v is not None else -1e9), t.number)

    for t in sorted(trials, key=order):
        duration = t.duration.total_seconds() if isinstance(t.duration, timedelta) else None
        epochs = max(t.intermediate_values) + 1 if t.intermediate_values else None
        css = ' class="best"' if t.number == summary.best_trial else ""
        html.append(
            f"<tr{css}><td class='num'>{t.number}</td><td class='{t.state.name}'>{t.state.name.lower()}</td>"
            f"<td class='num'>{_fmt(_last_value(t))}</td><td class='num'>{_fmt(t.user_attrs.get('worker'))}</td>"
            f"<td class='num'>{_fmt(epochs)}</td><td class='num'>{_fmt(duration)}</td>"
        )
        html.extend(f"<td>{escape(_fmt(t.params.get(p)))}</td>" for p in param_names)
        html.append("</tr>")
    html.append("</table></body></html>")
    return "\n".join(html)


def write_summary(
    study_name: str,
    storage: str,
    expected_trials: int,
    best_params_path: str | Path,
    report_path: str | Path,
) -> tuple[StudySummary, dict[str, str]]:
    """Write the report (always, first), check the accounting, then write the best params JSON;
    the summary and the report's pictures (:func:`figures`)."""
    study = load(study_name, storage)
    summary = summarize(study, expected_trials)
    importances, why_not = param_importances(study)
    pictures = figures(study.get_trials(deepcopy=False), importances)
    report = Path(report_path)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(render_html(study, summary, pictures, why_not), encoding="utf-8")
    check(summary)
    out = Path(best_params_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary.best_params, indent=2, sort_keys=True))
    return summary, pictures
