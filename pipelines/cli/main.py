"""The parser of `python -m pipelines <command>`:

run dataops|mlops|continual|all [--local | --docker] [--source sample|madewithml|DIR] [--json]
compile [--out build/pipelines] [--components] [--target kfp|vertex ...]  (pipelines.vertex)
upload | submit | schedule | runs --host URL      (pipelines.cli.cluster)
watch --source DIR | --warehouse URI             (pipelines.triggers.watch)
backfill mlops|continual --start T --end T       (pipelines.triggers.backfill)
check [FILE ...]                                 (pipelines.cli.check)
params [PIPELINE ...] [--json]                   (pipelines.cli.params)
docs [--check]                                   (pipelines.step_docs)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipelines import registry
from pipelines.cli.check import add_check_command
from pipelines.cli.cluster import add_cluster_commands
from pipelines.cli.params import add_params_command
from pipelines.cli.run import add_local_options, cmd_run
from pipelines.step_docs import add_docs_command
from pipelines.triggers.backfill import add_backfill_command
from pipelines.triggers.watch import add_watch_command
from pipelines.vertex import add_vertex_options


def cmd_compile(args: argparse.Namespace) -> int:
    from pipelines.compile import compile_all
    from pipelines.vertex import VertexSettingsError, settings_from_args

    try:
        settings = settings_from_args(args)
    except VertexSettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.components:
        from pipelines.components_yaml import compile_components

        for path in compile_components(Path(args.out) / "components"):
            print(path)
        if not args.pipeline:
            return 0
    steps = [name for name in args.pipeline if name not in registry.PIPELINES]
    if steps:
        from components.catalog import STEPS

        known = [s for s in steps if s in STEPS]
        hint = (
            f" ({', '.join(known)}: a step; --components writes each step's component YAML)" if known else ""
        )
        print(
            f"error: unknown pipeline {steps[0]!r}; choose from {', '.join(registry.PIPELINES)}{hint}",
            file=sys.stderr,
        )
        return 2
    for path in compile_all(Path(args.out), args.pipeline or None, target=args.target, vertex=settings):
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m pipelines", description="Run and ship the kfp-mlops pipelines."
    )
    sub = ap.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a pipeline on this machine (kfp.local)")
    run.add_argument("pipeline", choices=[*registry.PIPELINES, "all"])
    add_local_options(run)
    run.set_defaults(func=cmd_run)

    comp = sub.add_parser("compile", help="compile pipelines to YAML")
    comp.add_argument("pipeline", nargs="*", help="pipelines to compile (default: all)")
    comp.add_argument("--out", default="build/pipelines")
    comp.add_argument(
        "--components",
        action="store_true",
        help="also write each step as a component YAML, with a catalogue, to OUT/components/",
    )
    add_vertex_options(comp)
    comp.set_defaults(func=cmd_compile)
    add_cluster_commands(sub)
    add_watch_command(sub)
    add_backfill_command(sub)
    add_check_command(sub)
    add_params_command(sub)
    add_docs_command(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
