"""What a local run keeps: its own folder with its log, reports and result; the pipeline's
latest reports behind one pointer; `runs --local` lists them; a failure names the report page.
Real kfp.local runs of a tiny pipeline. No `from __future__ import annotations`: kfp reads
the component's signature."""

import json
import os
from pathlib import Path

import pytest
from kfp import dsl
from kfp.dsl import HTML, Output

from pipelines import local
from pipelines.cli.main import main


@dsl.component(base_image="python:3.11-slim", install_kfp_package=False)
def report(text: str, fail: bool, page: Output[HTML]) -> None:
    import os

    os.makedirs(os.path.dirname(page.path), exist_ok=True)
    with open(page.path, "w") as fh:
        fh.write(f"<html><body>{text}</body></html>")
    if fail:
        raise ValueError(f"the check failed; report: {page.path}")


@dsl.pipeline(name="reporting")
def reporting(text: str = "first", fail: bool = False) -> None:
    report(text=text, fail=fail).set_display_name("check")


def test_every_run_keeps_its_reports_and_the_pointer_follows_the_latest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs, reports = tmp_path / "stores" / "runs", tmp_path / "stores" / "reports"
    first = local.run(reporting, {"text": "first"}, runs)
    second = local.run(reporting, {"text": "second"}, runs)
    assert (first.status, second.status) == (local.SUCCEEDED, local.SUCCEEDED)
    pages = [Path(r.reports[0]) for r in (first, second)]
    assert [p.name for p in pages] == ["check.page.html"] * 2
    assert [p.parent.parent for p in pages] == [Path(first.log_file).parent, Path(second.log_file).parent]
    assert "first" in pages[0].read_text() and "second" in pages[1].read_text()  # both kept
    pointer = reports / "reporting"
    assert pointer.is_symlink() and pointer.resolve() == pages[1].parent.resolve()
    assert not os.path.isabs(os.readlink(pointer))  # the stores folder can move
    for r in (first, second):
        result = json.loads((Path(r.log_file).parent / "result.json").read_text())
        assert result["status"] == local.SUCCEEDED and result["reports"] == r.reports

    failed = local.run(reporting, {"text": "third", "fail": True}, runs)
    assert failed.status == local.FAILED
    page = Path(failed.reports[0])
    assert f"report: {page}" in failed.error and page.suffix == ".html"  # opens as a page
    assert pointer.resolve() == page.parent.resolve()  # a failed run's report is the latest too

    assert main(["runs", "--local", "--stores", str(tmp_path / "stores")]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].split() == ["RUN", "STATUS", "STARTED", "SECONDS", "REPORTS"]
    assert [line.split()[1] for line in listed[1:]] == ["FAILED", "SUCCEEDED", "SUCCEEDED"]
    assert listed[1].split()[0] == Path(failed.log_file).parent.name  # newest first


def test_a_reports_folder_from_before_is_moved_aside_not_lost(tmp_path: Path) -> None:
    runs, reports = tmp_path / "stores" / "runs", tmp_path / "stores" / "reports"
    (reports / "reporting").mkdir(parents=True)
    (reports / "reporting" / "old.html").write_text("kept")
    assert local.run(reporting, {}, runs).status == local.SUCCEEDED
    assert (reports / "reporting").is_symlink()
    [aside] = reports.glob("reporting.before-*")
    assert (aside / "old.html").read_text() == "kept"


@dsl.component(base_image="python:3.11-slim", install_kfp_package=False)
def count(n: int) -> None:
    print("plain line, not progress")
    print(f"[progress] counted {n}", flush=True)


@dsl.pipeline(name="counting")
def counting(items: list[int] = [1, 2]) -> None:  # noqa: B006 - a pipeline parameter default
    with dsl.ParallelFor(items) as item:
        count(n=item).set_display_name("count")


def test_tasks_of_one_name_get_distinct_names_and_their_progress_lines_are_shown(tmp_path: Path) -> None:
    events: list[tuple[str, str, str]] = []
    result = local.run(
        counting,
        {},
        tmp_path / "runs",
        progress=lambda event, rec: events.append((event, rec.name, rec.note)),
    )
    assert result.status == local.SUCCEEDED
    assert sorted(t.name for t in result.tasks) == ["count", "count #2"]
    # One plain log per task beside the run's log, without terminal codes.
    tasks = Path(result.log_file).parent / "tasks"
    assert sorted(p.name for p in tasks.iterdir()) == ["count-2.log", "count.log"]
    for log in [*tasks.iterdir(), Path(result.log_file)]:
        text = log.read_text()
        assert "plain line, not progress" in text and "\x1b[" not in text
    notes = sorted((name, note) for event, name, note in events if event == "note")
    assert [note for _, note in notes] == sorted(["counted 1", "counted 2"])  # only the marked lines
    assert {name for name, _ in notes} == {"count", "count #2"}
