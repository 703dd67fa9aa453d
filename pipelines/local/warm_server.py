"""What the warm fork server (:mod:`pipelines.local.warm`) does besides CPython's own server loop.

Imported in the fork server only, as the first of its preloaded modules, before the heavy
imports. The server is CPython's ``multiprocessing.forkserver``: it serves until its
client (the run) closes the pipe it was started with — which the kernel does when the run
ends, however it ends — and then leaves through a normal interpreter exit. Here:

- when it leaves, its first act is to SIGKILL every process below it (the running tasks
  and whatever they started), then it ends at once: the interpreter's teardown of the
  preloaded libraries takes 5-6 s, during which a task would keep its turn at the
  warehouse (its exit hook is registered first, so it runs last of the hooks, which take
  milliseconds, but before that teardown). Each task closes its copy of that pipe
  (multiprocessing hands one to every child), so the run's end is seen while tasks run;
- started from the run's main thread, it also asks the kernel for SIGTERM when the run
  ends (``KFP_MLOPS_WARM_PARENT``, :func:`pipelines.local.guard.die_with_parent`), which
  reaches it even while it is still importing, and leaves the same way;
- it ignores SIGINT: a Ctrl-C in the terminal reaches the whole process group, and the
  run itself stops its tasks (:mod:`pipelines.local.interrupt`); a traceback from the server's
  imports would only clutter the terminal.

Each task forked from it asks for SIGKILL when the server ends (:func:`pipelines.local.warm._child`),
so a server that is itself SIGKILLed takes its tasks along too.
"""

from __future__ import annotations

import atexit
import os
import signal
from typing import Any

from pipelines.local import guard
from pipelines.local.warm import PARENT_ENV

_SERVER = os.getpid()


def _leave() -> None:
    """End every process below the server, then the server, skipping the teardown."""
    if os.getpid() != _SERVER:  # a task forked from the server runs these hooks too
        return
    guard.end_descendants()
    os._exit(0)


def _on_term(signum: int, frame: Any) -> None:
    if os.getpid() == _SERVER:
        _leave()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, _on_term)
atexit.register(_leave)
_parent = os.environ.pop(PARENT_ENV, "")
if _parent.isdigit():
    guard.die_with_parent(int(_parent), signal.SIGTERM)
