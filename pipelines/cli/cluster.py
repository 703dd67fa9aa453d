"""Cluster commands of ``python -m pipelines``: upload, submit, schedule, runs.

Registered by ``add_cluster_commands(subparsers)``. Every command talks to a KFP
server (``--host`` or ``KFP_HOST``) and reports problems in one line on stderr:
exit 2 for an unreachable host, refused credentials or bad input, 1 for a run that
did not succeed.

    python -m pipelines upload [PIPELINE ...] [--version-name NAME]
    python -m pipelines submit PIPELINE [--param K=V ...] [--wait [--timeout S]]
    python -m pipelines schedule [create] PIPELINE (--cron '0 3 * * *' | --every 6h) [--catchup]
    python -m pipelines schedule list
    python -m pipelines schedule {enable,disable,delete} ID
    python -m pipelines runs [--limit N]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pipelines import registry
from pipelines.clients import kfp as kfp_client

SCHEDULE_ACTIONS = ("create", "list", "enable", "disable", "delete")


def parse_params(items: list[str]) -> dict[str, Any]:
    """``key=value`` pairs, values as text: ``submit`` and ``schedule`` type them by the
    pipeline's declared parameters (``workers=[0,1,2]`` becomes a list of numbers, a STRING
    parameter such as ``param_overrides='{"alpha": 0.1}'`` keeps its text)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise kfp_client.UsageError(f"--param expects key=value, got {item!r}")
        out[key] = value
    return out


def _connection(args: argparse.Namespace) -> kfp_client.Connection:
    return kfp_client.Connection.resolve(
        host=args.host, token=args.token, token_file=args.token_file, cookies=args.cookies
    )


@contextlib.contextmanager
def _packages(
    names: list[str], package_dir: str | None, target: str = "kfp", vertex: Any = None
) -> Iterator[dict[str, Path]]:
    """Compiled YAML per pipeline: from ``package_dir`` if given, else compiled now."""
    for name in names:
        if name not in registry.PIPELINES:
            raise kfp_client.UsageError(
                f"unknown pipeline {name!r}; choose from {', '.join(registry.PIPELINES)}"
            )
    if package_dir:
        paths = {name: Path(package_dir) / f"{name}.yaml" for name in names}
        missing = [str(p) for p in paths.values() if not p.is_file()]
        if missing:
            raise kfp_client.UsageError(f"no compiled pipeline at {', '.join(missing)}")
        yield paths
        return
    from pipelines.compile import compile_all

    with tempfile.TemporaryDirectory(prefix="kfp-mlops-compile-") as tmp:
        yield dict(zip(names, compile_all(Path(tmp), names, target=target, vertex=vertex), strict=True))


@contextlib.contextmanager
def _single_package(
    name: str, package: str | None, target: str = "kfp", vertex: Any = None
) -> Iterator[Path]:
    if package:
        path = Path(package)
        if not path.is_file():
            raise kfp_client.UsageError(f"no compiled pipeline at {path}")
        yield path
        return
    with _packages([name], None, target, vertex) as paths:
        yield paths[name]


def _guarded(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Report ClusterErrors in one line and return their exit code."""

    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except kfp_client.ClusterError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return exc.exit_code

    run.__name__ = func.__name__
    run.__doc__ = func.__doc__
    return run


# --------------------------------------------------------------------------- commands


@_guarded
def cmd_upload(args: argparse.Namespace) -> int:
    conn = _connection(args)
    names = args.pipeline or list(registry.PIPELINES)
    version = args.version_name or kfp_client.version_name()
    with _packages(names, args.package_dir) as paths:
        for name, path in paths.items():
            result = kfp_client.upload(name, path, conn, version=version, description=args.description)
            print(result.describe())
    return 0


def _submit_vertex(args: argparse.Namespace) -> int:
    """``submit --target vertex``: the Vertex build, started through google-cloud-aiplatform."""
    import os

    from pipelines import vertex
    from pipelines.clients import vertex as vertex_client

    try:
        settings = vertex.settings_from_args(args)
    except vertex.VertexSettingsError as exc:
        raise kfp_client.UsageError(str(exc)) from None
    assert settings is not None
    root = args.pipeline_root or os.environ.get(vertex_client.PIPELINE_ROOT_ENV, "")
    endpoint = args.api_endpoint or os.environ.get(vertex_client.API_ENDPOINT_ENV, "")
    service_account = (
        None if args.service_account == kfp_client.DEFAULT_SERVICE_ACCOUNT else args.service_account
    )
    with _single_package(args.pipeline, args.package, vertex.TARGET, settings) as path:
        vertex_client.submit(
            args.pipeline,
            path,
            settings,
            root,
            params=parse_params(args.param),
            run_name=args.run_name,
            service_account=service_account,
            api_endpoint=endpoint,
            wait=args.wait,
            timeout_s=args.timeout,
            poll_s=args.poll_interval,
            check=not args.no_check,
        )
    return 0


@_guarded
def cmd_submit(args: argparse.Namespace) -> int:
    if args.target == "vertex":
        return _submit_vertex(args)
    conn = _connection(args)
    params = parse_params(args.param)
    with _single_package(args.pipeline, args.package) as path:
        kfp_client.submit(
            args.pipeline,
            path,
            conn,
            params=params,
            experiment=args.experiment,
            run_name=args.run_name,
            service_account=args.service_account,
            wait=args.wait,
            timeout_s=args.timeout,
            poll_s=args.poll_interval,
            check=not args.no_check,
        )
    return 0


def _schedule_words(args: argparse.Namespace, parser: argparse.ArgumentParser) -> tuple[str, str | None]:
    """``[ACTION] ARG`` -> (action, arg); ``create`` when the first word is a pipeline."""
    words = list(args.words)
    action = words.pop(0) if words and words[0] in SCHEDULE_ACTIONS else "create"
    if action == "list":
        if words:
            parser.error(f"schedule list takes no argument, got {' '.join(words)}")
        return action, None
    if len(words) != 1:
        what = "PIPELINE" if action == "create" else "ID"
        parser.error(f"schedule {action} needs exactly one {what}")
    return action, words[0]


@_guarded
def cmd_schedule(args: argparse.Namespace) -> int:
    action, target = _schedule_words(args, args.schedule_parser)
    if action != "create":
        used = [flag for flag, value in (("--cron", args.cron), ("--every", args.every)) if value]
        if used:
            args.schedule_parser.error(f"{', '.join(used)} only applies to schedule create")
    conn = _connection(args)
    if action == "list":
        rows = kfp_client.list_schedules(conn, limit=args.limit)
        print(kfp_client.table(rows, ["id", "name", "status", "trigger", "catchup", "created"]))
        return 0
    assert target is not None
    if action in ("enable", "disable", "delete"):
        kfp_client.set_schedule(conn, target, action)
        print(f"recurring run {target}: {action}d")
        return 0
    if (args.cron is None) == (args.every is None):
        args.schedule_parser.error("schedule create needs exactly one of --cron EXPR or --every DURATION")
    params = parse_params(args.param)
    with _single_package(target, args.package) as path:
        result = kfp_client.schedule(
            target,
            path,
            conn,
            cron=args.cron,
            every=args.every,
            catchup=args.catchup,
            max_concurrency=args.max_concurrency,
            params=params,
            experiment=args.experiment,
            name=args.name,
            enabled=not args.disabled,
            service_account=args.service_account,
            check=not args.no_check,
        )
    catchup = "catch-up on" if args.catchup else "no catch-up"
    state = "disabled" if args.disabled else "enabled"
    print(
        f"scheduled {target}: recurring run {result.recurring_run_id}, {result.trigger}, {catchup}, {state}"
    )
    return 0


@_guarded
def cmd_runs(args: argparse.Namespace) -> int:
    if args.local:  # the runs of this machine: their folders under the stores
        from pipelines.local.folders import list_runs
        from pipelines.settings import LocalSettings

        local = list_runs(LocalSettings.from_env(args.stores).runs)[: args.limit]
        for row in local:
            row["seconds"] = "" if row["seconds"] is None else f"{float(str(row['seconds'])):.1f}"
        print(kfp_client.table(local, ["run", "status", "started", "seconds", "reports"]))  # type: ignore[arg-type]
        return 0
    rows = kfp_client.runs(_connection(args), limit=args.limit)
    print(kfp_client.table(rows, ["id", "name", "state", "created", "finished"]))
    return 0


# --------------------------------------------------------------------------- parser


def _connection_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("connection")
    group.add_argument("--host", help="KFP API / UI URL, e.g. http://localhost:8080 (default: $KFP_HOST)")
    # At most one of the three; Connection.resolve checks (an argparse mutually exclusive
    # group would be listed outside this "connection" section of the help).
    group.add_argument("--token", help="bearer token (default: $KFP_TOKEN)")
    group.add_argument(
        "--token-file",
        metavar="PATH",
        help="file holding a bearer token, e.g. /var/run/secrets/kubernetes.io/serviceaccount/token "
        "(default: $KFP_TOKEN_FILE)",
    )
    group.add_argument(
        "--cookies", help="Cookie header value, e.g. authservice_session=... (default: $KFP_COOKIES)"
    )
    return common


def _run_options(parser: Any, param: bool = True) -> None:
    """--param, --experiment, --service-account, --package (on a parser or an argument group)."""
    if param:
        parser.add_argument(
            "--param",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="pipeline parameter (repeatable)",
        )
    parser.add_argument("--experiment", default=kfp_client.DEFAULT_EXPERIMENT, help="KFP experiment name")
    parser.add_argument(
        "--service-account",
        default=kfp_client.DEFAULT_SERVICE_ACCOUNT,
        help="Kubernetes service account of the run's pods ('' for the KFP default)",
    )
    parser.add_argument(
        "--package", metavar="YAML", help="use this compiled pipeline instead of compiling now"
    )


def _check_option(parser: Any) -> None:
    parser.add_argument(
        "--no-check",
        action="store_true",
        help="send even when the conformance check (python -m pipelines check) finds problems",
    )


def add_cluster_commands(subparsers: Any) -> None:
    """Register ``upload``, ``submit``, ``schedule`` and ``runs`` on a subparsers object."""
    common = _connection_options()

    up = subparsers.add_parser(
        "upload",
        parents=[common],
        help="upload pipelines to KFP as a new version (idempotent)",
        description="Create each pipeline on the server, or add a version named "
        "<package version>-<git short sha>. Uploading a version name that exists is a no-op.",
    )
    up.add_argument(
        "pipeline", nargs="*", help=f"pipelines to upload (default: all: {', '.join(registry.PIPELINES)})"
    )
    up.add_argument("--version-name", help="version name (default: <package version>-<git short sha>)")
    up.add_argument(
        "--package-dir", metavar="DIR", help="upload DIR/<pipeline>.yaml instead of compiling now"
    )
    up.add_argument("--description", help="description of a new pipeline / version")
    up.set_defaults(func=cmd_upload)

    sub = subparsers.add_parser(
        "submit",
        parents=[common],
        help="start a run on KFP (optionally follow it)",
        description="Compile PIPELINE and start a run. With --wait, follow it until SUCCEEDED, FAILED, "
        "SKIPPED or CANCELED; exit 0 only for SUCCEEDED.",
    )
    sub.add_argument("pipeline", help=f"one of {', '.join(registry.PIPELINES)}")
    _run_options(sub)
    _check_option(sub)
    sub.add_argument("--run-name", help="display name of the run (default: pipeline + time)")
    sub.add_argument("--wait", action="store_true", help="follow the run to a final state")
    sub.add_argument(
        "--timeout", type=float, default=6 * 3600, metavar="SECONDS", help="give up waiting after this"
    )
    sub.add_argument("--poll-interval", type=float, default=5.0, metavar="SECONDS", help=argparse.SUPPRESS)
    from pipelines.vertex import add_vertex_options

    add_vertex_options(sub)
    vx = sub.add_argument_group(
        "Vertex AI submit (with --target vertex; --service-account is then a Google one)"
    )
    vx.add_argument(
        "--pipeline-root",
        metavar="GS_URI",
        help="gs://BUCKET/PATH for the run's artifacts (default: $KFP_MLOPS_VERTEX_PIPELINE_ROOT)",
    )
    vx.add_argument(
        "--api-endpoint",
        metavar="URL",
        help="the Vertex AI API endpoint (default: the region's; $KFP_MLOPS_VERTEX_API_ENDPOINT)",
    )
    sub.set_defaults(func=cmd_submit)

    sched = subparsers.add_parser(
        "schedule",
        parents=[common],
        help="create / list / enable / disable / delete recurring runs",
        usage="python -m pipelines schedule [create] PIPELINE (--cron EXPR | --every DURATION) [options]\n"
        "       python -m pipelines schedule list\n"
        "       python -m pipelines schedule {enable,disable,delete} ID",
        description="Recurring runs. A standard 5-field cron ('0 3 * * *' = 03:00 daily, cluster time) "
        "is sent to KFP in its 6-field form with seconds; --every takes 30m, 6h, 1d. Missed runs are not "
        "caught up unless --catchup is given.",
    )
    sched.add_argument("words", nargs="*", metavar="[ACTION] ARG", help=argparse.SUPPRESS)
    when = sched.add_mutually_exclusive_group()
    when.add_argument(
        "--cron", metavar="EXPR", help="cron expression, 5 fields (or 6 with seconds, or @daily)"
    )
    when.add_argument("--every", metavar="DURATION", help="fixed interval: 30m, 6h, 1d, 1h30m")
    sched.add_argument("--catchup", action="store_true", help="backfill every missed slot after a pause")
    sched.add_argument(
        "--max-concurrency", type=int, default=1, metavar="N", help="runs at once, 1 to 10 (default 1)"
    )
    _check_option(sched)
    sched.add_argument("--name", help="display name of the recurring run")
    sched.add_argument("--disabled", action="store_true", help="create it paused")
    sched.add_argument("--limit", type=int, default=50, help="rows for 'schedule list'")
    _run_options(sched)
    sched.set_defaults(func=cmd_schedule, schedule_parser=sched)

    ls = subparsers.add_parser("runs", parents=[common], help="recent runs and their states")
    ls.add_argument("--limit", type=int, default=20, help="how many runs (newest first)")
    ls.add_argument("--local", action="store_true", help="this machine's runs (python -m pipelines run)")
    ls.add_argument("--stores", default=None, help="with --local: the stores folder (default: stores/)")
    ls.set_defaults(func=cmd_runs)
