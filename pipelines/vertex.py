"""The pipelines for Vertex AI Pipelines: the same KFP v2 spec, without the Kubernetes wiring.

Vertex AI runs a compiled KFP pipeline spec itself (no Kubernetes cluster of ours, no
Argo), and ``google.cloud.aiplatform.PipelineJob`` reads the template as *one* YAML
document: the ``platforms.kubernetes`` document of the KFP build makes it fail
(``ComposerError: expected a single document in the stream``). :func:`build` turns the
cluster build of a pipeline into the Vertex build:

- **no platform section**: no Kubernetes Secrets, no stores PVC, no pod deadlines (Vertex
  has no per-task deadline in the spec; airbyte_sync still cancels its job after
  ``airbyte_timeout_s``). Retry policies stay: they are part of the task spec, which Vertex
  honours;
- **defaults that fit Vertex** (:class:`VertexSettings`): the warehouse is BigQuery in the
  run's project; MLflow is a tracking server at a URL; Optuna's study storage is an RDB URL
  (Cloud SQL for PostgreSQL) naming no password; dataops syncs through an Airbyte server
  (``mode=server``), as the embedded loader writes DuckDB only; the images come from
  Artifact Registry (``REGION-docker.pkg.dev/PROJECT/kfp-mlops``) unless ``IMAGE_REGISTRY`` says
  otherwise;
- **secrets**: Google APIs (BigQuery) are called as the pipeline job's service account (the
  task's ADC: no key anywhere). Every other credential is a Secret Manager secret in the
  run's project, named after the variable it becomes (``kfp-mlops-pgpassword`` for
  ``PGPASSWORD``, ...: :func:`secret_id`). The YAML holds only the secrets' resource names,
  in the env var ``KFP_MLOPS_SECRETS`` of the steps that need them, which
  ``components.secrets`` resolves when the step starts. No value is ever compiled in.

See ``docs/vertex.md``.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from components.secrets import SECRETS_ENV
from pipelines import platform, registry

TARGET = "vertex"
DEFAULT_REGION = "us-central1"
REPOSITORY = "kfp-mlops"  # the Artifact Registry repository of the images
SECRET_PREFIX = "kfp-mlops-"
# Where each setting comes from when no option gives it.
PROJECT_ENV = "GOOGLE_CLOUD_PROJECT"
REGION_ENV = "GOOGLE_CLOUD_REGION"
TRACKING_ENV = "KFP_MLOPS_VERTEX_TRACKING_URI"
OPTUNA_ENV = "KFP_MLOPS_VERTEX_OPTUNA_STORAGE"
BIGQUERY_LOCATION_ENV = "KFP_MLOPS_VERTEX_BIGQUERY_LOCATION"
REGISTRY_ENV = "IMAGE_REGISTRY"

# A Google Cloud project id, and a region.
_PROJECT = re.compile(r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$")
_REGION = re.compile(r"^[a-z]+(-[a-z]+)+[0-9]+$")
_RDB = re.compile(r"^(postgresql|mysql)(\+\w+)?://")

# The credentials each wiring of pipelines/platform.py hands a step on Kubernetes, as the
# variables a Vertex task gets from Secret Manager. BigQuery's is not among them: on Vertex
# the job's service account is the BigQuery identity.
_SECRET_WIRINGS: dict[Any, Mapping[str, str]] = {
    platform.use_airbyte_credentials: platform.AIRBYTE_ENV,
    platform.use_mlflow_credentials: platform.MLFLOW_ENV,
    platform.use_optuna_storage_credentials: platform.OPTUNA_STORAGE_ENV,
}


class VertexSettingsError(ValueError):
    """A Vertex setting is missing or malformed; the message names it and where it comes from."""


@dataclass(frozen=True)
class VertexSettings:
    """What the Vertex build compiles in: where the run's stores and images are.

    Attributes:
        project: The Google Cloud project the pipeline runs in (BigQuery, Secret Manager).
        region: The Vertex AI region (and the Artifact Registry location of the images).
        tracking_uri: The MLflow tracking server, ``http(s)://...``.
        optuna_storage: The Optuna study storage, ``postgresql://USER@HOST:PORT/DB`` (no password).
        bigquery_location: The BigQuery location of the datasets (``""``: the datasets' own).
        image_registry: Where the step images are (default: Artifact Registry in `region`).
    """

    project: str
    tracking_uri: str
    optuna_storage: str
    region: str = DEFAULT_REGION
    bigquery_location: str = ""
    image_registry: str = ""

    @classmethod
    def resolve(
        cls,
        project: str | None = None,
        region: str | None = None,
        tracking_uri: str | None = None,
        optuna_storage: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> VertexSettings:
        """Settings from options, falling back to the environment; every problem at once.

        Raises:
            VertexSettingsError: A setting is missing or malformed (all of them are named).
        """
        env = os.environ if env is None else env
        values = {
            "project": (project or env.get(PROJECT_ENV, ""), f"--project or ${PROJECT_ENV}"),
            "region": (region or env.get(REGION_ENV, "") or DEFAULT_REGION, f"--region or ${REGION_ENV}"),
            "tracking_uri": (tracking_uri or env.get(TRACKING_ENV, ""), f"--tracking-uri or ${TRACKING_ENV}"),
            "optuna_storage": (
                optuna_storage or env.get(OPTUNA_ENV, ""),
                f"--optuna-storage or ${OPTUNA_ENV}",
            ),
        }
        problems = [
            f"{name} ({where}) {problem}"
            for name, (value, where) in values.items()
            if (problem := _problem(name, value.strip()))
        ]
        if problems:
            raise VertexSettingsError("the Vertex AI build needs: " + "; ".join(problems))
        return cls(
            **{name: value.strip() for name, (value, _) in values.items()},
            bigquery_location=env.get(BIGQUERY_LOCATION_ENV, "").strip(),
            image_registry=env.get(REGISTRY_ENV, "").strip().rstrip("/"),
        )

    @property
    def warehouse(self) -> str:
        location = f"?location={self.bigquery_location}" if self.bigquery_location else ""
        return f"bigquery://{self.project}{location}"

    @property
    def registry(self) -> str:
        return self.image_registry or f"{self.region}-docker.pkg.dev/{self.project}/{REPOSITORY}"

    def defaults(self) -> dict[str, str]:
        """The pipeline parameters whose compiled defaults differ from the KFP build's."""
        return {
            "warehouse": self.warehouse,
            "tracking_uri": self.tracking_uri,
            "optuna_storage": self.optuna_storage,
            "mode": "server",
            "source": "",
        }

    def secret(self, variable: str) -> str:
        """The Secret Manager resource a step's `variable` comes from (its latest version)."""
        return f"projects/{self.project}/secrets/{secret_id(variable)}/versions/latest"


def _problem(name: str, value: str) -> str:
    if not value:
        return "is not set"
    if name == "project" and not _PROJECT.match(value):
        return f"{value!r} is not a project id (6-30 lowercase letters, digits, '-')"
    if name == "region" and not _REGION.match(value):
        return f"{value!r} is not a region, e.g. {DEFAULT_REGION}"
    if name == "tracking_uri" and not re.match(r"^https?://[^/]", value):
        return f"{value!r} is not an MLflow server URL (http(s)://HOST...): a Vertex task has no local store"
    if name == "optuna_storage":
        if not _RDB.match(value):
            return f"{value!r} is not a PostgreSQL or MySQL URL: the workers of a study share it across tasks"
        if re.match(r"^[^:]+://[^/@]*:[^/@]*@", value):
            return (
                "names a password: the URL is compiled into the YAML; the password comes from Secret Manager"
            )
    return ""


def secret_id(variable: str) -> str:
    """The Secret Manager secret id of an env var: ``PGPASSWORD`` -> ``kfp-mlops-pgpassword``."""
    return SECRET_PREFIX + variable.lower().replace("_", "-")


def step_secrets(step: str) -> tuple[str, ...]:
    """The variables `step` gets from Secret Manager on Vertex (those Kubernetes Secrets give it)."""
    from components.step import step_of

    wirings = platform.wirings(step_of(step))
    return tuple(var for wiring in wirings for var in _SECRET_WIRINGS.get(wiring, {}).values())


def step_of_executor(label: str) -> str:
    """The step an executor label runs: ``exec-ge-validate-2`` -> ``ge_validate``."""
    from components.step import component_of

    return component_of(label).replace("-", "_")


def build(name: str, settings: VertexSettings) -> Any:
    """The Vertex build of pipeline `name`: a copy of its cluster build (which stays as it is)."""
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    pipeline = copy.deepcopy(registry.load(name, cluster=True))
    pipeline.component_spec.platform_spec = pipeline_spec_pb2.PlatformSpec()
    spec = pipeline.pipeline_spec
    defaults = settings.defaults()
    dags = [spec.root, *(c for c in spec.components.values() if c.HasField("dag"))]
    for definitions in (dag.input_definitions for dag in dags):
        for param, value in defaults.items():
            if param in definitions.parameters and definitions.parameters[param].HasField("default_value"):
                definitions.parameters[param].default_value.string_value = value
    deployment = json_format.MessageToDict(spec.deployment_spec)
    for label, executor in deployment.get("executors", {}).items():
        container = executor.get("container")
        if container is None:
            continue
        container["image"] = f"{settings.registry}/{container['image'].rsplit('/', 1)[-1]}"
        wanted = {var: settings.secret(var) for var in step_secrets(step_of_executor(label))}
        if wanted:
            env = [e for e in container.get("env", []) if e.get("name") != SECRETS_ENV]
            container["env"] = [*env, {"name": SECRETS_ENV, "value": json.dumps(wanted, sort_keys=True)}]
    spec.deployment_spec.Clear()
    spec.deployment_spec.update(deployment)
    return pipeline


def add_vertex_options(parser: Any) -> None:
    """``--target`` and the Vertex settings' options, on a parser (compile, check, submit)."""
    parser.add_argument(
        "--target",
        choices=("kfp", TARGET),
        default="kfp",
        help="kfp: a KFP backend on Kubernetes (default); vertex: Vertex AI Pipelines (one document, "
        "BigQuery, Secret Manager; docs/vertex.md)",
    )
    group = parser.add_argument_group("Vertex AI (with --target vertex)")
    group.add_argument("--project", help=f"Google Cloud project (default: ${PROJECT_ENV})")
    group.add_argument("--region", help=f"Vertex AI region (default: ${REGION_ENV} or {DEFAULT_REGION})")
    group.add_argument("--tracking-uri", help=f"MLflow tracking server URL (default: ${TRACKING_ENV})")
    group.add_argument(
        "--optuna-storage",
        help=f"Optuna storage, postgresql://USER@HOST/DB, no password (default: ${OPTUNA_ENV})",
    )


def settings_from_args(args: Any) -> VertexSettings | None:
    """The Vertex settings of parsed options, or None for ``--target kfp``.

    Raises:
        VertexSettingsError: A Vertex setting is missing or malformed.
    """
    if getattr(args, "target", "kfp") != TARGET:
        return None
    return VertexSettings.resolve(
        project=args.project,
        region=args.region,
        tracking_uri=args.tracking_uri,
        optuna_storage=args.optuna_storage,
    )
