"""Embedded mode: load one source stream from CSV into DuckDB as Airbyte would.

The raw table looks like the one Airbyte's DuckDB destination writes: the three
``_airbyte_*`` meta columns followed by the typed data columns, so the downstream SQL
(dbt staging models, GX suites) is the same whether Airbyte or this loader ran.

Guarantees:

- read only from regular files inside the source folder (``tagifai.sources``): a link, a
  FIFO, a device or a directory is refused before anything is read, and no message here
  ever shows content of a file outside the folder;
- one version of the source: the stream's file is copied once to a private snapshot while
  it is hashed, the other file of the pair is hashed before and after, and the snapshot is
  what is loaded; the pair's fingerprint is recorded in the table reference
  (``source_fingerprint``), so the transform can refuse tables loaded from different
  versions of the source;
- full refresh, overwrite: the raw table holds exactly the file's records afterwards;
- atomic and lossless: the whole file is parsed and checked in a staging table inside
  one transaction, and only then does it replace the raw table in that same
  transaction; any error rolls back and leaves the previous raw table as it was;
- idempotent: the meta columns are derived from the content, and an unchanged source
  keeps its first extraction time, so loading the same file twice leaves an identical
  table.

Only what cannot be typed is rejected here. Duplicates, nulls and values that break a rule
of the data (empty text, ids below 1, ...) load as they are: the validation step reports
them, with counts, in its suite, on this path and on Airbyte's alike. Every position in a
message is a line of the file (a quoted newline makes records and lines differ).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from components.airbyte_sync.csv_file import MAX_LINE_BYTES, CsvFile, csv_problem, quote
from components.artifacts import TableRef
from components.progress import progress
from components.versions import duckdb_table_version
from components.warehouse import (
    MEMORY_LIMIT_ENV,
    RAW_SCHEMA,
    WarehouseError,
    duckdb_connect,
    ident,
    parse_uri,
)
from tagifai.sources import SourceFileError, snapshot_source_file

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger(__name__)

# Streams of the source and their typed columns, in the order the raw table has them.
STREAMS: dict[str, dict[str, str]] = {
    "projects": {"id": "BIGINT", "created_on": "TIMESTAMP", "title": "VARCHAR", "description": "VARCHAR"},
    "tags": {"id": "BIGINT", "tag": "VARCHAR"},
}
META_COLUMNS: tuple[str, ...] = ("_airbyte_raw_id", "_airbyte_extracted_at", "_airbyte_meta")

# What a value must look like to be typed. DuckDB's casts are too lenient to rely on
# alone: '1.5'::BIGINT rounds to 2, '1e3' and '0x10' are integers, 'epoch' and
# 'infinity' are timestamps, and a UTC offset is silently dropped.
_INTEGER = r"[+-]?[0-9]+"
_TIMESTAMP = r"[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?)?"

# Strict, fully explicit CSV dialect: RFC 4180 quoting, no sniffing, no row skipping or
# padding, so a malformed file fails instead of loading something else. The read buffer is
# one maximal line: DuckDB's default (16 lines, 1 GiB) does not fit its own memory limit.
_CSV_OPTIONS = (
    "header = true, auto_detect = false, delim = ',', quote = '\"', escape = '\"', "
    "strict_mode = true, null_padding = false, ignore_errors = false, encoding = 'utf-8', "
    f"allow_quoted_nulls = false, max_line_size = {MAX_LINE_BYTES}, buffer_size = {MAX_LINE_BYTES}"
)


class SourceError(ValueError):
    """The source file cannot be loaded; the message names the file and the problem."""


@dataclass(frozen=True)
class _Check:
    column: str
    pattern: str
    sql_type: str
    expected: str


def load_stream(
    source_dir: str | Path,
    stream: str,
    warehouse_uri: str,
    *,
    schema: str = RAW_SCHEMA,
    lock_wait_s: float | None = None,
) -> TableRef:
    """Load ``<source_dir>/<stream>.csv`` into the raw table ``<schema>.<stream>``.

    Args:
        source_dir: Folder holding ``projects.csv`` and ``tags.csv``.
        stream: ``projects`` or ``tags``.
        warehouse_uri: A DuckDB warehouse (``duckdb:///path`` or a bare path).
        schema: Schema of the raw tables.
        lock_wait_s: How long to wait for the warehouse while other processes hold it
            (e.g. the sync of the other stream, running at the same time on the same
            DuckDB file); default ``KFP_MLOPS_WAREHOUSE_LOCK_TIMEOUT``.

    Returns:
        A reference to the loaded table: rows, its data version
        (:func:`components.warehouse.duckdb_table_version`) and the fingerprint of the source
        pair it was loaded from (``source_fingerprint``, a ``tagifai.sources.SourceFingerprint`` token).

    Raises:
        SourceError: The file is missing, not a regular file inside the folder, empty or
            malformed, a value cannot be typed, or the source changed while it was read.
        WarehouseError: The warehouse is not DuckDB, or an identifier is invalid.
    """
    if stream not in STREAMS:
        raise SourceError(f"unknown stream {stream!r}: expected one of {', '.join(STREAMS)}")
    ident(schema)
    wh = parse_uri(warehouse_uri)
    if wh.kind != "duckdb":
        raise WarehouseError(
            f"embedded mode loads into DuckDB only, not {warehouse_uri!r}; to load BigQuery run "
            "airbyte_sync with mode='server' against an Airbyte connection whose destination is "
            "BigQuery"
        )
    path = Path(source_dir) / f"{stream}.csv"
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"kfp-mlops-sync-{stream}-") as tmp:
        # What is loaded is this snapshot: exactly the bytes the fingerprint names.
        snapshot = Path(tmp) / path.name
        try:
            source = snapshot_source_file(source_dir, path.name, snapshot)
        except SourceFileError as exc:
            raise SourceError(str(exc)) from None
        csv_file = CsvFile(snapshot, path)
        columns = _checked_columns(csv_file, STREAMS[stream])
        with duckdb_connect(wh.path, purpose=f"load {schema}.{stream}", wait_s=lock_wait_s) as con:
            con.begin()
            try:
                rows, content = _replace_raw_table(con, csv_file, stream, schema, columns)
                # The table's data version, as every reader of it computes it (components.warehouse):
                # the transform and the validation check that the table still holds it.
                _, version = duckdb_table_version(con, schema, stream)
                con.commit()
            except BaseException:
                with suppress(Exception):  # the original error is the one to report
                    con.rollback()
                raise
    seconds = time.monotonic() - started
    progress(f"{stream}: {rows} rows loaded in {seconds:.1f} s ({rows / max(seconds, 1e-9):,.0f} rows/s)")
    log.info(
        "loaded %s rows from %s (source fingerprint %s) into %s.%s (content %s, data version %s) in %.1f s",
        rows,
        path,
        source.token,
        schema,
        stream,
        content,
        version,
        seconds,
    )
    return TableRef(
        warehouse=str(wh),
        schema=schema,
        table=stream,
        rows=rows,
        data_version=version,
        source_fingerprint=source.token,
    )


def _checked_columns(csv_file: CsvFile, expected: dict[str, str]) -> list[str]:
    """The file's column names in file order, once they are exactly the expected set."""
    path = csv_file.shown
    if csv_file.data.stat().st_size == 0:
        raise SourceError(f"{path}: file is empty (0 bytes); expected a header and rows")
    with csv_file.data.open("rb") as fh:
        first = fh.readline(1 << 20)
    try:
        line = first.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path}: header is not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc
    header = next(csv.reader([line.rstrip("\r\n")]), [])
    want = list(expected)
    missing = [c for c in want if c not in header]
    extra = [c for c in header if c not in expected]
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if missing or extra or duplicated:
        problems = []
        if missing:
            problems.append(f"missing column(s) {', '.join(missing)}")
        if extra:
            problems.append(f"unexpected column(s) {', '.join(quote(c) for c in extra)}")
        if duplicated:
            problems.append(f"repeated column(s) {', '.join(duplicated)}")
        shown = quote(",".join(header)) if header else "<empty>"
        raise SourceError(f"{path}: {'; '.join(problems)} (header {shown}; expected {', '.join(want)})")
    return header


def _replace_raw_table(
    con: duckdb.DuckDBPyConnection,
    csv_file: CsvFile,
    stream: str,
    schema: str,
    columns: list[str],
) -> tuple[int, str]:
    """Stage, check and swap in one stream; the caller owns the transaction."""
    import duckdb

    types = STREAMS[stream]
    path = csv_file.shown
    stage = f"_airbyte_stage_{stream}"
    target = f'"{schema}"."{stream}"'

    # 1. Parse the whole file as text (so nothing is coerced on the way in), numbering the
    #    records in file order (the scan keeps insertion order).
    as_text = ", ".join(f"'{c}': 'VARCHAR'" for c in columns)
    try:
        con.execute(
            f"create or replace temp table {stage} as select row_number() over () as _record, * "
            f"from read_csv(?, columns = {{{as_text}}}, {_CSV_OPTIONS})",
            [str(csv_file.data)],
        )
    except duckdb.OutOfMemoryException as exc:  # not the file's fault: say what to change
        raise WarehouseError(
            f"{path}: DuckDB ran out of memory loading it ({str(exc).splitlines()[0]}); raise "
            f"{MEMORY_LIMIT_ENV} or free space for its spill folder"
        ) from exc
    except duckdb.Error as exc:
        raise SourceError(f"{path}: malformed CSV at {csv_problem(str(exc), csv_file)}") from None

    rows = _scalar(con, f"select count(*) from {stage}")
    if rows == 0:
        raise SourceError(f"{path}: no data rows (header only)")

    # 2. Check every value that must be typed; report the first offender of each column.
    for check in _checks(types):
        _check_column(con, csv_file, stage, check)

    # 3. Type, version the content, replace the raw table.
    typed = ", ".join(_typed_expr(c, types[c]) for c in types)
    con.execute(f"create or replace temp table {stage}_typed as select _record, {typed} from {stage}")
    version = _content_version(con, f"{stage}_typed", stream, types)
    # Airbyte puts its job id in sync_id; here the load is named by its content.
    meta = json.dumps({"changes": [], "sync_id": int(version[:13], 16)}, separators=(",", ":"))
    extracted_us = _previous_extraction(con, schema, stream, meta) or time.time_ns() // 1000

    con.execute(f'create schema if not exists "{schema}"')
    # raw ids: unique, and the same for the same content (record number within this version).
    con.execute(
        f"create or replace table {target} as select "
        "md5(? || _record::VARCHAR)::UUID::VARCHAR as _airbyte_raw_id, "
        "make_timestamptz(?::BIGINT) as _airbyte_extracted_at, "
        "?::VARCHAR as _airbyte_meta, "
        f"{', '.join(types)} from {stage}_typed",
        [f"{stream}|{version}|", extracted_us, meta],
    )
    con.execute(f"drop table {stage}")
    con.execute(f"drop table {stage}_typed")
    return rows, version


def _content_version(con: duckdb.DuckDBPyConnection, table: str, stream: str, types: dict[str, str]) -> str:
    """Order-independent hash of the typed rows (a multiset hash: the sum of row digests)."""
    row = "to_json([" + ", ".join(f"{c}::VARCHAR" for c in types) + "])"
    agg = con.execute(
        "select count(*), sum((h >> 64)::UBIGINT), sum((h & 18446744073709551615::UHUGEINT)::UBIGINT) "
        f"from (select md5_number({row}) as h from {table})"
    ).fetchone()
    digest = hashlib.sha256(f"{stream}|{','.join(f'{c}:{t}' for c, t in types.items())}|{agg}".encode())
    return digest.hexdigest()[:16]


def _checks(types: dict[str, str]) -> list[_Check]:
    checks = []
    for column, sql_type in types.items():
        if sql_type == "BIGINT":
            checks.append(_Check(column, _INTEGER, sql_type, "an integer"))
        elif sql_type == "TIMESTAMP":
            checks.append(_Check(column, _TIMESTAMP, sql_type, "a date or 'YYYY-MM-DD HH:MM:SS' timestamp"))
    return checks


def _check_column(con: duckdb.DuckDBPyConnection, csv_file: CsvFile, stage: str, check: _Check) -> None:
    value = f"trim({check.column})"
    bad = (
        f"{check.column} is not null and (not regexp_full_match({value}, '{check.pattern}') "
        f"or try_cast({value} as {check.sql_type}) is null)"
    )
    count = _scalar(con, f"select count(*) from {stage} where {bad}")
    if count == 0:
        return
    first = con.execute(
        f"select _record, {check.column} from {stage} where {bad} order by _record limit 1"
    ).fetchone()
    assert first is not None
    record, raw = first
    line = csv_file.line(record=record)
    where = f"on line {line}" if line else f"in data record {record}"
    raise SourceError(
        f"{csv_file.shown}: column {check.column} must be {check.expected}: {count} value(s) cannot be "
        f"read as {check.sql_type}, first {quote(raw)} {where}"
    )


def _typed_expr(column: str, sql_type: str) -> str:
    if sql_type == "VARCHAR":
        return column
    return f"cast(trim({column}) as {sql_type}) as {column}"


def _previous_extraction(con: duckdb.DuckDBPyConnection, schema: str, stream: str, meta: str) -> int | None:
    """Extraction time (epoch µs) of the current raw table when it holds this very content."""
    cols = {
        r[0]
        for r in con.execute(
            "select column_name from information_schema.columns where table_schema = ? and table_name = ?",
            [schema, stream],
        ).fetchall()
    }
    if not set(META_COLUMNS) <= cols:
        return None
    row = con.execute(
        f"select epoch_us(min(_airbyte_extracted_at)), count(distinct _airbyte_meta), min(_airbyte_meta) "
        f'from "{schema}"."{stream}"'
    ).fetchone()
    if row is None or row[0] is None or row[1] != 1 or row[2] != meta:
        return None
    return int(row[0])


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = con.execute(sql).fetchone()
    return int(row[0]) if row and row[0] is not None else 0
