"""Every parameter of every pipeline, checked before the first task runs.

A bad value found by a task mid-run has already cost the tasks before it (a re-sync, a
study) and sometimes changed data; a value no task checks (a negative margin) changes what
the gate means. :func:`check` runs the rules below on a pipeline's whole argument set — the
declared defaults with the given values on top — and raises :class:`ParamError` naming the
parameter, the value and what is allowed. The local runner (``run``, ``backfill``, the
watcher's runs) and the cluster commands (``submit``, ``schedule``, ``backfill --host``)
call it before anything starts; the steps keep their own checks for values that reach them
another way (the KFP UI).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

from components.warehouse import RAW_SCHEMA

Rule = Callable[[Any, dict[str, Any]], str | None]  # a problem, or None when the value is fine

# The schema publish writes into: the audit schema must never be it.
PUBLISHED_SCHEMA = RAW_SCHEMA
MAX_WORKERS = 64
MAX_TRIALS = 10_000
MAX_EPOCHS = 10_000
MAX_AIRBYTE_TIMEOUT_S = 7 * 24 * 3600
_OPTUNA_SCHEMES = re.compile(r"^(sqlite|postgresql|mysql|oracle|mssql)(\+\w+)?://")


class ParamError(ValueError):
    """A pipeline parameter is out of range; the message names it and what is allowed."""


def _number(value: Any, kind: type) -> bool:
    if isinstance(value, bool):
        return False
    if kind is int:
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    return isinstance(value, (int, float)) and math.isfinite(value)


def _between(low: float, high: float, kind: type = float) -> Rule:
    name = "an integer" if kind is int else "a number"

    def rule(value: Any, _: dict[str, Any]) -> str | None:
        if not _number(value, kind) or not low <= value <= high:
            return f"must be {name} from {low:g} to {high:g}"
        return None

    return rule


def _text(value: Any, _: dict[str, Any]) -> str | None:
    return None if isinstance(value, str) and value.strip() else "must be a non-empty string"


def _mode(value: Any, _: dict[str, Any]) -> str | None:
    return None if value in ("embedded", "server") else "must be 'embedded' or 'server'"


def _warehouse(value: Any, _: dict[str, Any]) -> str | None:
    from components.warehouse import WarehouseError, parse_uri

    try:
        parse_uri(value if isinstance(value, str) else "")
    except WarehouseError as exc:
        return f"must be a warehouse URI (duckdb:///PATH or bigquery://PROJECT): {exc}"
    return None


def _for_server(rule: Rule) -> Rule:
    """Checked only with ``mode='server'`` (an Airbyte server); the embedded loader ignores it."""

    def check(value: Any, args: dict[str, Any]) -> str | None:
        return rule(value, args) if args.get("mode") == "server" else None

    return check


def _http_url(value: Any, _: dict[str, Any]) -> str | None:
    ok = isinstance(value, str) and re.match(r"^https?://[^/\s]+", value)
    return None if ok else "must be the Airbyte server's http(s):// URL with mode='server'"


def _audit_schema(value: Any, _: dict[str, Any]) -> str | None:
    from components.warehouse import WarehouseError, ident

    try:
        ident(value if isinstance(value, str) else "")
    except WarehouseError:
        return "must be a schema name: letters, digits and underscores, not starting with a digit"
    # Schema names are case-insensitive in DuckDB and BigQuery dataset names are matched as written;
    # refuse any spelling of the published schema.
    if value.lower() == PUBLISHED_SCHEMA:
        return (
            f"must not be the published schema {PUBLISHED_SCHEMA!r}: dbt builds into the audit schema "
            "and only publish may write the published table after validation"
        )
    return None


def _tracking_uri(value: Any, _: dict[str, Any]) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return "must be an MLflow tracking URI (http(s)://HOST, sqlite:///PATH, ...)"
    return None


def _optuna_storage(value: Any, _: dict[str, Any]) -> str | None:
    if isinstance(value, str) and (_OPTUNA_SCHEMES.match(value) or re.match(r"^env:[A-Za-z_]\w*$", value)):
        return None
    return "must be an Optuna RDB URL (sqlite:///PATH, postgresql://..., mysql://...) or env:VARIABLE"


def _workers(value: Any, _: dict[str, Any]) -> str | None:
    if not isinstance(value, list) or not value:
        return "must list at least one worker index, e.g. [0, 1]"
    if not all(_number(w, int) and w >= 0 for w in value):
        return "must list worker indexes: integers from 0"
    if len(value) > MAX_WORKERS:
        return f"must list at most {MAX_WORKERS} workers"
    if len({int(w) for w in value}) != len(value):
        return "must not repeat a worker index (each seeds its own sampler)"
    return None


def _expected_trials(value: Any, args: dict[str, Any]) -> str | None:
    problem = _between(1, MAX_WORKERS * MAX_TRIALS, int)(value, args)
    if problem:
        return problem
    workers, per_worker = args.get("workers"), args.get("trials_per_worker")
    if not isinstance(workers, list) or not isinstance(per_worker, (int, float)):
        return None  # their own rules report them
    total = len(workers) * int(per_worker)
    if value != total:
        return (
            f"must equal workers x trials_per_worker ({len(workers)} x {per_worker} = {total}): "
            "the study summary checks that no trial was lost"
        )
    return None


def _param_overrides(value: Any, _: dict[str, Any]) -> str | None:
    from dataclasses import fields

    from tagifai.config import TrainParams

    try:
        data = json.loads(value) if isinstance(value, str) else None
    except json.JSONDecodeError as exc:
        return f"must be a JSON object: {exc}"
    if not isinstance(data, dict):
        return "must be a JSON object of training parameters"
    known = {f.name for f in fields(TrainParams)}
    unknown = sorted(set(data) - known)
    if unknown:
        return f"has unknown key(s) {unknown}; known: {sorted(known)}"
    try:
        TrainParams.from_dict(data)
    except (TypeError, ValueError) as exc:
        return f"has a value of the wrong type: {exc}"
    return None


def _as_of(value: Any, _: dict[str, Any]) -> str | None:
    from components.cutoff import CutoffError, parse_instant

    if value == "":
        return None
    try:
        parse_instant(value if isinstance(value, str) else "")
    except CutoffError as exc:
        return f"must be empty or an ISO 8601 instant: {exc}"
    return None


def _policy(value: Any, _: dict[str, Any]) -> str | None:
    from tagifai.drift import DriftPolicy

    try:
        DriftPolicy.from_json(value if isinstance(value, str) else "")
    except ValueError as exc:
        return str(exc)
    return None


RULES: dict[str, Rule] = {
    # dataops
    "source": _text,
    "mode": _mode,
    "warehouse": _warehouse,
    "airbyte_url": _for_server(_http_url),
    "projects_connection_id": _for_server(_text),
    "tags_connection_id": _for_server(_text),
    "audit_schema": _audit_schema,
    "airbyte_timeout_s": _between(1, MAX_AIRBYTE_TIMEOUT_S),
    # mlops and continual
    "tracking_uri": _tracking_uri,
    "optuna_storage": _optuna_storage,
    "workers": _workers,
    "trials_per_worker": _between(1, MAX_TRIALS, int),
    "expected_trials": _expected_trials,
    "trial_epochs": _between(1, MAX_EPOCHS, int),
    "experiment": _text,
    "param_overrides": _param_overrides,
    "margin": _between(0, 1),
    "slice_tolerance": _between(0, 1),
    "as_of": _as_of,
    "policy_json": _policy,
}
# Parameters any value of their declared type is fine for.
FREE = {"artifact_root"}


def declared_defaults(pipeline_func: Any) -> dict[str, Any]:
    """The pipeline's parameters with their declared defaults (None where there is none)."""
    inputs = pipeline_func.component_spec.inputs or {}
    return {name: spec.default for name, spec in inputs.items()}


def check(pipeline: str, pipeline_func: Any, arguments: dict[str, Any]) -> dict[str, Any]:
    """Check every parameter of `pipeline` (defaults with `arguments` on top); returns them.

    Raises:
        ParamError: The first parameter out of range, named with its value and what is allowed.
    """
    values = {**declared_defaults(pipeline_func), **arguments}
    for name, value in values.items():
        rule = RULES.get(name)
        if rule is None:
            if name in FREE:
                continue
            raise ParamError(f"{pipeline}: parameter {name} has no check (pipelines/params.py must know it)")
        problem = rule(value, values)
        if problem:
            raise ParamError(f"{pipeline}: parameter {name}={value!r} {problem}")
    return values
