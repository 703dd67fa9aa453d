"""dbt_transform: real dbt on a real DuckDB warehouse built from the lesson's dataset."""

from __future__ import annotations

import csv
import os
import shutil
import socket
from pathlib import Path
from typing import Any

import duckdb
import pytest
from kfp import dsl

from components.artifacts import TableRef, read_table_ref, write_table_ref
from components.dbt_transform.component import dbt_transform
from components.dbt_transform.core import DbtTransformError, compile_only, run_dbt
from components.paths import project_dir
from components.warehouse import (
    AUDIT_SCHEMA,
    MEMORY_LIMIT_ENV,
    RAW_SCHEMA,
    TEMP_DIR_ENV,
    duckdb_connect,
    frame_version,
    read_table,
    table_version,
)

MART_COLUMNS = ["id", "created_on", "title", "description", "tag"]
FIRST_SYNC = "2024-01-01 00:00:00+00"


def _load_raw(con: duckdb.DuckDBPyConnection, data: Path, extracted_at: str, *, append: bool) -> None:
    """Load projects/tags as Airbyte's DuckDB destination lays them out (meta columns first)."""
    con.execute(f"create schema if not exists {RAW_SCHEMA}")
    columns = {
        "projects": "{'id': 'BIGINT', 'created_on': 'TIMESTAMP', 'title': 'VARCHAR', 'description': 'VARCHAR'}",
        "tags": "{'id': 'BIGINT', 'tag': 'VARCHAR'}",
    }
    for table, cols in columns.items():
        select = (
            "select cast(uuid() as varchar) as _airbyte_raw_id, "
            f"cast('{extracted_at}' as timestamptz) as _airbyte_extracted_at, "
            """'{"changes":[]}' as _airbyte_meta, * """
            f"from read_csv('{data / (table + '.csv')}', header = true, columns = {cols})"
        )
        if append:
            con.execute(f"insert into {RAW_SCHEMA}.{table} {select}")
        else:
            con.execute(f"create table {RAW_SCHEMA}.{table} as {select}")


@pytest.fixture(scope="module")
def raw_template(tmp_path_factory: pytest.TempPathFactory, madewithml_dir: Path) -> Path:
    path = tmp_path_factory.mktemp("raw") / "warehouse.duckdb"
    with duckdb_connect(path) as con:
        _load_raw(con, madewithml_dir, FIRST_SYNC, append=False)
    return path


@pytest.fixture
def warehouse(tmp_path: Path, raw_template: Path) -> Path:
    """A fresh copy of the raw warehouse (955 projects and tags, one sync) per test."""
    path = tmp_path / "warehouse.duckdb"
    shutil.copy(raw_template, path)
    return path


def _mart(path: Path) -> list[tuple]:
    with duckdb_connect(path, read_only=True) as con:
        return con.execute(f"select * from {AUDIT_SCHEMA}.labeled_projects order by id").fetchall()


def test_build_makes_the_lessons_labeled_projects(warehouse: Path, madewithml_dir: Path) -> None:
    dbt_dir = project_dir("dbt_transforms")
    had_target = (dbt_dir / "target").exists()
    env_before = dict(os.environ)

    result = run_dbt(f"duckdb://{warehouse}")

    assert result.success and result.target == "duckdb" and result.invocation_id
    assert result.rows == 955
    with duckdb_connect(warehouse, read_only=True) as con:
        described = con.execute(f"describe {AUDIT_SCHEMA}.labeled_projects").fetchall()
        kinds = dict(
            con.execute(
                "select table_name, table_type from information_schema.tables where table_schema = ?",
                [AUDIT_SCHEMA],
            ).fetchall()
        )
    assert [row[0] for row in described] == MART_COLUMNS
    assert kinds == {"stg_projects": "BASE TABLE", "stg_tags": "BASE TABLE", "labeled_projects": "BASE TABLE"}
    # Same content as the lesson's labeled_projects.csv (projects joined with tags).
    with open(madewithml_dir / "labeled_projects.csv", newline="", encoding="utf-8") as f:
        expected = {(int(r["id"]), r["title"], r["tag"]) for r in csv.DictReader(f)}
    assert {(r[0], r[2], r[4]) for r in _mart(warehouse)} == expected
    assert result.data_version == frame_version(read_table(str(warehouse), AUDIT_SCHEMA, "labeled_projects"))

    statuses = {n.name: n.status for n in result.nodes}
    assert statuses["labeled_projects"] == "success"
    assert statuses["unique_labeled_projects_id"] == "pass"
    assert len([n for n in result.nodes if n.resource_type == "test"]) == 9
    summary = result.summary_markdown()
    assert "| unique_labeled_projects_id | test | pass | 0 |" in summary
    assert "955 rows" in summary
    # The call leaves no trace: environment restored, no target/ or logs/ in the project.
    assert dict(os.environ) == env_before
    assert had_target or not (dbt_dir / "target").exists()


def test_resynced_source_keeps_the_latest_record(warehouse: Path, madewithml_dir: Path) -> None:
    with duckdb_connect(warehouse) as con:
        _load_raw(con, madewithml_dir, "2024-02-01 00:00:00+00", append=True)
        con.execute(
            f"update {RAW_SCHEMA}.projects set title = title || ' (v2)' "
            "where _airbyte_extracted_at > timestamptz '2024-01-15 00:00:00+00'"
        )
        # A tie on _airbyte_extracted_at is broken by _airbyte_raw_id (the greater wins).
        con.execute(
            f"insert into {RAW_SCHEMA}.tags values "
            "('00000000-tie-low', timestamptz '2024-03-01 00:00:00+00', '{}', 6, 'tie-loser'), "
            "('ffffffff-tie-high', timestamptz '2024-03-01 00:00:00+00', '{}', 6, 'tie-winner')"
        )
        assert con.execute(f"select count(*) from {RAW_SCHEMA}.projects").fetchone() == (1910,)

    result = run_dbt(str(warehouse))

    rows = _mart(warehouse)
    assert result.rows == len(rows) == 955
    assert all(r[2].endswith(" (v2)") for r in rows)
    assert dict((r[0], r[4]) for r in rows)[6] == "tie-winner"


def test_failing_data_test_is_named(warehouse: Path) -> None:
    with duckdb_connect(warehouse) as con:
        con.execute(f"update {RAW_SCHEMA}.projects set title = null where id = 6")

    with pytest.raises(DbtTransformError) as err:
        run_dbt(str(warehouse))

    assert "test not_null_labeled_projects_title failed: 1 failure" in str(err.value)
    assert "unique_labeled_projects_id" not in str(err.value)  # only what broke is named
    assert err.value.result is not None
    assert "| not_null_labeled_projects_title | test | fail | 1 |" in err.value.result.summary_markdown()


def test_missing_raw_table_names_the_model(warehouse: Path) -> None:
    with duckdb_connect(warehouse) as con:
        con.execute(f"drop table {RAW_SCHEMA}.tags")

    with pytest.raises(DbtTransformError, match=r"model stg_tags errored: .*tags") as err:
        run_dbt(str(warehouse))

    assert "skipped: " in str(err.value) and "labeled_projects" in str(err.value)


def test_dbt_connects_with_the_warehouse_memory_settings(
    warehouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The profile takes DuckDB's memory limit from the same setting as every other connection."""
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "lots")
    with pytest.raises(DbtTransformError, match=r"(?i)memory"):
        run_dbt(str(warehouse))

    monkeypatch.setenv(MEMORY_LIMIT_ENV, "256MB")
    monkeypatch.setenv(TEMP_DIR_ENV, str(warehouse.parent / "spill"))
    assert run_dbt(str(warehouse)).rows == 955


def _input(tmp_path: Path, ref: TableRef) -> dsl.Dataset:
    artifact = dsl.Dataset(name=ref.table, uri=str(tmp_path / "inputs" / ref.table), metadata={})
    write_table_ref(artifact, ref)
    return artifact


def test_component_writes_summary_and_table_ref(tmp_path: Path, warehouse: Path) -> None:
    uri = f"duckdb://{warehouse}"
    projects = _input(tmp_path, TableRef(uri, RAW_SCHEMA, "projects", 955, "p-version"))
    tags = _input(tmp_path, TableRef(uri, RAW_SCHEMA, "tags", 955, "t-version"))
    labeled = dsl.Dataset(
        name="labeled_projects", uri=str(tmp_path / "out" / "labeled_projects"), metadata={}
    )
    report = dsl.Markdown(name="run_results", uri=str(tmp_path / "out" / "run_results.md"), metadata={})

    dbt_transform.python_func(
        projects=projects, tags=tags, warehouse=uri, labeled_projects=labeled, run_results=report
    )

    ref = read_table_ref(labeled.path)
    assert ref is not None
    assert (ref.schema, ref.table, ref.rows) == (AUDIT_SCHEMA, "labeled_projects", 955)
    assert ref.data_version == frame_version(read_table(uri, AUDIT_SCHEMA, "labeled_projects"))
    assert labeled.metadata["rows"] == 955
    assert labeled.metadata["source_versions"] == {"projects": "p-version", "tags": "t-version"}
    invocation = labeled.metadata["dbt_invocation_id"]
    assert invocation and report.metadata["dbt_invocation_id"] == invocation
    text = Path(report.path).read_text()
    assert text.startswith("## dbt build succeeded") and invocation in text
    assert "| labeled_projects | model | success |" in text


def test_component_refuses_inputs_that_are_not_the_raw_tables(tmp_path: Path, warehouse: Path) -> None:
    uri = f"duckdb://{warehouse}"
    projects = _input(tmp_path, TableRef(uri, RAW_SCHEMA, "projects", 955))
    wrong = _input(tmp_path, TableRef(uri, RAW_SCHEMA, "labeled_projects", 955))
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="input tags must reference the raw table 'tags'"):
        dbt_transform.python_func(
            projects=projects,
            tags=wrong,
            warehouse=uri,
            labeled_projects=dsl.Dataset(name="l", uri=str(out / "l"), metadata={}),
            run_results=dsl.Markdown(name="r", uri=str(out / "r"), metadata={}),
        )


def test_bigquery_target_compiles_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    real_connect = socket.socket.connect

    def no_network(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            raise AssertionError(f"compile_only tried to reach {address}")
        real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", no_network)
    for var in ("DBT_BIGQUERY_PROJECT", "DBT_BIGQUERY_KEYFILE", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(var, raising=False)

    compiled = compile_only("bigquery")

    assert set(compiled) == {"stg_projects", "stg_tags", "labeled_projects"}
    assert "from `compile-check`.`mlops_course`.`projects`" in compiled["stg_projects"]
    assert "cast(title as string)" in compiled["stg_projects"]
    assert "`compile-check`.`mlops_course_audit`.`stg_tags`" in compiled["labeled_projects"]
    assert "DBT_BIGQUERY_PROJECT" not in os.environ


def test_raw_tables_another_run_changed_since_the_sync_are_not_transformed(warehouse: Path) -> None:
    uri = f"duckdb://{warehouse}"
    versions = {t: table_version(uri, RAW_SCHEMA, t)[1] for t in ("projects", "tags")}
    run_dbt(uri, source_versions=versions)  # what this run's syncs recorded: built
    before = _mart(warehouse)
    with duckdb_connect(warehouse) as con:  # another run's sync replaces the tags meanwhile
        con.execute(
            f"update {RAW_SCHEMA}.tags set tag = 'other' where id in (select min(id) from {RAW_SCHEMA}.tags)"
        )
    with pytest.raises(
        DbtTransformError, match=r"mlops_course\.tags no longer holds .*nothing was transformed"
    ):
        run_dbt(uri, source_versions=versions)
    assert _mart(warehouse) == before  # the audit table was not rebuilt


def test_the_audit_schema_can_never_be_the_published_one(warehouse: Path) -> None:
    for schema in (RAW_SCHEMA, RAW_SCHEMA.upper()):
        with pytest.raises(DbtTransformError, match="is the published schema"):
            run_dbt(f"duckdb://{warehouse}", target_schema=schema)
