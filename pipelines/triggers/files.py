"""Small file helpers shared by the commands that keep state (watch, backfill)."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_json_atomic(path: Path, data: Any) -> None:
    """Write `data` as JSON to `path` atomically (a temp file in the same folder, fsync,
    rename), so a crash leaves the old or the new file, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def read_state(path: Path, what: str, fmt: int, key: str, kind: type) -> dict[str, Any] | None:
    """A state file written by `write_json_atomic`: None when it does not exist yet.

    Raises:
        ValueError: It is unreadable, or not a `what` state of format `fmt` whose `key` is a
            `kind` (starting over would start runs again, so the caller refuses instead).
    """
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"state file {path} is unreadable ({exc}); fix or delete it") from None
    if not isinstance(data, dict) or data.get("format") != fmt or not isinstance(data.get(key), kind):
        raise ValueError(f"state file {path} is not a {what} state (format {fmt}); fix or delete it")
    return data
