"""Kubernetes wiring of pipeline tasks: Secrets, the stores PVC, retries and timeouts.

Pipelines call ``wire(task)`` on their tasks, which attaches what the task's step declares it
needs (components.step: its credentials, the stores volume, retries); components never do
(STYLE: wiring is attached in the pipeline). Everything here lands in the
``platforms.kubernetes`` section of the compiled YAML as *references*: Secret names,
keys and mount paths. No secret value is ever read at compile time, so none can end
up in the YAML.

Where the referenced objects live: a Kubernetes-backed KFP creates each step's pod
in the namespace of the run (``kubeflow`` for a standalone install, the profile
namespace for a multi-user one). The Secrets and the PVC below must exist there;
``manifests/base/runtime`` creates them (see ``docs/cluster.md``).

Optional Secrets: kfp-kubernetes 2.17 supports ``optional=True`` for Secrets used as
env vars and as volumes, and the KFP backend of the same release honours it (it
sets ``secretKeyRef.optional`` / ``secret.optional`` on the pod). The credentials
here are optional because the embedded default (DuckDB warehouse, no Airbyte
server, an MLflow server without auth) needs none of them: a step whose Secret or
key is missing simply gets no such variable. An empty value behaves the same for
our steps (they treat ``""`` as unset). The SDK writes the ``optional`` field even
when it is false, and KFP backends that predate it (e.g. the 2.x of Kubeflow 1.9,
kubeflow/pipelines#12495) refuse to run such a pipeline: match the backend to the
SDK, as ``scripts/cluster.sh`` does (KFP 2.17.3).

kfp.local ignores all ``kfp.kubernetes`` settings but honours ``set_retry``,
backoff included: a deterministic local failure (a broken source file in the
embedded mode) would be retried with 20 + 40 + 80 s of waiting. ``without_retries``
gives a local runner a copy of a pipeline with the retry policies removed.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Callable, Iterator
from typing import Any

from kfp import kubernetes
from kfp.dsl import PipelineTask

from components.step import Need, Step, step_of
from pipelines.settings import CLUSTER_STORES

AIRBYTE_SECRET = "airbyte-credentials"
WAREHOUSE_SECRET = "bigquery-credentials"
MLFLOW_SECRET = "mlflow-credentials"
OPTUNA_STORAGE_SECRET = "optuna-storage-credentials"
STORES_PVC = "kfp-mlops-stores"
# Which PVC the steps mount at /mnt/stores, chosen when the pipelines are compiled (like
# IMAGE_REGISTRY): unset or empty, kfp-mlops-stores; another name, that claim (e.g. a
# ReadWriteMany one); ``none``, no volume at all. The gcp overlay compiles with ``none``
# (docs/cluster.md, "GKE"): there the warehouse is BigQuery and Optuna is on PostgreSQL, so no
# step needs the volume, and a ReadWriteOnce disk mounted by every step pod would stall the
# pods on other nodes, and a fresh one is not writable by the steps' non-root user (KFP sets
# no fsGroup on step pods).
STORES_PVC_ENV = "KFP_MLOPS_STORES_PVC"
NO_STORES = "none"
_DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")

# Secret key -> environment variable.
AIRBYTE_ENV = {
    "AIRBYTE_CLIENT_ID": "AIRBYTE_CLIENT_ID",
    "AIRBYTE_CLIENT_SECRET": "AIRBYTE_CLIENT_SECRET",
    "AIRBYTE_USERNAME": "AIRBYTE_USERNAME",
    "AIRBYTE_PASSWORD": "AIRBYTE_PASSWORD",
}
MLFLOW_ENV = {
    "MLFLOW_TRACKING_USERNAME": "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD": "MLFLOW_TRACKING_PASSWORD",
}
# The Optuna storage's password. The storage URL is a pipeline parameter, so it names no
# password (the compiled default, pipelines/settings.py, names none); libpq, under the
# PostgreSQL driver, reads PGPASSWORD when the URL has none.
OPTUNA_STORAGE_ENV = {"PGPASSWORD": "PGPASSWORD"}
# The BigQuery service-account key is mounted as a file; GOOGLE_APPLICATION_CREDENTIALS
# comes from the same Secret (key ``GOOGLE_APPLICATION_CREDENTIALS``, normally
# ``/var/secrets/google/key.json``) rather than being compiled in: with GKE Workload
# Identity there is no key file, and a variable naming a missing file would make
# google-auth fail instead of falling back to the metadata server. Leave both keys
# out (or empty) of the Secret for Workload Identity or a DuckDB warehouse.
GOOGLE_CREDENTIALS_DIR = "/var/secrets/google"
GOOGLE_KEY_FILE = f"{GOOGLE_CREDENTIALS_DIR}/key.json"
WAREHOUSE_ENV = {"GOOGLE_APPLICATION_CREDENTIALS": "GOOGLE_APPLICATION_CREDENTIALS"}

# Pod-level retries for steps whose work is a call to an external service. The
# MLflow and BigQuery clients already retry HTTP errors inside the step; Airbyte
# syncs are long jobs behind a flaky API, so the whole step is retried (it is
# idempotent: a sync already running (409) is attached to, not started twice).
EXTERNAL_RETRIES = 3
EXTERNAL_BACKOFF_S = 20  # then 40 s, 80 s
EXTERNAL_BACKOFF = f"{EXTERNAL_BACKOFF_S}s"
EXTERNAL_BACKOFF_FACTOR = 2.0
# activeDeadlineSeconds of each attempt's pod: above the step's own Airbyte job
# timeout (1 h by default), so the step can cancel its job before the pod is killed.
EXTERNAL_TIMEOUT_S = 2 * 3600


def retry_window_s(retries: int, timeout_s: int) -> int:
    """Argo's ``backoff.maxDuration`` for `retries` attempts of `timeout_s` each.

    Argo counts it from the first attempt's start and starts no retry after it (a retry's pod
    deadline is cut to what is left): it is the whole window, so it covers every attempt and
    every backoff (backend/src/v2/compiler/argocompiler/container.go passes the task's
    ``backoff_max_duration`` there; argo-workflows workflow/controller/operator.go).
    """
    backoffs = sum(EXTERNAL_BACKOFF_S * EXTERNAL_BACKOFF_FACTOR**i for i in range(retries))
    return int((retries + 1) * timeout_s + backoffs)


def use_airbyte_credentials(task: PipelineTask) -> PipelineTask:
    """Airbyte API credentials from Secret ``airbyte-credentials`` as env vars (optional)."""
    return kubernetes.use_secret_as_env(task, AIRBYTE_SECRET, dict(AIRBYTE_ENV), optional=True)


def use_warehouse_credentials(task: PipelineTask) -> PipelineTask:
    """BigQuery credentials: Secret ``bigquery-credentials`` at /var/secrets/google (optional)."""
    kubernetes.use_secret_as_volume(task, WAREHOUSE_SECRET, GOOGLE_CREDENTIALS_DIR, optional=True)
    return kubernetes.use_secret_as_env(task, WAREHOUSE_SECRET, dict(WAREHOUSE_ENV), optional=True)


def use_mlflow_credentials(task: PipelineTask) -> PipelineTask:
    """MLflow tracking-server basic auth from Secret ``mlflow-credentials`` (optional)."""
    return kubernetes.use_secret_as_env(task, MLFLOW_SECRET, dict(MLFLOW_ENV), optional=True)


def use_optuna_storage_credentials(task: PipelineTask) -> PipelineTask:
    """The Optuna storage's password from Secret ``optuna-storage-credentials`` as PGPASSWORD (optional)."""
    return kubernetes.use_secret_as_env(task, OPTUNA_STORAGE_SECRET, dict(OPTUNA_STORAGE_ENV), optional=True)


def stores_pvc() -> str | None:
    """The PVC the steps mount at /mnt/stores (``$KFP_MLOPS_STORES_PVC``), or None for none.

    Raises:
        ValueError: The name is not a Kubernetes object name.
    """
    name = os.environ.get(STORES_PVC_ENV, "").strip() or STORES_PVC
    if name.lower() == NO_STORES:
        return None
    if not _DNS_NAME.match(name):
        raise ValueError(
            f"{STORES_PVC_ENV}={name!r} is not a PersistentVolumeClaim name (lowercase letters, digits, "
            f"'-' and '.'), nor {NO_STORES!r} for no volume"
        )
    return name


def mount_stores(task: PipelineTask) -> PipelineTask:
    """The stores PVC at /mnt/stores (DuckDB warehouse, sources), unless compiled without one."""
    pvc = stores_pvc()
    return task if pvc is None else kubernetes.mount_pvc(task, pvc, CLUSTER_STORES)


def external_call_policy(
    task: PipelineTask,
    retries: int = EXTERNAL_RETRIES,
    timeout_s: int = EXTERNAL_TIMEOUT_S,
) -> PipelineTask:
    """Bounded retries with exponential backoff, and a deadline for each attempt's pod."""
    if retries > 0:
        task.set_retry(
            num_retries=retries,
            backoff_duration=EXTERNAL_BACKOFF,
            backoff_factor=EXTERNAL_BACKOFF_FACTOR,
            backoff_max_duration=f"{retry_window_s(retries, timeout_s)}s",
        )
    return kubernetes.set_timeout(task, timeout_s)


Wiring = Callable[[PipelineTask], PipelineTask]

# What each need of a step's declaration (components.step.Need) becomes on a cluster.
WIRING: dict[Need, Wiring] = {
    Need.AIRBYTE_CREDENTIALS: use_airbyte_credentials,
    Need.WAREHOUSE_CREDENTIALS: use_warehouse_credentials,
    Need.MLFLOW_CREDENTIALS: use_mlflow_credentials,
    Need.OPTUNA_CREDENTIALS: use_optuna_storage_credentials,
    Need.STORES: mount_stores,
}


def wirings(step: Step) -> tuple[Wiring, ...]:
    """The Kubernetes wiring of a declared step, in the order its needs are declared."""
    return tuple(WIRING[need] for need in step.needs)


def wire(task: PipelineTask, step: str | None = None, retries: int = EXTERNAL_RETRIES) -> PipelineTask:
    """Attach what the task's step declares it needs (components.step): its Secrets, the
    stores PVC, the call policy of a step that calls an external service, and its caching.

    Args:
        task: The pipeline task (a component call inside a ``@dsl.pipeline``).
        step: Wire it as this declared step instead of its own component's (a component
            that is not one of the project's steps).
        retries: Pod-level retries of a step that calls an external service (0: none).

    Returns:
        The same task, for chaining.

    Raises:
        KeyError: The task's component is no declared step.
    """
    declared = step_of(step or task.component_spec.name)
    for apply in wirings(declared):
        apply(task)
    if declared.external:
        external_call_policy(task, retries=retries)
    task.set_caching_options(declared.cache)
    return task


def _dags(spec: Any) -> Iterator[Any]:
    yield spec.root.dag
    for component in spec.components.values():
        if component.HasField("dag"):
            yield component.dag


def without_retries(pipeline: Any) -> Any:
    """A copy of a ``@dsl.pipeline`` with every task's retry policy removed (for kfp.local).

    The original is left as it is, so compiling it for a cluster keeps its retries.
    """
    clone = copy.deepcopy(pipeline)
    for dag in _dags(clone.pipeline_spec):
        for task in dag.tasks.values():
            task.ClearField("retry_policy")
    return clone
