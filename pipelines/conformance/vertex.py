"""What Vertex AI Pipelines needs of a compiled pipeline beyond the KFP backend's rules.

Vertex runs the same pipeline spec (so the typed-value simulation and the name and
reference rules of the KFP check apply unchanged), but it is not a Kubernetes cluster of
ours: nothing in ``platforms.kubernetes`` applies there, and the SDK that submits the job,
``google-cloud-aiplatform``, reads the template with one ``yaml.safe_load``
(``google/cloud/aiplatform/utils/yaml_utils.py``), which refuses a file of two documents.
The rules here come from that SDK (2.7), read from its source:

- one YAML document, and no Kubernetes platform section (PVCs, Kubernetes Secrets);
- the job id it derives, ``<pipeline name, lowercased, runs of other characters as '-'>-
  <YYYYmmddHHMMSS>``, must match ``^[a-z][-a-z0-9]{0,127}$``
  (``pipeline_jobs.py``, ``constants/pipeline.py`` ``_VALID_NAME_PATTERN``);
- no credential in the YAML: no container env var that is one of the credentials the
  steps read (those come from Secret Manager at run time, named in ``KFP_MLOPS_SECRETS``),
  and no parameter default that is a URL with a password.
"""

from __future__ import annotations

import re

from pipelines.conformance.spec import Pipeline

AIPLATFORM = "google-cloud-aiplatform"
YAML_UTILS = f"{AIPLATFORM} utils/yaml_utils.py"
JOB_ID = f"{AIPLATFORM} pipeline_jobs.py, constants/pipeline.py"
_JOB_ID = re.compile(r"^[a-z][-a-z0-9]{0,127}$", re.IGNORECASE)
_TIMESTAMP = "20260101000000"
_PASSWORD_URL = re.compile(r"^[a-z][-+.a-z0-9]*://[^/@:]*:[^/@]+@", re.IGNORECASE)
PROJECT = "pipelines/vertex.py"


def check_vertex(pipeline: Pipeline) -> None:
    """Report what Vertex AI (through its SDK) would refuse, or what would leak a credential."""
    from pipelines import platform

    if pipeline.documents != 1:
        message = f"{pipeline.documents} YAML documents: PipelineJob(template_path=...) loads exactly one"
        pipeline.report(None, "", message, YAML_UTILS, dag="file")
    if pipeline.kubernetes:
        message = (
            "a platforms.kubernetes section (PVCs, Kubernetes Secrets): nothing of it applies on Vertex AI"
        )
        pipeline.report(None, "", message, YAML_UTILS, dag="platforms.kubernetes")
    job_id = re.sub("[^-0-9a-z]+", "-", pipeline.name.lower()).strip("-") + f"-{_TIMESTAMP}"
    if not _JOB_ID.match(job_id):
        message = f"the job id {job_id!r} derived from the name does not match {_JOB_ID.pattern}"
        pipeline.report(None, "pipelineInfo.name", message, JOB_ID, dag="pipeline")
    secret_vars = {
        *platform.AIRBYTE_ENV.values(),
        *platform.MLFLOW_ENV.values(),
        *platform.OPTUNA_STORAGE_ENV.values(),
        *platform.WAREHOUSE_ENV.values(),
    }
    executors = pipeline.spec.get("deploymentSpec", {}).get("executors", {}) or {}
    for label in sorted(executors):
        for env in (executors[label].get("container") or {}).get("env", []) or []:
            if env.get("name") in secret_vars:
                message = f"env var {env['name']} is compiled into the YAML: it comes from Secret Manager at run time"
                pipeline.report(None, f"{label} env", message, PROJECT, dag="deploymentSpec")
    for dag, component in [("root", pipeline.spec.get("root", {})), *pipeline.components.items()]:
        params = component.get("inputDefinitions", {}).get("parameters", {}) or {}
        for name, spec in sorted(params.items()):
            default = spec.get("defaultValue")
            if isinstance(default, str) and _PASSWORD_URL.match(default):
                message = "the default is a URL with a password: the password would be in the YAML"
                pipeline.report(None, name, message, PROJECT, dag=dag)
