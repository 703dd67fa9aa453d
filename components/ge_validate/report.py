"""The validation report: a self-contained HTML page, written before a failed suite raises.

No external assets: GX's own Data Docs load their CSS/JS from CDNs, which a cluster
without egress or a KFP UI cannot fetch.
"""

from __future__ import annotations

import html
import logging
from datetime import UTC, datetime
from pathlib import Path

from components.ge_validate.results import ValidationFailed, ValidationSummary, short

log = logging.getLogger(__name__)


def finish(
    summary: ValidationSummary, data_docs_path: str | Path | None, raise_on_failure: bool
) -> ValidationSummary:
    if data_docs_path is not None:
        path = Path(data_docs_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        summary.data_docs = str(path)
        path.write_text(render_html(summary), encoding="utf-8")
    log.info("%s (%.2f s)", summary.message(), summary.seconds)
    if raise_on_failure and not summary.success:
        raise ValidationFailed(summary)
    return summary


# --- Data Docs ---------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5rem;color:#1f2933}
h1{font-size:1.3rem;margin:0 0 .5rem}
.badge{display:inline-block;padding:.15rem .6rem;border-radius:1rem;color:#fff;font-weight:600}
.pass{background:#2f855a}.fail{background:#c53030}.error{background:#b7791f}
dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem;margin:.8rem 0 1.2rem}
dt{color:#52606d}dd{margin:0;font-family:ui-monospace,monospace;word-break:break-all}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{border:1px solid #d9e2ec;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f0f4f8}tr.failed td{background:#fff5f5}
code{font-family:ui-monospace,monospace;font-size:.85rem}
"""


def _frames_text(summary: ValidationSummary) -> str:
    if summary.frames <= 1 or summary.largest_frame is None:
        return "one frame" if summary.frames == 1 else "SQL in the warehouse"
    return f"{summary.frames} frames of at most {summary.largest_frame} rows (streamed)"


def render_html(summary: ValidationSummary) -> str:
    """A self-contained HTML report: inline CSS, no scripts, no external links."""
    esc = html.escape
    status = "pass" if summary.success else "fail"
    facts = {
        "suite": summary.suite,
        "result": f"{summary.successful} of {summary.evaluated} expectations passed",
        "rows": "" if summary.rows is None else str(summary.rows),
        "source": summary.source,
        "data version": summary.data_version,
        "validated at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "seconds": f"{summary.seconds:.2f}",
        "validated as": _frames_text(summary),
    }
    rows = []
    for i, o in enumerate(summary.outcomes, 1):
        state = "pass" if o.success else ("error" if o.error else "fail")
        if o.error:
            detail = f"error: {o.error}"
        elif o.unexpected_count is not None:
            detail = f"{o.unexpected_count} unexpected"
        elif o.observed is not None:
            detail = f"observed: {short(o.observed, 300)}"
        else:
            detail = ""
        sample = ", ".join(short(v, 80) for v in o.unexpected_values) if not o.success else ""
        rows.append(
            f'<tr class="{"" if o.success else "failed"}"><td>{i}</td>'
            f"<td><code>{esc(o.expectation)}</code>{f'<br>{esc(o.rule)}' if o.rule else ''}</td>"
            f"<td>{esc(', '.join(o.columns))}</td>"
            f'<td><span class="badge {state}">{state}</span></td>'
            f"<td>{esc(detail)}</td><td>{esc(sample)}</td></tr>"
        )
    facts_html = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts.items())
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>GX suite {esc(summary.suite)}: {status}</title>'
        f"<style>{_CSS}</style></head><body>"
        f'<h1>Suite <code>{esc(summary.suite)}</code> <span class="badge {status}">{status}</span></h1>'
        f"<dl>{facts_html}</dl>"
        "<table><thead><tr><th>#</th><th>expectation</th><th>column(s)</th><th>status</th>"
        "<th>observed / unexpected</th><th>sample unexpected values</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></body></html>\n"
    )
