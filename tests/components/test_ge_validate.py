"""ge_validate: real Great Expectations on the lesson's dataset, DuckDB and parquet inputs."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from kfp import dsl

from components.artifacts import TableRef
from components.ge_validate.bigquery import bigquery_batch_spec
from components.ge_validate.component import ge_validate
from components.ge_validate.core import validate_input, validate_table
from components.ge_validate.frames import nanosecond_times, validate_frame
from components.ge_validate.labels import add_label, labels
from components.ge_validate.results import ExpectationOutcome, ValidationFailed, ValidationSummary
from components.ge_validate.streaming import plan_stream
from components.ge_validate.suites import SUITES, build_suite, suite_config
from components.parquet import read_parquet, write_parquet
from components.paths import project_dir
from components.versions import TableChanged, frame_version, table_version
from components.warehouse import RAW_SCHEMA, WarehouseError, duckdb_connect, read_table

ROOT = Path(__file__).resolve().parents[2]
COLUMNS = {
    "projects": ["id", "created_on", "title", "description"],
    "tags": ["id", "tag"],
    "labeled_projects": ["id", "created_on", "title", "description", "tag"],
}
EXPECTATIONS = {"projects": 15, "tags": 6, "labeled_projects": 16}
EXTERNAL_ASSET = re.compile(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", re.IGNORECASE)


@pytest.fixture(scope="module")
def frames(madewithml_dir: Path) -> dict[str, pd.DataFrame]:
    # created_on as a timestamp, as every warehouse table and parquet file gives it to GX.
    return {
        name: pd.read_csv(
            madewithml_dir / f"{name}.csv", parse_dates=["created_on"] if name != "tags" else []
        )
        for name in SUITES
    }


def _assert_self_contained(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert not EXTERNAL_ASSET.search(text), "the report must not load anything from the network"
    assert "<script" not in text
    return text


# --- the suites on the real data -------------------------------------------------------


@pytest.mark.parametrize("suite", SUITES)
def test_suite_passes_on_the_lessons_data(
    suite: str, frames: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    docs = tmp_path / f"{suite}.html"
    summary = validate_frame(frames[suite], suite, data_docs_path=docs)

    assert summary.success, summary.message()
    assert (summary.evaluated, summary.successful, summary.failed) == (
        EXPECTATIONS[suite],
        EXPECTATIONS[suite],
        0,
    )
    assert summary.rows == 955
    assert summary.failures == []
    text = _assert_self_contained(docs)
    assert f"{EXPECTATIONS[suite]} of {EXPECTATIONS[suite]} expectations passed" in text
    assert text.count('class="badge pass"') == EXPECTATIONS[suite] + 1  # every row + the header
    assert summary.to_dict()["data_docs"] == str(docs)


def _duplicate_id(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out.loc[1, "id"] = out["id"].iloc[0]
    return out


def _null(column: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def mutate(df: pd.DataFrame) -> pd.DataFrame:
        out = df.copy()
        out.loc[3, column] = None
        return out

    return mutate


def _missing_description(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=["description"])


def _swapped_columns(df: pd.DataFrame) -> pd.DataFrame:
    return df[["id", "title", "created_on", "description"]]


def _leaked_project(df: pd.DataFrame) -> pd.DataFrame:
    """The same project (title, description) again under a fresh id: the data leak."""
    copy = df.iloc[[5]].assign(id=int(df["id"].max()) + 1)
    return pd.concat([df, copy], ignore_index=True)


def _numeric_title(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(title=range(len(df)))


def _one_numeric_title(df: pd.DataFrame) -> pd.DataFrame:
    out = df.assign(title=df["title"].astype(object))
    out.loc[7, "title"] = 42
    return out


def _set(column: str, values: dict[int, Any]) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """Give ``column`` these values at these row positions."""

    def mutate(df: pd.DataFrame) -> pd.DataFrame:
        out = df.copy()
        for row, value in values.items():
            out.loc[row, column] = value
        return out

    return mutate


def _future(days: float) -> pd.Timestamp:
    # GX evaluates now() in the validating process's local time: so does this.
    return pd.Timestamp(datetime.now() + timedelta(days=days))


def _control_characters(df: pd.DataFrame) -> pd.DataFrame:
    out = _set("title", {6: "Colours \x1b[31mred\x1b[0m"})(df)
    return _set("description", {7: "a NUL\x00 byte", 8: "a form\x0cfeed"})(out)


BLANK = "not empty or only whitespace"
CONTROL = "no control characters (tab, newline and carriage return are allowed)"
POSITIVE = "a positive integer (1 or more)"
NOT_FUTURE = "not more than 1 day after the time of validation"

BROKEN = [
    # (case, suite, mutation, what the message must name, failed expectations)
    (
        "empty_title",
        "projects",
        _set("title", {2: ""}),
        [f"expect_column_values_to_match_regex(title): 1 unexpected ({BLANK})"],
        1,
    ),
    (
        "whitespace_descriptions",
        "projects",
        _set("description", {3: "  \t\r\n ", 4: "\u00a0\u3000", 5: "\u200b"}),
        [f"expect_column_values_to_match_regex(description): 3 unexpected ({BLANK})"],
        1,
    ),
    (
        "control_characters",
        "projects",
        _control_characters,
        [
            f"expect_column_values_to_not_match_regex(title): 1 unexpected ({CONTROL})",
            f"expect_column_values_to_not_match_regex(description): 2 unexpected ({CONTROL})",
        ],
        2,
    ),
    (
        "ids_not_positive",
        "projects",
        _set("id", {0: 0, 1: -3}),
        [f"expect_column_values_to_be_between(id): 2 unexpected ({POSITIVE})"],
        1,
    ),
    (
        "created_on_far_in_the_future",
        "projects",
        _set("created_on", {0: _future(3), 1: pd.Timestamp("2100-01-01")}),
        [f"expect_column_values_to_be_between(created_on): 2 unexpected ({NOT_FUTURE})"],
        1,
    ),
    (
        "tag_id_not_positive",
        "tags",
        _set("id", {4: 0}),
        [f"expect_column_values_to_be_between(id): 1 unexpected ({POSITIVE})"],
        1,
    ),
    (
        "tags_outside_the_label_set",
        "tags",
        _set("tag", {1: "quantum-computing", 2: "NLP", 3: "mlops "}),
        ["expect_column_values_to_be_in_set(tag): 3 unexpected (one of the dataset's labels"],
        1,
    ),
    (
        "labeled_blank_title_and_future_date",
        "labeled_projects",
        lambda df: _set("created_on", {9: _future(30)})(_set("title", {8: " "})(df)),
        [
            f"expect_column_values_to_match_regex(title): 1 unexpected ({BLANK})",
            f"expect_column_values_to_be_between(created_on): 1 unexpected ({NOT_FUTURE})",
        ],
        2,
    ),
    ("duplicate_ids", "projects", _duplicate_id, ["expect_column_values_to_be_unique(id): 2 unexpected"], 1),
    (
        "null_title",
        "projects",
        _null("title"),
        ["expect_column_values_to_not_be_null(title): 1 unexpected"],
        1,
    ),
    (
        "missing_column",
        "projects",
        _missing_description,
        [
            "expect_table_columns_to_match_ordered_list(id, created_on, title, description): observed",
            "expect_column_values_to_not_be_null(description): error:",
            'The column "description" in BatchData does not exist',
        ],
        6,  # the column list, not-null, type, the compound (title, description), visible text, control characters
    ),
    (
        "wrong_column_order",
        "projects",
        _swapped_columns,
        [
            'expect_table_columns_to_match_ordered_list(id, created_on, title, description): observed ["id", "title"'
        ],
        1,
    ),
    (
        "leaked_title_description",
        "projects",
        _leaked_project,
        ["expect_compound_columns_to_be_unique(title, description): 2 unexpected"],
        1,
    ),
    ("null_tag", "tags", _null("tag"), ["expect_column_values_to_not_be_null(tag): 1 unexpected"], 1),
    (
        "null_tag_labeled",
        "labeled_projects",
        _null("tag"),
        ["expect_column_values_to_not_be_null(tag): 1 unexpected"],
        1,
    ),
    (
        "numeric_title",
        "projects",
        _numeric_title,
        ["expect_column_values_to_be_of_type(title): observed int64"],
        1,
    ),
    (
        "one_numeric_title",
        "projects",
        _one_numeric_title,
        ["expect_column_values_to_be_of_type(title): 1 unexpected"],
        1,
    ),
]


@pytest.mark.parametrize(("case", "suite", "mutate", "named", "failed"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_data_fails_naming_expectation_column_and_count(
    case: str,
    suite: str,
    mutate: Callable[[pd.DataFrame], pd.DataFrame],
    named: list[str],
    failed: int,
    frames: dict[str, pd.DataFrame],
    tmp_path: Path,
) -> None:
    docs = tmp_path / "docs" / f"{case}.html"
    with pytest.raises(ValidationFailed) as err:
        validate_frame(mutate(frames[suite]), suite, data_docs_path=docs)

    message = str(err.value)
    assert message.startswith(f"suite {suite} failed {failed} of {EXPECTATIONS[suite]} expectations: "), (
        message
    )
    for fragment in named:
        assert fragment in message
    assert message.endswith(f"; Data Docs: {docs}")
    summary = err.value.summary
    assert (summary.success, summary.failed, len(summary.failures)) == (False, failed, failed)
    # The report is written before the raise and shows the failure.
    text = _assert_self_contained(docs)
    assert f"{EXPECTATIONS[suite] - failed} of {EXPECTATIONS[suite]} expectations passed" in text
    assert 'class="badge fail">fail</span></h1>' in text


def test_failures_carry_sample_values_and_serialise(frames: dict[str, pd.DataFrame]) -> None:
    summary = validate_frame(_duplicate_id(frames["projects"]), "projects", raise_on_failure=False)
    (failure,) = summary.failures
    dup = int(frames["projects"]["id"].iloc[0])
    assert (failure.expectation, failure.columns, failure.unexpected_count) == (
        "expect_column_values_to_be_unique",
        ("id",),
        2,
    )
    assert list(failure.unexpected_values) == [dup, dup]
    data = summary.to_dict()
    assert data["failures"] == [failure.to_dict()]
    assert (data["evaluated"], data["failed"], data["rows"]) == (EXPECTATIONS["projects"], 1, 955)

    nulls = validate_frame(_null("title")(frames["projects"]), "projects", raise_on_failure=False)
    assert nulls.failures[0].unexpected_values == (None,)  # NaN becomes JSON null


def test_the_type_check_matches_pandas_3_strings_and_python_strings(frames: dict[str, pd.DataFrame]) -> None:
    """ExpectColumnValuesToBeInTypeList never matches pandas 3 strings; the suites use of_type('str')."""
    projects = frames["projects"]
    assert str(projects["title"].dtype) == "str"
    as_objects = projects.astype({"title": object, "description": object})
    assert validate_frame(as_objects, "projects").success


# --- inputs: a DuckDB table through a TableRef, parquet -----------------------------------


@pytest.fixture
def duckdb_warehouse(tmp_path: Path, madewithml_dir: Path) -> Path:
    """A raw warehouse laid out like Airbyte's: meta columns first, then the typed data."""
    path = tmp_path / "warehouse.duckdb"
    columns = {
        "projects": "{'id': 'BIGINT', 'created_on': 'TIMESTAMP', 'title': 'VARCHAR', 'description': 'VARCHAR'}",
        "tags": "{'id': 'BIGINT', 'tag': 'VARCHAR'}",
    }
    with duckdb_connect(path) as con:
        con.execute(f"create schema {RAW_SCHEMA}")
        for table, cols in columns.items():
            con.execute(
                f"create table {RAW_SCHEMA}.{table} as select cast(uuid() as varchar) as _airbyte_raw_id, "
                "now() as _airbyte_extracted_at, '{}' as _airbyte_meta, * "
                f"from read_csv('{madewithml_dir / (table + '.csv')}', header = true, columns = {cols})"
            )
    return path


def _write_ref(path: Path, ref: TableRef) -> Path:
    path.write_text(ref.to_json())
    return path


@pytest.mark.parametrize("table", ["projects", "tags"])
def test_duckdb_table_through_a_table_ref(table: str, duckdb_warehouse: Path, tmp_path: Path) -> None:
    ref = TableRef(f"duckdb:///{duckdb_warehouse}", RAW_SCHEMA, table, 955, data_version="v-airbyte")
    artifact = _write_ref(tmp_path / "ref.json", ref)

    frame = read_table(ref.warehouse, ref.schema, ref.table)
    assert len(frame) == 955
    assert list(frame.columns) == [
        "_airbyte_raw_id",
        "_airbyte_extracted_at",
        "_airbyte_meta",
        *COLUMNS[table],
    ]

    summary = validate_input(artifact, table, data_docs_path=tmp_path / "docs.html")
    # The ordered-column check passed: the Airbyte meta columns were dropped first.
    assert summary.success, summary.message()
    # A load id is not a content hash: the report records the table's own data version.
    assert (summary.rows, summary.data_version) == table_version(ref.warehouse, RAW_SCHEMA, table)
    assert summary.source.endswith(f"#{RAW_SCHEMA}.{table}")


def test_a_table_changed_since_its_upstream_step_recorded_it_is_not_validated(
    duckdb_warehouse: Path, tmp_path: Path
) -> None:
    uri = f"duckdb:///{duckdb_warehouse}"
    rows, version = table_version(uri, RAW_SCHEMA, "tags")
    artifact = _write_ref(tmp_path / "ref.json", TableRef(uri, RAW_SCHEMA, "tags", rows, version))
    with duckdb_connect(duckdb_warehouse) as con:  # another run loads other tags meanwhile
        con.execute(f"delete from {RAW_SCHEMA}.tags where id in (select min(id) from {RAW_SCHEMA}.tags)")
    with pytest.raises(
        TableChanged, match=f"no longer holds .*data version {version}.*nothing was validated"
    ):
        validate_input(artifact, "tags", data_docs_path=tmp_path / "docs.html")
    assert not (tmp_path / "docs.html").exists()


def test_duckdb_table_with_duplicates_fails(duckdb_warehouse: Path, tmp_path: Path) -> None:
    with duckdb_connect(duckdb_warehouse) as con:
        con.execute(f"insert into {RAW_SCHEMA}.tags select * from {RAW_SCHEMA}.tags limit 3")
    with pytest.raises(ValidationFailed, match=r"expect_column_values_to_be_unique\(id\): 6 unexpected"):
        validate_table(
            f"duckdb:///{duckdb_warehouse}", RAW_SCHEMA, "tags", "tags", data_docs_path=tmp_path / "d.html"
        )
    summary = validate_table(str(duckdb_warehouse), RAW_SCHEMA, "tags", "tags", raise_on_failure=False)
    assert (summary.rows, summary.failed, len(summary.data_version)) == (958, 1, 16)


def test_missing_table_names_it(duckdb_warehouse: Path) -> None:
    with pytest.raises(WarehouseError, match=r"mlops_course\.labeled_projects not found"):
        validate_table(str(duckdb_warehouse), RAW_SCHEMA, "labeled_projects", "labeled_projects")


def test_parquet_file_and_directory(frames: dict[str, pd.DataFrame], tmp_path: Path) -> None:
    labeled = frames["labeled_projects"]
    file = tmp_path / "labeled_projects.parquet"
    labeled.to_parquet(file)
    folder = tmp_path / "labeled_dir"
    folder.mkdir()
    labeled.iloc[:500].to_parquet(folder / "part-0.parquet")
    labeled.iloc[500:].to_parquet(folder / "part-1.parquet")

    for path in (file, folder):
        assert len(read_parquet(path)) == 955
        summary = validate_input(path, "labeled_projects")
        assert summary.success, summary.message()
        assert (summary.rows, summary.source, len(summary.data_version)) == (955, str(path), 16)

    leaked = _leaked_project(labeled)
    leaked.to_parquet(file)
    with pytest.raises(ValidationFailed, match=r"expect_compound_columns_to_be_unique\(title, description\)"):
        validate_input(file, "labeled_projects")


# --- DuckDB tables larger than one chunk: streamed ------------------------------------------

CHUNK = 2048  # one DuckDB vector: the 4,775-row tables below stream as 3 chunks
COPIES = 5


@pytest.fixture(scope="module")
def large_template(tmp_path_factory: pytest.TempPathFactory, madewithml_dir: Path) -> Path:
    """The lesson's data five times over (fresh ids and titles), as raw Airbyte tables and the join."""
    path = tmp_path_factory.mktemp("large") / "warehouse.duckdb"
    copies = f"range({COPIES}) as c(k)"
    with duckdb_connect(path) as con:
        con.execute(f"create schema {RAW_SCHEMA}")
        con.execute(
            f"create table {RAW_SCHEMA}.projects as select cast(uuid() as varchar) as _airbyte_raw_id, "
            "now() as _airbyte_extracted_at, '{}' as _airbyte_meta, "
            "id + k * 1000000 as id, created_on, title || ' #' || k as title, description "
            f"from read_csv('{madewithml_dir / 'projects.csv'}', header = true, columns = "
            "{'id': 'BIGINT', 'created_on': 'TIMESTAMP', 'title': 'VARCHAR', 'description': 'VARCHAR'}), "
            f"{copies} order by k, id"
        )
        con.execute(
            f"create table {RAW_SCHEMA}.tags as select id + k * 1000000 as id, tag "
            f"from read_csv('{madewithml_dir / 'tags.csv'}', header = true, "
            f"columns = {{'id': 'BIGINT', 'tag': 'VARCHAR'}}), {copies} order by k, id"
        )
        con.execute(
            f"create table {RAW_SCHEMA}.labeled_projects as select p.id, p.created_on, p.title, "
            f"p.description, t.tag from {RAW_SCHEMA}.projects p join {RAW_SCHEMA}.tags t using (id) order by id"
        )
    return path


@pytest.fixture
def large_warehouse(large_template: Path, tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    shutil.copy(large_template, path)
    return path


T = RAW_SCHEMA + ".{table}"
STREAMED = [
    # (case, suite, SQL that breaks the table, what the message must name, failed expectations)
    ("clean", "projects", [], [], 0),
    ("clean", "tags", [], [], 0),
    ("clean", "labeled_projects", [], [], 0),
    (
        "duplicate_ids_chunks_apart",
        "projects",
        [f"update {T} set id = (select min(id) from {T}) where rowid = 4700"],
        ["expect_column_values_to_be_unique(id): 2 unexpected"],
        1,
    ),
    (
        "nulls_in_two_chunks",
        "projects",
        [f"update {T} set title = null where rowid in (3, 4500)"],
        ["expect_column_values_to_not_be_null(title): 2 unexpected"],
        1,
    ),
    (
        "leaked_project_in_the_last_chunk",
        "projects",
        [f"insert into {T} select * replace (id + 9000000 as id) from {T} where rowid = 5"],
        ["expect_compound_columns_to_be_unique(title, description): 2 unexpected"],
        1,
    ),
    (
        "duplicate_pairs_beyond_one_bucket",
        "projects",
        [f"update {T} set title = 'project ' || (rowid // 2), description = 'same'"],
        ["expect_compound_columns_to_be_unique(title, description): 4774 unexpected"],
        1,
    ),
    (
        "missing_column",
        "projects",
        [f"alter table {T} drop column description"],
        [
            "expect_table_columns_to_match_ordered_list(id, created_on, title, description): observed",
            'The column "description" in BatchData does not exist',
        ],
        6,
    ),
    (
        "wrong_column_order",
        "projects",
        [
            f"create or replace table {T} as select _airbyte_raw_id, _airbyte_extracted_at, _airbyte_meta, "
            f"id, title, created_on, description from {T}"
        ],
        [
            'expect_table_columns_to_match_ordered_list(id, created_on, title, description): observed ["id", "title"'
        ],
        1,
    ),
    (
        "numeric_title",
        "projects",
        [f"create or replace table {T} as select * replace (id as title) from {T}"],
        ["expect_column_values_to_be_of_type(title): observed int64"],
        1,
    ),
    (
        "duplicate_and_null_tags",
        "tags",
        [
            f"update {T} set tag = null where rowid % 1000 = 1",
            f"insert into {T} select * from {T} where rowid between 2 and 4",
        ],
        [
            "expect_column_values_to_not_be_null(tag): 5 unexpected",
            "expect_column_values_to_be_unique(id): 6 unexpected",
        ],
        2,
    ),
    (
        "null_tags_labeled",
        "labeled_projects",
        [f"update {T} set tag = null where rowid in (10, 2100, 4200)"],
        ["expect_column_values_to_not_be_null(tag): 3 unexpected"],
        1,
    ),
]


def _verdict(o: ExpectationOutcome) -> tuple[object, ...]:
    """What a person acts on: which expectation, its columns, pass/fail, the count, the cause."""
    return (o.expectation, o.columns, o.success, o.unexpected_count, o.error, o.observed)


@pytest.mark.parametrize(
    ("case", "suite", "statements", "named", "failed"), STREAMED, ids=[f"{s[1]}-{s[0]}" for s in STREAMED]
)
def test_streamed_table_matches_one_frame_without_holding_it(
    case: str,
    suite: str,
    statements: list[str],
    named: list[str],
    failed: int,
    large_warehouse: Path,
    tmp_path: Path,
) -> None:
    with duckdb_connect(large_warehouse) as con:
        for sql in statements:
            con.execute(sql.format(table=suite))
    uri = f"duckdb:///{large_warehouse}"
    docs = tmp_path / "streamed.html"

    streamed = validate_table(
        uri, RAW_SCHEMA, suite, suite, chunk_rows=CHUNK, data_docs_path=docs, raise_on_failure=False
    )
    whole_frame = read_table(uri, RAW_SCHEMA, suite)
    whole = validate_frame(whole_frame, suite, raise_on_failure=False)

    # GX saw bounded frames only, never the table...
    assert streamed.rows == whole.rows == len(whole_frame) > 2 * CHUNK
    assert streamed.largest_frame is not None and streamed.largest_frame <= CHUNK
    assert streamed.frames >= 3
    # ... and said exactly what it says on the whole frame, expectation by expectation.
    assert [_verdict(o) for o in streamed.outcomes] == [_verdict(o) for o in whole.outcomes]
    assert (streamed.success, streamed.failed, streamed.evaluated) == (
        failed == 0,
        failed,
        EXPECTATIONS[suite],
    )
    for fragment in named:
        assert fragment in streamed.message()
    for o in streamed.failures:
        assert len(o.unexpected_values) <= 5
        if o.unexpected_count:
            assert o.unexpected_values, o  # a sample of what broke it
    # The data version is the table's content hash, streamed too.
    assert streamed.data_version == frame_version(whole_frame)
    text = _assert_self_contained(docs)
    assert f"{EXPECTATIONS[suite] - failed} of {EXPECTATIONS[suite]} expectations passed" in text
    assert f"{streamed.frames} frames of at most {streamed.largest_frame} rows (streamed)" in text


def test_streamed_failure_raises_naming_expectation_column_and_count(
    large_warehouse: Path, tmp_path: Path
) -> None:
    with duckdb_connect(large_warehouse) as con:
        con.execute(f"update {RAW_SCHEMA}.projects set created_on = null where rowid % 2 = 0")
    ref = TableRef(f"duckdb:///{large_warehouse}", RAW_SCHEMA, "projects", 4775, data_version="v1")
    docs = tmp_path / "docs.html"
    with pytest.raises(ValidationFailed) as err:
        validate_input(
            _write_ref(tmp_path / "ref.json", ref), "projects", data_docs_path=docs, chunk_rows=CHUNK
        )
    assert str(err.value) == (
        f"suite projects failed 1 of {EXPECTATIONS['projects']} expectations: "
        f"expect_column_values_to_not_be_null(created_on): 2388 unexpected; Data Docs: {docs}"
    )
    assert err.value.summary.data_version == table_version(ref.warehouse, RAW_SCHEMA, "projects")[1]
    assert "2388 unexpected" in _assert_self_contained(docs)


def test_parquet_is_streamed_like_a_table(large_warehouse: Path, tmp_path: Path) -> None:
    # extract's dataset of the 4,775-row join, validated in chunks of one vector without
    # being read whole: the data version is the one extract records for what it wrote, and
    # a project leaked under a new id in the last chunk is found as in the table.
    df = read_table(f"duckdb:///{large_warehouse}", RAW_SCHEMA, "labeled_projects")
    path = write_parquet(df, tmp_path / "dataset")
    summary = validate_input(path, "labeled_projects", chunk_rows=CHUNK)
    assert summary.success, summary.message()
    assert summary.rows == 4775
    assert summary.data_version == frame_version(df) == frame_version(read_parquet(path))

    leaked = pd.concat([df, df.iloc[[5]].assign(id=df["id"].max() + 1)], ignore_index=True)
    write_parquet(leaked, path)
    with pytest.raises(
        ValidationFailed, match=r"expect_compound_columns_to_be_unique\(title, description\): 2 unexpected"
    ):
        validate_input(path, "labeled_projects", chunk_rows=CHUNK)


def test_a_table_of_one_chunk_is_one_frame(large_warehouse: Path) -> None:
    summary = validate_table(str(large_warehouse), RAW_SCHEMA, "tags", "tags", chunk_rows=10 * CHUNK)
    assert (summary.success, summary.frames, summary.largest_frame, summary.rows) == (True, 1, 4775, 4775)


def _custom_suite(root: Path, expectations: list[dict[str, object]]) -> Path:
    folder = root / "gx" / "expectations"
    folder.mkdir(parents=True)
    (folder / "custom.json").write_text(json.dumps({"name": "custom", "expectations": expectations}))
    return root


def test_expectations_that_cannot_be_combined_from_chunks_get_their_columns_whole(
    large_warehouse: Path, tmp_path: Path
) -> None:
    """A proportion (``mostly``), an aggregate, a table-level count: exact, from narrow columns."""
    root = _custom_suite(
        tmp_path / "gx_project",
        [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "title", "mostly": 0.9}},
            {"type": "expect_column_max_to_be_between", "kwargs": {"column": "id", "max_value": 4_000_000}},
            {"type": "expect_table_row_count_to_equal", "kwargs": {"value": 4775}},
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "tag"}},
        ],
    )
    with duckdb_connect(large_warehouse) as con:
        con.execute(f"update {RAW_SCHEMA}.projects set title = null where rowid % 4 = 0")  # 25% null
    config = suite_config("custom", project_root=root)
    plan = plan_stream(config["expectations"], ["id", "created_on", "title", "description"])
    assert [len(plan.first_chunk), len(plan.every_chunk), len(plan.whole_columns)] == [1, 0, 3]

    uri = str(large_warehouse)
    streamed = validate_table(
        uri, RAW_SCHEMA, "projects", "custom", chunk_rows=CHUNK, project_root=root, raise_on_failure=False
    )
    whole = validate_frame(
        read_table(uri, RAW_SCHEMA, "projects"), "custom", project_root=root, raise_on_failure=False
    )
    assert [_verdict(o) for o in streamed.outcomes] == [_verdict(o) for o in whole.outcomes]
    assert [o.success for o in streamed.outcomes] == [False, False, True, False]
    assert streamed.outcomes[0].unexpected_count == 1194
    assert "does not exist" in streamed.outcomes[3].error
    assert streamed.largest_frame == 4775  # the narrow columns, whole: (title, id) only


# --- the KFP component -------------------------------------------------------------------


def test_component_passes_and_records_metadata(duckdb_warehouse: Path, tmp_path: Path) -> None:
    uri = f"duckdb:///{duckdb_warehouse}"
    version = table_version(uri, RAW_SCHEMA, "projects")[1]
    ref = TableRef(uri, RAW_SCHEMA, "projects", 955, data_version=version)
    dataset = dsl.Dataset(uri=str(_write_ref(tmp_path / "projects.json", ref)))
    docs = dsl.HTML(uri=str(tmp_path / "out" / "data_docs.html"))

    outputs = ge_validate.python_func(dataset=dataset, suite="projects", data_docs=docs)

    assert (outputs.success, outputs.failed_expectations) == (True, 0)
    assert docs.path == str(tmp_path / "out" / "data_docs.html")  # a local uri is the path
    _assert_self_contained(Path(docs.path))
    meta = docs.metadata
    assert {k: meta[k] for k in ("suite", "success", "evaluated", "failed", "rows", "data_version")} == {
        "suite": "projects",
        "success": True,
        "evaluated": EXPECTATIONS["projects"],
        "failed": 0,
        "rows": 955,
        "data_version": version,
    }
    assert meta["failures"] == []


def test_component_fails_the_task_after_writing_the_docs(
    frames: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    path = tmp_path / "tags.parquet"
    _null("tag")(frames["tags"]).to_parquet(path)
    docs = dsl.HTML(uri=str(tmp_path / "data_docs.html"))

    with pytest.raises(ValidationFailed, match=r"expect_column_values_to_not_be_null\(tag\): 1 unexpected"):
        ge_validate.python_func(dataset=dsl.Dataset(uri=str(path)), suite="tags", data_docs=docs)
    assert "1 unexpected" in _assert_self_contained(Path(docs.path))
    assert (docs.metadata["success"], docs.metadata["failed"]) == (False, 1)
    assert docs.metadata["failures"] == ["expect_column_values_to_not_be_null(tag): 1 unexpected"]

    # Report-only mode: the task succeeds and the outputs say what failed.
    outputs = ge_validate.python_func(
        dataset=dsl.Dataset(uri=str(path)), suite="tags", data_docs=docs, raise_on_failure=False
    )
    assert (outputs.success, outputs.failed_expectations) == (False, 1)


# --- BigQuery: the pushed-down batch, built without network --------------------------------


def test_bigquery_batch_spec_pushes_the_data_columns_down() -> None:
    import sqlalchemy as sa
    from great_expectations.datasource.fluent import SQLDatasource
    from great_expectations.datasource.fluent.sql_datasource import QueryAsset

    table_columns = ["_airbyte_raw_id", "_airbyte_extracted_at", "_airbyte_meta", "id", "created_on", "title"]
    spec = bigquery_batch_spec(
        "bigquery://my-proj?location=EU", RAW_SCHEMA, "projects", [*table_columns, "description"]
    )

    assert spec.connection_string == "bigquery://my-proj/mlops_course?location=EU"
    assert (
        spec.query == "select `id`, `created_on`, `title`, `description` from `my-proj.mlops_course.projects`"
    )
    assert (spec.asset_name, spec.batch_definition_name, spec.dialect) == (
        "projects",
        "whole_table",
        "bigquery",
    )
    url = sa.engine.make_url(spec.connection_string)  # resolves the dialect without connecting
    assert (url.get_dialect().name, url.host, url.database, url.query["location"]) == (
        "bigquery",
        "my-proj",
        "mlops_course",
        "EU",
    )
    # GX's own models accept the configs (constructing them opens no connection).
    datasource = SQLDatasource(**spec.datasource_config())
    asset = QueryAsset(**spec.asset_config())
    assert (datasource.connection_string, asset.query) == (spec.connection_string, spec.query)

    suite = build_suite("projects", dialect="bigquery")
    kwargs = [e.configuration.kwargs for e in suite.expectations]
    types = {k["column"]: k["type_"] for k in kwargs if "type_" in k}
    assert types == {"title": "STRING", "description": "STRING"}
    plain = [e.configuration.kwargs for e in build_suite("projects").expectations]
    assert {k["type_"] for k in plain if "type_" in k} == {"str"}


def test_bigquery_batch_spec_refuses_bad_input() -> None:
    with pytest.raises(WarehouseError, match="not a BigQuery warehouse"):
        bigquery_batch_spec("duckdb:///tmp/w.duckdb", RAW_SCHEMA, "projects", ["id"])
    with pytest.raises(WarehouseError, match="invalid identifier"):
        bigquery_batch_spec("bigquery://p", RAW_SCHEMA, "projects`; drop table x; --", ["id"])
    with pytest.raises(WarehouseError, match="no data columns"):
        bigquery_batch_spec("bigquery://p", RAW_SCHEMA, "projects", ["_airbyte_raw_id"])


def _sql_metrics(expectation_type: str) -> list[str]:
    """The metrics GX computes for an expectation: its map condition, or its declared ones."""
    from great_expectations.expectations.registry import get_expectation_impl

    impl = get_expectation_impl(expectation_type)
    if expectation_type == "expect_column_values_to_be_of_type":
        return ["table.column_types"]  # on SQL, GX reads the type from the table's schema
    mapped = getattr(impl, "map_metric", None)
    return [f"{mapped}.condition"] if mapped else list(impl.metric_dependencies)


@pytest.mark.parametrize("suite", SUITES)
def test_every_expectation_of_every_suite_runs_as_sql_in_gx(suite: str) -> None:
    """The BigQuery path validates with GX's SQL engine: each expectation must have a SQL
    implementation there, and the regex rules must become BigQuery's REGEXP_CONTAINS."""
    import sqlalchemy as sa
    import sqlalchemy_bigquery
    from great_expectations.expectations.metrics.util import get_dialect_regex_expression
    from great_expectations.expectations.registry import _registered_metrics

    config = suite_config(suite, dialect="bigquery")
    for exp in config["expectations"]:
        for metric in _sql_metrics(exp["type"]):
            providers = _registered_metrics.get(metric, {}).get("providers", {})
            assert "SqlAlchemyExecutionEngine" in providers, (
                f"{exp['type']}: no SQL implementation of {metric}"
            )
        regex = exp["kwargs"].get("regex")
        if regex is not None:
            positive = exp["type"] == "expect_column_values_to_match_regex"
            condition = get_dialect_regex_expression(
                sa.column("v"), regex, sqlalchemy_bigquery, positive=positive
            )
            assert condition is not None, f"GX has no BigQuery form of {exp['type']}"
            sql = str(condition.compile(dialect=sqlalchemy_bigquery.BigQueryDialect()))
            assert sql.startswith("REGEXP_CONTAINS(" if positive else "NOT REGEXP_CONTAINS("), sql
    # The future bound is GX's own suite parameter, evaluated where the suite runs.
    bounds = [e["kwargs"]["max_value"] for e in config["expectations"] if "max_value" in e["kwargs"]]
    assert bounds == ([{"$PARAMETER": "now() + timedelta(days=1)"}] if suite != "tags" else [])


PROBES = [
    "",
    " ",
    "\t\n\r ",
    "\u00a0",
    "\u3000\u2003",
    "\u200b\ufeff",
    "a",
    " a ",
    "日本語",
    "🚀",
    "é",
    "tab\there",
    "two\nlines",
    "crlf\r\nline",
    "x\x00y",
    "\x07",
    "\x0b",
    "\x0c",
    "\x1b[31m",
    "\x1f",
    "\x7f",
    "\x85",
    "\x9f",
    "\xa0x",
    "\u202e",
    "SELECT * FROM t; --",
]


def test_the_text_rules_read_alike_in_python_and_re2() -> None:
    """GX's pandas engine runs the regexes with Python's re, BigQuery with RE2: DuckDB's
    regexp_matches is RE2, so the two must agree on every probe (and say what they should)."""
    import duckdb

    regexes = {
        e["kwargs"]["regex"]
        for suite in SUITES
        for e in suite_config(suite)["expectations"]
        if "regex" in e["kwargs"]
    }
    assert len(regexes) == 2
    with duckdb.connect() as con:
        for regex in regexes:
            for probe in PROBES:
                python = re.search(regex, probe) is not None
                re2 = con.execute("select regexp_matches(?, ?)", [probe, regex]).fetchone()
                assert re2 == (python,), f"{regex!r} on {probe!r}: Python {python}, RE2 {re2}"
    visible = next(r for r in regexes if r.startswith("[^"))
    blank = [p for p in PROBES if not re.search(visible, p)]
    assert blank == ["", " ", "\t\n\r ", "\u00a0", "\u3000\u2003", "\u200b\ufeff", "\x0b", "\x0c"]
    control = next(r for r in regexes if not r.startswith("[^"))
    flagged = [p for p in PROBES if re.search(control, p)]
    assert flagged == ["x\x00y", "\x07", "\x0b", "\x0c", "\x1b[31m", "\x1f", "\x7f", "\x85", "\x9f"]


def test_a_created_on_within_a_day_of_now_is_accepted(frames: dict[str, pd.DataFrame]) -> None:
    soon = _set("created_on", {0: _future(2 / 24)})(frames["projects"])
    assert validate_frame(soon, "projects").success
    later = _set("created_on", {0: _future(1.5)})(frames["projects"])
    (failure,) = validate_frame(later, "projects", raise_on_failure=False).failures
    assert (failure.columns, failure.unexpected_count, failure.rule) == (("created_on",), 1, NOT_FUTURE)


def test_timestamps_are_validated_alike_at_any_resolution(frames: dict[str, pd.DataFrame]) -> None:
    """DuckDB gives microseconds; GX compares nanoseconds vectorised: the frame is converted
    where every value fits, and a date beyond nanoseconds' range is still reported."""
    micro = frames["projects"].assign(created_on=frames["projects"]["created_on"].dt.as_unit("us"))
    converted = nanosecond_times(micro)
    assert converted["created_on"].dt.unit == "ns" and micro["created_on"].dt.unit == "us"
    assert converted["created_on"].equals(micro["created_on"].dt.as_unit("ns"))
    assert validate_frame(micro, "projects").success

    beyond = _set("created_on", {0: pd.Timestamp("2300-01-01").as_unit("us")})(micro)
    assert nanosecond_times(beyond)["created_on"].dt.unit == "us"  # left as it is
    (failure,) = validate_frame(beyond, "projects", raise_on_failure=False).failures
    assert (failure.columns, failure.unexpected_count) == (("created_on",), 1)


def test_the_report_shows_each_rule(frames: dict[str, pd.DataFrame], tmp_path: Path) -> None:
    docs = tmp_path / "docs.html"
    validate_frame(
        _set("title", {2: ""})(frames["projects"]), "projects", data_docs_path=docs, raise_on_failure=False
    )
    text = _assert_self_contained(docs)
    assert f"<code>expect_column_values_to_match_regex</code><br>{BLANK}</td>" in text
    assert text.count("<br>") == sum("rule" in e["meta"] for e in suite_config("projects")["expectations"])


# --- the label set -----------------------------------------------------------------------------


LESSON_LABELS = [
    "computer-vision",
    "graph-learning",
    "mlops",
    "natural-language-processing",
    "reinforcement-learning",
    "time-series",
]


def test_the_label_set_is_the_lessons_and_lives_in_the_tags_suite(frames: dict[str, pd.DataFrame]) -> None:
    assert labels() == LESSON_LABELS == sorted(frames["tags"]["tag"].unique())
    in_set = [
        e for e in suite_config("tags")["expectations"] if e["type"] == "expect_column_values_to_be_in_set"
    ]
    assert [e["kwargs"] for e in in_set] == [{"column": "tag", "value_set": LESSON_LABELS}]


def test_a_label_is_added_with_one_command(frames: dict[str, pd.DataFrame], tmp_path: Path) -> None:
    root = tmp_path / "great_expectations"
    shutil.copytree(project_dir("great_expectations"), root, ignore=shutil.ignore_patterns("uncommitted"))
    suite_file = root / "gx" / "expectations" / "tags.json"
    before = suite_file.read_text()
    quantum = _set("tag", {0: "quantum-computing"})(frames["tags"])
    assert not validate_frame(quantum, "tags", project_root=root, raise_on_failure=False).success

    done = subprocess.run(
        [sys.executable, "-m", "components.ge_validate.labels", "add", "quantum-computing"],
        cwd=ROOT,
        env={**os.environ, "KFP_MLOPS_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"added quantum-computing to {suite_file}"
    assert labels(root) == sorted([*LESSON_LABELS, "quantum-computing"])
    assert validate_frame(quantum, "tags", project_root=root).success
    # Only the list changed, in the layout GX writes: one line added.
    added = [ln for ln in suite_file.read_text().splitlines() if ln not in before.splitlines()]
    assert added == ['          "quantum-computing",']
    assert add_label("quantum-computing", root) is False
    with pytest.raises(ValueError, match="lowercase letters and digits, words joined by hyphens"):
        add_label("Quantum Computing", root)
    assert labels() == LESSON_LABELS  # the committed project was not touched


# --- the committed GX project -------------------------------------------------------------


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_validation_leaves_the_committed_project_untouched(
    frames: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    gx_dir = project_dir("great_expectations")
    git = [
        "git",
        "-C",
        str(ROOT),
        "status",
        "--porcelain",
        "--untracked-files=all",
        "--ignored",
        "great_expectations/",
    ]
    before_status = subprocess.run(git, capture_output=True, text=True, check=True).stdout
    before = _snapshot(gx_dir)

    for suite in SUITES:
        validate_frame(frames[suite], suite, data_docs_path=tmp_path / f"{suite}.html")
    validate_frame(_duplicate_id(frames["projects"]), "projects", raise_on_failure=False)

    assert subprocess.run(git, capture_output=True, text=True, check=True).stdout == before_status
    assert _snapshot(gx_dir) == before


def test_the_committed_file_project_opens_and_its_checkpoints_run(
    frames: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    """The repo folder is a real GX 1.x file project (opened on a copy: GX creates uncommitted/)."""
    import great_expectations as gx

    root = tmp_path / "great_expectations"
    shutil.copytree(project_dir("great_expectations"), root, ignore=shutil.ignore_patterns("uncommitted"))
    context = gx.get_context(mode="file", project_root_dir=str(root))

    assert sorted(s.name for s in context.suites.all()) == sorted(SUITES)
    for suite in SUITES:
        committed = context.suites.get(suite)
        assert len(committed.expectations) == len(build_suite(suite).expectations) == EXPECTATIONS[suite]
        columns = next(e for e in committed.expectations if e.expectation_type.endswith("ordered_list"))
        assert columns.configuration.kwargs["column_list"] == COLUMNS[suite]
    assert sorted(v.name for v in context.validation_definitions.all()) == sorted(SUITES)
    result = context.checkpoints.get("tags").run(batch_parameters={"dataframe": frames["tags"]})
    assert result.success
    broken = context.checkpoints.get("projects").run(
        batch_parameters={"dataframe": _duplicate_id(frames["projects"])}
    )
    assert not broken.success
    # Credentials are only ever references to the environment.
    config = (root / "gx" / "great_expectations.yml").read_text()
    assert "connection_string: ${GX_BIGQUERY_CONNECTION_STRING}" in config


def test_summary_message_when_passing() -> None:
    summary = ValidationSummary("tags", True, 4, 4, 0, 10, data_docs="/x/d.html")
    assert summary.message() == "suite tags passed 4 of 4 expectations; Data Docs: /x/d.html"
