"""Validating a DuckDB table larger than one chunk without ever holding it whole.

Row-wise expectations run on bounded chunks streamed out of DuckDB and their unexpected
counts are added up; the schema checks run on the first chunk; the whole-table uniqueness
checks run on the only rows that can break them, those whose key hash (computed in
DuckDB) is shared with another row (see :func:`validate_duckdb_table`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.ge_validate.frames import FrameValidator, stamp
from components.ge_validate.results import ExpectationOutcome, ValidationSummary, summary_of_parts
from components.ge_validate.suites import data_columns, suite_config, suite_of
from components.warehouse import STREAM_VECTORS, VECTOR_ROWS, ident, iter_chunks

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

# DuckDB's 2,048-row vectors: ~50 MB of the lesson's projects per chunk).
CHUNK_ROWS = STREAM_VECTORS * VECTOR_ROWS
# How the streamed path evaluates each kind of expectation (see validate_duckdb_table).
SCHEMA_LEVEL = frozenset(
    {
        "expect_table_columns_to_match_ordered_list",
        "expect_table_columns_to_match_set",
        "expect_table_column_count_to_equal",
        "expect_table_column_count_to_be_between",
        "expect_column_to_exist",
    }
)
ROW_WISE = frozenset(
    {
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_null",
        "expect_column_values_to_be_of_type",
        "expect_column_values_to_be_in_type_list",
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_not_be_in_set",
        "expect_column_values_to_be_between",
        "expect_column_values_to_match_regex",
        "expect_column_values_to_not_match_regex",
        "expect_column_value_lengths_to_be_between",
        "expect_column_value_lengths_to_equal",
        "expect_column_pair_values_to_be_equal",
        "expect_column_pair_values_a_to_be_greater_than_b",
        "expect_select_column_values_to_be_unique_within_record",
    }
)
WHOLE_TABLE_UNIQUE = frozenset({"expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"})


@dataclass(frozen=True)
class StreamPlan:
    """How each expectation of a suite is evaluated on a streamed table."""

    first_chunk: list[dict[str, Any]]  # schema checks, and checks naming a missing column
    every_chunk: list[dict[str, Any]]  # row-wise: unexpected counts add up over chunks
    shared_keys: list[dict[str, Any]]  # whole-table uniqueness: rows whose key hash is shared
    whole_columns: list[dict[str, Any]]  # anything else: its columns, whole


def expectation_columns(expectation: dict[str, Any]) -> list[str]:
    """The columns an expectation configuration names, in order."""
    kwargs = expectation.get("kwargs", {})
    named = [kwargs[k] for k in ("column", "column_A", "column_B") if kwargs.get(k) is not None]
    return [str(c) for c in [*named, *(kwargs.get("column_list") or [])]]


def plan_stream(expectations: list[dict[str, Any]], columns: list[str]) -> StreamPlan:
    """Sort a suite's expectations by how they can be evaluated without the whole table.

    An expectation with ``mostly`` below 1 is judged on a proportion, not on "no row
    broke it", so it is not combined from chunks: it gets its columns whole.
    """
    plan = StreamPlan([], [], [], [])
    for exp in expectations:
        kind = str(exp.get("type"))
        exact = exp.get("kwargs", {}).get("mostly") in (None, 1, 1.0)
        if kind in SCHEMA_LEVEL or not set(expectation_columns(exp)) <= set(columns):
            plan.first_chunk.append(exp)  # GX reports the missing column as on a whole frame
        elif kind in ROW_WISE and exact:
            plan.every_chunk.append(exp)
        elif kind in WHOLE_TABLE_UNIQUE and exact:
            plan.shared_keys.append(exp)
        else:
            plan.whole_columns.append(exp)
    return plan


def validate_duckdb_table(
    con: duckdb.DuckDBPyConnection,
    schema: str,
    table: str,
    suite: str,
    *,
    chunk_rows: int = CHUNK_ROWS,
    source: str = "",
    project_root: str | Path | None = None,
) -> ValidationSummary:
    """Validate a DuckDB table with GX's pandas engine without ever holding it whole.

    A table of at most ``chunk_rows`` rows (rounded down to DuckDB's 2,048-row vectors, at
    least one vector) is validated as one frame. A larger one is streamed:

    - row-wise expectations (not null, type, in set, ...) run on every chunk; a chunk's
      unexpected rows are its own, so the counts add up to the table's;
    - schema expectations (column list and order) run on the first chunk, as do those that
      name a column the table lacks (GX reports it as on a whole frame);
    - uniqueness (``expect_column_values_to_be_unique``, ``expect_compound_columns_to_be_unique``)
      runs on the rows whose DuckDB ``hash()`` of the key columns is shared with another
      row: equal keys have equal hashes, so every duplicate is among them and GX counts
      exactly what it would count on the whole table. Normally that is no row; when it is
      many, they are split into bounded buckets by hash, each holding whole hash groups;
    - any other expectation gets the columns it names, whole (still far narrower than the table).

    Memory is bounded by one chunk (plus the shared-key rows of one bucket).
    """
    fqn = f'"{ident(schema)}"."{ident(table)}"'
    started = time.perf_counter()
    config = suite_config(suite, project_root=project_root)
    columns = data_columns(
        r[0]
        for r in con.execute(
            "select column_name from information_schema.columns "
            "where table_schema = ? and table_name = ? order by ordinal_position",
            [schema, table],
        ).fetchall()
    )
    rows = _count(con, fqn)
    vectors = max(1, chunk_rows // VECTOR_ROWS)
    select = f"select {_quoted(columns)} from {fqn}"
    validator = FrameValidator(suite)
    parts: dict[str, list[ExpectationOutcome]] = {}

    def collect(frame: pd.DataFrame, expectations: list[dict[str, Any]]) -> None:
        if expectations:
            for key, outcome in validator.outcomes(frame, suite_of(config, expectations)).items():
                parts.setdefault(key, []).append(outcome)

    if rows <= vectors * VECTOR_ROWS:
        collect(con.execute(select).df(), config["expectations"])
    else:
        plan = plan_stream(config["expectations"], columns)
        for i, chunk in enumerate(iter_chunks(con, select, vectors)):
            if i and not plan.every_chunk:
                break
            collect(chunk, (plan.first_chunk if i == 0 else []) + plan.every_chunk)
        for exp in plan.shared_keys:
            for frame in _shared_key_rows(con, fqn, expectation_columns(exp), vectors * VECTOR_ROWS):
                collect(frame, [exp])
        if plan.whole_columns:
            needed = {c for e in plan.whole_columns for c in expectation_columns(e)}
            named = [c for c in columns if c in needed] or columns[:1]  # table-level: one column
            collect(con.execute(f"select {_quoted(named)} from {fqn}").df(), plan.whole_columns)
    return stamp(summary_of_parts(config, parts, rows=rows, source=source), validator, started)


def _shared_key_rows(
    con: duckdb.DuckDBPyConnection, fqn: str, key: list[str], bucket_rows: int
) -> Iterator[pd.DataFrame]:
    """The ``key`` columns of the rows whose key hash another row shares, in buckets.

    Yields at least one frame (empty when every hash is distinct). Each bucket holds whole
    hash groups (``hash % buckets``), so duplicates never straddle two buckets.
    """
    cols = _quoted(key)
    shared = "_gx_shared_keys"
    con.execute(
        f"create or replace temp table {shared} as "
        f"with keyed as (select hash({cols}) as _gx_key_hash, {cols} from {fqn}) "
        f"select * from keyed where _gx_key_hash in "
        f"(select _gx_key_hash from keyed group by _gx_key_hash having count(*) > 1)"
    )
    try:
        buckets = max(1, -(-_count(con, shared) // bucket_rows))
        for bucket in range(buckets):
            yield con.execute(f"select {cols} from {shared} where _gx_key_hash % {buckets} = {bucket}").df()
    finally:
        con.execute(f"drop table if exists {shared}")


def _count(con: duckdb.DuckDBPyConnection, relation: str) -> int:
    row = con.execute(f"select count(*) from {relation}").fetchone()
    return int(row[0]) if row else 0


def _quoted(columns: list[str]) -> str:
    return ", ".join('"' + c.replace('"', '""') + '"' for c in columns)
