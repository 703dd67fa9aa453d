"""Warehouse helpers on real DuckDB: the streamed data version, the connection settings, and
the parquet datasets the steps hand each other (fastparquet, no pyarrow; a DuckDB view)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from components.parquet import PARQUET_SCHEMA, PARQUET_VIEW, parquet_view, read_parquet, write_parquet
from components.versions import duckdb_table_version, frame_version, table_version
from components.warehouse import (
    DEFAULT_MEMORY_LIMIT,
    MEMORY_LIMIT_ENV,
    TEMP_DIR_ENV,
    WarehouseError,
    duckdb_connect,
    duckdb_settings,
    iter_chunks,
    read_table,
)

ROWS = 3 * 2048 + 17  # four DuckDB chunks of one vector each


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    """Typed columns with nulls in some chunks only: each chunk converts to pandas on its own
    (an integer column with a null becomes Int64, an all-null text chunk becomes object)."""
    path = tmp_path / "warehouse.duckdb"
    with duckdb_connect(path) as con:
        con.execute("create schema s")
        con.execute(
            "create table s.t as select "
            "case when range = 5000 then null else range end::BIGINT as id, "
            "timestamp '2024-01-01' + to_seconds(range) as created_on, "
            "case when range < 2048 then null else 'title ' || range end as title, "
            "repeat('x', (range % 37)::INT) as description, "
            "case when range % 3 = 0 then null else range / 7 end::DOUBLE as score "
            f"from range({ROWS})"
        )
        con.execute("create table s.empty as select * from s.t limit 0")
    return path


def test_streamed_version_equals_the_frame_version(warehouse: Path) -> None:
    uri = f"duckdb:///{warehouse}"
    whole = read_table(uri, "s", "t")
    assert table_version(uri, "s", "t") == (ROWS, frame_version(whole))
    # Order does not matter, content does.
    assert frame_version(whole.iloc[::-1]) == frame_version(whole)
    with duckdb_connect(warehouse) as con:
        con.execute("update s.t set description = 'changed' where id = 7")
        rows, changed = duckdb_table_version(con, "s", "t")
    assert (rows, changed) != (ROWS, frame_version(whole))
    assert changed == frame_version(read_table(uri, "s", "t"))


def test_empty_table_version_is_its_column_names(warehouse: Path) -> None:
    uri = str(warehouse)
    assert table_version(uri, "s", "empty") == (0, frame_version(read_table(uri, "s", "empty")))
    assert table_version(uri, "s", "empty")[1] != table_version(uri, "s", "t")[1]


def test_chunks_are_bounded_and_cover_the_result(warehouse: Path) -> None:
    with duckdb_connect(warehouse, read_only=True) as con:
        sizes = [len(c) for c in iter_chunks(con, "select * from s.t", vectors=1)]
        assert sizes == [2048, 2048, 2048, 17]
        empty = list(iter_chunks(con, "select id, title from s.empty"))
    assert [(len(f), list(f.columns)) for f in empty] == [(0, ["id", "title"])]


def test_missing_table_is_named(warehouse: Path) -> None:
    with pytest.raises(WarehouseError, match=r"s\.nope not found"):
        table_version(str(warehouse), "s", "nope")


def test_connections_get_a_memory_limit_and_a_spill_folder_under_the_stores(
    warehouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(MEMORY_LIMIT_ENV, raising=False)
    monkeypatch.delenv(TEMP_DIR_ENV, raising=False)
    assert duckdb_settings(warehouse) == {
        "memory_limit": DEFAULT_MEMORY_LIMIT,
        "temp_directory": str(warehouse.parent / "duckdb_tmp"),
    }
    with duckdb_connect(warehouse, read_only=True) as con:
        limit, temp = con.execute(
            "select current_setting('memory_limit'), current_setting('temp_directory')"
        ).fetchone() or ("", "")
    assert (limit, temp) == ("488.2 MiB", str(warehouse.parent / "duckdb_tmp"))  # 512 MB in MiB

    monkeypatch.setenv(MEMORY_LIMIT_ENV, "300MB")
    monkeypatch.setenv(TEMP_DIR_ENV, str(warehouse.parent / "spill"))
    with duckdb_connect(warehouse) as con:
        limit, temp = con.execute(
            "select current_setting('memory_limit'), current_setting('temp_directory')"
        ).fetchone() or ("", "")
    assert (limit, temp) == ("286.1 MiB", str(warehouse.parent / "spill"))


def test_parquet_round_trip_keeps_the_frame_and_its_data_version(warehouse: Path, tmp_path: Path) -> None:
    # extract writes what it read from the warehouse; train, optimize, evaluate and ge_validate
    # read it back. Same dtypes (Int64 for an integer column with nulls), same data version.
    import pandas as pd

    df = read_table(f"duckdb:///{warehouse}", "s", "t")
    path = write_parquet(df, tmp_path / "d" / "t.parquet")
    ours = read_parquet(path)
    pd.testing.assert_frame_equal(ours, df)
    assert frame_version(ours) == frame_version(df)
    # pandas with pyarrow (the dev environment, a notebook) reads the same values; it turns
    # the integer column with a null into float64, where the warehouse readers give Int64.
    theirs = pd.read_parquet(path)
    pd.testing.assert_frame_equal(ours, theirs, check_dtype=False)
    assert str(ours["id"].dtype) == "Int64" and str(theirs["id"].dtype) == "float64"


def test_parquet_folder_is_read_whole(warehouse: Path, tmp_path: Path) -> None:
    df = read_table(f"duckdb:///{warehouse}", "s", "t")
    write_parquet(df.iloc[:100], tmp_path / "ds" / "part-0.parquet")
    write_parquet(df.iloc[100:], tmp_path / "ds" / "more" / "part-1.parquet")
    (tmp_path / "ds" / "_SUCCESS").write_text("")  # a marker file beside the parts is ignored
    got = read_parquet(tmp_path / "ds")
    assert len(got) == ROWS
    assert frame_version(got) == frame_version(df)


def test_a_failed_write_leaves_the_previous_file_whole(warehouse: Path, tmp_path: Path) -> None:
    import pandas as pd

    df = read_table(f"duckdb:///{warehouse}", "s", "t")
    path = write_parquet(df, tmp_path / "out" / "t.parquet")
    bad = pd.DataFrame({"id": [1, 2], "payload": [object(), "text"]})
    with pytest.raises(
        WarehouseError,
        match=r"cannot write .*t\.parquet as parquet: column\(s\) payload hold values that are not text",
    ):
        write_parquet(bad, path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["t.parquet"]  # no partial file left
    pd.testing.assert_frame_equal(read_parquet(path), df)


def test_parquet_view_streams_the_dataset_with_its_data_version(warehouse: Path, tmp_path: Path) -> None:
    # ge_validate works on a parquet dataset in DuckDB (chunk by chunk, as on a table): the
    # view's rows and version are those of the frame written (nulls in some chunks only).
    df = read_table(f"duckdb:///{warehouse}", "s", "t")
    write_parquet(df.iloc[:3000], tmp_path / "ds" / "part-0.parquet")
    write_parquet(df.iloc[3000:], tmp_path / "ds" / "part-1.parquet")
    with parquet_view(tmp_path / "ds") as con:
        assert duckdb_table_version(con, PARQUET_SCHEMA, PARQUET_VIEW) == (ROWS, frame_version(df))
        got = con.execute(f"select * from {PARQUET_SCHEMA}.{PARQUET_VIEW} order by created_on").df()
    pd.testing.assert_frame_equal(got, df)


@pytest.mark.parametrize("case", ["missing", "empty folder", "not parquet"])
def test_unreadable_parquet_is_named(tmp_path: Path, case: str) -> None:
    path = tmp_path / "data"
    if case == "empty folder":
        path.mkdir()
    elif case == "not parquet":
        path.write_text("id,title\n1,a\n")
    with pytest.raises(WarehouseError, match=str(path)):
        read_parquet(path)
    with pytest.raises(WarehouseError, match=str(path)), parquet_view(path):
        pass
