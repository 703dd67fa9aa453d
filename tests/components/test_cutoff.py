"""The data cutoff (`as_of` / the run's scheduled time) and extract cut at it on real DuckDB."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from components import cutoff
from components.extract.core import extract
from components.warehouse import RAW_SCHEMA, duckdb_connect


def test_parse_instant_accepts_dates_times_and_zones() -> None:
    assert cutoff.parse_instant("2026-11-01") == datetime(2026, 11, 1, tzinfo=UTC)
    assert cutoff.parse_instant("2026-11-01T03:00") == datetime(2026, 11, 1, 3, tzinfo=UTC)
    assert cutoff.parse_instant("2026-11-01 03:00:00Z") == datetime(2026, 11, 1, 3, tzinfo=UTC)
    assert cutoff.parse_instant("2026-11-01T05:00:00+02:00") == datetime(2026, 11, 1, 3, tzinfo=UTC)
    assert cutoff.iso(cutoff.parse_instant("2026-11-01T05:00:00+02:00")) == "2026-11-01T03:00:00Z"


@pytest.mark.parametrize("bad", ["yesterday", "2026-13-01", "2026-11-01T25:00", "11/01/2026"])
def test_a_bad_as_of_is_an_error_naming_it(bad: str) -> None:
    with pytest.raises(cutoff.CutoffError, match=rf"as_of={bad!r} is not an ISO 8601"):
        cutoff.resolve(as_of=bad)


def test_as_of_wins_over_the_scheduled_time() -> None:
    c = cutoff.resolve(as_of="2026-11-01", scheduled_time="2026-11-05T03:00:00Z")
    assert (c.at, c.source) == (datetime(2026, 11, 1, tzinfo=UTC), "as_of")
    c = cutoff.resolve(scheduled_time="2026-11-05T03:00:00Z")
    assert (c.at, c.source) == (datetime(2026, 11, 5, 3, tzinfo=UTC), "scheduled_time")
    assert c.metadata() == {
        "as_of": "2026-11-05T03:00:00Z",
        "as_of_source": "scheduled_time",
        "as_of_note": "scheduled time 2026-11-05T03:00:00Z: rows created before it",
    }


@pytest.mark.parametrize(
    ("scheduled", "note"),
    [
        ("", "no cutoff"),
        ("{{$.pipeline_job_schedule_time_utc}}", "not filled in by this KFP server"),
        ("[[ScheduledTime]]", "not filled in by this KFP server"),
        ("1970-01-01T00:00:00Z", "Unix epoch"),
        ("soon", "is not a time"),
    ],
)
def test_a_scheduled_time_the_server_did_not_fill_in_means_every_row(scheduled: str, note: str) -> None:
    c = cutoff.resolve(scheduled_time=scheduled)
    assert c.at is None and c.source == "" and note in c.note


@pytest.mark.parametrize(
    "window",
    [
        cutoff.NO_CUTOFF,
        cutoff.resolve(as_of="2026-11-01T05:00:00+02:00"),
        cutoff.resolve(scheduled_time="2026-11-05T03:00:00Z"),
        cutoff.resolve(scheduled_time="{{$.pipeline_job_schedule_time_utc}}"),
        cutoff.resolve(scheduled_time="1970-01-01T00:00:00Z"),
    ],
    ids=["none", "as_of", "scheduled", "unfilled", "epoch"],
)
def test_from_metadata_inverts_metadata(window: cutoff.Cutoff) -> None:
    """What extract records on its dataset is what monitor and compose read back."""
    assert cutoff.Cutoff.from_metadata(window.metadata()) == window
    # as KFP hands it over: other keys of the dataset's metadata beside it
    assert cutoff.Cutoff.from_metadata({"rows": 4, "table": "s.t", **window.metadata()}) == window


def test_from_metadata_without_a_cutoff_recorded_or_with_a_bad_one() -> None:
    assert cutoff.Cutoff.from_metadata({}) is cutoff.NO_CUTOFF
    assert cutoff.Cutoff.from_metadata({"as_of": ""}) is cutoff.NO_CUTOFF
    only_time = cutoff.Cutoff.from_metadata({"as_of": "2026-11-01"})
    assert (only_time.at, only_time.source) == (datetime(2026, 11, 1, tzinfo=UTC), "as_of")
    assert only_time.note == "as_of 2026-11-01T00:00:00Z: rows created before it"
    with pytest.raises(cutoff.CutoffError, match=r"the recorded as_of='soon' is not an ISO 8601"):
        cutoff.Cutoff.from_metadata({"as_of": "soon", "as_of_source": "as_of"})


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [1, 2, 3, 4],
            "created_on": ["2026-10-31 23:59:59", "2026-11-01 00:00:00", "2026-11-01 12:00:00", "2026-11-02"],
            "tag": ["mlops"] * 4,
        }
    )


def test_the_bound_is_exclusive_so_a_run_at_t_and_its_backfill_see_the_same_rows() -> None:
    kept = cutoff.apply(frame(), cutoff.resolve(as_of="2026-11-01"))
    assert kept["id"].tolist() == [1]
    kept = cutoff.apply(frame(), cutoff.resolve(scheduled_time="2026-11-01T12:00:01Z"))
    assert kept["id"].tolist() == [1, 2, 3]
    assert (
        cutoff.apply(frame(), cutoff.NO_CUTOFF) is not None
        and len(cutoff.apply(frame(), cutoff.NO_CUTOFF)) == 4
    )


def test_cutting_fails_clearly_when_no_row_is_left_or_a_time_is_unreadable() -> None:
    with pytest.raises(
        cutoff.CutoffError, match=r"t has no row created before 2020-01-01T00:00:00Z .*2026-10-31"
    ):
        cutoff.apply(frame(), cutoff.resolve(as_of="2020-01-01"), where="t")
    broken = frame().assign(created_on=["2026-10-31", "not a date", None, "2026-11-02"])
    with pytest.raises(cutoff.CutoffError, match=r"2 row\(s\) have no readable created_on"):
        cutoff.apply(broken, cutoff.resolve(as_of="2026-11-01"), where="t")
    with pytest.raises(cutoff.CutoffError, match="no created_on column"):
        cutoff.apply(frame().drop(columns="created_on"), cutoff.resolve(as_of="2026-11-01"))


def test_extract_as_of_reads_the_table_as_it_was(tmp_path: Path) -> None:
    db = tmp_path / "warehouse.duckdb"
    with duckdb_connect(db) as con:
        con.execute(f"create schema {RAW_SCHEMA}")
        # a real TIMESTAMP column, as dbt publishes it
        con.execute(
            f"create table {RAW_SCHEMA}.labeled_projects as select range + 1 as id, "
            "timestamp '2026-10-30 00:00:00' + to_hours(range * 12) as created_on, "
            "'t' || range as title, 'd' as description, 'mlops' as tag from range(6)"
        )
    warehouse = f"duckdb:///{db}"
    whole = extract(warehouse, tmp_path / "all.parquet")
    cut = extract(warehouse, tmp_path / "cut.parquet", cutoff=cutoff.resolve(as_of="2026-11-01"))
    assert (whole.rows, cut.rows) == (6, 4)
    assert pd.read_parquet(cut.path)["id"].tolist() == [1, 2, 3, 4]
    assert cut.data_version != whole.data_version
    again = extract(
        warehouse, tmp_path / "again.parquet", cutoff=cutoff.resolve(scheduled_time="2026-11-01T00:00:00Z")
    )
    assert again.data_version == cut.data_version  # the same rows, whichever input set the time
