"""Talk to a Kubeflow Pipelines server: upload, submit, schedule, list runs.

A thin layer over ``kfp.Client`` (KFP REST API v2beta1) that adds what a CLI and a CI
job need: one-line errors for an unreachable host, idempotent uploads, cron
validation, and a wait loop that ends on every final state (``kfp.Client``'s own
``wait_for_run_completion`` does not treat CANCELED as final and would poll forever).

Connection: the host comes from ``--host`` or ``KFP_HOST``; authentication from one
of a bearer token (``--token`` / ``KFP_TOKEN``), a token file such as a Kubernetes
service-account token (``--token-file`` / ``KFP_TOKEN_FILE``), or cookies
(``--cookies`` / ``KFP_COOKIES``, e.g. an ``authservice_session=...`` cookie of a
Kubeflow platform behind Dex). Explicit flags win over the environment.

Modules: :mod:`.connection` (host, authentication, errors), :mod:`.uploads`, :mod:`.runs`,
:mod:`.schedules` and :mod:`.cron`; their names are importable from here.
"""

from __future__ import annotations

from pipelines.clients.kfp.connection import (
    DEFAULT_EXPERIMENT,
    DEFAULT_SERVICE_ACCOUNT,
    FINAL_STATES,
    HEALTHZ,
    ClusterError,
    Connection,
    ConnectionProblem,
    RunNotSucceeded,
    UsageError,
    api_errors,
    display_time,
    quiet_sdk,
)
from pipelines.clients.kfp.cron import (
    parse_interval,
    to_kfp_cron,
)
from pipelines.clients.kfp.runs import (
    RunRef,
    SubmitResult,
    run_arguments,
    run_url,
    runs,
    runs_named,
    submit,
    table,
    wait_for_run,
)
from pipelines.clients.kfp.schedules import (
    MAX_CONCURRENCY,
    ScheduleResult,
    check_max_concurrency,
    list_schedules,
    schedule,
    set_schedule,
)
from pipelines.clients.kfp.uploads import (
    UploadResult,
    find_version,
    git_short_sha,
    upload,
    version_name,
)

__all__ = [
    "DEFAULT_EXPERIMENT",
    "DEFAULT_SERVICE_ACCOUNT",
    "FINAL_STATES",
    "HEALTHZ",
    "MAX_CONCURRENCY",
    "ClusterError",
    "Connection",
    "ConnectionProblem",
    "RunNotSucceeded",
    "RunRef",
    "ScheduleResult",
    "SubmitResult",
    "UploadResult",
    "UsageError",
    "api_errors",
    "check_max_concurrency",
    "display_time",
    "find_version",
    "git_short_sha",
    "list_schedules",
    "parse_interval",
    "quiet_sdk",
    "run_arguments",
    "run_url",
    "runs",
    "runs_named",
    "schedule",
    "set_schedule",
    "submit",
    "table",
    "to_kfp_cron",
    "upload",
    "version_name",
    "wait_for_run",
]
