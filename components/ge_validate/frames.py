"""Validating in-memory frames with GX's pandas engine (GX's SQL datasource cannot open DuckDB)."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING

from components.ge_validate.report import finish
from components.ge_validate.results import (
    RESULT_FORMAT,
    ExpectationOutcome,
    ValidationSummary,
    outcome,
    summary_of_parts,
)
from components.ge_validate.suites import data_columns, ephemeral_context, suite_config, suite_of

if TYPE_CHECKING:
    import great_expectations as gx
    import pandas as pd


def nanosecond_times(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its timestamp columns at nanosecond resolution, where every value fits.

    DuckDB hands timestamps to pandas in microseconds; GX's pandas engine compares only
    nanosecond timestamps vectorised and every other resolution value by value in Python
    (3 s for a 1M-row ``created_on`` bound, against 0.01 s). The values are the same; a
    column with a value outside nanoseconds' range (years 1677-2262) is left as it is, so
    a far-future date is still reported, just slower.
    """
    import pandas as pd

    converted = {}
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_datetime64_any_dtype(column.dtype) and column.dt.unit != "ns":
            with contextlib.suppress(pd.errors.OutOfBoundsDatetime):
                converted[str(name)] = column.dt.as_unit("ns")
    return frame.assign(**converted) if converted else frame


class FrameValidator:
    """GX's pandas engine, one in-memory frame at a time (one ephemeral context for all)."""

    def __init__(self, asset: str) -> None:
        self._batches = (
            ephemeral_context()
            .data_sources.add_pandas("frames")
            .add_dataframe_asset(asset)
            .add_batch_definition_whole_dataframe("whole_table")
        )
        self.frames = 0
        self.largest_frame = 0

    def outcomes(self, frame: pd.DataFrame, suite: gx.ExpectationSuite) -> dict[str, ExpectationOutcome]:
        """Each expectation's outcome on ``frame``, by expectation id."""
        self.frames += 1
        self.largest_frame = max(self.largest_frame, len(frame))
        batch = self._batches.get_batch(batch_parameters={"dataframe": nanosecond_times(frame)})
        result = batch.validate(suite, result_format=RESULT_FORMAT)
        return {str(r.expectation_config.id): outcome(r) for r in result.results}


def stamp(summary: ValidationSummary, validator: FrameValidator, started: float) -> ValidationSummary:
    """Record how long the validation took and what GX was given."""
    summary.seconds = time.perf_counter() - started
    summary.frames, summary.largest_frame = validator.frames, validator.largest_frame
    return summary


def validate_frame(
    df: pd.DataFrame,
    suite: str,
    *,
    data_docs_path: str | Path | None = None,
    raise_on_failure: bool = True,
    source: str = "dataframe",
    data_version: str = "",
    project_root: str | Path | None = None,
) -> ValidationSummary:
    """Validate a pandas frame against a committed suite.

    Args:
        df: The data; ``_airbyte_*`` columns are dropped first.
        suite: Suite name (``projects``, ``tags``, ``labeled_projects``).
        data_docs_path: Where to write the HTML report (written before any raise).
        raise_on_failure: Raise :class:`ValidationFailed` when the suite fails.
        source: What the frame is, for the report.
        data_version: The data version, for the report.
        project_root: The GX project folder (default: the repository's ``great_expectations/``).

    Returns:
        The summary of every expectation's result.
    """
    started = time.perf_counter()
    config = suite_config(suite, project_root=project_root)
    gx_suite = suite_of(config)
    frame = df[data_columns(df.columns)]
    validator = FrameValidator(suite)
    outcomes = validator.outcomes(frame, gx_suite)
    summary = summary_of_parts(config, {k: [v] for k, v in outcomes.items()}, rows=len(frame), source=source)
    summary.data_version = data_version
    return finish(stamp(summary, validator, started), data_docs_path, raise_on_failure)
