"""What ``--verbose`` shows on the terminal: each task's own output, line by line, named.

The run log keeps everything. The terminal leaves out what the KFP executor prints about
itself before the step starts (where it found the component, and the whole executor input
as JSON, dozens of lines per task) and puts the task's name before each line, so the lines of
tasks running at once (the optimize workers) can be told apart.
"""

from __future__ import annotations

from typing import TextIO

# The KFP executor's own lines (kfp/dsl/executor_main.py) before the step's code runs.
_EXECUTOR_SETUP = ("Looking for component `", "Loading KFP component ")
_EXECUTOR_INPUT = "Got executor_input:"


class TaskEcho:
    """One task's output on its way to the terminal: whole lines, prefixed, setup left out."""

    def __init__(self, out: TextIO, name: str):
        self.out = out
        self.prefix = f"[{name}] "
        self.partial = ""
        self.depth = 0  # braces open in the executor input being left out
        self.opened = False
        self.skipping = False

    def write(self, text: str) -> None:
        lines = (self.partial + text).split("\n")
        self.partial = lines.pop()
        for line in lines:
            self._line(line)

    def close(self) -> None:
        """The task ended: show what it left without a newline."""
        if self.partial:
            self._line(self.partial)
            self.partial = ""

    def _line(self, line: str) -> None:
        if self.skipping:
            self.depth += line.count("{") - line.count("}")
            self.opened = self.opened or "{" in line
            if self.opened and self.depth <= 0:
                self.skipping = False
            return
        if _EXECUTOR_INPUT in line:
            self.skipping, self.depth, self.opened = True, 0, False
            self.out.write(f"{self.prefix}(executor input: in run.log)\n")
            return
        if any(mark in line for mark in _EXECUTOR_SETUP):
            return
        self.out.write(f"{self.prefix}{line.strip()}\n" if line.strip() else "")
