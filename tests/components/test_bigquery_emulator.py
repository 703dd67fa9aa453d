"""The BigQuery paths of the steps, run for real against a local BigQuery emulator.

``bqemulator`` (BigQuery's REST API on DuckDB, started by the ``bigquery_emulator`` fixture)
takes the calls our code sends through ``components.bigquery.bigquery_client``, pointed at
it by ``BIGQUERY_EMULATOR_HOST``: extract's query, publish's copy job, ge_validate's pushed-down
GX validation (sqlalchemy-bigquery), the watcher's warehouse probe. Each test works in a
BigQuery project of its own on the one emulator of the session.

What the emulator cannot serve, and so stays checked against the stand-ins of
``test_extract.py``: load jobs from the client (``load_table_from_dataframe`` /
``load_table_from_file``). google-cloud-bigquery sends the media part of its upload as
``*/*``, which the emulator refuses (``multipart upload's second part has unsupported
Content-Type '*/*'``); no step of ours loads BigQuery itself (Airbyte's BigQuery destination
does, and the embedded loader writes DuckDB only), so the tables here are seeded with
streaming inserts and DDL, which it serves.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from components.artifacts import TableRef
from components.bigquery import BIGQUERY_EMULATOR_ENV, bigquery_client
from components.extract.core import extract
from components.ge_validate.core import validate_table
from components.ge_validate.results import ValidationFailed
from components.ge_validate.suites import suite_config
from components.publish.core import PublishError, publish
from components.versions import frame_version
from components.warehouse import WarehouseError, parse_uri, read_table
from pipelines.triggers.watch import WarehouseProbe

pytestmark = pytest.mark.timeout(300)

Seed = Callable[[str, str, list[dict[str, Any]]], None]

PROJECT_SCHEMA = [
    ("id", "INTEGER"),
    ("created_on", "TIMESTAMP"),
    ("title", "STRING"),
    ("description", "STRING"),
]
LABELED_SCHEMA = [*PROJECT_SCHEMA, ("tag", "STRING")]
# What Airbyte's BigQuery destination adds to every table it writes.
AIRBYTE_COLUMNS = [("_airbyte_raw_id", "STRING"), ("_airbyte_extracted_at", "TIMESTAMP")]


def _rows(n: int, start: int = 1, tagged: bool = True) -> list[dict[str, Any]]:
    rows = []
    for i in range(start, start + n):
        row: dict[str, Any] = {
            "id": i,
            "created_on": f"2026-01-{1 + i % 28:02d}T0{i % 10}:00:00Z",
            "title": f"project {i}",
            "description": f"what project {i} does",
        }
        if tagged:
            row["tag"] = ("computer-vision", "natural-language-processing", "mlops")[i % 3]
        rows.append(row)
    return rows


@pytest.fixture
def project(request: pytest.FixtureRequest) -> str:
    """A BigQuery project id of the test's own on the shared emulator."""
    return (
        "t-"
        + request.node.name.removeprefix("test_").replace("_", "-")[:24].rstrip("-")
        + f"-{time.time_ns() % 10**6}"
    )


@pytest.fixture
def emulated(bigquery_emulator: Any, monkeypatch: pytest.MonkeyPatch, project: str) -> Iterator[Any]:
    """The emulator as this test's BigQuery: ``BIGQUERY_EMULATOR_HOST`` set, as a step would see it."""
    monkeypatch.setenv(BIGQUERY_EMULATOR_ENV, bigquery_emulator.endpoint)
    yield bigquery_emulator.client(project)


@pytest.fixture
def seed(emulated: Any, project: str) -> Seed:
    """Create ``dataset.table`` with a schema and rows, the way a loader leaves it."""
    from google.cloud import bigquery

    def make(
        dataset: str, table: str, rows: list[dict[str, Any]], columns: list[tuple[str, str]] = LABELED_SCHEMA
    ) -> None:  # type: ignore[assignment]
        emulated.create_dataset(dataset, exists_ok=True)
        fqn = f"{project}.{dataset}.{table}"
        emulated.delete_table(fqn, not_found_ok=True)
        emulated.create_table(bigquery.Table(fqn, schema=[bigquery.SchemaField(n, t) for n, t in columns]))
        if rows:
            errors = emulated.insert_rows_json(fqn, rows)
            assert errors == [], errors

    return make  # type: ignore[return-value]


def test_bigquery_client_sends_every_call_to_the_endpoint_in_BIGQUERY_EMULATOR_HOST(
    emulated: Any, seed: Seed, project: str
) -> None:
    seed("mlops_course", "labeled_projects", _rows(3))
    client = bigquery_client(parse_uri(f"bigquery://{project}"))
    assert client._connection.API_BASE_URL == emulated._connection.API_BASE_URL
    assert [t.table_id for t in client.list_tables("mlops_course")] == ["labeled_projects"]
    df = read_table(f"bigquery://{project}", "mlops_course", "labeled_projects")
    assert sorted(df["id"]) == [1, 2, 3]


def test_bigquery_client_fails_in_seconds_when_no_emulator_answers(
    monkeypatch: pytest.MonkeyPatch, free_port: Callable[[], int]
) -> None:
    monkeypatch.setenv(BIGQUERY_EMULATOR_ENV, f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    with pytest.raises(WarehouseError, match=r"no BigQuery emulator answers at http://127\.0\.0\.1:\d+"):
        extract("bigquery://p", "/nonexistent/never-written.parquet")
    assert time.monotonic() - started < 10  # the client alone would retry for 600 s
    monkeypatch.setenv(BIGQUERY_EMULATOR_ENV, "127.0.0.1:9050")
    with pytest.raises(WarehouseError, match=r"is not an endpoint URL: use http://HOST:PORT"):
        bigquery_client(parse_uri("bigquery://p"))


# --- extract: the query ---------------------------------------------------------------------


def test_extract_reads_the_published_table_from_the_emulator(
    emulated: Any, seed: Seed, project: str, tmp_path: Path
) -> None:
    seed("mlops_course", "labeled_projects", _rows(40))
    out = extract(f"bigquery://{project}", tmp_path / "ds.parquet")

    data = pd.read_parquet(out.path)
    assert out.rows == 40 and list(data.columns) == [name for name, _ in LABELED_SCHEMA]
    assert list(data["id"]) == list(range(1, 41))  # sorted by id, whatever the scan order
    assert data.loc[0, "title"] == "project 1" and str(data["created_on"].dt.tz) == "UTC"
    assert out.data_version == frame_version(data)
    assert (out.warehouse, out.table) == (f"bigquery://{project}", "mlops_course.labeled_projects")
    # The same table read again is the same data version; one more row is a new one.
    assert extract(f"bigquery://{project}", tmp_path / "again.parquet").data_version == out.data_version
    emulated.insert_rows_json(f"{project}.mlops_course.labeled_projects", _rows(1, start=41))
    assert extract(f"bigquery://{project}", tmp_path / "more.parquet").rows == 41


def test_extract_names_a_missing_or_empty_table_in_the_emulator(
    seed: Seed, project: str, tmp_path: Path
) -> None:
    seed("mlops_course", "empty", [])
    with pytest.raises(WarehouseError, match=rf"{project}\.mlops_course\.missing not found in BigQuery"):
        extract(f"bigquery://{project}", tmp_path / "x.parquet", table="missing")
    with pytest.raises(WarehouseError, match="is empty: nothing to train on"):
        extract(f"bigquery://{project}", tmp_path / "x.parquet", table="empty")
    assert not (tmp_path / "x.parquet").exists()


# --- publish: the copy job ------------------------------------------------------------------


def test_publish_copies_the_audited_table_over_the_published_one_in_the_emulator(
    emulated: Any, seed: Seed, project: str
) -> None:
    uri = f"bigquery://{project}"
    seed("mlops_course", "labeled_projects", _rows(5))  # yesterday's published table
    seed("mlops_course_audit", "labeled_projects", _rows(12))
    audited = TableRef(uri, "mlops_course_audit", "labeled_projects", rows=12, data_version="v12")

    published = publish(audited)

    assert (published.fqn, published.rows, published.data_version) == (
        "mlops_course.labeled_projects",
        12,
        "v12",
    )
    table = emulated.get_table(f"{project}.mlops_course.labeled_projects")
    assert [f.name for f in table.schema] == [n for n, _ in LABELED_SCHEMA]
    # Counted by a query: the emulator keeps a replaced table's old numRows in its metadata
    # after a WRITE_TRUNCATE copy (5 here); BigQuery updates it. publish reports the source's.
    count = f"select count(*) from `{project}.mlops_course.labeled_projects`"
    assert next(iter(emulated.query(count).result()))[0] == 12
    copied = read_table(uri, "mlops_course", "labeled_projects").sort_values("id")
    assert list(copied["id"]) == list(range(1, 13))
    assert publish(audited).rows == 12  # idempotent: WRITE_TRUNCATE, not an append


def test_publish_refuses_an_audited_table_that_changed_since_validation_in_the_emulator(
    emulated: Any, seed: Seed, project: str
) -> None:
    uri = f"bigquery://{project}"
    seed("mlops_course", "labeled_projects", _rows(5))
    seed("mlops_course_audit", "labeled_projects", _rows(13))  # one row more than was validated
    audited = TableRef(uri, "mlops_course_audit", "labeled_projects", rows=12, data_version="v12")
    with pytest.raises(PublishError, match=r"has 13 rows, 12 were validated; not published"):
        publish(audited)
    left = read_table(uri, "mlops_course", "labeled_projects")
    assert sorted(left["id"]) == [1, 2, 3, 4, 5]  # left as it was


# --- ge_validate: GX's SQL datasource through sqlalchemy-bigquery ----------------------------


def test_ge_validate_pushes_the_suite_down_to_the_emulator_and_passes_a_good_table(
    seed: Seed, project: str, tmp_path: Path
) -> None:
    rows = [
        {**r, "_airbyte_raw_id": f"raw-{r['id']}", "_airbyte_extracted_at": r["created_on"]}
        for r in _rows(30, tagged=False)
    ]
    seed("mlops_course", "projects", rows, [*AIRBYTE_COLUMNS, *PROJECT_SCHEMA])

    summary = validate_table(
        f"bigquery://{project}",
        "mlops_course",
        "projects",
        "projects",
        data_docs_path=tmp_path / "docs.html",
        data_version="load-7",
    )

    assert summary.success and summary.rows == 30 and summary.data_version == "load-7"
    outcomes = {(o.expectation, o.columns): o for o in summary.outcomes}
    # Every expectation of the suite ran, in its order, none with an error.
    suite = suite_config("projects")["expectations"]
    assert [o.expectation for o in summary.outcomes] == [e["type"] for e in suite]
    assert not [o for o in summary.outcomes if o.error]
    # The ordered-column check saw the data columns only, not Airbyte's.
    ordered = outcomes[
        ("expect_table_columns_to_match_ordered_list", ("id", "created_on", "title", "description"))
    ]
    assert ordered.observed == ["id", "created_on", "title", "description"]
    # The type checks ran on the table (a query asset gives GX no column types).
    typed = outcomes[("expect_column_values_to_be_of_type", ("title",))]
    assert typed.success and typed.observed == "String"
    assert (tmp_path / "docs.html").read_text().count("expect_column_values_to_not_be_null") >= 1


def test_ge_validate_fails_a_bad_table_in_the_emulator_naming_expectation_column_and_rows(
    seed: Seed, project: str
) -> None:
    rows = _rows(20, tagged=False)
    rows[3]["title"] = None
    rows[7]["id"] = rows[8]["id"]  # a duplicate key
    for row in rows:  # a description column of numbers: the type check must catch it
        row["description"] = row["id"] * 10
    numbers = [
        ("id", "INTEGER"),
        ("created_on", "TIMESTAMP"),
        ("title", "STRING"),
        ("description", "INTEGER"),
    ]
    seed("mlops_course", "projects", rows, numbers)

    with pytest.raises(ValidationFailed) as failed:
        validate_table(f"bigquery://{project}", "mlops_course", "projects", "projects")

    failing = {o.expectation + str(o.columns): o for o in failed.value.summary.outcomes if not o.success}
    regexes_on_numbers = {  # a regex cannot run on an INT64 column: those expectations error
        "expect_column_values_to_match_regex('description',)",
        "expect_column_values_to_not_match_regex('description',)",
    }
    assert set(failing) == {
        "expect_column_values_to_not_be_null('title',)",
        "expect_column_values_to_be_unique('id',)",
        "expect_column_values_to_be_of_type('description',)",
        *regexes_on_numbers,
    }
    assert all(failing[name].error for name in regexes_on_numbers)
    assert not any(failing[name].error for name in set(failing) - regexes_on_numbers)
    assert failing["expect_column_values_to_not_be_null('title',)"].unexpected_count == 1
    assert failing["expect_column_values_to_be_unique('id',)"].unexpected_count == 2
    assert failing["expect_column_values_to_be_of_type('description',)"].observed == "Integer"
    message = str(failed.value)
    assert "expect_column_values_to_not_be_null(title): 1 unexpected" in message, message
    assert "expect_column_values_to_be_of_type(description)" in message


# --- the watcher's warehouse probe -----------------------------------------------------------


def test_watcher_probe_sees_a_new_data_version_in_the_emulator_only_when_the_table_changes(
    emulated: Any, seed: Seed, project: str
) -> None:
    seed("mlops_course", "labeled_projects", _rows(10))
    probe = WarehouseProbe(f"bigquery://{project}")

    first = probe.current()
    assert first is not None and (first.rows, probe.problem) == (10, "")
    assert first.max_created_on.startswith("2026-01-")
    assert probe.current() == first  # nothing changed: the same version, no run would start

    emulated.insert_rows_json(f"{project}.mlops_course.labeled_projects", _rows(2, start=11))
    second = probe.current()
    assert second is not None and second.rows == 12 and second.key != first.key


def test_ge_validate_on_the_emulator_fails_a_title_of_unicode_blanks_without_an_error(
    seed: Seed, project: str
) -> None:
    """The suites' blank-text regexes hold characters such as U+2028; on BigQuery they are sent
    as RE2 escapes (GX cannot render them otherwise), and still mean the same characters."""
    rows = _rows(20, tagged=False)
    rows[5]["title"] = "\u2028\u3000\u200b"  # only blanks: not a title
    seed("mlops_course", "projects", rows, PROJECT_SCHEMA)

    with pytest.raises(ValidationFailed) as failed:
        validate_table(f"bigquery://{project}", "mlops_course", "projects", "projects")

    failing = {o.expectation + str(o.columns): o for o in failed.value.summary.outcomes if not o.success}
    assert set(failing) == {"expect_column_values_to_match_regex('title',)"}
    outcome = failing["expect_column_values_to_match_regex('title',)"]
    assert (outcome.error, outcome.unexpected_count) == ("", 1)
