from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = (ROOT.parent / "shared" / "data" / "madewithml").resolve()


@pytest.fixture(scope="session")
def madewithml_dir() -> Path:
    """The lesson's real dataset, read in place from ../shared (never copied into the repo)."""
    if not (SHARED_DATA / "projects.csv").exists():
        pytest.fail(f"the shared dataset is missing: {SHARED_DATA} (CI puts ../shared beside the clone)")
    return SHARED_DATA
