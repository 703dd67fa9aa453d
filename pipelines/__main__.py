"""Command line: `python -m pipelines <command>`.

run dataops|mlops|all --local [--source sample|madewithml|DIR] [--json]
compile [--out build/pipelines]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pipelines import registry
from pipelines.cluster_cli import add_cluster_commands
from pipelines.watch import add_watch_command


def _parse_params(items: list[str]) -> dict[str, str]:
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
        except ValueError as exc:
            raise ValueError(f"parameter {key}={value!r} is not a valid {kind}: {exc}") from None
    return out


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


def cmd_run(args: argparse.Namespace) -> int:
    from pipelines import local
    from pipelines.arguments import local_arguments
    from pipelines.settings import LocalSettings

    settings = LocalSettings.from_env(args.stores)
    settings.ensure()
    names = ["dataops", "mlops"] if args.pipeline == "all" else [args.pipeline]
    # Progress goes to stderr when stdout carries the JSON summary.
    out = sys.stderr if args.json else sys.stdout
    raw = _parse_params(args.param)
    known = {k for n in names for k in (registry.load(n).component_spec.inputs or {})}
    if set(raw) - known:
        print(f"error: unknown parameter(s) {', '.join(sorted(set(raw) - known))}", file=sys.stderr)
        return 2
    results = []
    for name in names:
        try:
            from pipelines.platform import without_retries

            # Pod retries exist for flaky services on a cluster; a local failure (a broken
            # file) is deterministic and would only be retried with long backoffs.
            pipeline_func = without_retries(registry.load(name))
            params = coerce_params(pipeline_func, raw, strict=len(names) == 1)
            arguments = local_arguments(name, settings, args, params)
        except (ValueError, FileNotFoundError, RuntimeError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
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
            print(f"error: {exc}", file=sys.stderr)
            return 2
        results.append(result)
        print(f"[{name}] {result.status.lower()} in {result.seconds:.1f}s", file=out, flush=True)
        if result.status != local.SUCCEEDED:
            print(f"[{name}] error: {result.error}", file=sys.stderr)
            print(f"[{name}] full log: {result.log_file}", file=sys.stderr)
            break
    from pipelines.summary import human_summary, json_summary

    summary = json_summary(results, settings)
    if args.json:
        print(json.dumps(summary))
    else:
        print(human_summary(summary))
    return 0 if summary["status"] == local.SUCCEEDED else 1


def cmd_compile(args: argparse.Namespace) -> int:
    from pipelines.compile import compile_all

    for path in compile_all(Path(args.out), args.pipeline or None):
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m pipelines", description="Run and ship the kfp-mlops pipelines."
    )
    sub = ap.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a pipeline on this machine (kfp.local)")
    run.add_argument("pipeline", choices=[*registry.PIPELINES, "all"])
    where = run.add_mutually_exclusive_group()
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
    run.set_defaults(runner="subprocess")
    run.add_argument(
        "--source",
        default="sample",
        help="sample, sample:ROWS, madewithml, or a folder with projects.csv and tags.csv",
    )
    run.add_argument(
        "--stores", default=None, help="folder for the warehouse, MLflow and run outputs (default: stores/)"
    )
    run.add_argument("--trials", type=int, default=20, help="Optuna trials in total (mlops)")
    run.add_argument("--workers", type=int, default=2, help="parallel Optuna workers (mlops)")
    run.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a pipeline parameter (repeatable)",
    )
    run.add_argument("--json", action="store_true", help="print one JSON summary as the last stdout line")
    run.add_argument("-v", "--verbose", action="store_true", help="stream every task's log")
    run.set_defaults(func=cmd_run)

    comp = sub.add_parser("compile", help="compile pipelines to YAML")
    comp.add_argument("pipeline", nargs="*", help="pipelines to compile (default: all)")
    comp.add_argument("--out", default="build/pipelines")
    comp.set_defaults(func=cmd_compile)
    add_cluster_commands(sub)
    add_watch_command(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
