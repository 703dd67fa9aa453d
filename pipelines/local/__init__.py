"""Local runs: the pipelines on this machine through ``kfp.local``, as a cluster runs them.

- :mod:`.runner`: run one pipeline, record every task, collect outputs and reports;
- :mod:`.scheduler`: tasks in Argo's order (each as soon as its own upstreams succeeded);
- :mod:`.warm` and :mod:`.warm_server`: tasks forked from a server that imported the
  steps' libraries once;
- :mod:`.lifetime`, :mod:`.guard`, :mod:`.interrupt`, :mod:`.containers`: every task ends
  with its run, and an interrupted run says what it stopped;
- :mod:`.arguments`, :mod:`.summary`: a local run's arguments and its summary.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any

# The runner's names, imported on first use: the guard (.guard) starts once per task and
# imports nothing beyond the standard library, so importing this package must stay free.
__all__ = [
    "FAILED",
    "SUCCEEDED",
    "RunResult",
    "TaskRecord",
    "backend_problems",
    "display_names",
    "docker_runner",
    "new_run_folder",
    "remove_stale_temp",
    "report_types",
    "run",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from pipelines.local import folders, records, runner

        for module in (records, folders, runner):
            if hasattr(module, name):
                return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
