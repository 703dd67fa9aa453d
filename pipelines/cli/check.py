"""``python -m pipelines check [FILE ...]``: compiled pipelines against the KFP backend's rules.

With files, checks those compiled YAML files; without, compiles every pipeline of the
project for the cluster (as ``compile`` does) and checks them. Prints one line per problem
and a summary; exits 0 when everything conforms, 1 when any problem is found, 2 when a file
is not a compiled KFP pipeline. The rules are those of :mod:`pipelines.conformance`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from pipelines import registry


def cmd_check(args: argparse.Namespace) -> int:
    from pipelines import conformance

    if args.files:
        return _report([Path(f) for f in args.files], conformance, args.target)
    from pipelines.compile import compile_all
    from pipelines.vertex import VertexSettingsError, settings_from_args

    try:
        settings = settings_from_args(args)
    except VertexSettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="kfp-mlops-check-") as tmp:
        paths = compile_all(Path(tmp), args.pipeline or None, target=args.target, vertex=settings)
        return _report(paths, conformance, args.target)


def _report(paths: list[Path], conformance: Any, target: str = "kfp") -> int:
    problems, checked, unreadable = 0, [], 0
    for path in paths:
        try:
            pipeline = conformance.load(path)
        except conformance.NotAPipeline as exc:
            print(f"error: {exc}", file=sys.stderr)
            unreadable += 1
            continue
        found = conformance.check(pipeline, target=target)
        checked.append(pipeline.name)
        for problem in found:
            print(problem.line())
        problems += len(found)
    names = ", ".join(checked) or "none"
    verdict = f"{problems} problem{'s' * (problems != 1)}" if problems else "no problems"
    rules = "the KFP 2.17 backend's rules" + (" and Vertex AI's" if target == "vertex" else "")
    summary = f"checked {len(checked)} pipeline{'s' * (len(checked) != 1)} ({names}) by {rules}: {verdict}"
    if unreadable:
        summary += (
            f"; {unreadable} file{'s' * (unreadable != 1)} could not be read as a compiled KFP pipeline"
        )
    print(summary)
    return 2 if unreadable else 1 if problems else 0


def add_check_command(subparsers: Any) -> None:
    """Register ``check`` on the CLI's subparsers."""
    check = subparsers.add_parser(
        "check",
        help="check compiled pipelines against the KFP backend's rules (offline)",
        description="Simulate, by the rules of the KFP 2.17 backend (API server, Argo compiler, "
        "driver, launcher), the value that reaches every task input of a compiled pipeline and check "
        "it against the type the task declares; check the names, references and Kubernetes settings "
        "the backend resolves. Exit 0: conforms; 1: problems found; 2: not a compiled pipeline.",
    )
    check.add_argument(
        "files", nargs="*", metavar="FILE", help="compiled pipeline YAML (default: compile all)"
    )
    check.add_argument(
        "--pipeline",
        action="append",
        default=[],
        choices=list(registry.PIPELINES),
        help="without FILEs: compile and check only this pipeline (repeatable)",
    )
    from pipelines.vertex import add_vertex_options

    add_vertex_options(check)
    check.set_defaults(func=cmd_check)
