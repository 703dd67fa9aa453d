"""``python -m pipelines params [PIPELINE ...]``: each pipeline's parameters, with their types,
the compiled YAML's defaults and what a local run sets (``run ... --param NAME=VALUE``)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pipelines import registry


def describe(name: str, stores: str | None = None) -> list[dict[str, Any]]:
    """The parameters of pipeline `name`: name, type, default and the value a local run gives.

    ``local`` is what ``python -m pipelines run NAME`` passes (its flags at their defaults);
    a parameter it does not set keeps the default there too.
    """
    from pipelines.local.arguments import local_arguments
    from pipelines.settings import LocalSettings

    pipeline = registry.load(name)
    flags = argparse.Namespace(source="sample", trials=20, workers=2)
    local = local_arguments(name, LocalSettings.from_env(stores), flags, {}, resolve=False)
    rows = []
    for param, spec in (pipeline.component_spec.inputs or {}).items():
        rows.append(
            {
                "name": param,
                "type": str(spec.type),
                "default": spec.default,
                "local": local.get(param, spec.default),
                "description": spec.description or "",
            }
        )
    return rows


def _shown(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else (value or '""')


def cmd_params(args: argparse.Namespace) -> int:
    names = args.pipeline or list(registry.PIPELINES)
    unknown = [n for n in names if n not in registry.PIPELINES]
    if unknown:
        print(
            f"error: unknown pipeline {unknown[0]!r}; choose from {', '.join(registry.PIPELINES)}",
            file=sys.stderr,
        )
        return 2
    if args.json:
        print(json.dumps({name: describe(name, args.stores) for name in names}, indent=2))
        return 0
    for i, name in enumerate(names):
        rows = describe(name, args.stores)
        print(("\n" if i else "") + f"{name}: {len(rows)} parameters (run {name} --param NAME=VALUE)")
        width = max(len(r["name"]) for r in rows)
        kinds = max(len(r["type"]) for r in rows)
        for r in rows:
            line = f"  {r['name']:<{width}}  {r['type']:<{kinds}}  default {_shown(r['default'])}"
            if r["local"] != r["default"]:
                line += f"; locally {_shown(r['local'])}"
            print(line)
    return 0


def add_params_command(subparsers: Any) -> None:
    """Register ``params`` on the CLI's subparsers."""
    p = subparsers.add_parser(
        "params",
        help="list each pipeline's parameters (types, defaults, what a local run sets)",
        description="The parameters `run PIPELINE --param NAME=VALUE` and the KFP UI take: their "
        "types, the compiled YAML's defaults, and the values a local run gives them.",
    )
    p.add_argument(
        "pipeline", nargs="*", metavar="PIPELINE", help=f"{', '.join(registry.PIPELINES)} (default: all)"
    )
    p.add_argument("--stores", default=None, help="the local stores folder the local values name")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_params)
