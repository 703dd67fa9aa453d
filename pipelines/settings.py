"""Where things live, per environment. One place; the CLI and the pipelines read it.

Local (embedded default): everything under a `stores/` folder (``KFP_MLOPS_STORES``).
Cluster: the compiled pipelines' parameter defaults point at in-cluster services; users
override them per run (``--param``) or through the manifests' ConfigMap.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# Defaults compiled into the pipeline YAML (what a cluster run uses unless overridden).
CLUSTER_STORES = "/mnt/stores"  # the PVC of the kind / minikube overlays
CLUSTER_WAREHOUSE = f"duckdb:///{CLUSTER_STORES}/warehouse.duckdb"
CLUSTER_TRACKING_URI = "http://mlflow.kfp-mlops.svc.cluster.local:5000"
# The optuna database of the in-cluster PostgreSQL (manifests/base/postgres), shared by the
# optimize workers wherever they are scheduled. No password: the steps get PGPASSWORD from
# Secret optuna-storage-credentials (pipelines/platform.py), which libpq reads.
CLUSTER_OPTUNA_STORAGE = "postgresql://optuna@postgres.kfp-mlops.svc.cluster.local:5432/optuna"
CLUSTER_SOURCE = f"{CLUSTER_STORES}/sources/sample"


@dataclass(frozen=True)
class LocalSettings:
    """The embedded default: DuckDB warehouse, MLflow on sqlite, Optuna on sqlite."""

    stores: Path

    @classmethod
    def from_env(cls, stores: str | Path | None = None) -> LocalSettings:
        root = Path(stores or os.environ.get("KFP_MLOPS_STORES", "stores")).expanduser().resolve()
        return cls(stores=root)

    @property
    def warehouse(self) -> str:
        return os.environ.get("WAREHOUSE_URI") or f"duckdb:///{self.stores / 'warehouse.duckdb'}"

    @property
    def tracking_uri(self) -> str:
        return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{self.stores / 'mlflow.db'}"

    @property
    def artifact_root(self) -> str:
        # Only meaningful for a sqlite tracking store; a tracking server decides on its own.
        return "" if self.tracking_uri.startswith("http") else str(self.stores / "mlartifacts")

    @property
    def optuna_storage(self) -> str:
        return os.environ.get("OPTUNA_STORAGE") or f"sqlite:///{self.stores / 'optuna.db'}"

    @property
    def runs(self) -> Path:
        return self.stores / "runs"

    @property
    def cache(self) -> Path:
        return self.stores / "cache"

    def ensure(self) -> None:
        for p in (self.stores, self.runs, self.cache):
            p.mkdir(parents=True, exist_ok=True)
