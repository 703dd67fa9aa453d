"""Validate a warehouse table or a frame against a committed Great Expectations suite.

The suites live in the GX file project ``great_expectations/gx/expectations/<suite>.json``
(see ``great_expectations/README.md``). Validation never opens that file context: it
builds the suite from the committed JSON inside an *ephemeral* context, which is cheap
(~30 ms), writes nothing into the repository and works on a read-only image.

Two engines:

- DuckDB (embedded default) and parquet: GX's pandas engine (GX's SQL datasource cannot
  open DuckDB). A DuckDB table larger than one chunk (``CHUNK_ROWS``) is never read whole:
  row-wise expectations run on bounded chunks streamed out of DuckDB and their unexpected
  counts are added up; the schema checks run on the first chunk; the whole-table
  uniqueness checks run on the only rows that can break them, those whose key hash
  (computed in DuckDB) is shared with another row (see :func:`validate_duckdb_table`);
- BigQuery: a GX SQL datasource (sqlalchemy-bigquery, ``bigquery://PROJECT/DATASET``) on
  the steps' own BigQuery client (``components.bigquery.bigquery_client``: its credentials
  and endpoint), over a query asset, so the checks run as SQL in BigQuery and no rows are
  downloaded. The column-type checks run on a table asset of the same table: GX reads only
  the column *names* of a query asset (its type reflection falls back to the names for
  BigQuery), so a type check on a query asset fails with ``KeyError: 'type'`` whatever the
  data (found against the BigQuery emulator). :func:`bigquery_batch_spec` builds everything
  that datasource needs without network.

Airbyte's meta columns (``_airbyte_*``) are dropped before validating, so the
ordered-column checks see the data columns only.

Every run writes a self-contained HTML report (no external assets: GX's own Data Docs
load their CSS/JS from CDNs, which a cluster without egress or a KFP UI cannot fetch).
A failed suite raises :class:`ValidationFailed` after the report is written; its message
names every failed expectation, its column(s) and the number of rows that broke it.
"""

from __future__ import annotations

import contextlib
import copy
import html
import json
import logging
import math
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.artifacts import read_table_ref
from components.parquet import PARQUET_SCHEMA, PARQUET_VIEW, parquet_view
from components.paths import project_dir
from components.versions import check_table_version, duckdb_table_version
from components.warehouse import (
    STREAM_VECTORS,
    VECTOR_ROWS,
    WarehouseError,
    duckdb_connect,
    duckdb_table_exists,
    ident,
    iter_chunks,
    parse_uri,
)

if TYPE_CHECKING:
    import duckdb
    import great_expectations as gx
    import pandas as pd

log = logging.getLogger(__name__)

SUITES: tuple[str, ...] = ("projects", "tags", "labeled_projects")
AIRBYTE_PREFIX = "_airbyte_"
# SUMMARY gives unexpected counts and a few values without materialising every
# unexpected row (COMPLETE would, on a million-row table).
RESULT_FORMAT: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": 5}
SAMPLE_VALUES = 5
# Expectation type names as each SQL dialect spells them. The committed suites say
# ``str``, which matches pandas 3 string columns; BigQuery calls that type STRING.
SQL_TYPE_NAMES: dict[str, dict[str, str]] = {
    "bigquery": {"str": "STRING", "int": "INTEGER", "float": "FLOAT", "bool": "BOOLEAN"},
}
# DuckDB tables with more rows than this are validated chunk by chunk (a multiple of
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
            return f"{head}: observed {_short(self.observed, 200)}"
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


# --- suites -------------------------------------------------------------------------


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

    ``dialect`` translates type names for a SQL engine (``str`` -> ``STRING`` on BigQuery).
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
    return config


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


def _ephemeral_context() -> Any:
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


# --- frames (DuckDB, parquet) --------------------------------------------------------


def data_columns(columns: Any) -> list[str]:
    """The columns that are data: everything but Airbyte's ``_airbyte_*`` meta columns."""
    return [str(c) for c in columns if not str(c).startswith(AIRBYTE_PREFIX)]


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
            _ephemeral_context()
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
        return {str(r.expectation_config.id): _outcome(r) for r in result.results}


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
    summary = _summary(config, {k: [v] for k, v in outcomes.items()}, rows=len(frame), source=source)
    summary.data_version = data_version
    return _finish(_stamp(summary, validator, started), data_docs_path, raise_on_failure)


# --- DuckDB tables, streamed -----------------------------------------------------------


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
    return _stamp(_summary(config, parts, rows=rows, source=source), validator, started)


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


# --- BigQuery (pushed down) ----------------------------------------------------------


@dataclass(frozen=True)
class SqlBatchSpec:
    """Everything the GX SQL datasource, asset and batch definition need (no network)."""

    connection_string: str  # sqlalchemy-bigquery: bigquery://PROJECT/DATASET[?location=..]
    query: str  # the data columns of the table, in table order
    datasource_name: str
    asset_name: str
    batch_definition_name: str = "whole_table"
    dialect: str = "bigquery"
    schema: str = ""  # the table itself, for the checks a query asset cannot serve (column types)
    table: str = ""

    def datasource_config(self, client: Any = None) -> dict[str, Any]:
        """Keyword arguments of ``context.data_sources.add_sql``.

        With `client` (a ``google.cloud.bigquery.Client``), sqlalchemy-bigquery uses that
        client, its credentials and endpoint, instead of building one of its own.
        """
        config: dict[str, Any] = {"name": self.datasource_name, "connection_string": self.connection_string}
        if client is not None:
            joiner = "&" if "?" in self.connection_string else "?"
            config["connection_string"] += f"{joiner}user_supplied_client=True"
            config["kwargs"] = {"connect_args": {"client": client}}
        return config

    def asset_config(self) -> dict[str, Any]:
        """Keyword arguments of ``datasource.add_query_asset``."""
        return {"name": self.asset_name, "query": self.query}

    def table_asset_config(self) -> dict[str, Any]:
        """Keyword arguments of ``datasource.add_table_asset``: the whole table, for type checks."""
        return {"name": f"{self.asset_name}_table", "table_name": self.table, "schema_name": self.schema}


# Expectations on column types: GX resolves them on a table asset only (see the module doc).
COLUMN_TYPE_EXPECTATIONS = frozenset(
    {"expect_column_values_to_be_of_type", "expect_column_values_to_be_in_type_list"}
)


def bigquery_batch_spec(warehouse_uri: str, schema: str, table: str, columns: list[str]) -> SqlBatchSpec:
    """The BigQuery datasource and batch for ``schema.table``: pure, testable without network.

    ``columns`` are the table's columns in order (from :func:`bigquery_columns`); the
    query selects the data columns only, so the ordered-column check sees no Airbyte
    meta columns and no row leaves BigQuery.
    """
    wh = parse_uri(warehouse_uri)
    if wh.kind != "bigquery":
        raise WarehouseError(f"not a BigQuery warehouse: {warehouse_uri!r}")
    ident(schema)
    ident(table)
    keep = data_columns(columns)
    if not keep:
        raise WarehouseError(f"table {schema}.{table} has no data columns (got {columns})")
    select = ", ".join(f"`{ident(c)}`" for c in keep)
    location = f"?location={wh.location}" if wh.location else ""
    return SqlBatchSpec(
        connection_string=f"bigquery://{wh.project}/{schema}{location}",
        query=f"select {select} from `{wh.project}.{schema}.{table}`",
        datasource_name=f"bigquery_{schema}",
        asset_name=table,
        schema=schema,
        table=table,
    )


def bigquery_columns(warehouse_uri: str, schema: str, table: str, bq_client: Any = None) -> list[str]:
    """The column names of a BigQuery table, in order (a metadata call, no data scanned)."""
    from components.bigquery import bigquery_client

    wh = parse_uri(warehouse_uri)
    client = bq_client or bigquery_client(wh)
    return [f.name for f in client.get_table(f"{wh.project}.{ident(schema)}.{ident(table)}").schema]


def validate_sql(
    spec: SqlBatchSpec,
    suite: str,
    *,
    data_docs_path: str | Path | None = None,
    raise_on_failure: bool = True,
    source: str = "",
    data_version: str = "",
    project_root: str | Path | None = None,
    client: Any = None,
) -> ValidationSummary:
    """Validate a SQL batch where it lives (needs the warehouse and its credentials).

    The suite's column-type checks run on the table (``spec.table``), the others on the
    query; the outcomes are reported in the suite's order. `client` is the BigQuery client
    sqlalchemy-bigquery is to use (default: one it builds from the environment).
    """
    from types import SimpleNamespace

    started = time.perf_counter()
    config = suite_config(suite, dialect=spec.dialect, project_root=project_root)
    expectations = config.get("expectations", [])
    typed = [e for e in expectations if e["type"] in COLUMN_TYPE_EXPECTATIONS and spec.table]
    rest = [e for e in expectations if e not in typed]
    datasource = _ephemeral_context().data_sources.add_sql(**spec.datasource_config(client))
    results: list[Any] = []
    success = True
    for chosen, asset in (
        (rest, lambda: datasource.add_query_asset(**spec.asset_config())),
        (typed, lambda: datasource.add_table_asset(**spec.table_asset_config())),
    ):
        if chosen:
            batch = asset().add_batch_definition_whole_table(spec.batch_definition_name).get_batch()
            result = batch.validate(suite_of(config, chosen), result_format=RESULT_FORMAT)
            results += result.results
            success = success and bool(result.success)
    order = {str(e["id"]): i for i, e in enumerate(expectations)}
    results.sort(key=lambda r: order.get(str(r.expectation_config.id), len(order)))
    combined = SimpleNamespace(results=results, success=success)
    summary = summarize(combined, suite, rows=None, source=source or spec.query, data_version=data_version)
    summary.seconds = time.perf_counter() - started
    return _finish(summary, data_docs_path, raise_on_failure)


# --- tables and artifacts -------------------------------------------------------------


def validate_table(
    warehouse_uri: str,
    schema: str,
    table: str,
    suite: str,
    *,
    data_docs_path: str | Path | None = None,
    raise_on_failure: bool = True,
    data_version: str = "",
    bq_client: Any = None,
    project_root: str | Path | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> ValidationSummary:
    """Validate a warehouse table: DuckDB via pandas in bounded chunks, BigQuery pushed down as SQL.

    ``data_version`` defaults to the content hash of the table (DuckDB only).
    """
    wh = parse_uri(warehouse_uri)
    source = f"{wh}#{schema}.{table}"
    common: dict[str, Any] = {
        "data_docs_path": data_docs_path,
        "raise_on_failure": raise_on_failure,
        "source": source,
        "project_root": project_root,
    }
    if wh.kind == "bigquery":
        from components.bigquery import bigquery_client

        client = bq_client or bigquery_client(wh)
        columns = bigquery_columns(warehouse_uri, schema, table, client)
        spec = bigquery_batch_spec(warehouse_uri, schema, table, columns)
        return validate_sql(spec, suite, data_version=data_version, client=client, **common)
    with duckdb_connect(wh.path, read_only=True, purpose=f"validate {schema}.{table}") as con:
        if not duckdb_table_exists(con, ident(schema), ident(table)):
            raise WarehouseError(f"table {schema}.{table} not found in {wh.path}")
        # What is validated must be what the upstream step of this run wrote.
        _, actual = check_table_version(con, schema, table, data_version, "validated")
        summary = validate_duckdb_table(
            con, schema, table, suite, chunk_rows=chunk_rows, source=source, project_root=project_root
        )
        summary.data_version = actual
    return _finish(summary, data_docs_path, raise_on_failure)


def validate_input(
    path: str | Path,
    suite: str,
    *,
    data_docs_path: str | Path | None = None,
    raise_on_failure: bool = True,
    project_root: str | Path | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> ValidationSummary:
    """Validate what a KFP ``Dataset`` artifact holds: a table reference or parquet.

    A reference is validated in its warehouse (pushed down on BigQuery); its recorded
    data version is kept so the report joins the lineage of the step that wrote it.
    Parquet is validated in DuckDB like a DuckDB table, never held whole; its data version
    is the one extract recorded for it (``frame_version`` of the frame it wrote).
    """
    ref = read_table_ref(path)
    if ref is not None:
        return validate_table(
            ref.warehouse,
            ref.schema,
            ref.table,
            suite,
            data_docs_path=data_docs_path,
            raise_on_failure=raise_on_failure,
            data_version=ref.data_version,
            project_root=project_root,
            chunk_rows=chunk_rows,
        )
    # Parquet: streamed through DuckDB like a warehouse table, in chunks of `chunk_rows`.
    with parquet_view(path) as con:
        summary = validate_duckdb_table(
            con,
            PARQUET_SCHEMA,
            PARQUET_VIEW,
            suite,
            chunk_rows=chunk_rows,
            source=str(path),
            project_root=project_root,
        )
        summary.data_version = duckdb_table_version(con, PARQUET_SCHEMA, PARQUET_VIEW)[1]
    return _finish(summary, data_docs_path, raise_on_failure)


# --- results ---------------------------------------------------------------------------


def summarize(
    result: Any, suite: str, *, rows: int | None, source: str = "", data_version: str = ""
) -> ValidationSummary:
    """Reduce a GX ``ExpectationSuiteValidationResult`` to a :class:`ValidationSummary`."""
    outcomes = [_outcome(r) for r in result.results]
    if rows is None:  # SQL: the row count comes with any row-level result
        counts = [r.result.get("element_count") for r in result.results if r.result]
        rows = next((int(c) for c in counts if c is not None), None)
    summary = _summary_of(suite, outcomes, rows=rows, source=source)
    summary.success = summary.success and bool(result.success)
    summary.data_version = data_version
    return summary


def _summary(
    config: dict[str, Any], parts: dict[str, list[ExpectationOutcome]], *, rows: int | None, source: str
) -> ValidationSummary:
    """The summary of a suite from its outcomes by expectation id, in the suite's order."""
    expected = [str(e["id"]) for e in config["expectations"]]
    missing = [key for key in expected if key not in parts]
    if missing:  # a GX result per expectation is the contract: never report a partial suite
        raise RuntimeError(f"suite {config['name']}: GX returned no result for expectation(s) {missing}")
    outcomes = [merge_outcomes(parts[key]) for key in expected]
    return _summary_of(str(config["name"]), outcomes, rows=rows, source=source)


def _summary_of(
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


def _outcome(r: Any) -> ExpectationOutcome:
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
        return _short(value, 80)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return _jsonable(value.item())
    return _short(str(value), 80)


def _short(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _stamp(summary: ValidationSummary, validator: FrameValidator, started: float) -> ValidationSummary:
    """Record how long the validation took and what GX was given."""
    summary.seconds = time.perf_counter() - started
    summary.frames, summary.largest_frame = validator.frames, validator.largest_frame
    return summary


def _finish(
    summary: ValidationSummary, data_docs_path: str | Path | None, raise_on_failure: bool
) -> ValidationSummary:
    if data_docs_path is not None:
        path = Path(data_docs_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        summary.data_docs = str(path)
        path.write_text(render_html(summary), encoding="utf-8")
    log.info("%s (%.2f s)", summary.message(), summary.seconds)
    if raise_on_failure and not summary.success:
        raise ValidationFailed(summary)
    return summary


# --- Data Docs ---------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5rem;color:#1f2933}
h1{font-size:1.3rem;margin:0 0 .5rem}
.badge{display:inline-block;padding:.15rem .6rem;border-radius:1rem;color:#fff;font-weight:600}
.pass{background:#2f855a}.fail{background:#c53030}.error{background:#b7791f}
dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem;margin:.8rem 0 1.2rem}
dt{color:#52606d}dd{margin:0;font-family:ui-monospace,monospace;word-break:break-all}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{border:1px solid #d9e2ec;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f0f4f8}tr.failed td{background:#fff5f5}
code{font-family:ui-monospace,monospace;font-size:.85rem}
"""


def _frames_text(summary: ValidationSummary) -> str:
    if summary.frames <= 1 or summary.largest_frame is None:
        return "one frame" if summary.frames == 1 else "SQL in the warehouse"
    return f"{summary.frames} frames of at most {summary.largest_frame} rows (streamed)"


def render_html(summary: ValidationSummary) -> str:
    """A self-contained HTML report: inline CSS, no scripts, no external links."""
    esc = html.escape
    status = "pass" if summary.success else "fail"
    facts = {
        "suite": summary.suite,
        "result": f"{summary.successful} of {summary.evaluated} expectations passed",
        "rows": "" if summary.rows is None else str(summary.rows),
        "source": summary.source,
        "data version": summary.data_version,
        "validated at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "seconds": f"{summary.seconds:.2f}",
        "validated as": _frames_text(summary),
    }
    rows = []
    for i, o in enumerate(summary.outcomes, 1):
        state = "pass" if o.success else ("error" if o.error else "fail")
        if o.error:
            detail = f"error: {o.error}"
        elif o.unexpected_count is not None:
            detail = f"{o.unexpected_count} unexpected"
        elif o.observed is not None:
            detail = f"observed: {_short(o.observed, 300)}"
        else:
            detail = ""
        sample = ", ".join(_short(v, 80) for v in o.unexpected_values) if not o.success else ""
        rows.append(
            f'<tr class="{"" if o.success else "failed"}"><td>{i}</td>'
            f"<td><code>{esc(o.expectation)}</code>{f'<br>{esc(o.rule)}' if o.rule else ''}</td>"
            f"<td>{esc(', '.join(o.columns))}</td>"
            f'<td><span class="badge {state}">{state}</span></td>'
            f"<td>{esc(detail)}</td><td>{esc(sample)}</td></tr>"
        )
    facts_html = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts.items())
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>GX suite {esc(summary.suite)}: {status}</title>'
        f"<style>{_CSS}</style></head><body>"
        f'<h1>Suite <code>{esc(summary.suite)}</code> <span class="badge {status}">{status}</span></h1>'
        f"<dl>{facts_html}</dl>"
        "<table><thead><tr><th>#</th><th>expectation</th><th>column(s)</th><th>status</th>"
        "<th>observed / unexpected</th><th>sample unexpected values</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></body></html>\n"
    )
