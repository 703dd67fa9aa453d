"""Start (and follow) a run on Vertex AI Pipelines through ``google-cloud-aiplatform``.

``python -m pipelines submit PIPELINE --target vertex --project P --region R --pipeline-root gs://...``
compiles the Vertex build (:mod:`pipelines.vertex`), types and checks the parameters by the
same rules as a KFP submit (the KFP backend's and Vertex AI's: nothing is sent when they
refuse the run), lets ``aiplatform.PipelineJob`` read the template and build the job (offline),
and creates it with the Vertex AI ``PipelineServiceClient`` over REST, as the given Google
service account (``--service-account``; default: the project's Compute Engine default).

The job is created directly rather than by ``PipelineJob.submit``: that method first looks
up the pipeline root's bucket, creates it if it is missing (granting the service account
access) and checks the owner's project number through the Resource Manager API. A pipeline
root here must be an existing bucket of the run's project; nothing but the job is created.

Credentials are the caller's ADC (``gcloud auth application-default login``, or a workload's
service account). ``--api-endpoint`` sends the calls elsewhere (a private endpoint, or a
local stand-in in tests); a plain ``http://`` endpoint gets no credentials, since a token
would travel in clear text.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from pipelines.clients import kfp as kfp_client
from pipelines.vertex import VertexSettings

PIPELINE_ROOT_ENV = "KFP_MLOPS_VERTEX_PIPELINE_ROOT"
API_ENDPOINT_ENV = "KFP_MLOPS_VERTEX_API_ENDPOINT"
# Final PipelineState names of the Vertex AI API.
FINAL = {"PIPELINE_STATE_SUCCEEDED", "PIPELINE_STATE_FAILED", "PIPELINE_STATE_CANCELLED"}
SUCCEEDED = "PIPELINE_STATE_SUCCEEDED"


def submit(
    pipeline_name: str,
    package_path: Path,
    settings: VertexSettings,
    pipeline_root: str,
    params: Mapping[str, Any] | None = None,
    run_name: str | None = None,
    service_account: str | None = None,
    api_endpoint: str = "",
    wait: bool = False,
    timeout_s: float = 6 * 3600,
    poll_s: float = 10.0,
    log: Callable[[str], None] = print,
    check: bool = True,
) -> kfp_client.SubmitResult:
    """Create a Vertex AI PipelineJob of a compiled (Vertex) pipeline; with `wait`, follow it.

    Raises:
        UsageError: A bad pipeline root or parameter, or the run breaks the rules (nothing sent).
        ConnectionProblem: No Google credentials, or the API refused them.
        ClusterError: The API refused the job.
        RunNotSucceeded: When followed, the run ended other than SUCCEEDED or outlived `timeout_s`.
    """
    if not pipeline_root.startswith("gs://") or len(pipeline_root) <= len("gs://"):
        raise kfp_client.UsageError(
            f"--pipeline-root {pipeline_root!r}: Vertex AI writes the run's artifacts under a gs://BUCKET/PATH "
            f"(or set ${PIPELINE_ROOT_ENV})"
        )
    arguments = kfp_client.run_arguments(package_path, params, check, target="vertex")
    credentials = _credentials(api_endpoint)
    with _api_errors(settings, api_endpoint):
        job = _job(pipeline_name, package_path, settings, pipeline_root, arguments, run_name, credentials)
        service = _service(settings, api_endpoint, credentials)
        resource = _resource(job, service_account)
        created = service.create_pipeline_job(
            parent=f"projects/{settings.project}/locations/{settings.region}",
            pipeline_job=resource,
            pipeline_job_id=job.job_id,
        )
    name = (
        created.name or f"projects/{settings.project}/locations/{settings.region}/pipelineJobs/{job.job_id}"
    )
    url = (
        f"https://console.cloud.google.com/vertex-ai/locations/{settings.region}/pipelines/runs/"
        f"{job.job_id}?project={settings.project}"
    )
    log(
        f"submitted {pipeline_name} to Vertex AI: pipeline job {job.job_id} in {settings.project}/{settings.region}\n  {url}"
    )
    if not wait:
        return kfp_client.SubmitResult(job.job_id, url)
    state = _follow(service, name, settings, api_endpoint, timeout_s, poll_s, log)
    if state != SUCCEEDED:
        raise kfp_client.RunNotSucceeded(f"pipeline job {job.job_id} ended {state}: {url}")
    return kfp_client.SubmitResult(job.job_id, url, state)


def _credentials(api_endpoint: str) -> Any:
    """None (ADC) for Google's endpoint; anonymous for a plain-http one (no token in clear text)."""
    if not api_endpoint.startswith("http://"):
        return None
    from google.auth.credentials import AnonymousCredentials

    return AnonymousCredentials()


def _job(
    name: str,
    package_path: Path,
    settings: VertexSettings,
    pipeline_root: str,
    arguments: dict[str, Any],
    run_name: str | None,
    credentials: Any,
) -> Any:
    """The SDK's PipelineJob: reads the one-document template and builds the runtime config."""
    from google.cloud import aiplatform

    return aiplatform.PipelineJob(
        display_name=run_name or f"{name} {datetime.now():%Y-%m-%d %H:%M:%S}",
        template_path=str(package_path),
        pipeline_root=pipeline_root,
        parameter_values=arguments,
        project=settings.project,
        location=settings.region,
        credentials=credentials,
    )


def _service(settings: VertexSettings, api_endpoint: str, credentials: Any) -> Any:
    from google.cloud import aiplatform_v1

    endpoint = api_endpoint or f"{settings.region}-aiplatform.googleapis.com"
    return aiplatform_v1.PipelineServiceClient(
        credentials=credentials, client_options={"api_endpoint": endpoint}, transport="rest"
    )


def _resource(job: Any, service_account: str | None) -> Any:
    import json

    from google.cloud import aiplatform_v1

    resource = aiplatform_v1.PipelineJob.from_json(json.dumps(job.to_dict()))
    if service_account:
        resource.service_account = service_account
    return resource


def _follow(
    service: Any,
    name: str,
    settings: VertexSettings,
    api_endpoint: str,
    timeout_s: float,
    poll_s: float,
    log: Callable[[str], None],
) -> str:
    deadline = time.monotonic() + timeout_s
    last = ""
    while True:
        with _api_errors(settings, api_endpoint):
            state = service.get_pipeline_job(name=name).state.name
        if state != last:
            log(f"  {datetime.now():%H:%M:%S} {state}")
            last = state
        if state in FINAL:
            return str(state)
        if time.monotonic() >= deadline:
            raise kfp_client.RunNotSucceeded(f"pipeline job {name} still {state} after {timeout_s:.0f}s")
        time.sleep(poll_s)


@contextlib.contextmanager
def _api_errors(settings: VertexSettings, api_endpoint: str) -> Iterator[None]:
    """Google API and auth exceptions as one-line ClusterErrors."""
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc

    where = f"Vertex AI ({api_endpoint or settings.region + '-aiplatform.googleapis.com'})"
    try:
        yield
    except auth_exc.DefaultCredentialsError:
        raise kfp_client.ConnectionProblem(
            "no Google credentials for Vertex AI: run `gcloud auth application-default login` or set "
            "GOOGLE_APPLICATION_CREDENTIALS"
        ) from None
    except (gexc.Unauthenticated, gexc.PermissionDenied) as exc:
        raise kfp_client.ConnectionProblem(f"{where} refused the credentials: {exc.message}") from None
    except gexc.GoogleAPICallError as exc:
        raise kfp_client.ClusterError(f"{where}: HTTP {exc.code}: {exc.message}") from None
