"""README's layout section names the tree as it is: every path it shows exists, and every
package and shared module of the tree is named there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _layout_rows() -> list[tuple[list[str], str]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if line.startswith("| `"):
            _, folders, holds, _ = line.split("|")
            rows.append((re.findall(r"`([^`]+)`", folders), holds))
    return rows


def _exists(name: str, bases: list[Path]) -> bool:
    name = name.split(" ")[0]
    if "*" in name or "<" in name:
        return True  # a pattern (components/<step>/, components/*.py)
    return any((base / name).exists() for base in bases)


def test_every_path_the_layout_names_exists() -> None:
    missing = []
    for folders, holds in _layout_rows():
        # A row's first folder is where its short names live (`runner.py` in pipelines/local/).
        bases = [ROOT] + [ROOT / f for f in folders if f.endswith("/") and "<" not in f]
        bases += [p.parent for f in folders if "<step>" in f for p in ROOT.glob("components/*/component.py")]
        bases += [ROOT / Path(f).parent for f in folders if "/" in f and not f.endswith("/")]
        for name in folders + re.findall(r"`([^`]+\.(?:py|md|sql))`", holds):
            if not _exists(name, bases):
                missing.append(name)
    assert missing == []


def test_the_layout_names_every_package_and_shared_module() -> None:
    section = " ".join(f" {' '.join(folders)} {holds}" for folders, holds in _layout_rows())
    packages = [
        p.parent.relative_to(ROOT).as_posix() + "/" for p in (ROOT / "pipelines").glob("*/__init__.py")
    ]
    shared = [p.name for p in (ROOT / "components").glob("*.py") if p.name != "__init__.py"]
    top = [p.name for p in (ROOT / "pipelines").glob("*.py") if not p.name.startswith("__")]
    unnamed = [name for name in packages + shared + top if name not in section]
    assert unnamed == []
