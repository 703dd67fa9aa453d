"""Pipeline arguments for a local run, from the CLI flags and the local settings."""

from __future__ import annotations

import argparse
from typing import Any

from pipelines.settings import LocalSettings


def local_arguments(
    name: str, settings: LocalSettings, args: argparse.Namespace, overrides: dict[str, Any]
) -> dict[str, Any]:
    if name == "dataops":
        from tagifai.datasets import resolve_source

        # Resolve here so generated / downloaded data is cached under stores/ and the step
        # receives a plain folder.
        source = str(resolve_source(args.source, cache_dir=settings.cache))
        base: dict[str, Any] = {"source": source, "warehouse": settings.warehouse}
    elif name in ("mlops", "continual"):
        if args.trials < 1 or args.workers < 1:
            raise ValueError("--trials and --workers must be at least 1")
        per_worker = -(-args.trials // args.workers)
        base = {
            "warehouse": settings.warehouse,
            "tracking_uri": settings.tracking_uri,
            "artifact_root": settings.artifact_root,
            "optuna_storage": settings.optuna_storage,
            "workers": list(range(args.workers)),
            # Trials are split evenly over the workers (rounded up).
            "trials_per_worker": per_worker,
            "expected_trials": per_worker * args.workers,
        }
    else:
        raise ValueError(f"no local arguments for pipeline {name!r}")
    base.update(overrides)
    return base
