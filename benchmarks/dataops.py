"""DataOps benchmark: wall time, per-task seconds and peak RSS of the whole pipeline by size.

Usage: python benchmarks/dataops.py [--rows 100000 1000000] [--with-10m] [--order argo sequential]
                                   [--work DIR] [--keep]

For each size the sample source is generated once into ``<work>/sources/`` (timed on its own,
reused by later runs), then ``python -m pipelines run dataops --local --json`` runs in a
subprocess with a fresh stores folder, exactly as a user runs it. Memory is the RSS of the
CLI process and every descendant (the task subprocesses), sampled every 0.2 s: the peak of
their sum and the peak of any single process. CPU seconds (user + sys of the whole tree) and
the load average are printed beside the wall time: other work on the machine inflates wall
times, not CPU seconds.

``--order`` runs each size in Argo's order (the default of local runs: each task as soon as
its own upstreams succeeded, so the two syncs and a validation beside the other sync
overlap, taking turns at the DuckDB file) and/or one task at a time (``--sequential``), and
prints both wall times.

Goals (from the issue): up to 1M rows in under 60 s, and peak RSS under 2 GB at every size
(10M rows must stay bounded). A missed goal is printed and makes the exit status 1.

What bounds memory: every step keeps the data in DuckDB and streams what Python must see
(GX validates bounded chunks, content hashes are streamed); DuckDB itself runs under the
warehouse's memory limit (``KFP_MLOPS_DUCKDB_MEMORY_LIMIT``, default 512MB) and spills to
``duckdb_tmp/`` in the stores folder. A task's peak is about its interpreter and libraries
(~150 MB, ~300 MB with Great Expectations) plus that limit plus one chunk, whatever the
size; set the variable to trade memory for time (it is passed on to every task).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from orders import add_order_option

from components.warehouse import MEMORY_LIMIT_ENV, duckdb_settings

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WORK = ROOT / "stores" / "benchmarks" / "dataops"
SAMPLE_EVERY_S = 0.2
WALL_GOAL_S = 60.0
WALL_GOAL_MAX_ROWS = 1_000_000  # the time goal is stated for 1M rows; larger sizes report only
RSS_GOAL_BYTES = 2_000_000_000
MB = 1_000_000  # decimal, like the goal (2 GB)
# Environment that would point the CLI away from its --stores folder.
_REDIRECTS = ("KFP_MLOPS_STORES", "WAREHOUSE_URI", "MLFLOW_TRACKING_URI", "OPTUNA_STORAGE")


@dataclass
class Figures:
    rows: int
    order: str = "argo"
    generate_s: float | None = None  # None: the source was already cached
    status: str = ""
    exit_code: int | None = None
    wall_s: float = 0.0
    rows_published: int | None = None
    tasks: dict[str, float] = field(default_factory=dict)
    peak_rss_sum: int = 0
    peak_rss_single: int = 0
    peak_rss_single_name: str = ""
    processes_seen: int = 0
    peak_by_process: dict[str, int] = field(default_factory=dict)
    cpu_s: float = 0.0  # user + sys of the CLI and every descendant
    load_before: float = 0.0  # 1-min load average: other work on the machine skews wall times
    load_after: float = 0.0
    error: str = ""
    misses: list[str] = field(default_factory=list)


class RssSampler(threading.Thread):
    """Samples the RSS of a process and all its descendants until it exits."""

    def __init__(self, pid: int, every_s: float = SAMPLE_EVERY_S) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.every_s = every_s
        self.peak_sum = 0
        self.peak_single = 0
        self.peak_single_name = ""
        self.seen: set[int] = set()
        self.names: dict[int, str] = {}
        self.peak_by_name: dict[str, int] = {}  # in order of first appearance
        self.cpu_by_pid: dict[int, float] = {}  # user + sys at the last sample
        self.stop = threading.Event()

    def sample(self) -> None:
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        total = 0
        for p in procs:
            try:
                rss = p.memory_info().rss
                times = p.cpu_times()
                self.cpu_by_pid[p.pid] = times.user + times.system
                if p.pid not in self.names:
                    self.names[p.pid] = _describe(p.cmdline(), p.name()) or p.name()
                name = self.names[p.pid]
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            self.seen.add(p.pid)
            total += rss
            self.peak_by_name[name] = max(self.peak_by_name.get(name, 0), rss)
            if rss > self.peak_single:
                self.peak_single, self.peak_single_name = rss, name
        self.peak_sum = max(self.peak_sum, total)

    def run(self) -> None:
        while not self.stop.is_set():
            self.sample()
            self.stop.wait(self.every_s)


def _describe(cmdline: list[str], comm: str = "") -> str:
    """`ge_validate(projects)` for a kfp task process, `python -m pipelines` for the CLI;
    `fork server` and `ge_validate (forked)` for warm starts (a forked task names itself)."""
    exe = Path(cmdline[0]).name if cmdline else ""
    if any("multiprocessing.forkserver" in part for part in cmdline):
        return "fork server" if comm.startswith("python") else f"{comm} (forked)"
    if "--function_to_execute" in cmdline[:-1]:
        function = cmdline[cmdline.index("--function_to_execute") + 1]
        return f"{function}({_task_input(cmdline)})"
    if "-m" in cmdline[:-1]:
        return f"{exe} -m {cmdline[cmdline.index('-m') + 1]}"
    return exe


def _task_input(cmdline: list[str]) -> str:
    """The input that tells a step's tasks apart (suite, stream), from kfp's executor input."""
    if "--executor_input" not in cmdline[:-1]:
        return ""
    try:
        data = json.loads(cmdline[cmdline.index("--executor_input") + 1])
    except json.JSONDecodeError:
        return ""
    params = data.get("inputs", {}).get("parameterValues", {})
    return str(params.get("suite") or params.get("stream") or "")


def ensure_source(work: Path, rows: int) -> tuple[Path, float | None]:
    """The sample folder for `rows`, generated once (bounded memory, chunk by chunk)."""
    from tagifai.sample import write_sample
    from tagifai.sources import SOURCE_FILES

    folder = work / "sources" / f"sample-{rows}-seed0"
    if all((folder / f).is_file() for f in SOURCE_FILES):
        return folder, None
    print(f"  generating sample of {rows:,} rows into {folder} ...", flush=True)
    t0 = time.perf_counter()
    write_sample(folder, rows=rows, seed=0)
    return folder, time.perf_counter() - t0


def run_pipeline(source: Path, stores: Path, figures: Figures) -> None:
    """Run the dataops CLI in a subprocess and fill in `figures`."""
    if stores.exists():
        shutil.rmtree(stores)
    stores.mkdir(parents=True)
    cmd = [
        sys.executable,
        "-m",
        "pipelines",
        "run",
        "dataops",
        "--local",
        "--source",
        str(source),
        "--stores",
        str(stores),
        "--json",
        *(["--sequential"] if figures.order == "sequential" else []),
    ]
    env = {k: v for k, v in os.environ.items() if k not in _REDIRECTS}
    figures.load_before = os.getloadavg()[0]
    usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    sampler = RssSampler(proc.pid)
    sampler.start()
    stderr_lines: list[str] = []

    def relay() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            stderr_lines.append(line)
            if line.lstrip().startswith(("✓", "✗")):
                print("   " + line.rstrip(), flush=True)

    relay_thread = threading.Thread(target=relay, daemon=True)
    relay_thread.start()
    try:
        assert proc.stdout is not None
        stdout = proc.stdout.read()
        figures.exit_code = proc.wait()
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)  # Ctrl-C: take the task subprocesses down too
        proc.wait()
        raise
    finally:
        figures.wall_s = time.perf_counter() - t0
        figures.load_after = os.getloadavg()[0]
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        waited = (usage.ru_utime - usage_before.ru_utime) + (usage.ru_stime - usage_before.ru_stime)
        sampler.stop.set()
        sampler.join()
        # Forked tasks are children of the fork server, not waited for by us: add up what the
        # sampler saw of every process (each to within one sampling interval).
        figures.cpu_s = max(waited, sum(sampler.cpu_by_pid.values()))
        relay_thread.join(timeout=5)
    figures.peak_rss_sum = sampler.peak_sum
    figures.peak_rss_single = sampler.peak_single
    figures.peak_rss_single_name = sampler.peak_single_name
    figures.processes_seen = len(sampler.seen)
    figures.peak_by_process = dict(sampler.peak_by_name)
    summary = _last_json(stdout)
    if summary is None:
        figures.status = "NO-JSON"
        figures.error = "".join(stderr_lines[-5:]).strip()
        return
    figures.status = summary["status"]
    figures.rows_published = summary.get("rows_published")
    figures.tasks = {t["name"]: t["seconds"] for t in summary.get("tasks", [])}
    figures.error = summary.get("error", "")


def _last_json(stdout: str) -> dict[str, Any] | None:
    lines = stdout.strip().splitlines()
    if not lines:
        return None
    try:
        data = json.loads(lines[-1])
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def check_goals(f: Figures) -> None:
    if f.status != "SUCCEEDED" or f.exit_code != 0:
        f.misses.append(f"run {f.status or 'did not finish'} (exit {f.exit_code}): {f.error[:300]}")
    elif f.rows_published != f.rows:
        f.misses.append(f"published {f.rows_published} rows, expected {f.rows}")
    if f.rows <= WALL_GOAL_MAX_ROWS and f.wall_s >= WALL_GOAL_S:
        f.misses.append(f"wall {f.wall_s:.1f} s >= goal {WALL_GOAL_S:.0f} s")
    if f.peak_rss_sum >= RSS_GOAL_BYTES:
        f.misses.append(
            f"peak RSS (process tree) {f.peak_rss_sum / MB:,.0f} MB >= goal {RSS_GOAL_BYTES / MB:,.0f} MB"
        )


def report_one(f: Figures) -> None:
    gen = "cached" if f.generate_s is None else f"{f.generate_s:.1f} s (not in wall)"
    print(f"  rows            : {f.rows:,} (published {f.rows_published})")
    print(f"  order           : {f.order}")
    print(f"  status          : {f.status} (exit {f.exit_code})")
    print(f"  source          : {gen}")
    print(f"  wall            : {f.wall_s:.1f} s (CPU {f.cpu_s:.1f} s user+sys over the process tree)")
    print(f"  load average    : {f.load_before:.1f} before, {f.load_after:.1f} after ({os.cpu_count()} CPUs)")
    for name, seconds in f.tasks.items():
        print(f"    {name:<28}: {seconds:7.2f} s")
    print(f"  peak RSS sum    : {f.peak_rss_sum / MB:,.0f} MB over {f.processes_seen} processes")
    print(f"  peak RSS single : {f.peak_rss_single / MB:,.0f} MB ({f.peak_rss_single_name})")
    for name, rss in f.peak_by_process.items():
        print(f"    {name:<28}: {rss / MB:7,.0f} MB")
    for miss in f.misses:
        print(f"  GOAL MISSED     : {miss}")
    if not f.misses:
        goal = f"< {WALL_GOAL_S:.0f} s and " if f.rows <= WALL_GOAL_MAX_ROWS else ""
        print(f"  goal met        : {goal}peak RSS < {RSS_GOAL_BYTES / MB:,.0f} MB")


TASK_COLUMNS = (
    ("sync projects", "sync p"),
    ("sync tags", "sync t"),
    ("validate projects", "val p"),
    ("validate tags", "val t"),
    ("transform labeled_projects", "dbt"),
    ("validate labeled_projects", "val lp"),
    ("publish labeled_projects", "publish"),
)


def table(results: list[Figures]) -> str:
    head = [
        "rows",
        "order",
        "status",
        "wall s",
        "CPU s",
        "load",
        *[short for _, short in TASK_COLUMNS],
        "RSS sum MB",
        "RSS max MB",
        "goal",
    ]
    rows = []
    for f in results:
        tasks = [f"{f.tasks[name]:.1f}" if name in f.tasks else "-" for name, _ in TASK_COLUMNS]
        rows.append(
            [
                f"{f.rows:,}",
                f.order,
                f.status,
                f"{f.wall_s:.1f}",
                f"{f.cpu_s:.1f}",
                f"{max(f.load_before, f.load_after):.1f}",
                *tasks,
                f"{f.peak_rss_sum / MB:,.0f}",
                f"{f.peak_rss_single / MB:,.0f}",
                "MISSED" if f.misses else "met",
            ]
        )
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(str(c).rjust(w) for c, w in zip(r, widths, strict=True)) for r in [head, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000], help="sample sizes")
    ap.add_argument("--with-10m", action="store_true", help="also run 10,000,000 rows (slow)")
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK, help="cached sources and the stores")
    ap.add_argument("--keep", action="store_true", help="keep each size's stores folder")
    add_order_option(ap)
    args = ap.parse_args(argv)
    sizes = list(dict.fromkeys(args.rows + ([10_000_000] if args.with_10m else [])))
    if any(n < 1 for n in sizes):
        ap.error("--rows must be positive")
    work = args.work.resolve()
    print(f"dataops benchmark: {', '.join(f'{n:,}' for n in sizes)} rows; work folder {work}")
    print(f"machine: {os.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM")
    print(
        f"DuckDB memory limit: {duckdb_settings(work / 'warehouse.duckdb')['memory_limit']} ({MEMORY_LIMIT_ENV})"
    )
    results = []
    for rows in sizes:
        for order in dict.fromkeys(args.order):
            print(f"\n== {rows:,} rows, {order} order", flush=True)
            figures = Figures(rows=rows, order=order)
            source, figures.generate_s = ensure_source(work, rows)
            stores = work / f"stores-{rows}-{order}"
            run_pipeline(source, stores, figures)
            check_goals(figures)
            report_one(figures)
            results.append(figures)
            if not args.keep:
                shutil.rmtree(stores, ignore_errors=True)
    print("\n" + table(results))
    missed = [f for f in results if f.misses]
    if missed:
        print(f"\nGOAL MISSED for {', '.join(f'{f.rows:,} ({f.order})' for f in missed)} rows (see above)")
        return 1
    print("\nall goals met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
