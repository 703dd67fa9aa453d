"""How far a long step has got: one line, marked, that a local run shows under the task's name
(``pipelines.local.hooks``) and a cluster keeps in the task's log like any other line."""

from __future__ import annotations

PROGRESS_MARK = "[progress] "


def progress(text: str) -> None:
    """Print one progress line (``[progress] trial 3/10 ...``), at once."""
    print(PROGRESS_MARK + text, flush=True)
