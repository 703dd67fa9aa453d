"""``python -m pipelines backfill``: one run per instant of a date range, each "as of" it.

    python -m pipelines backfill continual --start 2026-11-01 --end 2026-11-07 [--every 1d]
        [--local | --docker] [--stores DIR] ...          # on this machine (kfp.local)
        --host URL [--experiment E] [--no-wait] ...       # on Kubeflow Pipelines

Each run gets ``as_of=<instant>`` and so sees the rows created before it: the run a schedule
would have made at that time (see ``components.cutoff``). Only pipelines with an ``as_of``
parameter can be backfilled (mlops, continual).

Runs go in time order, each after the previous one ended, because a continual run acts on
what the run before it promoted; the first run that does not succeed stops the backfill. On
a KFP host the runs are named ``<pipeline> as_of <instant>``, and a rerun of the same command
skips the instants whose run already succeeded (and follows one still going), so a stopped
backfill resumes where it stopped; locally the instants that succeeded are remembered in
``<stores>/backfill-state.json`` to the same effect. ``--rerun`` runs every instant again.
``--no-wait`` (KFP host) submits them all at once instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from components.cutoff import AS_OF, CutoffError, iso, parse_instant
from pipelines import registry
from pipelines.clients import kfp as kfp_client

DEFAULT_MAX_RUNS = 100


class BackfillError(Exception):
    exit_code = 2


def instants(start: str, end: str, every: str, max_runs: int = DEFAULT_MAX_RUNS) -> list[datetime]:
    """``start``, ``start + every``, ... up to and including ``end`` (UTC).

    Raises:
        BackfillError: A bound that is not a time, ``end`` before ``start``, a bad interval,
            or more than ``max_runs`` instants.
    """
    try:
        first, last = parse_instant(start, "--start"), parse_instant(end, "--end")
        step = timedelta(seconds=kfp_client.parse_interval(every))
    except (CutoffError, kfp_client.UsageError) as exc:
        raise BackfillError(str(exc)) from None
    if last < first:
        raise BackfillError(f"--end {iso(last)} is before --start {iso(first)}")
    count = (last - first) // step + 1
    if count > max_runs:
        raise BackfillError(
            f"{iso(first)} to {iso(last)} every {every} is {count} runs, more than --max-runs {max_runs}"
        )
    return [first + i * step for i in range(count)]


def run_name(pipeline: str, at: datetime) -> str:
    return f"{pipeline} {AS_OF} {iso(at)}"


def _check_params(pipeline: str, declared: set[str], params: dict[str, Any]) -> None:
    if AS_OF not in declared:
        raise BackfillError(
            f"pipeline {pipeline!r} has no {AS_OF} parameter, so its runs cannot be placed in time; "
            "backfill mlops or continual"
        )
    if AS_OF in params:
        raise BackfillError(f"--param {AS_OF}=... conflicts with the backfill: each run gets its own {AS_OF}")


def package_parameters(path: Path) -> set[str]:
    """The root parameters a compiled pipeline declares."""
    import yaml

    spec = next(yaml.safe_load_all(path.read_text()))
    return set(spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {}))


# --------------------------------------------------------------------------- on a KFP host


@dataclass(frozen=True)
class Outcome:
    as_of: str
    action: str  # submitted | followed | skipped
    run_id: str
    state: str

    def to_dict(self) -> dict[str, str]:
        return {"as_of": self.as_of, "action": self.action, "run_id": self.run_id, "state": self.state}


def _prefixed(log: Callable[[str], None], head: str) -> Callable[[str], None]:
    return lambda line: log(f"{head} {line}")


def backfill_cluster(
    pipeline: str,
    package: Path,
    conn: kfp_client.Connection,
    points: list[datetime],
    params: dict[str, Any],
    experiment: str = kfp_client.DEFAULT_EXPERIMENT,
    service_account: str | None = kfp_client.DEFAULT_SERVICE_ACCOUNT,
    wait: bool = True,
    rerun: bool = False,
    timeout_s: float = 6 * 3600,
    poll_s: float = 5.0,
    log: Callable[[str], None] = print,
) -> list[Outcome]:
    """Start (or skip, or follow) the run of every instant, in order.

    Raises:
        BackfillError: The pipeline has no ``as_of`` parameter.
        RunNotSucceeded: A followed run ended other than SUCCEEDED; the message says where the
            backfill stopped and that rerunning it resumes there.
    """
    _check_params(pipeline, package_parameters(package), params)
    names = {run_name(pipeline, at): at for at in points}
    existing = {} if rerun else kfp_client.runs_named(conn, experiment, set(names))
    client = conn.client() if wait else None
    outcomes: list[Outcome] = []
    for i, (name, at) in enumerate(names.items(), 1):
        head = f"[{i}/{len(names)}] {AS_OF} {iso(at)}:"
        prior = existing.get(name)
        if prior and (
            prior.state == "SUCCEEDED" or (prior.state not in kfp_client.FINAL_STATES and not wait)
        ):
            log(f"{head} skipped, run {prior.run_id} is {prior.state}")
            outcomes.append(Outcome(iso(at), "skipped", prior.run_id, prior.state))
            continue
        if prior and prior.state not in kfp_client.FINAL_STATES:
            log(f"{head} following run {prior.run_id} ({prior.state})")
            run_id, action = prior.run_id, "followed"
        else:
            submitted = kfp_client.submit(
                pipeline,
                package,
                conn,
                params={**params, AS_OF: iso(at)},
                experiment=experiment,
                run_name=name,
                service_account=service_account,
                log=_prefixed(log, head),
            )
            run_id, action = submitted.run_id, "submitted"
        state = "PENDING"
        if client is not None:
            state = kfp_client.wait_for_run(
                client, run_id, conn.host, timeout_s=timeout_s, poll_s=poll_s, log=log
            )
        outcomes.append(Outcome(iso(at), action, run_id, state))
        if client is not None and state != "SUCCEEDED":
            raise kfp_client.RunNotSucceeded(
                f"backfill stopped at {AS_OF} {iso(at)} ({i - 1} of {len(names)} done): run {run_id} ended "
                f"{state}: {kfp_client.run_url(conn.host, run_id)}; rerun the same command to resume there"
            )
    return outcomes


# --------------------------------------------------------------------------- on this machine


STATE_FILE = "backfill-state.json"
STATE_FORMAT = 1
_KEEP = ("status", "seconds", "decision", "model_version", "test_f1", "gate", "champion_version")


def _load_state(path: Path) -> dict[str, Any]:
    from pipelines.triggers.files import read_state

    try:
        data = read_state(path, "backfill", STATE_FORMAT, "done", dict)
    except ValueError as exc:
        raise BackfillError(str(exc)) from None
    return data if data is not None else {"format": STATE_FORMAT, "done": {}}


def backfill_local(
    pipeline: str, points: list[datetime], args: argparse.Namespace, out: Any
) -> dict[str, Any]:
    """Run the pipeline locally once per instant, in order; stop at the first failure.

    Instants that succeeded before (``<stores>/backfill-state.json``) are skipped unless
    ``args.rerun``, so a stopped backfill resumes where it stopped.
    """
    from pipelines.cli.run import RunProblem, parse_params, run_local
    from pipelines.local.summary import json_summary
    from pipelines.settings import LocalSettings
    from pipelines.triggers.files import write_json_atomic

    params = parse_params(args.param)
    _check_params(pipeline, set(registry.load(pipeline).component_spec.inputs or {}), params)
    state_path = LocalSettings.from_env(args.stores).stores / STATE_FILE
    state = _load_state(state_path)
    done: dict[str, Any] = state["done"].setdefault(pipeline, {})
    runs: list[dict[str, Any]] = []
    status = "SUCCEEDED"
    for i, at in enumerate(points, 1):
        when = iso(at)
        head = f"[{i}/{len(points)}] {AS_OF} {when}"
        if when in done and not args.rerun:
            print(f"{head}: skipped, it succeeded at {done[when]['finished']}", file=out, flush=True)
            runs.append({AS_OF: when, "skipped": True, **done[when]})
            continue
        print(head, file=out, flush=True)
        try:
            results, settings = run_local([pipeline], args, {**params, AS_OF: when}, out)
        except RunProblem as exc:
            raise BackfillError(str(exc)) from exc
        summary = json_summary(results, settings)
        kept = {k: summary[k] for k in _KEEP if k in summary}
        runs.append(
            {AS_OF: when, "skipped": False, **kept, "tasks": summary["tasks"], "error": summary["error"]}
        )
        if summary["status"] != "SUCCEEDED":
            status = summary["status"]
            print(
                f"backfill stopped at {AS_OF} {when} ({i - 1} of {len(points)} done); "
                "rerun the same command to resume there",
                file=sys.stderr,
            )
            break
        done[when] = {**kept, "finished": iso(datetime.now(UTC))}
        write_json_atomic(state_path, state)
    return {"status": status, "pipeline": pipeline, "runs": runs, "state": str(state_path)}


def _describe_local(summary: dict[str, Any]) -> str:
    lines = [f"\nbackfill of {summary['pipeline']}: {summary['status'].lower()}"]
    for run in summary["runs"]:
        extra = [
            f"{k} {run[k]}" for k in ("decision", "model_version", "gate", "champion_version") if run.get(k)
        ]
        state = "skipped" if run.get("skipped") else run["status"].lower()
        lines.append(f"  {run[AS_OF]}  {state:<9} {run['seconds']:6.1f}s  {', '.join(extra)}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- command


def cmd_backfill(args: argparse.Namespace) -> int:
    out = sys.stderr if args.json else sys.stdout
    try:
        if args.pipeline not in registry.PIPELINES:
            raise BackfillError(
                f"unknown pipeline {args.pipeline!r}; choose from {', '.join(registry.PIPELINES)}"
            )
        points = instants(args.start, args.end, args.every, args.max_runs)
        if args.host:
            from pipelines.cli.cluster import _connection, _single_package, parse_params

            if args.runner != "subprocess":
                raise BackfillError("--docker runs on this machine; drop it to backfill on --host")
            conn = _connection(args)
            with _single_package(args.pipeline, args.package) as path:
                outcomes = backfill_cluster(
                    args.pipeline,
                    path,
                    conn,
                    points,
                    parse_params(args.param),
                    experiment=args.experiment,
                    service_account=args.service_account,
                    wait=not args.no_wait,
                    rerun=args.rerun,
                    timeout_s=args.timeout,
                    poll_s=args.poll_interval,
                    log=lambda line: print(line, file=out, flush=True),
                )
            if args.json:
                print(json.dumps({"status": "SUCCEEDED", "runs": [o.to_dict() for o in outcomes]}))
            return 0
        if args.no_wait:
            raise BackfillError("--no-wait applies to --host; local runs always go one after another")
        summary = backfill_local(args.pipeline, points, args, out)
    except (BackfillError, kfp_client.ClusterError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(json.dumps(summary) if args.json else _describe_local(summary))
    return 0 if summary["status"] == "SUCCEEDED" else 1


def add_backfill_command(subparsers: Any) -> None:
    """Register ``backfill`` on a subparsers object (``python -m pipelines backfill``)."""
    from pipelines.cli.cluster import _connection_options, _run_options
    from pipelines.cli.run import add_local_options

    p = subparsers.add_parser(
        "backfill",
        parents=[_connection_options()],
        help="one run per instant of a date range, each as of that instant",
        description="Start PIPELINE once per instant from --start to --end (inclusive) every --every, "
        "with as_of set to the instant: each run sees the rows created before it. Runs go one after "
        "another and the first failure stops the backfill. With --host they run on Kubeflow Pipelines, "
        "named '<pipeline> as_of <instant>'; without --host they run on this machine (kfp.local). "
        "Rerunning the command skips instants that already succeeded (--rerun: run them again).",
    )
    p.add_argument("pipeline", help="a pipeline with an as_of parameter: mlops or continual")
    p.add_argument("--start", required=True, help="first instant, ISO 8601 (a date means 00:00 UTC)")
    p.add_argument("--end", required=True, help="last instant (inclusive)")
    p.add_argument("--every", default="1d", help="step between instants: 30m, 6h, 1d, 7d (default 1d)")
    p.add_argument(
        "--max-runs",
        type=int,
        default=DEFAULT_MAX_RUNS,
        help=f"refuse more runs than this ({DEFAULT_MAX_RUNS})",
    )
    p.add_argument(
        "--rerun", action="store_true", help="run every instant again, also those that succeeded before"
    )
    add_local_options(p)
    cluster = p.add_argument_group("on a KFP host (--host)")
    _run_options(cluster, param=False)  # --param is shared with local runs
    cluster.add_argument(
        "--no-wait", action="store_true", help="submit every run at once, do not follow them"
    )
    cluster.add_argument(
        "--timeout",
        type=float,
        default=6 * 3600,
        metavar="SECONDS",
        help="give up waiting for a run after this",
    )
    cluster.add_argument(
        "--poll-interval", type=float, default=5.0, metavar="SECONDS", help=argparse.SUPPRESS
    )
    p.set_defaults(func=cmd_backfill)
