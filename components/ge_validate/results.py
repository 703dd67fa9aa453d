"""What a validation found: each expectation's outcome and the suite's summary, from GX's results.

A failed suite raises :class:`ValidationFailed`, whose message names every failed
expectation, its column(s) and the number of rows that broke it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

# SUMMARY gives unexpected counts and a few values without materialising every
# unexpected row (COMPLETE would, on a million-row table).
RESULT_FORMAT: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": 5}
SAMPLE_VALUES = 5


class ValidationFailed(Exception):
    """A suite failed; ``summary`` holds every result and ``str()`` names each failure."""

    def __init__(self, summary: ValidationSummary) -> None:
        self.summary = summary
        super().__init__(summary.message())


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's result, reduced to what a person needs to act on it."""

    expectation: str  # e.g. expect_column_values_to_be_unique
    columns: tuple[str, ...]
    success: bool
    unexpected_count: int | None = None  # rows that broke a row-level expectation
    unexpected_values: tuple[Any, ...] = ()  # a few of them
    observed: Any = None  # table-level observed value (e.g. the column list)
    error: str = ""  # the expectation could not be evaluated (e.g. a missing column)
    rule: str = ""  # what the expectation requires, in words (its ``meta.rule`` in the suite)

    def describe(self) -> str:
        """``expect_x(col): 3 unexpected (rule)`` / ``...: observed [...]`` / ``...: error ...``."""
        head = f"{self.expectation}({', '.join(self.columns)})"
        if self.error:
            return f"{head}: error: {self.error}"
        if self.unexpected_count is not None:
            rule = f" ({self.rule})" if self.rule else ""
            return f"{head}: {self.unexpected_count} unexpected{rule}"
        if self.observed is not None:
            return f"{head}: observed {short(self.observed, 200)}"
        return head

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["columns"] = list(self.columns)
        data["unexpected_values"] = list(self.unexpected_values)
        return data


@dataclass
class ValidationSummary:
    """What one suite said about one batch."""

    suite: str
    success: bool
    evaluated: int
    successful: int
    failed: int
    rows: int | None
    outcomes: list[ExpectationOutcome] = field(default_factory=list)
    source: str = ""  # what was validated: a table, a file
    data_version: str = ""
    data_docs: str = ""  # path of the HTML report, once written
    seconds: float = 0.0
    frames: int = 0  # pandas frames GX validated (1 unless a DuckDB table was streamed)
    largest_frame: int | None = None  # rows of the largest of them

    @property
    def failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]

    def message(self) -> str:
        """One line naming each failed expectation, column and count, and the report."""
        if self.success:
            text = f"suite {self.suite} passed {self.successful} of {self.evaluated} expectations"
        else:
            reasons = "; ".join(f.describe() for f in self.failures)
            text = f"suite {self.suite} failed {self.failed} of {self.evaluated} expectations: {reasons}"
        if self.data_docs:
            text += f"; Data Docs: {self.data_docs}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "success": self.success,
            "evaluated": self.evaluated,
            "successful": self.successful,
            "failed": self.failed,
            "rows": self.rows,
            "source": self.source,
            "data_version": self.data_version,
            "data_docs": self.data_docs,
            "seconds": round(self.seconds, 3),
            "frames": self.frames,
            "largest_frame": self.largest_frame,
            "failures": [f.to_dict() for f in self.failures],
        }


def summarize(
    result: Any, suite: str, *, rows: int | None, source: str = "", data_version: str = ""
) -> ValidationSummary:
    """Reduce a GX ``ExpectationSuiteValidationResult`` to a :class:`ValidationSummary`."""
    outcomes = [outcome(r) for r in result.results]
    if rows is None:  # SQL: the row count comes with any row-level result
        counts = [r.result.get("element_count") for r in result.results if r.result]
        rows = next((int(c) for c in counts if c is not None), None)
    summary = summary_of(suite, outcomes, rows=rows, source=source)
    summary.success = summary.success and bool(result.success)
    summary.data_version = data_version
    return summary


def summary_of_parts(
    config: dict[str, Any], parts: dict[str, list[ExpectationOutcome]], *, rows: int | None, source: str
) -> ValidationSummary:
    """The summary of a suite from its outcomes by expectation id, in the suite's order."""
    expected = [str(e["id"]) for e in config["expectations"]]
    missing = [key for key in expected if key not in parts]
    if missing:  # a GX result per expectation is the contract: never report a partial suite
        raise RuntimeError(f"suite {config['name']}: GX returned no result for expectation(s) {missing}")
    outcomes = [merge_outcomes(parts[key]) for key in expected]
    return summary_of(str(config["name"]), outcomes, rows=rows, source=source)


def summary_of(
    suite: str, outcomes: list[ExpectationOutcome], *, rows: int | None, source: str
) -> ValidationSummary:
    failed = sum(not o.success for o in outcomes)
    return ValidationSummary(
        suite=suite,
        success=failed == 0,
        evaluated=len(outcomes),
        successful=len(outcomes) - failed,
        failed=failed,
        rows=rows,
        outcomes=outcomes,
        source=source,
    )


def outcome(r: Any) -> ExpectationOutcome:
    config = r.expectation_config
    kwargs = config.kwargs
    if kwargs.get("column") is not None:
        columns: tuple[str, ...] = (str(kwargs["column"]),)
    else:
        columns = tuple(str(c) for c in kwargs.get("column_list") or ())
    res = r.result or {}
    error = ""
    info = r.exception_info or {}
    if _raised(info):
        error = _exception_message(info) or "the expectation raised an exception"
    count = res.get("unexpected_count")
    values = tuple(_jsonable(v) for v in (res.get("partial_unexpected_list") or [])[:SAMPLE_VALUES])
    observed = _jsonable(res.get("observed_value"))
    meta = getattr(config, "meta", None) or {}
    return ExpectationOutcome(
        expectation=str(config.type),
        columns=columns,
        success=bool(r.success),
        unexpected_count=None if count is None else int(count),
        unexpected_values=values,
        observed=observed,
        error=" ".join(error.split()),
        rule=str(meta.get("rule") or ""),
    )


def _raised(info: Any) -> bool:
    if not isinstance(info, dict):
        return False
    if "raised_exception" in info:
        return bool(info["raised_exception"])
    # Metric errors are keyed by metric id: {MetricConfigurationID: {...}}.
    return any(_raised(v) for v in info.values())


def _exception_message(info: Any) -> str:
    if not isinstance(info, dict):
        return ""
    if info.get("exception_message"):
        return str(info["exception_message"])
    return next((m for v in info.values() if (m := _exception_message(v))), "")


def _jsonable(value: Any) -> Any:
    """A value fit for JSON metadata: NaN -> None, long text shortened, the rest as str."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, str):
        return short(value, 80)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return _jsonable(value.item())
    return short(str(value), 80)


def short(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def merge_outcomes(parts: list[ExpectationOutcome]) -> ExpectationOutcome:
    """One expectation's outcome over the whole table from its outcomes on disjoint parts.

    It passes when it passed on every part; unexpected counts add up; the sample values
    are the first ones found; the observed value and the error are the first failing part's.
    """
    first = parts[0]
    if len(parts) == 1:
        return first
    failing = [p for p in parts if not p.success]
    counts = [p.unexpected_count for p in parts if p.unexpected_count is not None]
    return replace(
        first,
        success=not failing,
        unexpected_count=sum(counts) if counts else None,
        unexpected_values=tuple(v for p in parts for v in p.unexpected_values)[:SAMPLE_VALUES],
        observed=(failing or parts)[0].observed,
        error=next((p.error for p in parts if p.error), ""),
    )
