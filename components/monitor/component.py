"""KFP wrapper of the monitor step (logic in ``components.monitor.core``)."""

from typing import NamedTuple

from kfp.dsl import HTML, Dataset, Input, Markdown, Output

from components.step import MLFLOW_CREDENTIALS, STORES, step_component


@step_component("monitor", image="train", needs=(MLFLOW_CREDENTIALS, STORES))
def monitor(
    dataset: Input[Dataset],
    tracking_uri: str,
    report: Output[HTML],
    summary: Output[Markdown],
    policy_json: str = "{}",
) -> NamedTuple("Outputs", [("decision", str)]):  # type: ignore[valid-type]
    """Check the rows added since the champion's training data for drift and decide what to do.

    Tests text-length drift (KS on word counts), label drift (chi-square on tags) and
    confidence drift (KS on the champion's winning probability, held-out reference rows vs.
    new rows), scores the champion and the previous version on the newly labeled rows, and
    applies the policy: ``rollback`` when the champion degraded on new labels and the
    previous version did not; ``improve`` on label drift (or confidence drift with enough
    labels, or a degraded champion with nothing to go back to); ``inspect`` on text-length
    or confidence drift without labels to act on; else ``continue``. No champion yet:
    ``improve``. Changes nothing in the registry, and never reads the warehouse.

    Args:
        dataset: extract's snapshot of the published table (parquet), already cut at the
            run's as_of / scheduled time. Its metadata names the table (``table``) and the
            cutoff (``as_of``, ``as_of_source``, ``as_of_note``), which the report shows.
        tracking_uri: MLflow tracking (and registry) URI.
        policy_json: JSON object overriding thresholds of ``tagifai.drift.DriftPolicy``
            (e.g. ``{"f1_drop_tolerance": 0.1}``); unknown keys fail.

    Returns:
        report: Self-contained HTML report: decision, reasons, every statistic, live F1,
            tag shares and histograms. Metadata: the decision and all details (with the
            snapshot's table, rows and cutoff).
        summary: The same as Markdown.
        decision: The decision: ``continue``, ``improve``, ``inspect`` or ``rollback``.
    """
    from pathlib import Path

    from components.monitor.core import monitor as run_monitor
    from components.monitor.report import render_html, render_markdown
    from components.snapshot import snapshot_origin
    from tagifai.drift import DriftPolicy

    origin = snapshot_origin(dataset.metadata)
    print(origin.note)
    out = run_monitor(dataset.path, tracking_uri, DriftPolicy.from_json(policy_json), origin)
    for artifact, text in ((report, render_html(out)), (summary, render_markdown(out))):
        Path(artifact.path).parent.mkdir(parents=True, exist_ok=True)
        Path(artifact.path).write_text(text, encoding="utf-8")
        artifact.metadata.update(out.to_dict())
    print(f"{out.decision}: " + "; ".join(out.reasons))
    from collections import namedtuple

    Outputs = namedtuple("Outputs", ["decision"])
    return Outputs(out.decision)
