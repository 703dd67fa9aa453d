"""The reports' pictures as standalone SVG: no script, no font or style sheet to fetch.

Each function returns one ``<svg>`` document (with its namespace, so the same text is a valid
``.svg`` file for MLflow's artifact viewer and an inline figure in an HTML report);
``data_uri`` turns one into an image a Markdown report can show.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence

import numpy as np

REFERENCE = "#9aa0a6"
NEW = "#1a73e8"


def _svg(width: float, height: float, label: str, body: Sequence[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{html.escape(label)}" '
        'font-family="sans-serif">' + "".join(body) + "</svg>"
    )


def data_uri(svg: str) -> str:
    """The picture as a ``data:`` URI (a Markdown image: ``![title](data:...)``)."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def histogram_svg(title: str, reference: np.ndarray, new: np.ndarray, bins: int = 30) -> str:
    """Overlaid density histograms of two samples (reference grey, new blue); "" when one is empty."""
    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(new, dtype=float)
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    if not len(ref) or not len(cur):
        return ""
    lo, hi = float(min(ref.min(), cur.min())), float(max(ref.max(), cur.max()))
    if hi <= lo:
        hi = lo + 1.0
    edges = np.linspace(lo, hi, bins + 1)
    h_ref = np.histogram(ref, edges)[0] / len(ref)
    h_new = np.histogram(cur, edges)[0] / len(cur)
    top = float(max(h_ref.max(), h_new.max())) or 1.0
    w, h, pad = 520, 180, 24
    bw = (w - 2 * pad) / bins
    body = [f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="#555"/>']
    for i in range(bins):
        for vals, color in ((h_ref, REFERENCE), (h_new, NEW)):
            bh = (h - 2 * pad) * vals[i] / top
            body.append(
                f'<rect x="{pad + i * bw:.1f}" y="{h - pad - bh:.1f}" width="{bw - 1:.1f}" '
                f'height="{bh:.1f}" fill="{color}" fill-opacity="0.55"/>'
            )
    body += [
        f'<text x="{pad}" y="{h - 6}" font-size="11">{lo:.3g}</text>',
        f'<text x="{w - pad}" y="{h - 6}" font-size="11" text-anchor="end">{hi:.3g}</text>',
        f'<text x="{pad}" y="14" font-size="12">{html.escape(title)}: '
        f'<tspan fill="#5f6368">reference (n={len(ref)})</tspan> vs '
        f'<tspan fill="{NEW}">new (n={len(cur)})</tspan></text>',
    ]
    return _svg(w, h, title, body)


def shares_svg(title: str, counts: Mapping[str, Mapping[str, int]]) -> str:
    """Each tag's share of the reference and of the new rows, side by side; "" without counts.

    `counts` maps a tag to ``{"reference": n, "new": m}``.
    """
    if not counts:
        return ""
    totals = {side: sum(int(c.get(side, 0)) for c in counts.values()) or 1 for side in ("reference", "new")}
    shares = {tag: {side: int(c.get(side, 0)) / totals[side] for side in totals} for tag, c in counts.items()}
    top = max(max(s.values()) for s in shares.values()) or 1.0
    label_w, bar_w, row_h, pad = 190, 300, 34, 10
    w, h = label_w + bar_w + 70, 28 + row_h * len(shares) + pad
    body = [
        f'<text x="{pad}" y="16" font-size="12">{html.escape(title)}: '
        f'<tspan fill="#5f6368">reference</tspan> vs <tspan fill="{NEW}">new</tspan></text>'
    ]
    for i, (tag, share) in enumerate(shares.items()):
        y = 28 + i * row_h
        body.append(f'<text x="{pad}" y="{y + 18}" font-size="12">{html.escape(tag)}</text>')
        for j, (side, color) in enumerate((("reference", REFERENCE), ("new", NEW))):
            length = bar_w * share[side] / top
            yy = y + 2 + j * 14
            body.append(
                f'<rect x="{label_w}" y="{yy}" width="{length:.1f}" height="12" fill="{color}"/>'
                f'<text x="{label_w + length + 4:.1f}" y="{yy + 10}" font-size="10">{share[side]:.1%}</text>'
            )
    return _svg(w, h, title, body)


def _cell_color(fraction: float) -> str:
    """White (0) to the report blue (1)."""
    r, g, b = (round(255 + (c - 255) * fraction) for c in (0x1A, 0x73, 0xE8))
    return f"#{r:02x}{g:02x}{b:02x}"


def confusion_svg(title: str, classes: Sequence[str], matrix: Sequence[Sequence[int]]) -> str:
    """A confusion matrix (rows: true tag, columns: predicted), each cell shaded by its share
    of the row and labelled with its count."""
    n = len(classes)
    if n == 0 or len(matrix) != n or any(len(row) != n for row in matrix):
        raise ValueError(f"a confusion matrix over {n} classes needs {n} rows of {n} counts")
    cell, left, top = 56, 200, 60
    w, h = left + cell * n + 20, top + cell * n + 40
    body = [
        f'<text x="10" y="18" font-size="13">{html.escape(title)}</text>',
        f'<text x="{left + cell * n / 2:.0f}" y="{top - 30}" font-size="11" text-anchor="middle">predicted</text>',
        f'<text x="10" y="{top - 8}" font-size="11">true \u2193</text>',
    ]
    for j, name in enumerate(classes):
        x = left + j * cell + cell / 2
        body.append(
            f'<text x="{x:.0f}" y="{top - 8}" font-size="9" text-anchor="middle">{html.escape(name[:10])}</text>'
        )
    for i, row in enumerate(matrix):
        y = top + i * cell
        total = sum(int(v) for v in row) or 1
        body.append(
            f'<text x="{left - 6}" y="{y + cell / 2 + 4:.0f}" font-size="11" text-anchor="end">'
            f"{html.escape(classes[i])}</text>"
        )
        for j, value in enumerate(row):
            fraction = int(value) / total
            ink = "#fff" if fraction > 0.5 else "#202124"
            body.append(
                f'<rect x="{left + j * cell}" y="{y}" width="{cell}" height="{cell}" '
                f'fill="{_cell_color(fraction)}" stroke="#dadce0"/>'
                f'<text x="{left + j * cell + cell / 2:.0f}" y="{y + cell / 2 + 4:.0f}" font-size="12" '
                f'text-anchor="middle" fill="{ink}">{int(value)}</text>'
            )
    return _svg(w, h, title, body)
