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


def _parse_params(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--param expects key=value, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
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
    results = []
    for name in names:
        try:
            arguments = local_arguments(name, settings, args, _parse_params(args.param))
        except (ValueError, FileNotFoundError, RuntimeError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"[{name}] running locally ({args.runner}); stores: {settings.stores}", file=out, flush=True)
        try:
            result = local.run(
                registry.load(name),
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
    run.add_argument("pipeline", choices=["dataops", "mlops", "all"])
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
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
