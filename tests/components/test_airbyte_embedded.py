"""airbyte_sync embedded mode: real CSV files into a real DuckDB warehouse in tmp_path."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import duckdb
import pytest
from kfp import dsl

from components.airbyte_sync.component import airbyte_sync
from components.airbyte_sync.embedded import SourceError, load_stream
from components.artifacts import TableRef, read_table_ref
from components.warehouse import MEMORY_LIMIT_ENV, WarehouseError

PROJECTS = (
    "id,created_on,title,description\n"
    "6,2020-02-20 06:43:18,Comparison between YOLO and RCNN,Bringing theory to experiment is cool.\n"
    '7,2020-02-20 06:47:21,"Show, Infer & Tell","The beauty of the work\r\nlies in ""the"" idea.\n"\n'
    "9,2020-02-24 16:24:45,Awesome Graph Classification,A collection of graph papers\n"
)
TAGS = "id,tag\n6,computer-vision\n7,computer-vision\n9,graph-learning\n"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _source(folder: Path, projects: str | bytes = PROJECTS, tags: str | bytes = TAGS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in (("projects.csv", projects), ("tags.csv", tags)):
        data = content.encode() if isinstance(content, str) else content
        (folder / name).write_bytes(data)
    return folder


def _content(wh: Path, stream: str) -> list[tuple[Any, ...]]:
    """The whole table, meta columns included, in a stable order."""
    with duckdb.connect(str(wh), read_only=True) as con:
        return con.execute(f"select * from mlops_course.{stream} order by all").fetchall()


def test_real_dataset_loads_every_record_with_airbyte_meta_columns(
    madewithml_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    wh = tmp_path / "wh.duckdb"

    refs = {s: load_stream(madewithml_dir, s, str(wh)) for s in ("projects", "tags")}
    printed = capsys.readouterr().out
    for stream in ("projects", "tags"):  # a progress line with the load's rate
        assert re.search(
            rf"^\[progress\] {stream}: 955 rows loaded in [\d.]+ s \([\d,]+ rows/s\)$", printed, re.M
        )

    assert refs["projects"].rows == 955 and refs["tags"].rows == 955
    assert refs["projects"].fqn == "mlops_course.projects"
    assert refs["projects"].warehouse == f"duckdb:///{wh}"
    with duckdb.connect(str(wh), read_only=True) as con:
        schema = con.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'mlops_course' and table_name = 'projects' order by ordinal_position"
        ).fetchall()
        assert schema == [
            ("_airbyte_raw_id", "VARCHAR"),
            ("_airbyte_extracted_at", "TIMESTAMP WITH TIME ZONE"),
            ("_airbyte_meta", "VARCHAR"),
            ("id", "BIGINT"),
            ("created_on", "TIMESTAMP"),
            ("title", "VARCHAR"),
            ("description", "VARCHAR"),
        ]
        loaded = con.execute(
            "select _airbyte_raw_id, _airbyte_meta, id, title, description from mlops_course.projects"
        ).fetchall()
        assert con.execute("select count(*) from mlops_course.tags").fetchone() == (955,)
    # Lossless: the same records as Python's csv module reads, quoted newlines and CRLFs kept.
    with (madewithml_dir / "projects.csv").open(newline="", encoding="utf-8") as fh:
        expected = {(int(r["id"]), r["title"], r["description"]) for r in csv.DictReader(fh)}
    assert {(r[2], r[3], r[4]) for r in loaded} == expected
    assert any("\r\n" in (r[4] or "") for r in loaded)
    raw_ids = [r[0] for r in loaded]
    assert len(set(raw_ids)) == 955 and all(UUID.match(i) for i in raw_ids)
    meta = json.loads(loaded[0][1])
    assert meta["changes"] == [] and isinstance(meta["sync_id"], int)


def test_loading_twice_leaves_an_identical_table(tmp_path: Path):
    src = _source(tmp_path / "src")
    wh = tmp_path / "wh.duckdb"

    first = load_stream(src, "projects", str(wh))
    before = _content(wh, "projects")
    second = load_stream(src, "projects", str(wh))

    assert _content(wh, "projects") == before
    assert second == first
    assert len(before) == 3


def test_changed_source_replaces_the_table_with_a_new_version(tmp_path: Path):
    src = _source(tmp_path / "src")
    wh = tmp_path / "wh.duckdb"
    first = load_stream(src, "tags", str(wh))

    _source(src, tags="id,tag\n6,mlops\n")
    second = load_stream(src, "tags", str(wh))

    assert second.rows == 1 and second.data_version != first.data_version
    assert [(r[3], r[4]) for r in _content(wh, "tags")] == [(6, "mlops")]


def test_duplicates_nulls_and_column_order_load_as_they_are(tmp_path: Path):
    # Duplicates and nulls are the validation step's to report, not the loader's to drop.
    src = _source(
        tmp_path / "src",
        projects=(
            "title,id,description,created_on\n"
            "A,1,first,2020-01-01\n"
            "A,1,first,2020-01-01\n"
            ',2,"",2020-01-02T10:11:12\n'
            "C,,,\n"
        ),
    )
    wh = tmp_path / "wh.duckdb"

    ref = load_stream(src, "projects", str(wh))

    assert ref.rows == 4
    rows = [r[3:] for r in _content(wh, "projects")]
    assert sorted(rows, key=str) == sorted(
        [
            (1, _ts("2020-01-01 00:00:00"), "A", "first"),
            (1, _ts("2020-01-01 00:00:00"), "A", "first"),
            (2, _ts("2020-01-02 10:11:12"), None, ""),  # "" stays an empty string
            (None, None, "C", None),
        ],
        key=str,
    )
    assert len({r[0] for r in _content(wh, "projects")}) == 4  # raw ids stay unique


def _ts(text: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(text)


BROKEN: dict[str, tuple[str, bytes | None, str]] = {
    # case: (file, new content or None to delete it, expected message)
    "empty file": ("projects.csv", b"", r"projects\.csv: file is empty \(0 bytes\)"),
    "header only": ("projects.csv", b"id,created_on,title,description\n", r"no data rows \(header only\)"),
    "missing column": (
        "projects.csv",
        b"id,created_on,title\n1,2020-01-01,a\n",
        r"projects\.csv: missing column\(s\) description",
    ),
    "misnamed column": (
        "tags.csv",
        b"id,tags\n1,mlops\n",
        r"tags\.csv: missing column\(s\) tag; unexpected column\(s\) 'tags'",
    ),
    "extra column": (
        "tags.csv",
        b"id,tag,note\n1,mlops,x\n",
        r"tags\.csv: unexpected column\(s\) 'note'",
    ),
    "extra field in a row": (
        "tags.csv",
        b"id,tag\n1,mlops\n2,mlops,surprise\n3,mlops\n",
        r"tags\.csv: malformed CSV at line 3: Expected Number of Columns: 2 Found: 3",
    ),
    "unbalanced quote": (
        "projects.csv",
        b'id,created_on,title,description\n1,2020-01-01,a,b\n2,2020-01-02,"broken title,c\n3,2020-01-03,d,e\n',
        r"projects\.csv: malformed CSV at line 3: Value with unterminated quote found",
    ),
    "non-UTF-8 bytes": (
        "projects.csv",
        b"id,created_on,title,description\n1,2020-01-01,a,b\n2,2020-01-02,caf\xe9,latin-1 text\n",
        r"projects\.csv: malformed CSV at line 3: Invalid unicode .* not utf-8 encoded",
    ),
    "unparseable date": (
        "projects.csv",
        b'id,created_on,title,description\n1,2020-01-01,a,"multi\nline"\n2,2020-01-02,b,c\n'
        b"3,2020-02-30 10:00:00,d,e\n",
        r"projects\.csv: column created_on must be a date .* first '2020-02-30 10:00:00' on line 5",
    ),
    "date with a UTC offset": (
        "projects.csv",
        b"id,created_on,title,description\n1,2020-01-01 10:00:00+02,a,b\n",
        r"column created_on must be a date",
    ),
    "non-integer id": (
        "projects.csv",
        b"id,created_on,title,description\n1,2020-01-01,a,b\n1.5,2020-01-01,a,b\n",
        r"projects\.csv: column id must be an integer: 1 value\(s\) .* first '1\.5' on line 3",
    ),
    "text id": (
        "tags.csv",
        b"id,tag\nseven,mlops\n",
        r"tags\.csv: column id must be an integer",
    ),
    "missing file": ("tags.csv", None, r"tags\.csv: file not found"),
}


@pytest.mark.parametrize("case", list(BROKEN), ids=list(BROKEN))
def test_broken_source_fails_clearly_and_keeps_the_loaded_table(tmp_path: Path, case: str):
    src = _source(tmp_path / "src")
    wh = tmp_path / "wh.duckdb"
    for stream in ("projects", "tags"):
        load_stream(src, stream, str(wh))
    before = {s: _content(wh, s) for s in ("projects", "tags")}
    name, content, message = BROKEN[case]
    if content is None:
        (src / name).unlink()
    else:
        (src / name).write_bytes(content)
    stream = name.removesuffix(".csv")

    with pytest.raises(SourceError, match=message):
        load_stream(src, stream, str(wh))

    assert {s: _content(wh, s) for s in ("projects", "tags")} == before
    with duckdb.connect(str(wh), read_only=True) as con:  # no staging leftovers either
        tables = con.execute("select table_name from information_schema.tables").fetchall()
    assert sorted(tables) == [("projects",), ("tags",)]


def test_the_load_runs_under_the_warehouse_memory_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The loader's connection carries the configured limit: below one CSV read buffer (the
    file, up to one maximal line) the load fails naming the setting, and the loaded table stays."""
    src = _source(tmp_path / "src")
    wh = tmp_path / "wh.duckdb"
    load_stream(src, "tags", str(wh))
    before = _content(wh, "tags")
    rows = 600_000  # an 8 MB file
    (src / "tags.csv").write_text("id,tag\n" + "".join(f"{i},tag-{i % 50}\n" for i in range(rows)))

    monkeypatch.setenv(MEMORY_LIMIT_ENV, "4MB")
    with pytest.raises(WarehouseError, match=rf"tags\.csv: DuckDB ran out of memory .*{MEMORY_LIMIT_ENV}"):
        load_stream(src, "tags", str(wh))
    assert _content(wh, "tags") == before

    monkeypatch.setenv(MEMORY_LIMIT_ENV, "256MB")
    assert load_stream(src, "tags", str(wh)).rows == rows


def test_first_load_of_a_broken_source_creates_nothing(tmp_path: Path):
    src = _source(tmp_path / "src", tags=b"id,tag\nx,mlops\n")
    wh = tmp_path / "wh.duckdb"

    with pytest.raises(SourceError):
        load_stream(src, "tags", str(wh))

    with duckdb.connect(str(wh), read_only=True) as con:
        assert con.execute("select count(*) from information_schema.tables").fetchone() == (0,)


def test_unknown_stream_and_bigquery_warehouse_are_refused(tmp_path: Path):
    src = _source(tmp_path / "src")
    with pytest.raises(SourceError, match="unknown stream 'users'"):
        load_stream(src, "users", str(tmp_path / "wh.duckdb"))
    with pytest.raises(WarehouseError, match=r"mode='server'.*BigQuery"):
        load_stream(src, "projects", "bigquery://my-project")


def test_component_embedded_mode_writes_a_table_ref(madewithml_dir: Path, tmp_path: Path):
    wh = tmp_path / "stores" / "warehouse.duckdb"
    # A local artifact: kfp maps a plain local uri to .path unchanged.
    table = dsl.Dataset(name="table", uri=str(tmp_path / "out" / "table"), metadata={})
    assert table.path == str(tmp_path / "out" / "table")

    out = airbyte_sync.python_func(
        stream="tags", warehouse=f"duckdb:///{wh}", table=table, source=str(madewithml_dir)
    )

    ref = read_table_ref(table.path)
    assert isinstance(ref, TableRef)
    assert (ref.fqn, ref.rows, ref.warehouse) == ("mlops_course.tags", 955, f"duckdb:///{wh}")
    assert (out.status, out.records) == ("succeeded", 955)
    assert out.job_id == f"embedded-{ref.data_version}"
    assert table.metadata["rows"] == 955 and table.metadata["job_id"] == out.job_id
    assert len(_content(wh, "tags")) == 955


def test_component_refuses_an_unknown_mode(tmp_path: Path):
    table = dsl.Dataset(name="table", uri=str(tmp_path / "table"), metadata={})
    with pytest.raises(ValueError, match="mode must be 'embedded' or 'server'"):
        airbyte_sync.python_func(
            stream="tags", warehouse=str(tmp_path / "wh.duckdb"), table=table, mode="cloud"
        )


def test_load_waits_for_another_process_to_release_the_warehouse(tmp_path: Path):
    # The projects and tags syncs run in parallel on a cluster: DuckDB lets one process write.
    src = _source(tmp_path / "src")
    wh = tmp_path / "wh.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time\n"
            f"con = duckdb.connect({str(wh)!r})\n"
            "print('locked', flush=True)\n"
            "sys.stdin.readline()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(WarehouseError, match=r"locked by a process outside the project.s turns: .*PID"):
            load_stream(src, "tags", str(wh), lock_wait_s=0.3)

        # Release the lock a moment after the load starts waiting.
        timer = threading.Timer(0.5, lambda: holder.communicate(""))
        timer.start()
        ref = load_stream(src, "tags", str(wh), lock_wait_s=30)
        timer.join()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()

    assert ref.rows == 3
