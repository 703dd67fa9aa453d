"""KFP wrapper of the monitor step (logic in ``components.monitor.core``)."""

from kfp.dsl import HTML, Markdown, Output

from components.step import step_component


@step_component("monitor")
def monitor(
    warehouse: str,
    tracking_uri: str,
    report: Output[HTML],
    summary: Output[Markdown],
    policy_json: str = "{}",
    schema: str = "mlops_course",
    table: str = "labeled_projects",
    as_of: str = "",
    scheduled_time: str = "",
) -> str:
    """Check the rows added since the champion's training data for drift and decide what to do.

    Tests text-length drift (KS on word counts), label drift (chi-square on tags) and
    confidence drift (KS on the champion's winning probability, held-out reference rows vs.
    new rows), scores the champion and the previous version on the newly labeled rows, and
    applies the policy: ``rollback`` when the champion degraded on new labels and the
    previous version did not; ``improve`` on label drift (or confidence drift with enough
    labels, or a degraded champion with nothing to go back to); ``inspect`` on text-length
    or confidence drift without labels to act on; else ``continue``. No champion yet:
    ``improve``. Changes nothing in the registry.

    Args:
        warehouse: Warehouse URI: ``duckdb:///abs/path.duckdb`` or ``bigquery://PROJECT``.
        tracking_uri: MLflow tracking (and registry) URI.
        policy_json: JSON object overriding thresholds of ``tagifai.drift.DriftPolicy``
            (e.g. ``{"f1_drop_tolerance": 0.1}``); unknown keys fail.
        schema: Published schema (BigQuery dataset).
        table: Published table name.
        as_of: Monitor the table as it was at this ISO 8601 instant: rows created before it
            ('' = every row). Backfills set it.
        scheduled_time: The run's scheduled time (wired by the cluster build); the cutoff
            when ``as_of`` is empty and the server filled it in. See ``components.cutoff``.

    Returns:
        report: Self-contained HTML report: decision, reasons, every statistic, live F1,
            tag shares and histograms. Metadata: the decision and all details.
        summary: The same as Markdown.
        Output: The decision: ``continue``, ``improve``, ``inspect`` or ``rollback``.
    """
    from pathlib import Path

    from components import cutoff
    from components.monitor.core import monitor as run_monitor
    from components.monitor.core import render_html, render_markdown
    from tagifai.drift import DriftPolicy

    window = cutoff.resolve(as_of, scheduled_time)
    print(window.note)
    out = run_monitor(
        warehouse, tracking_uri, DriftPolicy.from_json(policy_json), schema=schema, table=table, cutoff=window
    )
    for artifact, text in ((report, render_html(out)), (summary, render_markdown(out))):
        Path(artifact.path).parent.mkdir(parents=True, exist_ok=True)
        Path(artifact.path).write_text(text, encoding="utf-8")
        artifact.metadata.update(out.to_dict())
    print(f"{out.decision}: " + "; ".join(out.reasons))
    return out.decision
