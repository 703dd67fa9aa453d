"""The dataset's label set: the value set of the ``tags`` suite's ``expect_column_values_to_be_in_set(tag)``.

The suite is where the label set lives, so every path that validates tags (the embedded
load and Airbyte's, DuckDB and BigQuery) refuses a tag outside it. To add a label::

    python -m components.ge_validate.labels add quantum-computing

then commit ``great_expectations/gx/expectations/tags.json``. ``python -m
components.ge_validate.labels`` lists the labels.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from components.ge_validate.suites import suite_path

SUITE = "tags"
COLUMN = "tag"
# Labels look like the lesson's: lowercase words joined by hyphens.
_LABEL = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def _label_expectation(config: dict[str, Any], path: Path) -> dict[str, Any]:
    found = [
        e
        for e in config.get("expectations", [])
        if e.get("type") == "expect_column_values_to_be_in_set"
        and e.get("kwargs", {}).get("column") == COLUMN
    ]
    if len(found) != 1:
        raise ValueError(
            f"{path}: expected one expect_column_values_to_be_in_set({COLUMN}), found {len(found)}"
        )
    return found[0]


def labels(project_root: str | Path | None = None) -> list[str]:
    """The labels a tag may take, as the committed ``tags`` suite lists them."""
    path = suite_path(SUITE, project_root)
    return list(_label_expectation(json.loads(path.read_text()), path)["kwargs"]["value_set"])


def add_label(label: str, project_root: str | Path | None = None) -> bool:
    """Add ``label`` to the label set in the committed suite (kept sorted, formatted as GX writes it).

    Returns:
        True when the label was added, False when it was there already.

    Raises:
        ValueError: The label is not lowercase words joined by hyphens.
    """
    if not _LABEL.fullmatch(label):
        raise ValueError(
            f"label {label!r}: use lowercase letters and digits, words joined by hyphens "
            "(like natural-language-processing)"
        )
    path = suite_path(SUITE, project_root)
    config = json.loads(path.read_text())
    kwargs = _label_expectation(config, path)["kwargs"]
    if label in kwargs["value_set"]:
        return False
    kwargs["value_set"] = sorted([*kwargs["value_set"], label])
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.ge_validate.labels", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    add = sub.add_parser("add", help="add a label to the tags suite's label set")
    add.add_argument("label")
    args = parser.parse_args(argv)
    if args.command == "add":
        try:
            added = add_label(args.label)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        where = suite_path(SUITE)
        print(f"added {args.label} to {where}" if added else f"{args.label} is already in {where}")
        return 0
    print("\n".join(labels()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
