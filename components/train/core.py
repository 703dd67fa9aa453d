"""Train with the study's best params, evaluate on the test split, log to MLflow, register.

The split is the deterministic one of ``tagifai.data.split`` (DataConfig defaults), so the
evaluate step scores exactly the same test rows.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from components.parquet import read_parquet
from components.plots import confusion_svg
from components.reference import DATA_MAX_CREATED_ON, DATA_MAX_ID
from components.versions import frame_version
from tagifai import tracking
from tagifai.config import DataConfig, TrainParams
from tagifai.data import LabelEncoder, prepare, split
from tagifai.evaluate import evaluate_model, flatten
from tagifai.train import train as fit

METRICS_FILE = "test_metrics.json"


@dataclass(frozen=True)
class TrainResult:
    version: str
    run_id: str
    data_version: str
    params: TrainParams
    metrics: dict[str, Any]  # tagifai.evaluate.evaluate_model output, with the fallback
    logged: dict[str, float]  # the flat metrics logged to MLflow
    threshold: float

    @property
    def test_f1(self) -> float:
        return float(self.metrics["overall"]["f1"])

    @property
    def classes(self) -> list[str]:
        return list(self.metrics["classes"])

    @property
    def confusion(self) -> list[list[int]]:
        return [list(map(int, row)) for row in self.metrics["confusion_matrix"]]


def load_params(best_params_path: str | Path, param_overrides: str = "{}") -> TrainParams:
    """Best params JSON (from study_summary) updated with JSON overrides; unknown keys fail."""
    best = json.loads(Path(best_params_path).read_text())
    overrides = json.loads(param_overrides or "{}")
    if not isinstance(best, dict) or not isinstance(overrides, dict):
        raise ValueError("best params and param_overrides must both be JSON objects")
    known = {f.name for f in fields(TrainParams)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"param_overrides has unknown key(s) {unknown}; known: {sorted(known)}")
    return TrainParams.from_dict({**best, **overrides})


def train_and_register(
    dataset_path: str | Path,
    best_params_path: str | Path,
    tracking_uri: str,
    model_dir: str | Path,
    *,
    experiment: str = tracking.MODEL_NAME,
    artifact_root: str = "",
    param_overrides: str = "{}",
    register_as: str = tracking.MODEL_NAME,
    data_version: str = "",
    data_cfg: DataConfig | None = None,
    validation_report: str | Path | None = None,
    tags: Mapping[str, str] | None = None,
) -> TrainResult:
    """Train, evaluate on the test split, save to `model_dir`, log the run and register a version.

    The run also holds the confusion matrix as a picture (``plots/confusion_matrix.svg``) and,
    when given, the dataset's `validation_report` (``reports/validation.html``); `tags` (e.g.
    the pipeline run's, ``components.lineage``) go on the run and the version.
    """
    params = load_params(best_params_path, param_overrides)
    raw = read_parquet(dataset_path)
    # The extract step's version (a hash of the warehouse frame) names the data; recompute
    # only when the dataset arrived without one.
    data_version = data_version or frame_version(raw)
    cfg = data_cfg or DataConfig()
    df = prepare(raw, cfg)
    train_df, val_df, test_df = split(df, cfg)
    model = fit(train_df, val_df, params, LabelEncoder.fit(df["tag"]), oversample=cfg.oversample)
    metrics = evaluate_model(model, test_df)
    argmax = evaluate_model(model, test_df, fallback=False)

    logged = flatten(metrics, prefix="test")
    logged.update(
        {
            "test_f1_argmax": argmax["overall"]["f1"],
            "test_precision_argmax": argmax["overall"]["precision"],
            "test_recall_argmax": argmax["overall"]["recall"],
            "threshold": model.threshold,
            "threshold_quantile": model.threshold_quantile,
            "val_f1": model.history[-1]["val_f1"],
        }
    )
    out = Path(model_dir)
    model.save(out)
    report = {
        "data_version": data_version,
        "rows": {"train": len(train_df), "val": len(val_df), "test": len(test_df)},
        "params": params.to_dict(),
        "threshold": model.threshold,
        "metrics": metrics,
        "metrics_argmax": {k: argmax[k] for k in ("overall", "class", "slices")},
    }
    with tempfile.TemporaryDirectory(prefix="train-metrics-") as tmp:
        metrics_file = Path(tmp) / METRICS_FILE
        metrics_file.write_text(json.dumps(report, indent=2))
        plots = Path(tmp) / "plots"
        plots.mkdir()
        matrix = [list(map(int, row)) for row in metrics["confusion_matrix"]]
        title = f"confusion matrix, test split ({len(test_df)} rows)"
        (plots / "confusion_matrix.svg").write_text(confusion_svg(title, list(metrics["classes"]), matrix))
        artifacts: dict[str, str | Path] = {
            tracking.MODEL_ARTIFACT_PATH: out,
            "metrics": metrics_file,
            "plots": plots,
        }
        if validation_report is not None:
            reports = Path(tmp) / "reports"
            reports.mkdir()
            shutil.copyfile(validation_report, reports / "validation.html")
            artifacts["reports"] = reports
        run_id = tracking.log_run(
            tracking_uri,
            experiment,
            run_name=f"train-{data_version}",
            params={
                **params.to_dict(),
                "data_version": data_version,
                "train_rows": len(train_df),
                "test_rows": len(test_df),
                # Where the training data ends: the drift monitor's reference window.
                DATA_MAX_ID: str(raw["id"].max()) if "id" in raw else "",
                DATA_MAX_CREATED_ON: str(raw["created_on"].max()) if "created_on" in raw else "",
            },
            metrics=logged,
            artifacts=artifacts,
            # Which feature family validation chose (also in the params and the model folder).
            tags={
                "data_version": data_version,
                "kfp_step": "train",
                "features": params.features,
                **(tags or {}),
            },
            artifact_location=artifact_root or None,
        )
    version = tracking.register_model(
        tracking_uri,
        run_id,
        name=register_as,
        tags={
            "data_version": data_version,
            "run_id": run_id,
            "test_f1": f"{metrics['overall']['f1']:.4f}",
            "features": params.features,
            **(tags or {}),
        },
    )
    return TrainResult(version, run_id, data_version, params, metrics, logged, model.threshold)
