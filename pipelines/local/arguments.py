"""Pipeline arguments for a local run, from the CLI flags and the local settings."""

from __future__ import annotations

import argparse
from typing import Any

from pipelines.settings import LocalSettings


def local_arguments(
    name: str,
    settings: LocalSettings,
    args: argparse.Namespace,
    overrides: dict[str, Any],
    resolve: bool = True,
) -> dict[str, Any]:
    """The arguments of a local run of `name`; `resolve=False` leaves ``--source`` as given
    (checked, not generated or downloaded: see :func:`resolve_source_argument`)."""
    if name == "dataops":
        from tagifai.datasets import check_source_spec

        check_source_spec(args.source)
        base: dict[str, Any] = {"source": args.source, "warehouse": settings.warehouse}
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
    return resolve_source_argument(name, settings, base) if resolve else base


def resolve_source_argument(name: str, settings: LocalSettings, arguments: dict[str, Any]) -> dict[str, Any]:
    """Dataops' ``source`` as the folder a step reads: a sample is generated and the lesson's
    data downloaded into the stores' cache (once), so the step receives a plain folder."""
    if name != "dataops":
        return arguments
    from tagifai.datasets import resolve_source

    return {**arguments, "source": str(resolve_source(arguments["source"], cache_dir=settings.cache))}
