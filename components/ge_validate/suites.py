"""The committed GX suites, built into GX objects, and what of a table they validate.

The suites live in the GX file project ``great_expectations/gx/expectations/<suite>.json``
(see ``great_expectations/README.md``). Validation never opens that file context: it
builds the suite from the committed JSON inside an *ephemeral* context, which is cheap
(~30 ms), writes nothing into the repository and works on a read-only image.

Airbyte's meta columns (``_airbyte_*``) are not validated (:func:`data_columns`), so the
ordered-column checks see the data columns only.
"""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.paths import project_dir
from components.warehouse import ident

if TYPE_CHECKING:
    import great_expectations as gx

SUITES: tuple[str, ...] = ("projects", "tags", "labeled_projects")
AIRBYTE_PREFIX = "_airbyte_"
# Expectation type names as each SQL dialect spells them. The committed suites say
# ``str``, which matches pandas 3 string columns; BigQuery calls that type STRING.
SQL_TYPE_NAMES: dict[str, dict[str, str]] = {
    "bigquery": {"str": "STRING", "int": "INTEGER", "float": "FLOAT", "bool": "BOOLEAN"},
}
# SQL dialects whose regexes are written with ASCII escapes only. Great Expectations renders
# the failing-rows query of a regex expectation on BigQuery by putting ``repr(regex)`` into a
# ``re.sub`` template (great_expectations/expectations/metrics/util.py,
# _substitute_pyformat_parameters): the repr of a non-printable character such as U+2028 is
# ``\u2028``, which re.sub refuses ("bad escape \u"), and the expectation ends in an error.
# RE2, BigQuery's regex engine, spells a code point ``\x{2028}``.
ASCII_REGEX_DIALECTS = frozenset({"bigquery"})
# DuckDB tables with more rows than this are validated chunk by chunk (a multiple of


def suite_path(suite: str, project_root: str | Path | None = None) -> Path:
    """The committed JSON of a suite: ``<project>/gx/expectations/<suite>.json``."""
    ident(suite)
    root = Path(project_root) if project_root else project_dir("great_expectations")
    path = root / "gx" / "expectations" / f"{suite}.json"
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.json"))
        raise FileNotFoundError(f"no GX suite {suite!r} at {path}; committed suites: {known}")
    return path


def suite_config(
    suite: str, *, dialect: str | None = None, project_root: str | Path | None = None
) -> dict[str, Any]:
    """The committed suite as JSON data, every expectation with an ``id``.

    ``dialect`` translates type names for a SQL engine (``str`` -> ``STRING`` on BigQuery)
    and, on BigQuery, writes non-ASCII characters of regexes as RE2 escapes (:func:`re2_ascii`).
    The ids tie each GX result back to its expectation (GX does not keep the suite's order).
    """
    config: dict[str, Any] = json.loads(suite_path(suite, project_root).read_text())
    names = SQL_TYPE_NAMES.get(dialect or "", {})
    for exp in config.get("expectations", []):
        exp.setdefault("id", str(uuid.uuid4()))
        kwargs = exp.get("kwargs", {})
        if "type_" in kwargs:
            kwargs["type_"] = names.get(kwargs["type_"], kwargs["type_"])
        if "type_list" in kwargs:
            kwargs["type_list"] = [names.get(t, t) for t in kwargs["type_list"]]
        if dialect in ASCII_REGEX_DIALECTS:
            for key in ("regex", "regex_list"):
                if isinstance(kwargs.get(key), str):
                    kwargs[key] = re2_ascii(kwargs[key])
                elif isinstance(kwargs.get(key), list):
                    kwargs[key] = [re2_ascii(r) for r in kwargs[key]]
    return config


def re2_ascii(regex: str) -> str:
    """`regex` with every non-ASCII character written as an RE2 code point (``\\x{2028}``).

    The same pattern to RE2; a character already escaped stays as it is (its escape is ASCII).
    """
    return "".join(c if c.isascii() else f"\\x{{{ord(c):04x}}}" for c in regex)


def suite_of(config: dict[str, Any], expectations: list[dict[str, Any]] | None = None) -> gx.ExpectationSuite:
    """A GX suite (not attached to any context) of ``expectations`` (default: all) of ``config``."""
    import great_expectations as gx

    chosen = config.get("expectations", []) if expectations is None else expectations
    built = gx.ExpectationSuite(**{**copy.deepcopy(config), "expectations": copy.deepcopy(chosen)})
    # GX logs and skips an invalid expectation instead of raising: refuse a partial suite.
    if len(built.expectations) != len(chosen):
        raise ValueError(
            f"suite {config.get('name')}: only {len(built.expectations)} of {len(chosen)} "
            "expectations are valid GX configurations (see the log)"
        )
    return built


def build_suite(
    suite: str, *, dialect: str | None = None, project_root: str | Path | None = None
) -> gx.ExpectationSuite:
    """The committed suite as a GX object (not attached to any context).

    ``dialect`` translates type names for a SQL engine (``str`` -> ``STRING`` on BigQuery).
    """
    return suite_of(suite_config(suite, dialect=dialect, project_root=project_root))


def ephemeral_context() -> Any:
    import great_expectations as gx
    import great_expectations.execution_engine.pandas_execution_engine as pandas_engine
    from great_expectations.data_context.types.base import ProgressBarsConfig

    # GX md5-fingerprints every in-memory frame under 1 GB, twice per validation (get_batch,
    # then validate): ~75% of the time on a 1M-row frame. The fingerprint is only a marker in
    # the result's meta; the data version we record is our own (components.warehouse).
    if hasattr(pandas_engine, "HASH_THRESHOLD"):
        pandas_engine.HASH_THRESHOLD = 0

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def data_columns(columns: Any) -> list[str]:
    """The columns that are data: everything but Airbyte's ``_airbyte_*`` meta columns."""
    return [str(c) for c in columns if not str(c).startswith(AIRBYTE_PREFIX)]
