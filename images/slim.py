"""Drop from an image's site-packages what no task ever loads; print what it freed.

Usage: python slim.py [SITE_PACKAGES]   (default: this interpreter's purelib)

Run in the same layer as the ``pip install`` it follows, so the files never reach a layer:

- test suites shipped inside packages: folders named ``tests`` or ``test`` below a
  package that hold an ``__init__.py`` or ``test_*.py`` files. Folders named ``tests`` that
  hold data (dbt's test macros) are kept;
- type stubs (``*.pyi``): read by type checkers, never by the interpreter.
"""

from __future__ import annotations

import shutil
import sys
import sysconfig
from pathlib import Path


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def is_test_suite(folder: Path) -> bool:
    if folder.name not in ("tests", "test"):
        return False
    return (folder / "__init__.py").is_file() or any(folder.glob("test_*.py"))


def slim(site: Path) -> tuple[int, int]:
    """Remove test suites and stubs under `site` (never `site`'s own top level packages);
    returns (paths removed, bytes freed)."""
    removed = freed = 0
    for folder in sorted(p for p in site.glob("*/*/**/") if p.is_dir()):
        if folder.exists() and is_test_suite(folder):
            freed += _size(folder)
            shutil.rmtree(folder)
            removed += 1
    for stub in site.rglob("*.pyi"):
        if stub.is_file():
            freed += stub.stat().st_size
            stub.unlink()
            removed += 1
    return removed, freed


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(sysconfig.get_paths()["purelib"])
    if not target.is_dir():
        raise SystemExit(f"slim.py: {target} is not a folder")
    n, freed = slim(target)
    print(f"[slim] {target}: removed {n} test folders and stubs, {freed / 1e6:.1f} MB")
