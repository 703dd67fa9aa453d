"""A folder of its own for every local run, and what killed runs leave behind."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import time
from pathlib import Path

from pipelines.local.guard import alive

TMP = "tmp"
_OWNER = "owner.json"


def new_run_folder(runs_root: Path, pipeline: str) -> Path:
    """A folder of its own for one run, ``<runs>/<pipeline>-<YYYYmmdd-HHMMSS>-<pid>-<hex>``:
    runs started in the same second (or by two processes) never share a log or outputs.

    Temp folders that killed runs left behind are removed first (:func:`remove_stale_temp`).
    """
    runs_root.mkdir(parents=True, exist_ok=True)
    remove_stale_temp(runs_root)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = runs_root / f"{pipeline}-{stamp}-{os.getpid()}-{secrets.token_hex(2)}"
    folder.mkdir()
    owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
    (folder / _OWNER).write_text(json.dumps(owner))
    return folder


def remove_stale_temp(runs_root: Path) -> list[Path]:
    """Remove the task temp folders of runs whose process (on this host) is gone."""
    removed = []
    for temp in runs_root.glob(f"*/{TMP}"):
        try:
            owner = json.loads((temp.parent / _OWNER).read_text())
        except (OSError, ValueError):
            continue
        if owner.get("host") != socket.gethostname() or (
            int(owner.get("pid", 0)) > 0 and alive(int(owner["pid"]))
        ):
            continue
        shutil.rmtree(temp, ignore_errors=True)
        removed.append(temp)
    return removed
