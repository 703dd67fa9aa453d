"""What every step's container runs: kfp's executor, then an exit without the teardown.

    _KFP_RUNTIME=true python3 -m components.executor kfp.dsl.executor_main --component_module_path ...

kfp starts a lightweight component as ``python3 -m kfp.dsl.executor_main ...``; the step
components (:func:`components.step.step_component`) run that same module through this one.
Once the executor has written the task's outputs, the process does what a normal exit does
first (non-daemon threads are joined, every atexit hook runs: MLflow's and logging's
flushes, the standard streams are flushed) and then ends with the executor's exit code,
without tearing the interpreter down. After Great Expectations, MLflow or scikit-learn have
been imported, that teardown alone takes 0.2-0.6 s per task, on every task.

Only the standard library is imported before the module that is run. In the Vertex AI
build a step's credentials come from Secret Manager: :mod:`components.secrets` (standard
library too) sets them as env vars first, when ``KFP_MLOPS_SECRETS`` names them.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import runpy
import sys
import traceback
from collections.abc import Callable
from typing import Any

USAGE = "usage: python -m components.executor MODULE [ARG ...]  (runs MODULE as __main__)"


def exit_code(code: Any) -> int:
    """The process exit status for ``SystemExit(code)``, as the interpreter computes it."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def run(main: Callable[[], object]) -> int:
    """Call `main` and return the exit status an interpreter would end with: 0, the
    ``SystemExit`` code, or 1 after printing the traceback of any other exception."""
    try:
        main()
    except SystemExit as exc:
        return exit_code(exc.code)
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


def flush_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed or broken stream: nothing to save
            stream.flush()


_status: int | None = None


def _end_now() -> None:
    # Registered before the run module imports anything, so it is the last atexit hook
    # to run: every library's own hook has run by then.
    if _status is not None:
        flush_streams()
        os._exit(_status)


def main(argv: list[str]) -> int:
    """Run module ``argv[0]`` as ``__main__`` with ``argv[1:]`` as its arguments."""
    if not argv or argv[0].startswith("-"):
        print(USAGE, file=sys.stderr)
        return 2
    module, args = argv[0], argv[1:]
    if os.environ.get("KFP_MLOPS_SECRETS"):  # the Vertex AI build: credentials from Secret Manager
        from components import secrets

        try:
            secrets.resolve()
        except secrets.SecretError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    atexit.register(_end_now)
    sys.argv = [module, *args]
    return run(lambda: runpy.run_module(module, run_name="__main__", alter_sys=True))


if __name__ == "__main__":
    _status = main(sys.argv[1:])
    sys.exit(_status)
