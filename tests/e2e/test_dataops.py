"""End to end: the DataOps pipeline through its CLI, as users run it.

Every run is ``python -m pipelines run dataops --local --source ... --stores ... --json`` in a
subprocess with its own stores folder, so the exit code, the JSON line and the warehouse are
checked exactly as a user or a scheduler sees them.

The real dataset is published once (module fixture) and a pristine copy of that warehouse
seeds the other runs: broken sources (malformed files, and rows that load but break a rule
of the data) must be rejected, naming the column, the rule and the row count, without
touching the published table; what a careful user exports (CRLF, BOM, reordered and quoted
columns, long unicode and SQL-looking text, no final newline) must be published as written;
a source file that is a link must be refused before any task; a second run must leave the
same state, and a run killed mid-way must leave the published table intact and recover on
a re-run. These runs go two at a time (the machine has 2 cores
and each run is one process at a time), started as soon as the first test needs one.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pipelines.local import lifetime

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED = "mlops_course.labeled_projects"
ROWS = 955
RUN_TIMEOUT_S = 600
PARALLEL_RUNS = 2
TASKS = (
    "sync projects",
    "sync tags",
    "validate projects",
    "validate tags",
    "transform labeled_projects",
    "validate labeled_projects",
    "publish labeled_projects",
)
SUITES = ("projects", "tags", "labeled_projects")
# Settings that would send the CLI somewhere other than its --stores folder.
REDIRECTS = ("KFP_MLOPS_STORES", "WAREHOUSE_URI", "MLFLOW_TRACKING_URI", "OPTUNA_STORAGE")
# An external resource in a report: src=/href=/CSS url() to http(s) or a protocol-relative URL.
EXTERNAL = re.compile(r"""(?:(?:src|href)\s*=|url\()\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


# --- running the CLI ------------------------------------------------------------------


def cli_command(source: Path, stores: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pipelines",
        "run",
        "dataops",
        "--local",
        "--source",
        str(source),
        "--stores",
        str(stores),
        "--json",
    ]


def cli_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in REDIRECTS}


@dataclass
class CliRun:
    """One CLI run: exit code, the JSON summary (the last stdout line) and its output."""

    returncode: int
    stdout: str
    stderr: str
    stores: Path
    seconds: float
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def warehouse(self) -> Path:
        return self.stores / "warehouse.duckdb"

    @property
    def tasks(self) -> dict[str, dict[str, Any]]:
        return {t["name"]: t for t in self.summary.get("tasks", [])}

    def __str__(self) -> str:
        return (
            f"exit {self.returncode} after {self.seconds:.0f} s; error: {self.summary.get('error')!r}\n"
            f"stderr (tail):\n{self.stderr[-3000:]}"
        )


def cli_process(source: Path, stores: Path) -> subprocess.CompletedProcess[str]:
    """The CLI run to its end, with its output captured."""
    return subprocess.run(
        cli_command(source, stores),
        cwd=ROOT,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )


def run_cli(source: Path, stores: Path) -> CliRun:
    started = time.perf_counter()
    proc = cli_process(source, stores)
    run = CliRun(proc.returncode, proc.stdout, proc.stderr, stores, time.perf_counter() - started)
    lines = proc.stdout.strip().splitlines()
    assert lines, f"no stdout at all; {run}"
    try:
        run.summary = json.loads(lines[-1])
    except json.JSONDecodeError:
        pytest.fail(f"the last stdout line is not JSON: {lines[-1][:300]!r}; {run}")
    return run


def assert_published(run: CliRun) -> None:
    assert run.returncode == 0, str(run)
    assert run.summary["status"] == "SUCCEEDED", str(run)
    assert run.summary["error"] == ""
    assert run.summary["rows_published"] == ROWS


# --- what the warehouse holds -----------------------------------------------------------


@dataclass(frozen=True)
class Fingerprint:
    """A table's schema (names and types), row count and a hash of every value."""

    columns: tuple[tuple[str, str], ...]
    rows: int
    sha256: str


def fingerprint(warehouse: Path, table: str = PUBLISHED) -> Fingerprint:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        columns = tuple((str(r[0]), str(r[1])) for r in con.execute(f"describe {table}").fetchall())
        (rows,) = con.execute(f"select count(*) from {table}").fetchone() or (0,)
        with tempfile.TemporaryDirectory(prefix="fingerprint-") as tmp:
            out = Path(tmp) / "table.csv"
            con.execute(f"copy (select * from {table} order by all) to '{out}' (header, delimiter ',')")
            digest = hashlib.sha256(out.read_bytes()).hexdigest()
    finally:
        con.close()
    return Fingerprint(columns, int(rows), digest)


def all_tables(warehouse: Path) -> dict[str, Fingerprint]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        names = [
            f"{s}.{t}"
            for s, t in con.execute(
                "select table_schema, table_name from information_schema.tables order by all"
            ).fetchall()
        ]
    finally:
        con.close()
    return {name: fingerprint(warehouse, name) for name in names}


def seed_stores(folder: Path, pristine: Path) -> Path:
    """A stores folder whose warehouse is a copy of the published baseline."""
    stores = folder / "stores"
    stores.mkdir(parents=True)
    shutil.copyfile(pristine, stores / "warehouse.duckdb")
    return stores


# --- broken sources -----------------------------------------------------------------------


Builder = Callable[[Path, Path], None]  # (the real dataset's folder, the broken copy's folder)


def read_rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def write_rows(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)


def edit_rows(stream: str, edit: Callable[[list[list[str]]], list[list[str]] | None]) -> Builder:
    """A builder that rewrites one file of the real dataset through `edit` (the other is copied)."""

    def build(src: Path, out: Path) -> None:
        rows = read_rows(src / f"{stream}.csv")
        write_rows(out / f"{stream}.csv", edit(rows) or rows)

    return build


def edit_bytes(stream: str, edit: Callable[[bytes, list[list[str]]], bytes]) -> Builder:
    """A builder that changes one file's bytes (what a CSV writer would never produce)."""

    def build(src: Path, out: Path) -> None:
        path = src / f"{stream}.csv"
        (out / f"{stream}.csv").write_bytes(edit(path.read_bytes(), read_rows(path)))

    return build


def _duplicate_id(rows: list[list[str]]) -> None:
    rows[2][0] = rows[1][0]  # the second project takes the first one's id


def _null_title(rows: list[list[str]]) -> None:
    rows[5][2] = ""  # an unquoted empty field is NULL


def _missing_column(rows: list[list[str]]) -> list[list[str]]:
    return [r[:3] for r in rows]  # no description


def _duplicate_pair(rows: list[list[str]]) -> None:
    # The first project again under a new id: a leak between train and test splits.
    new_id = max(int(r[0]) for r in rows[1:]) + 1
    rows.append([str(new_id), rows[1][1], rows[1][2], rows[1][3]])


def _null_tag(rows: list[list[str]]) -> None:
    rows[7][1] = ""


def _bad_date(rows: list[list[str]]) -> None:
    rows[9][1] = "2020-02-30 25:61:00"


def _unbalanced_quote(data: bytes, rows: list[list[str]]) -> bytes:
    title = rows[4][2].encode()  # an unquoted title: open a quote that never closes
    assert data.count(b"," + title + b",") == 1
    return data.replace(b"," + title + b",", b',"' + title + b",")


def _latin1_bytes(data: bytes, rows: list[list[str]]) -> bytes:
    title = rows[4][2].encode()
    assert data.count(title) == 1
    return data.replace(title, title + " café".encode("latin-1"))


def _empty(data: bytes, rows: list[list[str]]) -> bytes:
    return b""


def _empty_title(data: bytes, rows: list[list[str]]) -> bytes:
    title = rows[4][2].encode()  # a quoted empty field is an empty string, not NULL
    assert data.count(b"," + title + b",") == 1
    return data.replace(b"," + title + b",", b',"",')


def _blank_descriptions(rows: list[list[str]]) -> None:
    for i, blank in ((3, "   "), (6, "\t \t"), (9, "\u00a0\u3000")):
        rows[i][3] = blank


def _ids_not_positive(rows: list[list[str]]) -> None:
    rows[1][0], rows[2][0] = "0", "-7"


def _created_in_the_future(rows: list[list[str]]) -> None:
    soon = datetime.now() + timedelta(days=30)  # "far": more than a day after the validation's clock
    rows[3][1], rows[4][1] = "2100-01-01 00:00:00", soon.strftime("%Y-%m-%d %H:%M:%S")


def _control_characters(rows: list[list[str]]) -> None:
    rows[4][3] = "Clears the screen \x1b[2J then rings \x07"
    rows[5][2] = rows[5][2] + "\x00"


def _tag_outside_the_label_set(rows: list[list[str]]) -> None:
    rows[2][1] = "quantum-computing"


def _tag_without_a_project(rows: list[list[str]]) -> None:
    rows.append([str(max(int(r[0]) for r in rows[1:]) + 1000), "mlops"])


@dataclass(frozen=True)
class BrokenCase:
    id: str
    build: Builder
    task: str  # the task that must fail
    expected: tuple[str, ...]  # what the JSON error must say (distinctive substrings)

    def make_source(self, src: Path, out: Path) -> Path:
        out.mkdir(parents=True)
        for name in ("projects.csv", "tags.csv"):
            shutil.copyfile(src / name, out / name)
        self.build(src, out)
        return out


BROKEN = (
    BrokenCase(
        "duplicate_id",
        edit_rows("projects", _duplicate_id),
        "validate projects",
        ("suite projects failed", "expect_column_values_to_be_unique(id): 2 unexpected"),
    ),
    BrokenCase(
        "null_title",
        edit_rows("projects", _null_title),
        "validate projects",
        ("suite projects failed", "expect_column_values_to_not_be_null(title): 1 unexpected"),
    ),
    BrokenCase(
        "missing_column",
        edit_rows("projects", _missing_column),
        "sync projects",
        ("projects.csv: missing column(s) description",),
    ),
    BrokenCase(
        "duplicate_title_description",
        edit_rows("projects", _duplicate_pair),
        "validate projects",
        ("suite projects failed", "expect_compound_columns_to_be_unique(title, description): 2 unexpected"),
    ),
    BrokenCase(
        "null_tag",
        edit_rows("tags", _null_tag),
        "validate tags",
        ("suite tags failed", "expect_column_values_to_not_be_null(tag): 1 unexpected"),
    ),
    BrokenCase(
        "empty_file",
        edit_bytes("tags", _empty),
        "sync tags",
        ("tags.csv: file is empty",),
    ),
    BrokenCase(
        "unbalanced_quote",
        edit_bytes("projects", _unbalanced_quote),
        "sync projects",
        ("projects.csv: malformed CSV at line", "unterminated quote"),
    ),
    BrokenCase(
        "non_utf8",
        edit_bytes("projects", _latin1_bytes),
        "sync projects",
        ("projects.csv: malformed CSV at line", "not utf-8 encoded"),
    ),
    BrokenCase(
        "unparseable_date",
        edit_rows("projects", _bad_date),
        "sync projects",
        ("column created_on must be a date", "'2020-02-30 25:61:00'"),
    ),
    # Rows that load but break a rule of the data: each names the column, the rule, the count.
    BrokenCase(
        "empty_title",
        edit_bytes("projects", _empty_title),
        "validate projects",
        (
            "suite projects failed",
            "expect_column_values_to_match_regex(title): 1 unexpected (not empty or only whitespace)",
        ),
    ),
    BrokenCase(
        "blank_descriptions",
        edit_rows("projects", _blank_descriptions),
        "validate projects",
        (
            "suite projects failed",
            "expect_column_values_to_match_regex(description): 3 unexpected (not empty or only whitespace)",
        ),
    ),
    BrokenCase(
        "ids_not_positive",
        edit_rows("projects", _ids_not_positive),
        "validate projects",
        (
            "suite projects failed",
            "expect_column_values_to_be_between(id): 2 unexpected (a positive integer (1 or more))",
        ),
    ),
    BrokenCase(
        "created_on_far_in_the_future",
        edit_rows("projects", _created_in_the_future),
        "validate projects",
        (
            "suite projects failed",
            "expect_column_values_to_be_between(created_on): 2 unexpected "
            "(not more than 1 day after the time of validation)",
        ),
    ),
    BrokenCase(
        "control_characters",
        edit_rows("projects", _control_characters),
        "validate projects",
        (
            "suite projects failed 2 of",
            "expect_column_values_to_not_match_regex(title): 1 unexpected (no control characters",
            "expect_column_values_to_not_match_regex(description): 1 unexpected (no control characters",
        ),
    ),
    BrokenCase(
        "tag_outside_the_label_set",
        edit_rows("tags", _tag_outside_the_label_set),
        "validate tags",
        (
            "suite tags failed",
            "expect_column_values_to_be_in_set(tag): 1 unexpected (one of the dataset's labels",
        ),
    ),
    BrokenCase(
        "tag_without_a_project",
        edit_rows("tags", _tag_without_a_project),
        "transform labeled_projects",
        (
            "dbt build failed: test relationships_stg_tags_id__id__ref_stg_projects_ failed: 1 failure "
            "(relationships on stg_tags.id)",
        ),
    ),
)


# --- what a careful user expects to load ---------------------------------------------------


SQL_TITLE = "Robert'); DROP TABLE mlops_course.labeled_projects; --"
LONG_TEXT = "Ελληνικά, русский, العربية, 中文, emoji 🚀 — " * 5000  # ~250 KB in one quoted field


def careful_source(src: Path, out: Path) -> Path:
    """The lesson's data as a careful user may export it: CRLF line ends, a UTF-8 BOM, columns
    in another order, every field quoted (with commas, quotes and newlines inside), long
    unicode text, text that looks like SQL, and no newline at the end of either file."""
    out.mkdir(parents=True)
    projects = read_rows(src / "projects.csv")
    projects[3][2] = 'A "quoted", comma title\nover two lines'
    projects[4][2] = SQL_TITLE
    projects[5][3] = LONG_TEXT
    order = {"projects.csv": [3, 2, 0, 1], "tags.csv": [1, 0]}  # description, title, id, created_on
    for name, rows in (("projects.csv", projects), ("tags.csv", read_rows(src / "tags.csv"))):
        with (out / name).open("w", newline="", encoding="utf-8-sig") as fh:
            csv.writer(fh, lineterminator="\r\n", quoting=csv.QUOTE_ALL).writerows(
                [[r[i] for i in order[name]] for r in rows]
            )
        (out / name).write_bytes((out / name).read_bytes().removesuffix(b"\r\n"))
    return out


def written_join(source: Path) -> set[tuple[int, str, str, str]]:
    """(id, title, description, tag) of a source, read with Python's csv module."""
    csv.field_size_limit(max(csv.field_size_limit(), 4 * len(LONG_TEXT)))
    with (source / "projects.csv").open(newline="", encoding="utf-8-sig") as fh:
        projects = {int(r["id"]): (r["title"], r["description"]) for r in csv.DictReader(fh)}
    with (source / "tags.csv").open(newline="", encoding="utf-8-sig") as fh:
        tags = {int(r["id"]): r["tag"] for r in csv.DictReader(fh)}
    return {(i, *projects[i], tags[i]) for i in projects}


# --- killed mid-way -----------------------------------------------------------------------


def _holder(error: str) -> str:
    """Who holds the lock DuckDB names (its session, parent, state, command), for the report."""
    found = re.search(r"PID (\d+)", error)
    if not found:
        return ""
    pid = found.group(1)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return f" [holder {pid}: gone by now]"
    fields = stat.rsplit(")", 1)[1].split()  # state ppid pgrp session ...
    return f" [holder {pid}: state {fields[0]} ppid {fields[1]} pgrp {fields[2]} session {fields[3]}: {cmd[:300]}]"


@dataclass
class KilledRun:
    marker_seen: bool
    wal_seen: bool
    returncode: int
    members_at_kill: list[int]
    survivors: list[int]
    lock_error: str
    stderr: str
    after_kill: Fingerprint | None
    rerun: CliRun | None = None


def kill_then_rerun(source: Path, stores: Path) -> KilledRun:
    """Start a run in a session of its own, SIGKILL its process group while dbt writes (the
    tasks are in groups of their own: they must end with the run), then run again."""
    proc = subprocess.Popen(
        cli_command(source, stores),
        cwd=ROOT,
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    transform_started = threading.Event()

    def watch() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if "▶ transform labeled_projects" in line:
                transform_started.set()
        transform_started.set()  # end of output: stop waiting

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    transform_started.wait(RUN_TIMEOUT_S)
    marker_seen = any("▶ transform labeled_projects" in ln for ln in lines)
    # dbt's first write creates the DuckDB WAL next to the file: kill while it is there,
    # or after a fixed delay if it comes and goes between two looks.
    wal = stores / "warehouse.duckdb.wal"
    deadline = time.monotonic() + 20
    while marker_seen and proc.poll() is None and not wal.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    wal_seen = wal.exists()
    members = lifetime.session_members(proc.pid)
    with contextlib.suppress(ProcessLookupError):  # gone already: the returncode check says so
        os.killpg(proc.pid, signal.SIGKILL)
    returncode = proc.wait(timeout=30)
    watcher.join(timeout=10)
    deadline = time.monotonic() + 10
    while lifetime.session_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = lifetime.session_members(proc.pid)

    # No lock may outlive the killed processes: a writer must open the file at once.
    lock_error = ""
    try:
        duckdb.connect(str(stores / "warehouse.duckdb")).close()
    except duckdb.Error as exc:
        lock_error = str(exc) + _holder(str(exc))
    after_kill = None if lock_error else fingerprint(stores / "warehouse.duckdb")
    outcome = KilledRun(
        marker_seen, wal_seen, returncode, members, survivors, lock_error, "".join(lines), after_kill
    )
    if not lock_error:
        outcome.rerun = run_cli(source, stores)
    return outcome


# --- fixtures ---------------------------------------------------------------------------


@dataclass
class Baseline:
    run: CliRun
    pristine: Path  # a copy of its warehouse, never opened for writing
    published: Fingerprint


@pytest.fixture(scope="module")
def baseline(madewithml_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Baseline:
    """The real dataset published once into a fresh stores folder."""
    run = run_cli(madewithml_dir, tmp_path_factory.mktemp("baseline") / "stores")
    assert_published(run)
    pristine = tmp_path_factory.mktemp("pristine") / "warehouse.duckdb"
    shutil.copyfile(run.warehouse, pristine)
    return Baseline(run, pristine, fingerprint(pristine))


class Runs:
    """The module's slower runs, two at a time in the background, each keyed by its test."""

    def __init__(self, jobs: dict[str, Callable[[], Any]]) -> None:
        self.jobs = jobs
        self.pool = ThreadPoolExecutor(PARALLEL_RUNS, thread_name_prefix="dataops-run")
        self.futures: dict[str, Future[Any]] = {}

    def start(self, key: str) -> None:
        if key not in self.futures:
            self.futures[key] = self.pool.submit(self.jobs[key])

    def result(self, key: str) -> Any:
        self.start(key)
        return self.futures[key].result(timeout=4 * RUN_TIMEOUT_S)


@pytest.fixture(scope="module")
def runs(
    request: pytest.FixtureRequest,
    baseline: Baseline,
    madewithml_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Runs]:
    def broken(case: BrokenCase) -> Callable[[], tuple[CliRun, Path]]:
        def job() -> tuple[CliRun, Path]:
            folder = tmp_path_factory.mktemp(case.id)
            source = case.make_source(madewithml_dir, folder / "source")
            return run_cli(source, seed_stores(folder, baseline.pristine)), source

        return job

    def careful() -> tuple[CliRun, Path]:
        folder = tmp_path_factory.mktemp("careful")
        source = careful_source(madewithml_dir, folder / "source")
        return run_cli(source, seed_stores(folder, baseline.pristine)), source

    jobs: dict[str, Callable[[], Any]] = {
        "killed": lambda: kill_then_rerun(
            madewithml_dir, seed_stores(tmp_path_factory.mktemp("killed"), baseline.pristine)
        ),
        "idempotent": lambda: run_cli(
            madewithml_dir, seed_stores(tmp_path_factory.mktemp("rerun"), baseline.pristine)
        ),
        **{case.id: broken(case) for case in BROKEN},
        "careful": careful,
    }
    keys = {
        "test_killed_run_leaves_the_table_and_recovers": "killed",
        "test_what_a_careful_user_exports_is_published_as_written": "careful",
        "test_second_run_is_idempotent": "idempotent",
        **{f"test_broken_source_is_rejected[{case.id}]": case.id for case in BROKEN},
    }
    pool = Runs(jobs)
    # Start every selected test's run now (longest first) so they overlap.
    selected = [i.name for i in request.session.items if getattr(i, "module", None) is request.module]
    for name in sorted(selected, key=lambda n: list(keys).index(n) if n in keys else -1):
        if name in keys:
            pool.start(keys[name])
    yield pool
    pool.pool.shutdown(wait=True, cancel_futures=True)


# --- tests ------------------------------------------------------------------------------


def test_madewithml_is_published(baseline: Baseline, madewithml_dir: Path) -> None:
    run = baseline.run
    assert_published(run)

    # The published table: 955 rows, the lesson's columns, the same labels as the lesson's join.
    assert baseline.published.rows == ROWS
    assert [c for c, _ in baseline.published.columns] == ["id", "created_on", "title", "description", "tag"]
    con = duckdb.connect(str(run.warehouse), read_only=True)
    try:
        lesson = f"read_csv('{madewithml_dir / 'labeled_projects.csv'}')"
        differ = con.execute(
            f"select count(*) from ((select id, title, tag from {PUBLISHED} except select id, title, tag "
            f"from {lesson}) union all (select id, title, tag from {lesson} except "
            f"select id, title, tag from {PUBLISHED}))"
        ).fetchone()
    finally:
        con.close()
    assert differ == (0,)

    # Every task ran once, succeeded, and was timed.
    assert sorted(run.tasks) == sorted(TASKS)
    assert len(run.summary["tasks"]) == len(TASKS)
    for name, task in run.tasks.items():
        assert task["status"] == "SUCCEEDED", name
        assert isinstance(task["seconds"], float) and task["seconds"] > 0, name
    # Tasks overlap (Argo's order): the run lasts at least its longest chain of tasks.
    seconds = {t["name"]: t["seconds"] for t in run.summary["tasks"]}
    chain = ("sync projects", "validate projects", *TASKS[4:])
    assert run.summary["seconds"] >= sum(seconds[name] for name in chain)

    # The three validation reports: self-contained HTML files under the stores folder.
    reports = [Path(p) for p in run.summary["reports"]]
    for suite in SUITES:
        found = [p for p in reports if p.name == f"validate-{suite}.data_docs.html"]
        assert len(found) == 1, f"no report for suite {suite} in {reports}"
        report = found[0]
        assert report.is_file() and report.is_relative_to(run.stores)
        html = report.read_text(encoding="utf-8")
        assert html.lstrip().lower().startswith(("<!doctype html", "<html")), report
        assert suite in html
        assert not EXTERNAL.findall(html), f"{report} loads external resources: {EXTERNAL.findall(html)}"


@pytest.mark.parametrize("case", BROKEN, ids=[c.id for c in BROKEN])
def test_broken_source_is_rejected(case: BrokenCase, runs: Runs, baseline: Baseline) -> None:
    run, source = runs.result(case.id)
    assert run.returncode != 0, str(run)
    assert run.summary["status"] == "FAILED"
    assert run.summary.get("rows_published") is None

    # The error names the failing task and the problem.
    error = run.summary["error"]
    assert error.startswith(f"task {case.task} failed: "), error
    for text in case.expected:
        assert text in error, f"{text!r} not in error {error!r}"
    assert str(source) in error or not case.task.startswith("sync"), error
    assert run.tasks[case.task]["status"] == "FAILED"
    assert "publish labeled_projects" not in run.tasks
    if case.task != "transform labeled_projects":
        assert "transform labeled_projects" not in run.tasks

    # A failed validation links its Data Docs, which name the broken expectation.
    if case.task.startswith("validate"):
        docs = re.search(r"Data Docs: (\S+)", error)
        assert docs, error
        html = Path(docs.group(1)).read_text(encoding="utf-8")
        for named in case.expected[1:]:
            assert named.split("(")[0] in html

    # Nothing was lost: the published table is exactly what it was.
    assert fingerprint(run.warehouse) == baseline.published


def test_second_run_is_idempotent(runs: Runs, baseline: Baseline) -> None:
    rerun: CliRun = runs.result("idempotent")
    assert_published(rerun)
    assert fingerprint(rerun.warehouse) == baseline.published
    # Every table, raw and audit included, is as the first run left it.
    assert all_tables(rerun.warehouse) == all_tables(baseline.pristine)


def test_killed_run_leaves_the_table_and_recovers(runs: Runs, baseline: Baseline) -> None:
    killed: KilledRun = runs.result("killed")
    assert killed.marker_seen, f"the transform never started:\n{killed.stderr}"
    assert killed.returncode == -signal.SIGKILL, f"the run ended before the kill:\n{killed.stderr}"
    assert len(killed.members_at_kill) >= 2, "no task subprocess was running at the kill"
    assert killed.survivors == [], "task processes outlived the kill"
    assert killed.lock_error == "", f"the warehouse stayed locked: {killed.lock_error}"
    point = "while dbt was writing" if killed.wal_seen else "during the transform task"
    assert killed.after_kill == baseline.published, f"the kill {point} changed the published table"

    assert killed.rerun is not None
    assert_published(killed.rerun)
    assert fingerprint(killed.rerun.warehouse) == baseline.published


def test_what_a_careful_user_exports_is_published_as_written(runs: Runs) -> None:
    run, source = runs.result("careful")
    assert_published(run)
    con = duckdb.connect(str(run.warehouse), read_only=True)
    try:
        published = set(con.execute(f"select id, title, description, tag from {PUBLISHED}").fetchall())
    finally:
        con.close()
    assert published == written_join(source)
    assert any(r[1] == SQL_TITLE for r in published) and any(r[2] == LONG_TEXT for r in published)


def test_a_source_file_linked_to_a_key_is_refused_before_any_task_without_showing_it(
    baseline: Baseline, madewithml_dir: Path, tmp_path: Path
) -> None:
    key = tmp_path / "secrets" / "service-account.json"
    key.parent.mkdir()
    key.write_text('{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----MIIEvQ-SECRET"}\n')
    source = tmp_path / "source"
    source.mkdir()
    shutil.copyfile(madewithml_dir / "projects.csv", source / "projects.csv")
    (source / "tags.csv").symlink_to(key)
    stores = seed_stores(tmp_path, baseline.pristine)

    proc = cli_process(source, stores)

    assert proc.returncode != 0
    assert f"{source / 'tags.csv'}: is a symbolic link, not a regular file" in proc.stderr
    output = proc.stdout + proc.stderr
    assert "MIIEvQ-SECRET" not in output and "service_account" not in output
    assert "▶" not in proc.stderr  # no task started
    assert fingerprint(stores / "warehouse.duckdb") == baseline.published
