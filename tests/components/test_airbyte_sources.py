"""airbyte_sync embedded mode, on what a source folder can hold: files that are not regular
files, errors after quoted newlines (the file's line numbers), the source fingerprint, and
what a careful user expects to load (each one loaded and validated by the real suites)."""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
from kfp import dsl

from components.airbyte_sync.component import airbyte_sync
from components.airbyte_sync.embedded import SourceError, load_stream
from components.artifacts import read_table_ref
from components.ge_validate.core import validate_table
from components.warehouse import RAW_SCHEMA
from tagifai.datasets import SourceUnavailable
from tagifai.sources import read_source_fingerprint

HEADER = b"id,created_on,title,description\n"
TAGS = b"id,tag\n1,mlops\n2,mlops\n"
KEY = b'{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----MIIEvAIBADANBg-SECRET"}\n'
SECRET = "MIIEvAIBADANBg-SECRET"


def _source(
    folder: Path, projects: bytes = HEADER + b"1,2020-01-01,a,b\n2,2020-01-02,c,d\n", tags: bytes = TAGS
):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "projects.csv").write_bytes(projects)
    (folder / "tags.csv").write_bytes(tags)
    return folder


def _tables(wh: Path) -> list[tuple[str, str]]:
    if not wh.exists():
        return []
    with duckdb.connect(str(wh), read_only=True) as con:
        return con.execute(
            "select table_schema, table_name from information_schema.tables order by all"
        ).fetchall()


# --- only regular files inside the folder ---------------------------------------------------


def _key_elsewhere(tmp_path: Path) -> Path:
    key = tmp_path / "secrets" / "key.json"
    key.parent.mkdir(exist_ok=True)
    key.write_bytes(KEY)
    return key


def _replace(kind: str, path: Path, tmp_path: Path) -> None:
    """Put something that is not a regular file of the folder where ``path`` was."""
    real = path.read_bytes()
    path.unlink()
    if kind == "symlink to a key outside":
        path.symlink_to(_key_elsewhere(tmp_path))
    elif kind == "symlink inside the folder":
        (path.parent / f"real-{path.name}").write_bytes(real)
        path.symlink_to(path.parent / f"real-{path.name}")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    else:
        raise AssertionError(kind)


KINDS = {
    "symlink to a key outside": "a symbolic link",
    "symlink inside the folder": "a symbolic link",
    "fifo": "a FIFO (named pipe)",
    "directory": "a directory",
}


@pytest.mark.parametrize("which", ["its own file", "the other file of the pair"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_a_source_file_that_is_not_a_regular_file_is_refused_and_nothing_loads(
    kind: str, which: str, tmp_path: Path
) -> None:
    src = _source(tmp_path / "src")
    broken = src / ("projects.csv" if which == "its own file" else "tags.csv")
    _replace(kind, broken, tmp_path)
    wh = tmp_path / "wh.duckdb"

    with pytest.raises(SourceError) as err:
        load_stream(src, "projects", str(wh))

    message = str(err.value)
    assert message == (
        f"{broken}: is {KINDS[kind]}, not a regular file; sources are read only from regular files "
        f"inside the source folder (copy the file into {src})"
    )
    assert SECRET not in message
    assert _tables(wh) == []


def test_the_component_refuses_a_link_to_a_key_without_printing_it(tmp_path: Path) -> None:
    src = _source(tmp_path / "src")
    (src / "tags.csv").unlink()
    (src / "tags.csv").symlink_to(_key_elsewhere(tmp_path))
    table = dsl.Dataset(name="table", uri=str(tmp_path / "out" / "table"), metadata={})

    # The component resolves its source first: the same rule refuses it there.
    with pytest.raises(SourceUnavailable, match=r"tags\.csv: is a symbolic link") as err:
        airbyte_sync.python_func(
            stream="tags", warehouse=f"duckdb:///{tmp_path / 'wh.duckdb'}", table=table, source=str(src)
        )
    assert SECRET not in str(err.value) and "service_account" not in str(err.value)
    assert not Path(table.path).exists()


def test_a_message_quotes_at_most_a_short_piece_of_the_file(tmp_path: Path) -> None:
    long_header = b"id,created_on,title," + b"x" * 500 + b"\n1,2020-01-01,a,b\n"
    src = _source(tmp_path / "src", projects=long_header)
    with pytest.raises(SourceError, match=r"unexpected column\(s\)") as err:
        load_stream(src, "projects", str(tmp_path / "wh.duckdb"))
    quoted = str(err.value).split("(header ", 1)[1]
    assert "x" * 50 in quoted and "x" * 80 not in str(err.value)


# --- the file's line numbers ------------------------------------------------------------------

LINES: dict[str, tuple[str, bytes, str, bytes]] = {
    # case: (stream, file, message, how the named line starts)
    "a value after quoted newlines": (
        "projects",
        HEADER + b'1,2020-01-01,a,"one\ntwo\nthree"\n2,2020-01-02,b,"x\r\ny"\n3,2020-13-45,c,d\n',
        r"column created_on must be a date .* first '2020-13-45' on line 7$",
        b"3,2020-13-45",
    ),
    "an extra field after quoted newlines and a blank line": (
        "projects",
        HEADER + b'1,2020-01-01,a,"one\ntwo"\n\n2,2020-01-02,b,c,EXTRA\n',
        r"malformed CSV at line 5: Expected Number of Columns: 4 Found: 5",
        b"2,2020-01-02,b,c,EXTRA",
    ),
    "an unterminated quote after quoted newlines": (
        "projects",
        HEADER + b'1,2020-01-01,a,"one\ntwo"\n2,2020-01-02,"b,c\n3,2020-01-03,d,e\n',
        r"malformed CSV at line 4: Value with unterminated quote found",
        b'2,2020-01-02,"b,c',
    ),
    "bytes that are not UTF-8 in a CRLF file": (
        "projects",
        b'id,created_on,title,description\r\n1,2020-01-01,a,"one\r\ntwo"\r\n2,2020-01-02,caf\xe9,c\r\n',
        r"malformed CSV at line 4: Invalid unicode .* not utf-8 encoded",
        b"2,2020-01-02,caf",
    ),
    "an id after a BOM and blank lines": (
        "tags",
        b"\xef\xbb\xbfid,tag\n1,mlops\n\n\nseven,mlops\n",
        r"tags\.csv: column id must be an integer: 1 value\(s\) .* first 'seven' on line 5$",
        b"seven,mlops",
    ),
}


@pytest.mark.parametrize("case", list(LINES))
def test_errors_name_the_line_of_the_file(case: str, tmp_path: Path) -> None:
    stream, data, message, starts = LINES[case]
    src = _source(tmp_path / "src", **{stream: data})

    with pytest.raises(SourceError, match=message) as err:
        load_stream(src, stream, str(tmp_path / "wh.duckdb"))

    named = re.search(r"(?:at|on) line (\d+)", str(err.value))
    assert named, str(err.value)
    line = int(named.group(1))
    assert data.splitlines()[line - 1].lstrip(b"\xef\xbb\xbf").startswith(starts)


# --- one version of the source ----------------------------------------------------------------


def test_both_streams_record_the_fingerprint_of_the_pair_they_were_loaded_from(tmp_path: Path) -> None:
    src = _source(tmp_path / "src")
    wh = tmp_path / "wh.duckdb"
    fingerprint = read_source_fingerprint(src).token

    refs = {stream: load_stream(src, stream, str(wh)) for stream in ("projects", "tags")}
    assert {ref.source_fingerprint for ref in refs.values()} == {fingerprint}

    (src / "tags.csv").write_bytes(b"id,tag\n1,computer-vision\n2,mlops\n")
    changed = load_stream(src, "tags", str(wh))
    assert changed.source_fingerprint == read_source_fingerprint(src).token != fingerprint

    table = dsl.Dataset(name="table", uri=str(tmp_path / "out" / "table"), metadata={})
    airbyte_sync.python_func(stream="projects", warehouse=f"duckdb:///{wh}", table=table, source=str(src))
    assert table.metadata["source_fingerprint"] == changed.source_fingerprint
    ref = read_table_ref(table.path)
    assert ref is not None and ref.source_fingerprint == changed.source_fingerprint


# --- what a careful user expects to load --------------------------------------------------------


def _rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        return list(csv.reader(fh))


def _write(rows: list[list[str]], *, terminator: str = "\n", quoting: int = csv.QUOTE_MINIMAL) -> bytes:
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator=terminator, quoting=quoting).writerows(rows)
    return out.getvalue().encode("utf-8")


def _edit(rows: list[list[str]], row: int, column: str, value: str) -> list[list[str]]:
    rows = [list(r) for r in rows]
    rows[row][rows[0].index(column)] = value
    return rows


def _reorder(rows: list[list[str]], columns: list[str]) -> list[list[str]]:
    order = [rows[0].index(c) for c in columns]
    return [[r[i] for i in order] for r in rows]


Build = Callable[[list[list[str]], list[list[str]]], tuple[bytes, bytes]]

CAREFUL: dict[str, Build] = {
    "crlf line endings": lambda p, t: (_write(p, terminator="\r\n"), _write(t, terminator="\r\n")),
    "a utf-8 bom": lambda p, t: (b"\xef\xbb\xbf" + _write(p), b"\xef\xbb\xbf" + _write(t)),
    "reordered columns": lambda p, t: (
        _write(_reorder(p, ["description", "title", "created_on", "id"])),
        _write(_reorder(t, ["tag", "id"])),
    ),
    "quoted fields with commas quotes and newlines": lambda p, t: (
        _write(
            _edit(
                _edit(p, 3, "title", 'A "quoted", comma title'), 4, "description", 'He said "hi",\nthen left.'
            ),
            quoting=csv.QUOTE_ALL,
        ),
        _write(t, quoting=csv.QUOTE_ALL),
    ),
    "long and unicode text": lambda p, t: (
        _write(
            _edit(
                _edit(p, 5, "title", "日本語のプロジェクト: ünïcödé ✓ 🚀"),
                6,
                "description",
                "Ελληνικά, русский, العربية, 中文 — " * 30_000,  # about 1 MB in one field
            )
        ),
        _write(t),
    ),
    "text that looks like sql": lambda p, t: (
        _write(
            _edit(
                _edit(p, 7, "title", "Robert'); DROP TABLE mlops_course.projects; --"),
                8,
                "description",
                "' OR 1=1; SELECT * FROM mlops_course.tags WHERE tag = '' --",
            )
        ),
        _write(t),
    ),
    "no final newline": lambda p, t: (_write(p).rstrip(b"\n"), _write(t).rstrip(b"\n")),
}


@pytest.mark.parametrize("case", list(CAREFUL))
def test_what_a_careful_user_expects_loads_as_written_and_passes_validation(
    case: str, madewithml_dir: Path, tmp_path: Path
) -> None:
    projects, tags = CAREFUL[case](_rows(madewithml_dir / "projects.csv"), _rows(madewithml_dir / "tags.csv"))
    src = _source(tmp_path / "src", projects=projects, tags=tags)
    wh = tmp_path / "wh.duckdb"

    refs = {stream: load_stream(src, stream, str(wh)) for stream in ("projects", "tags")}

    assert refs["projects"].rows == refs["tags"].rows == 955
    with duckdb.connect(str(wh), read_only=True) as con:
        loaded = set(con.execute(f"select id, title, description from {RAW_SCHEMA}.projects").fetchall())
        loaded_tags = set(con.execute(f"select id, tag from {RAW_SCHEMA}.tags").fetchall())
    written = [dict(zip(r[0], row, strict=True)) for r in [_rows(src / "projects.csv")] for row in r[1:]]
    assert loaded == {(int(r["id"]), r["title"], r["description"]) for r in written}
    written_tags = [dict(zip(r[0], row, strict=True)) for r in [_rows(src / "tags.csv")] for row in r[1:]]
    assert loaded_tags == {(int(r["id"]), r["tag"]) for r in written_tags}
    for stream, ref in refs.items():
        summary = validate_table(ref.warehouse, ref.schema, ref.table, stream, data_version=ref.data_version)
        assert summary.success, summary.message()
