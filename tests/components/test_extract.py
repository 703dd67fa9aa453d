"""extract: real DuckDB files, and the BigQuery request against a local HTTP stand-in."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pandas as pd
import pytest
from kfp import dsl

from components.extract.component import extract
from components.extract.core import bigquery_sql
from components.extract.core import extract as extract_table
from components.versions import frame_version
from components.warehouse import WarehouseError, duckdb_connect


@pytest.fixture(scope="module")
def labeled(madewithml_dir: Path) -> pd.DataFrame:
    projects = pd.read_csv(madewithml_dir / "projects.csv")
    return projects.merge(pd.read_csv(madewithml_dir / "tags.csv"), on="id")


def _warehouse(path: Path, frames: dict[str, pd.DataFrame]) -> str:
    with duckdb_connect(path) as con:
        con.execute("create schema if not exists mlops_course")
        for name, df in frames.items():
            con.register("frame", df)
            con.execute(f"create or replace table mlops_course.{name} as select * from frame")
            con.unregister("frame")
    return f"duckdb:///{path}"


def test_extract_from_duckdb_writes_parquet_with_provenance(labeled: pd.DataFrame, tmp_path: Path) -> None:
    uri = _warehouse(tmp_path / "wh.duckdb", {"labeled_projects": labeled})
    with duckdb_connect(tmp_path / "wh.duckdb", read_only=True) as con:
        expected_version = frame_version(con.execute("select * from mlops_course.labeled_projects").df())

    versions = []
    for attempt in range(2):  # idempotent: a rerun writes the same data and version
        dataset = dsl.Dataset(uri=str(tmp_path / f"run{attempt}" / "dataset"))
        assert extract.python_func(warehouse=uri, dataset=dataset) is None
        out = pd.read_parquet(dataset.path)
        assert len(out) == 955 and list(out.columns) == ["id", "created_on", "title", "description", "tag"]
        assert sorted(out["id"]) == sorted(labeled["id"])
        assert dataset.metadata["rows"] == 955
        assert dataset.metadata["table"] == "mlops_course.labeled_projects"
        assert dataset.metadata["warehouse"] == f"duckdb:///{(tmp_path / 'wh.duckdb').resolve()}"
        versions.append(dataset.metadata["data_version"])
    assert versions == [expected_version, expected_version]

    # A changed table is a new data version.
    _warehouse(tmp_path / "wh.duckdb", {"labeled_projects": labeled.iloc[:-1]})
    dataset = dsl.Dataset(uri=str(tmp_path / "changed" / "dataset"))
    extract.python_func(warehouse=uri, dataset=dataset)
    assert dataset.metadata["rows"] == 954 and dataset.metadata["data_version"] != expected_version


def test_extract_fails_clearly_on_missing_or_empty_table(labeled: pd.DataFrame, tmp_path: Path) -> None:
    uri = _warehouse(tmp_path / "wh.duckdb", {"labeled_projects": labeled.iloc[:0]})
    dataset = dsl.Dataset(uri=str(tmp_path / "out" / "dataset"))
    with pytest.raises(WarehouseError, match=r"table mlops_course\.projects_v2 not found"):
        extract.python_func(warehouse=uri, dataset=dataset, table="projects_v2")
    with pytest.raises(WarehouseError, match=r"mlops_course\.labeled_projects .* is empty"):
        extract.python_func(warehouse=uri, dataset=dataset)
    with pytest.raises(WarehouseError, match="does not exist"):
        extract.python_func(warehouse=f"duckdb:///{tmp_path / 'nowhere.duckdb'}", dataset=dataset)
    with pytest.raises(WarehouseError, match="invalid identifier"):
        extract.python_func(warehouse=uri, dataset=dataset, table="x; drop table y")
    assert not Path(dataset.path).exists()  # nothing half-written


def test_extract_as_of_the_lessons_data_keeps_the_rows_created_before_it(
    labeled: pd.DataFrame, tmp_path: Path
) -> None:
    uri = _warehouse(tmp_path / "wh.duckdb", {"labeled_projects": labeled})
    dataset = dsl.Dataset(uri=str(tmp_path / "asof" / "dataset"))
    extract.python_func(warehouse=uri, dataset=dataset, as_of="2020-06-01")
    out = pd.read_parquet(dataset.path)
    expected = int((pd.to_datetime(labeled["created_on"]) < "2020-06-01").sum())
    assert 0 < expected < 955 and len(out) == dataset.metadata["rows"] == expected
    assert pd.to_datetime(out["created_on"]).max() < pd.Timestamp("2020-06-01")
    assert (dataset.metadata["as_of"], dataset.metadata["as_of_source"]) == ("2020-06-01T00:00:00Z", "as_of")

    # The scheduled time is the cutoff when as_of is empty; unfilled, it is none.
    dataset = dsl.Dataset(uri=str(tmp_path / "sched" / "dataset"))
    extract.python_func(warehouse=uri, dataset=dataset, scheduled_time="2020-06-01T00:00:00Z")
    assert dataset.metadata["rows"] == expected and dataset.metadata["as_of_source"] == "scheduled_time"
    dataset = dsl.Dataset(uri=str(tmp_path / "unfilled" / "dataset"))
    extract.python_func(warehouse=uri, dataset=dataset, scheduled_time="{{$.pipeline_job_schedule_time_utc}}")
    assert dataset.metadata["rows"] == 955 and dataset.metadata["as_of"] == ""

    dataset = dsl.Dataset(uri=str(tmp_path / "bad" / "dataset"))
    with pytest.raises(ValueError, match="as_of='June' is not an ISO 8601"):
        extract.python_func(warehouse=uri, dataset=dataset, as_of="June")
    with pytest.raises(ValueError, match="no row created before 2019-01-01T00:00:00Z"):
        extract.python_func(warehouse=uri, dataset=dataset, as_of="2019-01-01")
    assert not Path(dataset.path).exists()  # nothing half-written


# --- BigQuery, against a local HTTP stand-in --------------------------------------------
# The query itself runs against the BigQuery emulator (test_bigquery_emulator.py). The
# stand-in stays for what the emulator cannot show: the exact request sent (the statement
# text, useLegacySql false), which it records.

BQ_FIELDS = [
    {"name": "id", "type": "INTEGER", "mode": "NULLABLE"},
    {"name": "title", "type": "STRING", "mode": "NULLABLE"},
    {"name": "tag", "type": "STRING", "mode": "NULLABLE"},
]


class BigQueryStub:
    """Plays the three REST calls a query makes: jobs.insert, getQueryResults, tabledata.list.

    ``tables`` maps ``dataset.table`` to a frame; a query naming another table answers 404
    the way BigQuery does. Requests are recorded.
    """

    def __init__(self, tables: dict[str, pd.DataFrame]) -> None:
        self.tables = tables
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        self.jobs: dict[str, str] = {}  # job id -> dataset.table
        self.url = ""

    def _rows(self, table: str) -> list[dict[str, Any]]:
        df = self.tables[table]
        return [{"f": [{"v": str(row[f["name"]])} for f in BQ_FIELDS]} for _, row in df.iterrows()]

    def answer(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        self.requests.append((method, path, query, body))
        parts = path.removeprefix("/bigquery/v2/").split("/")
        if method == "POST" and parts[2:] == ["jobs"]:
            sql = body["configuration"]["query"]["query"]
            table = sql.rsplit(".", 2)[-2] + "." + sql.rsplit(".", 1)[-1].strip("`")
            if table not in self.tables:
                return 404, {
                    "error": {"code": 404, "message": f"Not found: Table p:{table}", "status": "NOT_FOUND"}
                }
            job_id = body["jobReference"]["jobId"]
            self.jobs[job_id] = table
            return 200, {
                "kind": "bigquery#job",
                "jobReference": {**body["jobReference"], "location": "US"},
                "configuration": body["configuration"],
                "status": {"state": "DONE"},
                "statistics": {"creationTime": "1", "startTime": "1", "endTime": "2"},
            }
        if method == "GET" and parts[2] == "queries":
            table = self.jobs[parts[3]]
            out = {
                "kind": "bigquery#getQueryResultsResponse",
                "jobReference": {"projectId": parts[1], "jobId": parts[3], "location": "US"},
                "jobComplete": True,
                "schema": {"fields": BQ_FIELDS},
                "totalRows": str(len(self.tables[table])),
            }
            if query.get("maxResults") != "0":  # the first call only asks whether it is done
                out["rows"] = self._rows(table)
            return 200, out
        return 404, {"error": {"code": 404, "message": f"no route {method} {path}"}}

    def sql(self) -> list[str]:
        return [b["configuration"]["query"]["query"] for m, p, _, b in self.requests if m == "POST"]


@pytest.fixture
def bigquery_stub(local_http_server: Any) -> BigQueryStub:
    stub = BigQueryStub({})

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            status, payload = stub.answer(self.command, parts.path, dict(parse_qsl(parts.query)), body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    stub.url = local_http_server(Handler)
    return stub


def _bq_client(url: str) -> Any:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    return bigquery.Client(
        project="my-proj", credentials=AnonymousCredentials(), client_options={"api_endpoint": url}
    )


def test_extract_bigquery_against_local_http_stub(
    labeled: pd.DataFrame, bigquery_stub: BigQueryStub, tmp_path: Path
) -> None:
    table = labeled[["id", "title", "tag"]].head(25).reset_index(drop=True)
    bigquery_stub.tables = {"mlops_course.labeled_projects": table, "mlops_course.empty": table.iloc[:0]}
    client = _bq_client(bigquery_stub.url)

    out = extract_table("bigquery://my-proj", tmp_path / "ds.parquet", bq_client=client)

    assert bigquery_stub.sql() == ["select * from `my-proj.mlops_course.labeled_projects`"]
    insert = next(b for m, _, _, b in bigquery_stub.requests if m == "POST")
    assert insert["configuration"]["query"]["useLegacySql"] is False
    assert bigquery_stub.requests[0][:2] == ("POST", "/bigquery/v2/projects/my-proj/jobs")
    got = pd.read_parquet(out.path)
    assert got["id"].tolist() == table["id"].tolist() and got["tag"].tolist() == table["tag"].tolist()
    assert (out.rows, out.warehouse, out.table) == (25, "bigquery://my-proj", "mlops_course.labeled_projects")
    assert out.data_version == frame_version(got)

    with pytest.raises(WarehouseError, match=r"my-proj\.mlops_course\.missing not found in BigQuery"):
        extract_table("bigquery://my-proj", tmp_path / "x.parquet", table="missing", bq_client=client)
    with pytest.raises(WarehouseError, match="is empty"):
        extract_table("bigquery://my-proj", tmp_path / "x.parquet", table="empty", bq_client=client)
    assert not (tmp_path / "x.parquet").exists()


def test_bigquery_sql_validates_identifiers() -> None:
    assert (
        bigquery_sql("p", "mlops_course", "labeled_projects")
        == "select * from `p.mlops_course.labeled_projects`"
    )
    with pytest.raises(WarehouseError, match="invalid identifier"):
        bigquery_sql("p", "mlops_course", "t` union select 1 --")
