"""What a local run reports: each task's record and the run's result."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

SUCCEEDED, FAILED = "SUCCEEDED", "FAILED"
# kfp.local logs its own lines (`16:01:51.000 - ERROR - Task ... FAILURE`) after a task's traceback.
_KFP_LOG_LINE = re.compile(r"\d\d:\d\d:\d\d\.\d+ - [A-Z]+ - ")
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Failed|Unavailable|Timeout|Conflict|Exit)\b")


@dataclass
class TaskRecord:
    name: str
    status: str = "RUNNING"
    seconds: float = 0.0
    log: list[str] = field(default_factory=list, repr=False)
    note: str = ""  # the task's latest progress line (PROGRESS_MARK)

    def error(self) -> str:
        """The last exception line in the task's log (what the step raised), if any."""
        lines = [ln.strip() for ln in "".join(self.log).splitlines() if ln.strip()]
        for i in range(len(lines) - 1, -1, -1):
            if lines[i].startswith("Traceback"):
                tail = [ln for ln in lines[i + 1 :] if not ln.startswith(("File ", "^", "~"))]
                exc = [ln for ln in tail if ":" in ln and not _KFP_LOG_LINE.match(ln)]
                # Prefer the exception line itself (`pkg.SomeError: message`) over trailing notes.
                named = [ln for ln in exc if _EXCEPTION_LINE.match(ln)]
                return named[-1] if named else exc[-1] if exc else tail[-1] if tail else ""
        return ""


@dataclass
class RunResult:
    pipeline: str
    status: str
    seconds: float
    tasks: list[TaskRecord]
    run_dir: str = ""
    log_file: str = ""
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    reports: list[str] = field(default_factory=list)
    error: str = ""
    # "argo": each task as soon as its upstreams succeeded; "sequential": kfp.local's order.
    order: str = "argo"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["tasks"] = [
            {"name": t.name, "status": t.status, "seconds": round(t.seconds, 3)} for t in self.tasks
        ]
        out["seconds"] = round(self.seconds, 3)
        return out


Progress = Callable[[str, TaskRecord], None]
