"""components.executor: runs a module as __main__, keeps what a normal exit guarantees
(threads joined, atexit hooks, flushed streams, the exit status) and skips the interpreter
teardown. Real subprocesses; the probe module stands in for kfp's executor_main."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = textwrap.dedent(
    """
    import atexit, sys, threading, time

    OUT = sys.argv[1]

    def note(text, _open=open):  # _open: builtins are gone late in a teardown
        with _open(OUT, "a") as f:
            f.write(text + "\\n")

    class Teardown:
        def __del__(self):
            note("teardown")

    keep = Teardown()  # collected only when the interpreter tears its modules down
    atexit.register(note, "atexit")
    threading.Thread(target=lambda: (time.sleep(0.2), note("thread"))).start()

    if __name__ == "__main__":
        note("main " + " ".join(sys.argv[2:]))
        sys.stdout.write("no newline, never flushed by the module")
        how = sys.argv[2] if len(sys.argv) > 2 else ""
        if how == "raise":
            raise ValueError("the step failed")
        if how.startswith("exit:"):
            code = how[5:]
            sys.exit(int(code) if code.isdigit() else code)
    """
)


@pytest.fixture
def probe(tmp_path: Path) -> Path:
    (tmp_path / "probe_main.py").write_text(PROBE)
    return tmp_path


def _python(probe: Path, *argv: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run ``python *argv`` (the probe's notes file is argv's first module argument)."""
    out = probe / "notes.txt"
    out.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(probe), str(ROOT)])}
    cmd = [sys.executable, *[str(out) if a == "NOTES" else a for a in argv]]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    return proc, out.read_text().splitlines() if out.exists() else []


def test_a_plain_exit_tears_the_interpreter_down(probe: Path) -> None:
    # The reference: python -m runs the module, and its exit runs the teardown.
    proc, notes = _python(probe, "-m", "probe_main", "NOTES", "a", "b")
    assert proc.returncode == 0, proc.stderr
    assert notes == ["main a b", "thread", "atexit", "teardown"]


def test_the_executor_keeps_the_exit_guarantees_and_skips_the_teardown(probe: Path) -> None:
    proc, notes = _python(probe, "-m", "components.executor", "probe_main", "NOTES", "a", "b")
    assert proc.returncode == 0, proc.stderr
    # run as __main__ with its own arguments; the non-daemon thread is waited for, the atexit
    # hook runs, buffered output is flushed; the teardown (the slow part) never happens
    assert notes == ["main a b", "thread", "atexit"]
    assert proc.stdout == "no newline, never flushed by the module"


def test_a_failing_module_exits_1_with_its_traceback(probe: Path) -> None:
    proc, notes = _python(probe, "-m", "components.executor", "probe_main", "NOTES", "raise")
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "ValueError: the step failed" in proc.stderr
    assert notes == ["main raise", "thread", "atexit"]


@pytest.mark.parametrize(
    ("how", "status", "message"), [("exit:3", 3, ""), ("exit:0", 0, ""), ("exit:bad", 1, "bad")]
)
def test_sys_exit_keeps_its_status(probe: Path, how: str, status: int, message: str) -> None:
    proc, notes = _python(probe, "-m", "components.executor", "probe_main", "NOTES", how)
    assert proc.returncode == status, proc.stderr
    assert proc.stderr.strip() == message
    assert notes[-1] == "atexit"


def test_without_a_module_it_prints_its_usage(probe: Path) -> None:
    for argv in ([], ["--help"]):
        proc, _ = _python(probe, "-m", "components.executor", *argv)
        assert proc.returncode == 2 and "usage: python -m components.executor MODULE" in proc.stderr


def test_an_unknown_module_is_named(probe: Path) -> None:
    proc, _ = _python(probe, "-m", "components.executor", "no_such_module_here")
    assert proc.returncode == 1 and "No module named no_such_module_here" in proc.stderr
