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
    experiment: str = "tagifai-monitoring",
    artifact_root: str = "",
    pipeline_run_id: str = "",
    pipeline_run_name: str = "",
) -> NamedTuple("Outputs", [("decision", str), ("mlflow_run_id", str)]):  # type: ignore[valid-type]
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
        experiment: MLflow experiment of the check's run (metrics, report, pictures).
        artifact_root: Artifact location for a new experiment (local sqlite tracking);
            empty lets a tracking server decide.
        pipeline_run_id: The pipeline run's id (``dsl.PIPELINE_JOB_ID_PLACEHOLDER``), tagged
            on the MLflow run; "" leaves the tag out.
        pipeline_run_name: The pipeline run's name (``dsl.PIPELINE_JOB_NAME_PLACEHOLDER``).

    Returns:
        report: Self-contained HTML report: decision, reasons, every statistic, live F1,
            tag shares and histograms. Metadata: the decision and all details (with the
            snapshot's table, rows and cutoff).
        summary: The same as Markdown.
        decision: The decision: ``continue``, ``improve``, ``inspect`` or ``rollback``.
        mlflow_run_id: The check's run in MLflow: the same report and pictures, the tests'
            numbers as metrics, tagged with the decision and the pipeline run.
    """
    from pathlib import Path

    from components.lineage import pipeline_run_tags
    from components.monitor.core import monitor as run_monitor
    from components.monitor.report import render_html, render_markdown
    from components.monitor.tracked import log_monitoring
    from components.snapshot import snapshot_origin
    from tagifai.drift import DriftPolicy

    origin = snapshot_origin(dataset.metadata)
    print(origin.note)
    out = run_monitor(dataset.path, tracking_uri, DriftPolicy.from_json(policy_json), origin)
    page, text = render_html(out), render_markdown(out)
    for artifact, content in ((report, page), (summary, text)):
        Path(artifact.path).parent.mkdir(parents=True, exist_ok=True)
        Path(artifact.path).write_text(content, encoding="utf-8")
        artifact.metadata.update(out.to_dict())
    run_id = log_monitoring(
        tracking_uri,
        out,
        page,
        text,
        experiment=experiment,
        tags=pipeline_run_tags(pipeline_run_id, pipeline_run_name, "monitor"),
        artifact_location=artifact_root or None,
    )
    print(f"{out.decision}: " + "; ".join(out.reasons))
    print(f"MLflow run {run_id} in experiment {experiment}")
    from collections import namedtuple

    Outputs = namedtuple("Outputs", ["decision", "mlflow_run_id"])
    return Outputs(out.decision, run_id)
