"""The monitor's report: the decision, its reasons and every number behind it, as Markdown and HTML."""

from __future__ import annotations

import html
import json
import math
import re

from components.monitor.core import Monitoring
from components.plots import histogram_svg, shares_svg


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
        f"# Monitor: {m.origin.table}, champion {champ}",
        "",
        f"**Decision: {m.decision}**",
        "",
        *(f"- {r}" for r in m.reasons),
        "",
        f"Data: {m.rows} rows of {m.origin.table}; {m.origin.cutoff.note}.",
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


def figures(m: Monitoring) -> dict[str, str]:
    """The report's pictures by file stem (``drift_<sample>``, ``tag_shares``): SVG documents."""
    out = {}
    for title, (ref, new) in m.samples.items():
        svg = histogram_svg(title, ref, new)
        if svg:
            out["drift_" + re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")] = svg
    counts = (m.report.label.details.get("counts") if m.report else None) or {}
    if counts:
        out["tag_shares"] = shares_svg("tag shares", counts)
    return out


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

    pictures = figures(m)
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
        f"<h1>Monitor: {e(m.origin.table)}, champion {e(champ)}</h1>",
        f"<p><span class='decision' style='background:{color.get(m.decision, '#5f6368')}'>"
        f"{e(m.decision)}</span></p>",
        "<ul>" + "".join(f"<li>{e(r)}</li>" for r in m.reasons) + "</ul>",
        f"<p>Data: {m.rows} rows of {e(m.origin.table)}; {e(m.origin.cutoff.note)}.</p>",
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
            *(f"<figure>{svg}</figure>" for stem, svg in pictures.items() if stem == "tag_shares"),
            "<h2>Distributions</h2>",
            *(f"<figure>{svg}</figure>" for stem, svg in pictures.items() if stem != "tag_shares"),
        ]
    parts += [
        "<h2>Policy</h2>",
        table(["threshold", "value"], [[k, str(v)] for k, v in m.policy.to_dict().items()]),
        "</body></html>",
    ]
    return "\n".join(parts)
