"""Warm task starts for local runs: fork each task from a process that imported the heavy
libraries once, instead of starting a fresh interpreter per task.

``kfp.local.SubprocessRunner`` starts every task as ``sh -ec '<script>' <source> <args>``:
a new Python that imports kfp (~0.5 s), then the step imports its libraries — Great
Expectations alone takes 4–8 s, MLflow, dbt and scikit-learn a second or more each — and
``run all`` has 15 tasks. Here the same command is recognised and run in a child forked from
a ``multiprocessing`` fork server that has imported kfp's executor and those libraries
(``PRELOAD``, per pipeline): the child gets the task's environment and working directory, writes the
component source to a fresh temp folder and calls kfp's own ``executor_main`` with the
task's arguments, exactly as the script would (the steps' script runs it through
``components.executor``, which ends the process the same way as here: atexit hooks, then
``os._exit``). Each task still runs in its own process (a
crash or ``sys.exit`` ends only that task) and starts from the same clean state: the fork
server never runs a task itself.

A command that is not kfp's lightweight-component script (a pip install in it, another
shape) is run as a subprocess, as kfp.local would, and the task log says so.
``KFP_MLOPS_WARM=0`` turns warm starts off.

Every task process ends with the run (:mod:`pipelines.local.guard`), however the run ends: a
forked task asks the kernel for SIGKILL when the fork server ends, and the fork server,
once its client is gone, kills everything below it and leaves without its slow teardown
(:mod:`pipelines.local.warm_server`). A task started as a subprocess (warm starts off, or a
command this cannot fork) runs under the guard (:mod:`pipelines.local.guard`), which
ends the task's process tree when the run ends. Each task also ends what it started itself
when it ends (it adopts its orphans), and a run that is interrupted ends its running tasks
(:func:`pipelines.local.lifetime.stop_all`).
"""

from __future__ import annotations

import atexit
import contextlib
import io
import logging
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from components import executor
from pipelines.local import guard, lifetime

ENV_SWITCH = "KFP_MLOPS_WARM"
# Imported once by the fork server (by what the pipelines' steps import); a module that fails
# to import is skipped (multiprocessing ignores ImportError in preloads) and is then imported
# by the task itself, as before.
_BASE = ("kfp.dsl.executor_main", "pandas", "duckdb", "components.warehouse")
_GX = ("great_expectations",)
_ML = (
    "fastparquet",  # the datasets extract writes and the model steps read
    "scipy.stats",
    "sklearn.feature_extraction.text",
    "sklearn.linear_model",
    "sklearn.metrics",
    "optuna",
    "mlflow",
    "skops.io",
    "onnxruntime",  # the sentence encoder of the embedding features (tagifai.embeddings)
    "tokenizers",
    "tagifai.train",
)
PRELOAD: dict[str, tuple[str, ...]] = {
    "dataops": (*_BASE, *_GX, "dbt.cli.main"),
    "mlops": (*_BASE, *_GX, *_ML),
    "continual": (*_BASE, *_GX, *_ML),
}


def preload_for(pipelines: Sequence[str]) -> list[str]:
    """The modules the steps of these pipelines import (the fork server imports them once)."""
    out: list[str] = []
    for name in pipelines:
        out += [m for m in PRELOAD.get(name, _BASE) if m not in out]
    return out


_SCRIPT = re.compile(
    r'program_path=\$\(mktemp -d\)\s+printf "%s" "\$0" > "\$program_path/ephemeral_component\.py"\s+'
    r"_KFP_RUNTIME=true \S+ -m (?:components\.executor )?kfp\.dsl\.executor_main\s+"
    r'--component_module_path\s+"\$program_path/ephemeral_component\.py"\s+"\$@"\s*'
)
_context: Any = None
_context_lock = threading.Lock()


def enabled(env: dict[str, str] | None = None) -> bool:
    return (os.environ if env is None else env).get(ENV_SWITCH, "1").strip().lower() not in (
        "0",
        "false",
        "no",
    )


def parse_command(full_command: Sequence[str]) -> tuple[str, list[str]] | None:
    """(component source, executor arguments) of kfp's lightweight-component command, or
    None for any other command."""
    if len(full_command) < 4 or list(full_command[:2]) != ["sh", "-ec"]:
        return None
    if not _SCRIPT.fullmatch(full_command[2].strip() + "\n"):
        return None
    return full_command[3], list(full_command[4:])


# The fork server's own module comes first: it is in place before the heavy imports.
SERVER_MODULE = "pipelines.local.warm_server"
# The pid the fork server ends with (set only while the main thread starts it).
PARENT_ENV = "KFP_MLOPS_WARM_PARENT"


def _fork_server(preload: Sequence[str] = ()) -> Any:
    global _context
    with _context_lock:
        if _context is None:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload([SERVER_MODULE, *(preload or preload_for(list(PRELOAD)))])
            _context = ctx
        return _context


def start(pipelines: Sequence[str]) -> None:
    """Start the fork server now, preloading what `pipelines` need (it imports them before it
    serves the first task). The first call decides: one fork server per process.

    Started from the main thread, the server also ends when this process ends even while it
    is still importing (the kernel's parent-death signal follows the thread that forked it,
    and only the main thread lasts as long as the process).
    """
    from multiprocessing import forkserver

    _fork_server(preload_for(pipelines))
    if threading.current_thread() is not threading.main_thread():
        forkserver.ensure_running()
        return
    os.environ[PARENT_ENV] = str(os.getpid())  # read (and dropped) by the server at its start
    try:
        forkserver.ensure_running()
    finally:
        os.environ.pop(PARENT_ENV, None)


def server_pid() -> int:
    """The fork server's pid (started if it is not running)."""
    from multiprocessing import forkserver

    _fork_server()
    forkserver.ensure_running()
    return int(forkserver._forkserver._forkserver_pid)  # type: ignore[attr-defined]


def _noop() -> None:
    pass


def wait_ready() -> float:
    """Block until the fork server has done its imports and serves; the seconds waited."""
    t0 = time.perf_counter()
    process = _fork_server().Process(target=_noop)
    process.start()
    process.join()
    return time.perf_counter() - t0


def _child(source: str, args: list[str], env: dict[str, str], cwd: str, log_path: str, server: int) -> None:
    """The task, in a child of the fork server: what kfp's script does, then exit."""
    guard.die_with_parent(server, signal.SIGKILL)  # the server ends: so does the task
    guard.become_subreaper()
    _drop_alive_pipe()
    # A process group of its own: the terminal's Ctrl-C reaches the run only, which notes the
    # running tasks and then ends them (pipelines.local.interrupt); a task that got the signal
    # too could end first, and the run would not know it had been running.
    os.setpgid(0, 0)
    # A fresh interpreter's signal handling (the server ignores SIGINT and handles SIGTERM).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _name_process(args)
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True)
    os.environ.clear()
    os.environ.update(env)
    os.environ["_KFP_RUNTIME"] = "true"
    os.chdir(cwd)
    tempfile.tempdir = None  # TMPDIR may differ from the fork server's
    # A fresh interpreter has no logging set up when kfp's executor configures it.
    for handler in list(logging.root.handlers):
        logging.root.removeHandler(handler)
    code = executor.run(lambda: _execute(source, args))
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()  # what a normal interpreter exit runs (multiprocessing skips it)
    executor.flush_streams()
    guard.end_descendants()  # what the task started and left running ends with it
    os._exit(code)


def _drop_alive_pipe() -> None:
    """Close this task's copy of the pipe whose end tells the fork server that its client is
    gone: multiprocessing hands one to every child (for it to be a client in turn), and while
    a task held it, the server would not see the run's end until the task's."""
    from multiprocessing import forkserver

    fd = forkserver._forkserver._forkserver_alive_fd  # type: ignore[attr-defined]
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)
        forkserver._forkserver._forkserver_alive_fd = None  # type: ignore[attr-defined]


def _execute(source: str, args: list[str]) -> None:
    program = tempfile.mkdtemp()
    module = os.path.join(program, "ephemeral_component.py")
    with open(module, "w") as f:
        f.write(source)
    from kfp.dsl.executor_main import executor_main

    sys.argv = ["executor_main", "--component_module_path", module, *args]
    executor_main()


def _name_process(args: list[str]) -> None:
    """Show the step's function as the process name (``ps``, ``top``, the benchmarks)."""
    if "--function_to_execute" not in args[:-1]:
        return
    name = args[args.index("--function_to_execute") + 1].encode()[:15]
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).prctl(15, ctypes.c_char_p(name), 0, 0, 0)  # PR_SET_NAME (Linux)


def _follow(path: str, alive: Callable[[], bool], emit: Callable[[str], None]) -> None:
    """Emit the lines written to `path` while `alive()`, then the rest."""
    pending = ""
    with open(path, errors="replace") as f:
        while True:
            chunk = f.read()
            if chunk:
                pending += chunk
                *lines, pending = pending.split("\n")
                for line in lines:
                    emit(line + "\n")
                continue
            if not alive():
                rest = f.read()
                if rest or pending:
                    emit(pending + rest + ("" if (pending + rest).endswith("\n") else "\n"))
                return
            time.sleep(0.02)


def run_task(full_command: Sequence[str], env_vars: dict[str, str] | None) -> int | None:
    """Run a kfp.local task command warm; its output is printed line by line (like
    kfp.local's subprocess). None when the command is not one this can run."""
    parsed = parse_command(full_command)
    if parsed is None:
        return None
    source, args = parsed
    if lifetime.stopping():
        print("(not started: the run was interrupted)\n")
        return 1
    env = {**os.environ, **(env_vars or {})}
    fd, log_path = tempfile.mkstemp(prefix="task-", suffix=".log")
    os.close(fd)
    try:
        server = server_pid()
        process = _fork_server().Process(
            target=_child, args=(source, args, env, os.getcwd(), log_path, server)
        )
        process.start()
        pid = process.pid
        assert pid is not None
        try:
            with lifetime.tracked(lambda: guard.end_tree(pid)):
                _follow(log_path, process.is_alive, lambda line: print(line, end=""))
                process.join()
        except BaseException:  # interrupted: do not leave the task running
            guard.end_tree(pid)
            process.join(5)
            raise
        print("\n")
        code = process.exitcode
        return 1 if code is None else code if code >= 0 else 128 - code
    finally:
        with contextlib.suppress(OSError):
            os.unlink(log_path)


def run_subprocess(full_command: Sequence[str], env_vars: dict[str, str] | None) -> int:
    """Run a task command as a subprocess, as kfp.local does (its output printed line by
    line), under the guard: the task's whole process tree ends when this process ends."""
    if lifetime.stopping():
        print("(not started: the run was interrupted)\n")
        return 1
    env = {**os.environ, **(env_vars or {})}
    argv = lifetime.guard_command(list(full_command), parent=os.getpid())
    with subprocess.Popen(  # in a process group of its own, as a warm task (see _child)
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, env=env, process_group=0
    ) as process:
        guard_pid = process.pid
        try:
            with lifetime.tracked(lambda: guard.end_tree(guard_pid)):
                assert process.stdout is not None
                for line in iter(process.stdout.readline, ""):
                    print(line, end="")
                print("\n")
                return process.wait()
        except BaseException:  # interrupted: do not leave the task running
            guard.end_tree(guard_pid)
            raise


@contextlib.contextmanager
def warm_starts() -> Iterator[None]:
    """Route kfp.local's subprocess tasks through this module while the context is open:
    forked by `run_task` when warm starts are on, else (and for a command that cannot be
    forked) started by `run_subprocess`. Either way each task ends with this process."""
    from kfp.local import subprocess_task_handler as handler

    original = handler.run_local_subprocess
    warm = enabled()

    def run(full_command: list[str], env_vars: dict[str, str] | None = None) -> int:
        code = run_task(full_command, env_vars) if warm else None
        if code is None:
            if warm:
                print("(warm start: not a lightweight-component command; running it as a subprocess)\n")
            return run_subprocess(full_command, env_vars)
        return code

    handler.run_local_subprocess = run
    try:
        # An interrupted run ends the fork server with its tasks: a task thread may still
        # wait for the server to finish its imports and fork it.
        with lifetime.tracked(_end_server) if warm else contextlib.nullcontext():
            yield
    finally:
        handler.run_local_subprocess = original


def _end_server() -> None:
    from multiprocessing import forkserver

    pid = forkserver._forkserver._forkserver_pid  # type: ignore[attr-defined]
    if pid:
        guard.end_tree(pid)
