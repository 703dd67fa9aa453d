"""A ``--docker`` run's containers end with the run (pipelines/local/containers.py): killed when the
run's process is SIGKILLed (the reaper), and when the run is interrupted (Ctrl-C), on a real
Docker engine and the train image."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]

# One task in the train image that says it started (in a mounted folder), then sleeps.
DRIVER = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    from kfp import dsl

    from components.step import step_component
    from pipelines import local
    from pipelines.local import interrupt


    def _wait_long(marker: str) -> None:
        import time

        with open(marker, "w") as f:
            f.write("started\\n")
        time.sleep(300)


    wait_long = step_component("wait_long", image="train")(_wait_long)


    @dsl.pipeline(name="docker-wait")
    def waits(marker: str) -> None:
        wait_long(marker=marker).set_display_name("wait in a container")


    if __name__ == "__main__":
        folder = Path(sys.argv[1])
        tracker = interrupt.Tracker(lambda event, rec: None)
        try:
            with interrupt.interruptible(tracker):
                local.run(waits, {"marker": str(folder / "started")}, folder / "runs", runner="docker",
                          docker_mounts={str(folder): False}, progress=tracker.progress("docker-wait"))
        except interrupt.RunInterrupted as exc:
            print(tracker.message(exc.signum), file=sys.stderr, flush=True)
            sys.exit(exc.exit_code)
    """
)


def containers_of(pid: int) -> list[str]:
    """Ids of the running containers labelled as started by the run in process `pid`."""
    out = subprocess.run(
        [
            "docker",
            "ps",
            "--filter",
            "label=kfp-mlops.run",
            "--format",
            '{{.ID}} {{.Label "kfp-mlops.run"}}',
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = [line.split() for line in out.splitlines()]
    return [row[0] for row in rows if len(row) == 2 and row[1].startswith(f"{pid}-")]


def start(tmp_path: Path) -> subprocess.Popen[str]:
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    tmp_path.chmod(0o777)  # the container runs as this user; the folder is mounted at its path
    proc = subprocess.Popen(
        [sys.executable, str(driver), str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "started").exists():
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the container never started"
            time.sleep(0.1)
        assert len(containers_of(proc.pid)) == 1
    except BaseException:
        proc.kill()
        raise
    return proc


def wait_gone(pid: int, timeout: float = 20) -> float:
    t0 = time.monotonic()
    while containers_of(pid):
        assert time.monotonic() - t0 < timeout, f"containers of the run still running after {timeout}s"
        time.sleep(0.2)
    return time.monotonic() - t0


def test_the_containers_of_a_killed_run_are_killed_by_its_reaper(docker_images, tmp_path: Path) -> None:
    proc = start(tmp_path)
    try:
        os.kill(proc.pid, signal.SIGKILL)  # the run's process alone: its reaper is left
        proc.wait(timeout=10)
        assert wait_gone(proc.pid) < 10
        _, err = proc.communicate(timeout=30)  # the reaper writes to the run's stderr, then leaves
    finally:
        for container in containers_of(proc.pid):
            subprocess.run(["docker", "kill", container], capture_output=True)
    assert f"stopped 1 container(s) of the ended run {proc.pid}-" in err


def test_ctrl_c_stops_the_runs_containers_and_says_so(docker_images, tmp_path: Path) -> None:
    proc = start(tmp_path)
    try:
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert not containers_of(proc.pid)  # killed before the run exited
        assert "interrupted (Ctrl-C) while running docker-wait: wait in a container" in err
        assert "Traceback" not in err
    finally:
        for container in containers_of(proc.pid):
            subprocess.run(["docker", "kill", container], capture_output=True)
