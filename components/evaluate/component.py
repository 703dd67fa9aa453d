"""KFP wrapper of the evaluate step (logic in ``components.evaluate.core``)."""

from typing import NamedTuple

from kfp.dsl import Dataset, Input, Markdown, Output

from components.step import MLFLOW_CREDENTIALS, STORES, step_component


@step_component("evaluate", image="train", needs=(MLFLOW_CREDENTIALS, STORES))
def evaluate(
    dataset: Input[Dataset],
    candidate_version: str,
    tracking_uri: str,
    report: Output[Markdown],
    margin: float = 0.0,
    slice_tolerance: float = 0.05,
) -> NamedTuple("Outputs", [("decision", str), ("reason", str), ("champion_version", str)]):  # type: ignore[valid-type]
    """Compare a candidate model version with the champion on the same test rows and gate it.

    Promote when there is no champion yet, or when the candidate's weighted F1 is at least
    the champion's plus ``margin`` and no slice's F1 drops more than ``slice_tolerance``
    below the champion's; otherwise keep the champion.

    Args:
        dataset: Labeled projects as parquet (the dataset the candidate was trained on).
        candidate_version: Registered version of ``tagifai`` to evaluate (from train).
        tracking_uri: MLflow tracking (and registry) URI.
        margin: F1 the candidate must gain over the champion.
        slice_tolerance: Largest F1 drop allowed on any slice.

    Returns:
        report: Markdown comparison table (overall, per class, slices), decision and reason.
        decision: ``promote`` or ``keep``.
        reason: Why, with the numbers.
        champion_version: The champion compared against ("" when there was none).
    """
    from collections import namedtuple
    from pathlib import Path

    from components.evaluate.core import confusion_figures, evaluate_candidate, render_markdown
    from tagifai import tracking

    ev = evaluate_candidate(
        dataset.path, candidate_version, tracking_uri, margin=margin, slice_tolerance=slice_tolerance
    )
    text = render_markdown(ev)
    Path(report.path).parent.mkdir(parents=True, exist_ok=True)
    Path(report.path).write_text(text, encoding="utf-8")
    # The comparison travels with the candidate's training run too (reports/evaluation.md), with
    # both models' confusion matrices on these test rows as pictures.
    files = {"reports/evaluation.md": text}
    files.update({f"plots/evaluation/{stem}.svg": svg for stem, svg in confusion_figures(ev).items()})
    tracking.log_texts(tracking_uri, tracking.version_run_id(tracking_uri, candidate_version), files)
    report.metadata.update(
        {
            "decision": ev.decision,
            "reason": ev.reason,
            "candidate": ev.candidate_version,
            "champion": ev.champion_version,
        }
    )
    print(f"{ev.decision}: {ev.reason}")
    Outputs = namedtuple("Outputs", ["decision", "reason", "champion_version"])
    return Outputs(ev.decision, ev.reason, ev.champion_version)
