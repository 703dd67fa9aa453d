"""``python -m pipelines docs``: each step's README shows the inputs and outputs its code declares.

``components/<step>/README.md`` is handwritten (what the step does, its examples) except one
region under ``## Inputs and outputs``, between the lines :data:`BEGIN` and :data:`END`: a
table of every input (name, KFP type, default) and every output (name, type) of the step's
component, with the description its docstring's ``Args:`` / ``Returns:`` gives, and the image
it runs on. The rows are the component catalogue's (``pipelines.components_yaml``), read from
``components/<step>/component.py``: the function's signature and docstring are the one
source. ``docs`` rewrites the region of every README and prints the files it changed;
``docs --check`` changes nothing and exits 1 naming each README that is out of date.

A README without the region gets an ``## Inputs and outputs`` section (before its first
section); a step without a README gets one with its title and its docstring's summary.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipelines.components_yaml import rows, step_components, summary

ROOT = Path(__file__).resolve().parents[1]
COMPONENTS = ROOT / "components"
README = "README.md"
HEADING = "## Inputs and outputs"
BEGIN = "<!-- generated: python -m pipelines docs -->"
END = "<!-- end generated -->"
COMMAND = "python -m pipelines docs"


class RegionError(ValueError):
    """A README whose markers do not enclose one region."""


def image_line(name: str) -> str:
    """The image step `name` runs on, as its declaration names it (``components.images``)."""
    from components.images import image_spec
    from components.step import step_of

    step = step_of(name)
    image = image_spec(step.image)
    whose = "its own image" if step.image == name else f"the `{step.image}` image"
    holds = f"the package's `{image.extra}` extra" + "".join(f" and `{d}/`" for d in image.data)
    return f'Image: `IMAGES["{name}"]`, {whose}: `{image.repository}:<version>` with {holds}.'


def region(name: str, component: Any) -> str:
    """The generated region of step `name`'s README, its marker lines included."""
    spec = component.component_spec
    return "\n".join(
        [
            BEGIN,
            "| | name | type | description |",
            "|---|---|---|---|",
            *rows(spec.inputs, True, "in"),
            *rows(spec.outputs, False, "out"),
            "",
            image_line(name),
            END,
        ]
    )


def with_region(text: str, block: str) -> str:
    """`text` with its generated region replaced by `block`. Without one, `block` goes under
    an ``## Inputs and outputs`` heading the text has, else in a new such section before the
    text's first ``## `` section (at the end when it has none)."""
    begins, ends = text.count(BEGIN), text.count(END)
    if (begins, ends) == (1, 1) and text.index(BEGIN) < text.index(END):
        start, end = text.index(BEGIN), text.index(END) + len(END)
        return text[:start] + block + text[end:]
    if begins or ends:
        raise RegionError(f"needs one {BEGIN!r} line, then one {END!r} line")
    heading = re.search(rf"^{re.escape(HEADING)}[ \t]*\n", text, flags=re.M)
    if heading:
        return text[: heading.end()] + "\n" + block + "\n" + text[heading.end() :]
    section = f"{HEADING}\n\n{block}\n"
    first = re.search(r"^## ", text, flags=re.M)
    if first:
        return text[: first.start()] + section + "\n" + text[first.start() :]
    return text.rstrip("\n") + "\n\n" + section


def readme_texts(
    components: Mapping[str, Any] | None = None, root: Path = COMPONENTS
) -> dict[Path, tuple[str | None, str]]:
    """Every step's README: (its text, ``None`` when there is none; the text it should have).

    Args:
        components: The KFP component of each step, by step name; default: the project's
            (``components/<step>/component.py``).
        root: The folder holding the step folders.

    Raises:
        RegionError: A README's markers are broken (the message names the file).
    """
    found = {}
    for name, component in (step_components() if components is None else components).items():
        path = root / name / README
        current = path.read_text(encoding="utf-8") if path.exists() else None
        base = current if current is not None else f"# {name}\n\n{summary(component)}\n"
        try:
            found[path] = (current, with_region(base, region(name, component)))
        except RegionError as exc:
            raise RegionError(f"{shown(path)}: {exc}") from None
    return found


def out_of_date(components: Mapping[str, Any] | None = None, root: Path = COMPONENTS) -> list[Path]:
    """The READMEs whose generated region is not what their component declares (or missing)."""
    return [path for path, (now, want) in readme_texts(components, root).items() if now != want]


def write(components: Mapping[str, Any] | None = None, root: Path = COMPONENTS) -> list[Path]:
    """Rewrite the generated region of every README that is out of date; the files written."""
    written = []
    for path, (now, want) in readme_texts(components, root).items():
        if now != want:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(want, encoding="utf-8")
            written.append(path)
    return written


def shown(path: Path) -> str:
    """`path` as the project names it (relative to the checkout when inside it)."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def cmd_docs(args: argparse.Namespace) -> int:
    try:
        if args.check:
            stale = out_of_date()
            for path in stale:
                print(f"{shown(path)}: out of date; run `{COMMAND}`", file=sys.stderr)
            return 1 if stale else 0
        changed = write()
    except RegionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in changed:
        print(shown(path))
    if not changed:
        print("every step README is up to date")
    return 0


def add_docs_command(subparsers: Any) -> None:
    """Register ``docs`` on the CLI's subparsers."""
    p = subparsers.add_parser(
        "docs",
        help="regenerate the inputs and outputs of every components/<step>/README.md",
        description="Rewrite the generated region of each step's README (its inputs, outputs and "
        "image, from components/<step>/component.py) and print the files changed.",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="change nothing; exit 1 naming each README that is out of date",
    )
    p.set_defaults(func=cmd_docs)
