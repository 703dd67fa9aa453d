"""`python -m pipelines docs`: each step's README shows, in its generated region, the inputs,
outputs and image its component declares, and a step that gains an input gets its row there.
No `from __future__ import annotations`: kfp reads the throwaway step's signature."""

from pathlib import Path
from typing import NamedTuple

import pytest

from components.catalog import STEPS
from components.step import step_component
from pipelines.cli.main import main
from pipelines.step_docs import BEGIN, COMPONENTS, END, HEADING, out_of_date, write


def test_every_step_readme_shows_what_its_component_declares(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["docs", "--check"]) == 0, capsys.readouterr().err  # names each stale README
    for name in STEPS:
        text = (COMPONENTS / name / "README.md").read_text()
        assert text.count(BEGIN) == text.count(END) == 1, name
        assert f"\n{HEADING}\n\n{BEGIN}\n" in text, name


def _announce(rows: int) -> NamedTuple("Outputs", [("headline", str)]):  # type: ignore[valid-type]
    """Say what was published.

    Args:
        rows: Rows published.

    Returns:
        headline: One line for people.
    """
    return (f"{rows} rows",)


def _announce_with_table(rows: int, table: str = "mlops_course.labeled_projects") -> NamedTuple(
    "Outputs", [("headline", str)]
):  # type: ignore[valid-type]
    """Say what was published.

    Args:
        rows: Rows published.
        table: The published table.

    Returns:
        headline: One line for people.
    """
    return (f"{rows} rows are published in {table}",)


def test_a_step_that_gains_an_input_gets_its_row_and_its_readme_is_out_of_date_until_then(
    tmp_path: Path,
) -> None:
    before = {"announce_docs": step_component("announce_docs", image="extract")(_announce)}
    after = {"announce_docs": step_component("announce_docs", image="extract")(_announce_with_table)}
    readme = tmp_path / "announce_docs" / "README.md"
    readme.parent.mkdir()
    intro, example = "# announce_docs\n\nSays what was published.\n\n", "## Example\n\nannounce(rows=3)\n"
    readme.write_text(intro + example)  # a new step's README: no region yet

    assert out_of_date(before, tmp_path) == [readme]
    assert write(before, tmp_path) == [readme]
    text = readme.read_text()
    assert text.startswith(intro + f"{HEADING}\n\n{BEGIN}\n") and text.endswith(f"{END}\n\n" + example)
    assert "| in | `rows` | `Integer` | Rows published. |" in text
    assert "| out | `headline` | `String` | One line for people. |" in text
    assert 'Image: `IMAGES["announce_docs"]`, the `extract` image: `kfp-mlops-extract:<version>`' in text
    assert "`table`" not in text
    assert out_of_date(before, tmp_path) == [] and write(before, tmp_path) == []

    # The component gains an input: the README is stale until regenerated, then lists it.
    assert out_of_date(after, tmp_path) == [readme]
    assert write(after, tmp_path) == [readme]
    text = readme.read_text()
    assert (
        "| in | `rows` | `Integer` | Rows published. |\n"
        "| in | `table` | `String` = `'mlops_course.labeled_projects'` | The published table. |\n"
        "| out | `headline` |"
    ) in text
    assert text.startswith(intro + f"{HEADING}\n\n{BEGIN}\n") and text.endswith(f"{END}\n\n" + example)
    assert out_of_date(after, tmp_path) == []
