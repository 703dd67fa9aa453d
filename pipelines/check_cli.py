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
        return _report([Path(f) for f in args.files], conformance)
    from pipelines.compile import compile_all

    with tempfile.TemporaryDirectory(prefix="kfp-mlops-check-") as tmp:
        return _report(compile_all(Path(tmp), args.pipeline or None), conformance)


def _report(paths: list[Path], conformance: Any) -> int:
    problems, checked, unreadable = 0, [], 0
    for path in paths:
        try:
            pipeline = conformance.load(path)
        except conformance.NotAPipeline as exc:
            print(f"error: {exc}", file=sys.stderr)
            unreadable += 1
            continue
        found = conformance.check(pipeline)
        checked.append(pipeline.name)
        for problem in found:
            print(problem.line())
        problems += len(found)
    names = ", ".join(checked) or "none"
    verdict = f"{problems} problem{'s' * (problems != 1)}" if problems else "no problems"
    summary = f"checked {len(checked)} pipeline{'s' * (len(checked) != 1)} ({names}) by the KFP 2.17 backend's rules: {verdict}"
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
    check.set_defaults(func=cmd_check)
