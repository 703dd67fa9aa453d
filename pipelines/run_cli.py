"""Local runs: ``python -m pipelines run`` (and local backfills) through ``kfp.local``."""

from __future__ import annotations

import argparse
import json
import re
import sys
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


def run_local(
    names: list[str], args: argparse.Namespace, raw: dict[str, str], out: Any
) -> tuple[list[Any], Any]:
    """Run `names` in order on this machine (stop at the first failure): (results, settings).

    Raises:
        RunProblem: Bad input; nothing ran (or, for a missing Docker engine, nothing more).
    """
    from pipelines import local
    from pipelines.arguments import local_arguments
    from pipelines.platform import without_retries
    from pipelines.settings import LocalSettings

    settings = LocalSettings.from_env(args.stores)
    settings.ensure()
    known = {k for n in names for k in (registry.load(n).component_spec.inputs or {})}
    if set(raw) - known:
        raise RunProblem(f"unknown parameter(s) {', '.join(sorted(set(raw) - known))}")
    if args.runner == "subprocess":
        from pipelines import warm

        if warm.enabled():
            warm.start(names)  # one fork server for every pipeline of this command
            print(
                "warm starts: the steps' libraries are imported once, then every task is forked "
                f"(KFP_MLOPS_WARM=0 to turn off): {', '.join(warm.preload_for(names))}",
                file=out,
                flush=True,
            )
    results = []
    for name in names:
        try:
            # Pod retries exist for flaky services on a cluster; a local failure (a broken
            # file) is deterministic and would only be retried with long backoffs.
            pipeline_func = without_retries(registry.load(name))
            params = coerce_params(pipeline_func, raw, strict=len(names) == 1)
            arguments = local_arguments(name, settings, args, params)
        except (ValueError, FileNotFoundError, RuntimeError) as exc:
            raise RunProblem(str(exc)) from exc
        print(f"[{name}] running locally ({args.runner}); stores: {settings.stores}", file=out, flush=True)
        try:
            result = local.run(
                pipeline_func,
                arguments,
                settings.runs,
                runner=args.runner,
                docker_mounts=_mounts(settings, arguments) if args.runner == "docker" else None,
                verbose=args.verbose,
                progress=_progress(out),
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
    from pipelines.summary import human_summary, json_summary

    names = ["dataops", "mlops"] if args.pipeline == "all" else [args.pipeline]
    # Progress goes to stderr when stdout carries the JSON summary.
    out = sys.stderr if args.json else sys.stdout
    try:
        results, settings = run_local(names, args, parse_params(args.param), out)
    except RunProblem as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
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
        help="override a pipeline parameter (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON summary as the last stdout line")
    parser.add_argument("-v", "--verbose", action="store_true", help="stream every task's log")
