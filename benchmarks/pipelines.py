"""Whole-pipeline benchmark: `run all` on the real data with per-task seconds and the
orchestration overhead (task wall time minus the time inside the component body).

    python benchmarks/pipelines.py [--source DIR] [--trials 20] [--docker] [--order argo sequential]

The body time of a task is read from the KFP executor's own log lines inside the task
(from "Looking for component" to "Wrote executor output"); what is left of the task's
wall time is the orchestrator's: process or container start, interpreter and kfp import,
argument and output plumbing, and the process's exit (components.executor skips the
interpreter teardown). Locally, tasks fork from a fork server that imports the heavy
libraries once (pipelines/local/warm.py): that start is timed on its own and is part of the total.

Each order given to ``--order`` (default: both) runs the whole of it on fresh stores: Argo's
(each task as soon as its own upstreams succeeded) and one task at a time; the wall time
of each is printed at the end.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orders import add_order_option  # noqa: E402 - benchmarks/ is this script's folder

_STAMP = re.compile(
    r"\[KFP Executor (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO\]: (Looking for component|Wrote executor output)"
)
GOAL_TOTAL_S = 60.0
GOAL_OVERHEAD_S = {"subprocess": 0.15, "docker": 0.6}


def body_seconds(log: str) -> float | None:
    stamps = {kind: datetime.strptime(ts, "%Y-%m-%d %H:%M:%S,%f") for ts, kind in _STAMP.findall(log)}
    if len(stamps) < 2:
        return None
    return (stamps["Wrote executor output"] - stamps["Looking for component"]).total_seconds()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", default=str(ROOT.parent / "shared" / "data" / "madewithml"))
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--docker", action="store_true", help="run the steps in their images (DockerRunner)")
    add_order_option(ap)
    args = ap.parse_args()

    from pipelines import local, registry
    from pipelines.cli.run import _mounts
    from pipelines.local.arguments import local_arguments
    from pipelines.platform import without_retries
    from pipelines.settings import LocalSettings

    runner = "docker" if args.docker else "subprocess"
    startup = None
    if runner == "subprocess":
        from pipelines.local import warm

        if warm.enabled():
            # What `python -m pipelines run all` does first: one fork server for both
            # pipelines. Its imports are a one-time cost, timed here on their own.
            warm.start(["dataops", "mlops"])
            startup = warm.wait_ready()
    totals: dict[str, float] = {}
    for order in dict.fromkeys(args.order):
        stores = Path(
            tempfile.mkdtemp(
                prefix="bench-pipelines-", dir=ROOT / "stores" if (ROOT / "stores").exists() else None
            )
        )
        settings = LocalSettings.from_env(stores)
        settings.ensure()
        ns = argparse.Namespace(source=args.source, trials=args.trials, workers=args.workers)
        rows = []
        t0 = time.perf_counter()
        for name in ("dataops", "mlops"):
            arguments = local_arguments(name, settings, ns, {})
            mounts = _mounts(settings, arguments) if args.docker else None
            result = local.run(
                without_retries(registry.load(name)),
                arguments,
                settings.runs,
                runner=runner,
                docker_mounts=mounts,
                sequential=order == "sequential",
            )
            if result.status != local.SUCCEEDED:
                print(f"{name} failed ({order} order): {result.error}")
                return 1
            for task in result.tasks:
                body = body_seconds("".join(task.log))
                rows.append((name, task.name, task.seconds, body))
        total = time.perf_counter() - t0
        totals[order] = total
        report(rows, total, runner, order, args, startup)
    print(
        "\nwall time by task order (tasks only, without the one fork-server start): "
        + ", ".join(f"{o} {t:.1f}s" for o, t in totals.items())
    )
    return 0


def report(
    rows: list[tuple[str, str, float, float | None]],
    total: float,
    runner: str,
    order: str,
    args: argparse.Namespace,
    startup: float | None,
) -> None:
    print(
        f"\nrun all ({runner}, {order} order), source {args.source}, "
        f"{args.trials} trials on {args.workers} workers"
    )
    print(f"{'pipeline':<9} {'task':<28} {'wall s':>8} {'body s':>8} {'overhead s':>11}")
    overheads = []
    for pipe, task, wall, body in rows:
        over = wall - body if body is not None else float("nan")
        if body is not None:
            overheads.append(over)
        print(
            f"{pipe:<9} {task:<28} {wall:>8.2f} {body if body is not None else float('nan'):>8.2f} {over:>11.3f}"
        )
    mean_over = sum(overheads) / max(len(overheads), 1)
    if startup is not None:
        print(f"fork server start (imports once per command, added to the total): {startup:.2f}s")
        total += startup
    else:
        print("warm starts off (KFP_MLOPS_WARM=0 or --docker): every task starts a new interpreter")
    # The total-time goal is the local run's; in containers only the per-task overhead has one.
    total_goal = f" (goal < {GOAL_TOTAL_S:.0f}s)" if runner == "subprocess" else ""
    print(
        f"total wall {total:.1f}s{total_goal}; tasks {len(rows)}; "
        f"overhead per task mean {mean_over:.3f}s, max {max(overheads):.3f}s (goal <= {GOAL_OVERHEAD_S[runner]}s)"
    )
    if runner == "subprocess" and total >= GOAL_TOTAL_S:
        print("GOAL MISSED: total wall time")
    if mean_over > GOAL_OVERHEAD_S[runner]:
        print("GOAL MISSED: orchestration overhead per task")


if __name__ == "__main__":
    sys.exit(main())
