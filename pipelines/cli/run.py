"""Local runs: ``python -m pipelines run`` (and local backfills) through ``kfp.local``."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipelines import registry


def parse_params(items: list[str]) -> dict[str, str]:
    """``key=value`` strings (typed later, by the pipeline's declared parameters)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--param expects key=value, got {item!r}")
        out[key] = value
    return out


def coerce_params(pipeline_func: Any, raw: dict[str, str], strict: bool = True) -> dict[str, Any]:
    """Convert `--param` strings to the pipeline's declared parameter types.

    With `strict=False` (``run all``), parameters the pipeline does not take are skipped.
    """
    inputs = pipeline_func.component_spec.inputs or {}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in inputs:
            if not strict:
                continue
            raise ValueError(f"unknown parameter {key!r}; the pipeline takes: {', '.join(sorted(inputs))}")
        kind = inputs[key].type
        try:
            if kind == "String":
                out[key] = value
            elif kind == "Boolean":
                if value.lower() not in ("true", "false"):
                    raise ValueError("expected true or false")
                out[key] = value.lower() == "true"
            else:
                out[key] = {"Integer": int, "Float": float}.get(kind, json.loads)(value)
                _check_items(kind, out[key])
        except ValueError as exc:
            raise ValueError(f"parameter {key}={value!r} is not a valid {kind}: {exc}") from None
    return out


# A typed list parameter: kfp spells ``list[int]`` "List[Integer]", ``typing.List[int]``
# "typing.List[int]". On a cluster each ParallelFor item must have that type (the driver
# refuses a string for an int input), so a local run takes only such lists too.
_TYPED_LIST = re.compile(r"^(?:typing\.)?List\[(\w+)\]$")
_ITEM_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "Integer": (int,),
    "float": (int, float),
    "Float": (int, float),
    "str": (str,),
    "String": (str,),
    "bool": (bool,),
    "Boolean": (bool,),
}


def _check_items(kind: str, value: Any) -> None:
    match = _TYPED_LIST.match(kind)
    if not match or match[1] not in _ITEM_TYPES:
        return
    if not isinstance(value, list):
        raise ValueError("expected a JSON list, e.g. [0, 1]")
    want = _ITEM_TYPES[match[1]]
    for item in value:
        # bool is an int in Python, but not a number to the KFP driver
        if not isinstance(item, want) or (isinstance(item, bool) and bool not in want):
            raise ValueError(f"item {json.dumps(item)} is not of type {match[1]}")


def _progress(out: Any) -> Any:
    def show(event: str, rec: Any) -> None:
        if event == "start":
            print(f"  ▶ {rec.name}", file=out, flush=True)
        elif event == "note":
            print(f"    {rec.name}: {rec.note}", file=out, flush=True)
        else:
            mark = "✓" if rec.status == "SUCCEEDED" else "✗"
            print(
                f"  {mark} {rec.name:<32} {rec.status.lower():<9} {rec.seconds:6.2f}s", file=out, flush=True
            )

    return show


def _mounts(settings: Any, arguments: dict[str, Any]) -> dict[str, bool]:
    """Host folders the step containers need: the stores (read-write), the source (read-only)."""
    mounts = {str(settings.stores): False}
    source = arguments.get("source")
    if source and Path(source).is_dir() and not Path(source).resolve().is_relative_to(settings.stores):
        mounts[str(Path(source).resolve())] = True
    return mounts


class RunProblem(Exception):
    """Bad input for a local run (unknown parameter, bad flag, missing source, no Docker)."""

    exit_code = 2


class StoresBusy(RunProblem):
    """Another run holds the stores folder (``--if-busy fail``, or the wait ran out)."""

    exit_code = 3


STORES_WAIT_ENV = "KFP_MLOPS_STORES_WAIT"
DEFAULT_STORES_WAIT_S = 3600.0


def stores_wait_s() -> float:
    """How long a run waits for another run's stores: ``KFP_MLOPS_STORES_WAIT`` or an hour."""
    raw = os.environ.get(STORES_WAIT_ENV, "").strip()
    try:
        value = float(raw) if raw else DEFAULT_STORES_WAIT_S
    except ValueError:
        raise RunProblem(f"{STORES_WAIT_ENV}={raw!r} is not a number of seconds") from None
    if value < 0:
        raise RunProblem(f"{STORES_WAIT_ENV}={raw!r} must not be negative")
    return value


@contextlib.contextmanager
def stores_turn(settings: Any, names: list[str], if_busy: str) -> Iterator[None]:
    """Hold the stores folder for a whole local run: one run at a time writes its warehouse,
    MLflow store, Optuna studies and run state. A second run waits for it (bounded) or, with
    ``if_busy="fail"``, stops at once; either way the message names the run that holds it."""
    from components import warehouse_lock

    wait = 0.0 if if_busy == "fail" else stores_wait_s()
    hint = (
        "run again when it is done, or use --if-busy wait"
        if if_busy == "fail"
        else f"raise {STORES_WAIT_ENV} to wait longer, or use another --stores folder"
    )
    try:
        with warehouse_lock.turn(
            settings.stores / "stores",
            write=True,
            purpose=f"run {' then '.join(names)}",
            wait_s=wait,
            holder=f"python -m pipelines ({' then '.join(names)})",
            noun="stores folder",
            hint=hint,
        ):
            yield
    except warehouse_lock.WarehouseBusy as exc:
        raise StoresBusy(str(exc)) from None


def prepare(
    names: list[str], args: argparse.Namespace, raw: dict[str, str], settings: Any
) -> list[tuple[str, Any, dict[str, Any]]]:
    """Every pipeline of the command with its arguments, all checked before anything runs.

    The source is checked as given (``sample:ROWS``, ``madewithml`` or a folder) and resolved
    only once the run holds the stores (:func:`resolve_source_argument`).

    Raises:
        RunProblem: An unknown or out-of-range parameter, or a bad flag; the message names it.
    """
    from pipelines import params
    from pipelines.local.arguments import local_arguments
    from pipelines.platform import without_retries

    known = {k for n in names for k in (registry.load(n).component_spec.inputs or {})}
    if set(raw) - known:
        raise RunProblem(
            f"unknown parameter(s) {', '.join(sorted(set(raw) - known))}; "
            f"{' and '.join(names)} take: {', '.join(sorted(known))}"
        )
    planned = []
    for name in names:
        try:
            # Pod retries exist for flaky services on a cluster; a local failure (a broken
            # file) is deterministic and would only be retried with long backoffs.
            pipeline_func = without_retries(registry.load(name))
            typed = coerce_params(pipeline_func, raw, strict=len(names) == 1)
            arguments = local_arguments(name, settings, args, typed, resolve=False)
            params.check(name, pipeline_func, arguments)
        except (ValueError, FileNotFoundError, RuntimeError) as exc:
            raise RunProblem(str(exc)) from exc
        planned.append((name, pipeline_func, arguments))
    return planned


def run_local(
    names: list[str], args: argparse.Namespace, raw: dict[str, str], out: Any, tracker: Any = None
) -> tuple[list[Any], Any]:
    """Run `names` in order on this machine (stop at the first failure): (results, settings).

    Every parameter of every pipeline is checked first (:func:`prepare`); then the run holds
    the stores folder (:func:`stores_turn`) until its last pipeline ends.

    Raises:
        RunProblem: Bad input; nothing ran (or, for a missing Docker engine, nothing more).
        StoresBusy: Another run holds the stores folder.
    """
    from pipelines import local
    from pipelines.local import scheduler
    from pipelines.local.arguments import resolve_source_argument
    from pipelines.settings import LocalSettings

    settings = LocalSettings.from_env(args.stores)
    settings.ensure()
    planned = prepare(names, args, raw, settings)
    results = []
    with stores_turn(settings, names, getattr(args, "if_busy", "wait")):
        if args.runner == "subprocess":
            from pipelines.local import warm

            if warm.enabled():
                warm.start(names)  # one fork server for every pipeline of this command
                print(
                    "warm starts: the steps' libraries are imported once, then every task is forked "
                    f"(KFP_MLOPS_WARM=0 to turn off): {', '.join(warm.preload_for(names))}",
                    file=out,
                    flush=True,
                )
        for name, pipeline_func, arguments in planned:
            try:
                arguments = resolve_source_argument(name, settings, arguments)
            except (ValueError, FileNotFoundError, RuntimeError) as exc:
                raise RunProblem(str(exc)) from exc
            sequential = getattr(args, "sequential", False) or scheduler.sequential()
            order = "one task at a time" if sequential else "each task as soon as its upstreams succeeded"
            print(
                f"[{name}] running locally ({args.runner}; {order}); stores: {settings.stores}",
                file=out,
                flush=True,
            )
            try:
                result = local.run(
                    pipeline_func,
                    arguments,
                    settings.runs,
                    runner=args.runner,
                    docker_mounts=_mounts(settings, arguments) if args.runner == "docker" else None,
                    verbose=args.verbose,
                    progress=tracker.progress(name) if tracker else _progress(out),
                    sequential=sequential,
                )
            except RuntimeError as exc:  # e.g. no Docker engine for --docker
                raise RunProblem(str(exc)) from exc
            results.append(result)
            print(f"[{name}] {result.status.lower()} in {result.seconds:.1f}s", file=out, flush=True)
            if result.status != local.SUCCEEDED:
                print(f"[{name}] error: {result.error}", file=sys.stderr)
                print(f"[{name}] full log: {result.log_file}", file=sys.stderr)
                break
    return results, settings


def cmd_run(args: argparse.Namespace) -> int:
    from pipelines import local
    from pipelines.local import interrupt
    from pipelines.local.summary import human_summary, json_summary

    names = ["dataops", "mlops"] if args.pipeline == "all" else [args.pipeline]
    # Progress goes to stderr when stdout carries the JSON summary.
    out = sys.stderr if args.json else sys.stdout
    tracker = interrupt.Tracker(_progress(out))
    try:
        # Ctrl-C / SIGTERM: every task ends, the stores are released, one message, 130 / 143.
        with interrupt.interruptible(tracker):
            results, settings = run_local(names, args, parse_params(args.param), out, tracker)
    except RunProblem as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except interrupt.RunInterrupted as exc:
        print(tracker.message(exc.signum), file=sys.stderr, flush=True)
        return exc.exit_code
    summary = json_summary(results, settings)
    if args.json:
        print(json.dumps(summary))
    else:
        print(human_summary(summary))
    return 0 if summary["status"] == local.SUCCEEDED else 1


def add_local_options(parser: argparse.ArgumentParser) -> None:
    """The flags of a local run (``run``, ``backfill`` without ``--host``)."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--local",
        dest="runner",
        action="store_const",
        const="subprocess",
        help="run each step as a subprocess in this environment (default)",
    )
    where.add_argument(
        "--docker",
        dest="runner",
        action="store_const",
        const="docker",
        help="run each step in its built image (kfp.local.DockerRunner)",
    )
    parser.set_defaults(runner="subprocess")
    parser.add_argument(
        "--source",
        default="sample",
        help="sample, sample:ROWS, madewithml, or a folder with projects.csv and tags.csv",
    )
    parser.add_argument(
        "--stores", default=None, help="folder for the warehouse, MLflow and run outputs (default: stores/)"
    )
    parser.add_argument("--trials", type=int, default=20, help="Optuna trials in total (mlops)")
    parser.add_argument("--workers", type=int, default=2, help="parallel Optuna workers (mlops)")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a pipeline parameter (repeatable); `python -m pipelines params` lists them",
    )
    parser.add_argument(
        "--sequential",
        action="store_true",
        help="run one task at a time, in kfp.local's order (default: each task as soon as its own "
        "upstreams succeeded, as Argo runs them on a cluster; also KFP_MLOPS_SEQUENTIAL=1)",
    )
    parser.add_argument(
        "--if-busy",
        choices=["wait", "fail"],
        default="wait",
        help="when another run holds the --stores folder: wait for it (up to KFP_MLOPS_STORES_WAIT "
        "seconds, default 3600) or fail at once (exit 3)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON summary as the last stdout line")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="stream each task's output, every line under its task's name",
    )
