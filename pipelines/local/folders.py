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


# --------------------------------------------------------------------------- what a run keeps
#
# <runs>/<run>/run.log        the run's log: every task's output, in order
# <runs>/<run>/tasks/<task>.log one plain log per task
# <runs>/<run>/reports/       its HTML and Markdown reports (<task>.<artifact>.html)
# <runs>/<run>/result.json    its outcome: status, seconds, tasks, reports, error
# <reports>/<pipeline>        a pointer (symlink) to the reports of the pipeline's latest run

RESULT = "result.json"
REPORTS = "reports"


def write_result(folder: Path, result: dict[str, object]) -> None:
    """Write the run's outcome into its folder, whole or not at all."""
    part = folder / f".{RESULT}.part"
    part.write_text(json.dumps(result, indent=2, default=str))
    part.replace(folder / RESULT)


def point_latest(pointer: Path, target: Path) -> None:
    """Make `pointer` a symlink to `target` (relative), replacing the previous one atomically:
    a reader sees the old run's reports or the new run's, never a half-made folder. A real
    folder in its place (reports copied there before runs kept their own) is moved aside to
    ``<pointer>.before-<time>``."""
    pointer.parent.mkdir(parents=True, exist_ok=True)
    if pointer.is_dir() and not pointer.is_symlink():
        pointer.rename(pointer.with_name(f"{pointer.name}.before-{time.strftime('%Y%m%d-%H%M%S')}"))
    temp = pointer.with_name(f".{pointer.name}.{os.getpid()}-{secrets.token_hex(2)}")
    temp.symlink_to(os.path.relpath(target, pointer.parent))
    temp.replace(pointer)


def list_runs(runs_root: Path) -> list[dict[str, object]]:
    """The local runs under `runs_root`, newest first: folder, pipeline, start time, status
    (``running`` while its process lives; ``killed`` when it ended without a result), seconds,
    error, reports and log."""
    rows: list[tuple[float, dict[str, object]]] = []  # (start time, row)
    for owner_file in runs_root.glob(f"*/{_OWNER}"):
        folder = owner_file.parent
        try:
            owner = json.loads(owner_file.read_text())
        except (OSError, ValueError):
            continue
        row: dict[str, object] = {
            "run": folder.name,
            "pipeline": folder.name.split("-")[0],
            "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(owner.get("started", 0)))),
            "status": "",
            "seconds": None,
            "error": "",
            "reports": str(folder / REPORTS) if (folder / REPORTS).is_dir() else "",
            "log": str(folder / "run.log"),
        }
        try:
            result = json.loads((folder / RESULT).read_text())
            row.update(
                status=result.get("status", ""), seconds=result.get("seconds"), error=result.get("error", "")
            )
        except (OSError, ValueError):
            here = owner.get("host") == socket.gethostname()
            row["status"] = "running" if here and alive(int(owner.get("pid", 0))) else "killed"
        rows.append((float(owner.get("started", 0)), row))
    return [row for _, row in sorted(rows, key=lambda pair: pair[0], reverse=True)]
