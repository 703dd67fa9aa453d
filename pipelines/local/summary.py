"""The run summary: one JSON object for machines, a few lines for people."""

from __future__ import annotations

from typing import Any

from pipelines.local import FAILED, SUCCEEDED, RunResult
from pipelines.settings import LocalSettings


def _param(result: RunResult, step: str, key: str) -> Any:
    """Output `key` of the run's `step` task (by its step, never by its display name)."""
    for out in result.outputs.values():
        if out.get("step") == step and key in out["parameters"]:
            return out["parameters"][key]
    return None


def json_summary(results: list[RunResult], settings: LocalSettings) -> dict[str, Any]:
    ok = bool(results) and all(r.status == SUCCEEDED for r in results)
    summary: dict[str, Any] = {
        "status": SUCCEEDED if ok else FAILED,
        "seconds": round(sum(r.seconds for r in results), 3),
        "pipelines": [r.to_dict() for r in results],
        "tasks": [t for r in results for t in r.to_dict()["tasks"]],
        "reports": [p for r in results for p in r.reports],
        "order": results[0].order if results else "",
        "warehouse": settings.warehouse,
        "tracking_uri": settings.tracking_uri,
        "error": next((r.error for r in results if r.error), ""),
    }
    for r in results:
        if r.pipeline == "dataops":
            summary["rows_published"] = _param(r, "publish", "rows_published")
        if r.pipeline == "continual":
            summary["decision"] = _param(r, "monitor", "decision")
        if r.pipeline in ("mlops", "continual") and _param(r, "train", "version") is not None:
            summary["model_version"] = _param(r, "train", "version")
            summary["test_f1"] = _param(r, "train", "test_f1")
            summary["gate"] = _param(r, "evaluate", "decision")
            summary["reason"] = _param(r, "evaluate", "reason")
    if any(r.pipeline in ("mlops", "continual") for r in results):
        from tagifai import tracking

        champ = tracking.get_alias(settings.tracking_uri) if ok else None
        summary["champion_version"] = str(champ.version) if champ else None
        if champ is not None:
            summary["champion_test_f1"] = tracking.run_metrics(settings.tracking_uri, champ.run_id).get(
                "test_f1"
            )
    for r in summary["pipelines"]:
        r.pop("outputs", None)
    return summary


def human_summary(s: dict[str, Any]) -> str:
    lines = [f"\n{s['status'].lower()} in {s['seconds']:.1f}s"]
    if s.get("rows_published") is not None:
        lines.append(
            f"  rows published : {s['rows_published']} -> mlops_course.labeled_projects ({s['warehouse']})"
        )
    if s.get("model_version") is not None:
        lines.append(
            f"  trained        : tagifai v{s['model_version']}, test F1 {s['test_f1']:.4f} ({s['gate']}: {s['reason']})"
        )
    if s.get("decision"):
        lines.append(f"  monitor        : {s['decision']}")
    if s.get("champion_version"):
        f1 = s.get("champion_test_f1")
        lines.append(
            f"  champion       : tagifai v{s['champion_version']}" + (f", test F1 {f1:.4f}" if f1 else "")
        )
    if s["reports"]:
        lines.append("  reports        :")
        lines += [f"    {p}" for p in s["reports"]]
    if s.get("champion_version") is not None or s.get("model_version") is not None:
        lines.append(f"  MLflow UI      : .venv/bin/mlflow ui --backend-store-uri {s['tracking_uri']}")
    if s["error"]:
        lines.append(f"  error          : {s['error']}")
    return "\n".join(lines)
