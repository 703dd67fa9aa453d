"""The monitor's run in MLflow: one run per check, in an experiment of its own.

Its metrics (window sizes, each test's p-value and effect, live F1) make MLflow's charts of
drift across runs; its artifacts are the report (``reports/monitor.html``, ``.md``) and the
report's pictures (``plots/*.svg``).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping
from pathlib import Path

from components.monitor.core import Monitoring
from components.monitor.report import figures
from tagifai import tracking

EXPERIMENT = "tagifai-monitoring"
NOTE = (
    "Drift checks of the continual pipeline: a run per check, with the decision (tag `decision`), "
    "the drift tests and live F1 as metrics, and the report and its pictures as artifacts."
)


def metrics_of(m: Monitoring) -> dict[str, float]:
    """The numbers worth charting across checks (finite ones only)."""
    out: dict[str, float] = {"rows": float(m.rows)}
    if m.report is not None:
        out.update(
            {
                "reference_rows": float(m.report.n_reference),
                "new_rows": float(m.report.n_new),
                "new_labeled_rows": float(m.report.n_new_labeled),
            }
        )
        for test in m.report.tests:
            if test.ran:
                out[f"{test.name}_p_value"] = float(test.p_value)
                out[f"{test.name}_effect"] = float(test.effect)
                out[f"{test.name}_fired"] = float(test.fired)
    for role, live in (("champion", m.live_champion), ("previous", m.live_previous)):
        if live is not None:
            out[f"live_f1_{role}"] = float(live.f1)
    return {k: v for k, v in out.items() if math.isfinite(v)}


def log_monitoring(
    tracking_uri: str,
    m: Monitoring,
    page: str,
    summary: str,
    *,
    experiment: str = EXPERIMENT,
    tags: Mapping[str, str] | None = None,
    artifact_location: str | None = None,
) -> str:
    """Record one check as a finished run; returns its id."""
    with tempfile.TemporaryDirectory(prefix="monitor-run-") as tmp:
        reports, plots = Path(tmp, "reports"), Path(tmp, "plots")
        reports.mkdir()
        (reports / "monitor.html").write_text(page, encoding="utf-8")
        (reports / "monitor.md").write_text(summary, encoding="utf-8")
        artifacts: dict[str, Path] = {"reports": reports}
        pictures = figures(m)
        if pictures:
            plots.mkdir()
            for stem, svg in pictures.items():
                (plots / f"{stem}.svg").write_text(svg, encoding="utf-8")
            artifacts["plots"] = plots
        tracking.ensure_experiment(tracking_uri, experiment, artifact_location, note=NOTE)
        return tracking.log_run(
            tracking_uri,
            experiment,
            run_name=f"monitor-{m.decision}",
            params={**m.policy.to_dict(), "table": m.origin.table, "champion": m.champion or "none"},
            metrics=metrics_of(m),
            artifacts=artifacts,
            tags={
                "decision": m.decision,
                "reasons": "; ".join(m.reasons)[:5000],
                "champion": m.champion or "none",
                **{k: v for k, v in m.origin.cutoff.metadata().items() if v},
                **(tags or {}),
            },
            artifact_location=artifact_location,
        )
