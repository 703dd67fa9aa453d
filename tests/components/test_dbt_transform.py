"""dbt_transform: real dbt on a real DuckDB warehouse built from the lesson's dataset."""

from __future__ import annotations

import csv
import os
import re
import shutil
import socket
from pathlib import Path
from typing import Any

import duckdb
import pytest
from kfp import dsl

from components.airbyte_sync.component import airbyte_sync
from components.artifacts import TableRef, read_table_ref, write_table_ref
from components.dbt_transform.compile import compile_only
from components.dbt_transform.component import dbt_transform
from components.dbt_transform.core import check_one_source, run_dbt
from components.dbt_transform.results import DbtTransformError
from components.paths import project_dir
from components.versions import frame_version, table_version
from components.warehouse import (
    AUDIT_SCHEMA,
    MEMORY_LIMIT_ENV,
    RAW_SCHEMA,
    TEMP_DIR_ENV,
    duckdb_connect,
    read_table,
)
from tagifai.sources import read_source_fingerprint

MART_COLUMNS = ["id", "created_on", "title", "description", "tag"]
RELATIONSHIPS = "relationships_stg_tags_id__id__ref_stg_projects_"
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
    assert statuses[RELATIONSHIPS] == "pass"  # every tag belongs to a project
    assert len([n for n in result.nodes if n.resource_type == "test"]) == 10
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


def test_a_tag_for_a_project_that_does_not_exist_fails_the_build(warehouse: Path) -> None:
    """The mart's left join would drop such a row without a word: the relationships test on
    stg_tags.id names it, with the row count, and nothing downstream is built."""
    with duckdb_connect(warehouse) as con:
        con.execute(
            f"insert into {RAW_SCHEMA}.tags select _airbyte_raw_id || '-orphan', _airbyte_extracted_at, "
            f"_airbyte_meta, id + 100000, tag from {RAW_SCHEMA}.tags order by id limit 2"
        )

    with pytest.raises(DbtTransformError) as err:
        run_dbt(str(warehouse))

    message = str(err.value)
    assert f"test {RELATIONSHIPS} failed: 2 failures (relationships on stg_tags.id)" in message
    assert "skipped: " in message and "labeled_projects" in message.split("skipped: ", 1)[1]
    assert err.value.result is not None
    assert not [n for n in err.value.result.nodes if n.name == "labeled_projects" and n.status == "success"]


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
    docs = dsl.HTML(name="docs", uri=str(tmp_path / "out" / "docs"), metadata={})

    dbt_transform.python_func(
        projects=projects, tags=tags, warehouse=uri, labeled_projects=labeled, run_results=report, docs=docs
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
    # dbt's documentation site, one page that works offline: the models, their tests, lineage.
    page = Path(docs.path).read_text()
    assert page.startswith("<!doctype html>") or page.lower().startswith("<!doctype html>")
    assert '"model.mlops_course.labeled_projects"' in page and '"model.mlops_course.stg_tags"' in page
    assert not re.findall(r"""<(?:script|link|img)[^>]+(?:src|href)=["']https?://""", page)


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
            docs=dsl.HTML(name="d", uri=str(out / "d"), metadata={}),
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

    compiled = compile_only("bigquery", tests=True)

    models = {"stg_projects", "stg_tags", "labeled_projects"}
    assert models < set(compiled) and len(compiled) == len(models) + 10
    # The referential test runs on BigQuery's staged tables like any other.
    relationships = " ".join(compiled[RELATIONSHIPS].split())
    assert "from `compile-check`.`mlops_course_audit`.`stg_tags`" in relationships
    assert "from `compile-check`.`mlops_course_audit`.`stg_projects`" in relationships
    assert "where parent.to_field is null" in relationships
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


# --- one version of the source --------------------------------------------------------------


def _sync(stream: str, source: Path, warehouse: Path, out: Path) -> dsl.Dataset:
    table = dsl.Dataset(name=stream, uri=str(out / f"sync-{stream}" / "table"), metadata={})
    airbyte_sync.python_func(
        stream=stream, warehouse=f"duckdb:///{warehouse}", table=table, source=str(source)
    )
    return table


def _transform(projects: dsl.Dataset, tags: dsl.Dataset, warehouse: Path, out: Path) -> dsl.Dataset:
    labeled = dsl.Dataset(
        name="labeled_projects", uri=str(out / "transform" / "labeled_projects"), metadata={}
    )
    report = dsl.Markdown(name="run_results", uri=str(out / "transform" / "run_results.md"), metadata={})
    dbt_transform.python_func(
        projects=projects,
        tags=tags,
        warehouse=f"duckdb:///{warehouse}",
        labeled_projects=labeled,
        run_results=report,
        docs=dsl.HTML(name="docs", uri=str(out / "transform" / "docs"), metadata={}),
    )
    return labeled


def _audit_tables(warehouse: Path) -> list[str]:
    with duckdb_connect(warehouse, read_only=True) as con:
        return [
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_schema = ? order by 1",
                [AUDIT_SCHEMA],
            ).fetchall()
        ]


def test_a_source_rewritten_between_the_two_syncs_is_not_transformed(
    madewithml_dir: Path, tmp_path: Path
) -> None:
    """D1 -> D2 between the syncs: D1's projects must never be joined with D2's tags."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("projects.csv", "tags.csv"):
        shutil.copyfile(madewithml_dir / name, source / name)
    warehouse = tmp_path / "warehouse.duckdb"
    d1 = read_source_fingerprint(source)

    projects = _sync("projects", source, warehouse, tmp_path / "run1")
    # The folder is rewritten between the two syncs: version D2 relabels ten projects.
    with (madewithml_dir / "tags.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    relabelled = {int(r[0]) for r in rows[1:11]}
    with (source / "tags.csv").open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, lineterminator="\n").writerows(
            [rows[0], *[[r[0], "mlops"] for r in rows[1:11]], *rows[11:]]
        )
    d2 = read_source_fingerprint(source)
    tags = _sync("tags", source, warehouse, tmp_path / "run1")
    assert (projects.metadata["source_fingerprint"], tags.metadata["source_fingerprint"]) == (
        d1.token,
        d2.token,
    )

    with pytest.raises(DbtTransformError) as err:
        _transform(projects, tags, warehouse, tmp_path / "run1")

    assert str(err.value) == (
        f"the source changed during the run: projects was loaded from {d1.token}; tags was loaded from "
        f"{d2.token} (tags.csv changed between the syncs); nothing was transformed: run again to load one "
        "version of the source"
    )
    assert _audit_tables(warehouse) == []  # dbt never ran

    # A run that reads one version (D2, for both streams) transforms, and its mart says which.
    projects = _sync("projects", source, warehouse, tmp_path / "run2")
    labeled = _transform(projects, tags, warehouse, tmp_path / "run2")
    assert labeled.metadata["source_fingerprint"] == d2.token
    ref = read_table_ref(labeled.path)
    assert ref is not None and ref.source_fingerprint == d2.token
    mart = {r[0]: r[4] for r in _mart(warehouse)}
    assert len(mart) == 955 and {mart[i] for i in relabelled} == {"mlops"}


def test_the_agreed_source_fingerprint_is_checked_only_where_the_syncs_recorded_one() -> None:
    uri = "duckdb:///w.duckdb"

    def refs(projects: str, tags: str) -> dict[str, TableRef]:
        return {
            "projects": TableRef(uri, RAW_SCHEMA, "projects", 1, source_fingerprint=projects),
            "tags": TableRef(uri, RAW_SCHEMA, "tags", 1, source_fingerprint=tags),
        }

    same = "projects.csv=aaaa;tags.csv=bbbb"
    assert check_one_source(refs(same, same)) == same
    # An Airbyte server sync reads the source itself and records nothing: nothing to compare.
    assert check_one_source(refs("", "")) == ""
    assert check_one_source(refs(same, "")) == ""
    with pytest.raises(DbtTransformError, match=r"\(projects\.csv, tags\.csv changed between the syncs\)"):
        check_one_source(refs(same, "projects.csv=cccc;tags.csv=dddd"))
    with pytest.raises(DbtTransformError, match=r"\(the files changed between the syncs\)"):
        check_one_source(refs("unreadable", "also unreadable"))
