"""Containers of a ``--docker`` run end with the run.

``kfp.local.DockerRunner`` starts each task as a detached container and follows its logs;
the Docker engine, not the run, is the container's parent, so a run that is killed leaves
its running containers behind, writing to the mounted stores. While
:func:`ended_with_run` is open:

- every container of the run carries the label ``kfp-mlops.run=<run id>``;
- an interrupted run (:func:`pipelines.local.lifetime.stop_all`) kills them at once, and a task
  that would start after that does not;
- a small watcher process (``python -m pipelines.local.containers``, the *reaper*) kills them when
  the run's process ends without saying goodbye (SIGKILL, a crash): it checks every
  ``POLL_S`` seconds whether its parent is still there. A run that ends normally tells it
  to leave (SIGUSR1); by then its containers have ended and been removed.

The reaper needs the Docker engine to answer when the run dies; containers of a run whose
reaper was killed too (``kill -9`` of the whole process group) keep running: find them with
``docker ps --filter label=kfp-mlops.run`` and stop them with ``docker kill``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

from pipelines.local import lifetime

LABEL = "kfp-mlops.run"
POLL_S = 0.2


def kill_containers(run_id: str) -> int:
    """Kill the running containers labelled with `run_id`; how many there were."""
    import docker

    client = docker.from_env()
    try:
        found = client.containers.list(filters={"label": f"{LABEL}={run_id}"})
        for container in found:
            with contextlib.suppress(docker.errors.APIError):  # it ended meanwhile
                container.kill()
        return len(found)
    finally:
        client.close()


@contextlib.contextmanager
def ended_with_run() -> Iterator[None]:
    """Label, track and reap the containers kfp.local's DockerRunner starts in the block
    (the label's run id starts with this process's pid)."""
    from kfp.local import docker_task_handler as handler

    run_id = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
    original = handler.run_docker_container

    def run(client: Any, image: str, command: list[str], volumes: dict[str, Any], **args: Any) -> int:
        if lifetime.stopping():
            print("(not started: the run was interrupted)\n")
            return 1
        args["labels"] = {**(args.get("labels") or {}), LABEL: run_id}
        with lifetime.tracked(lambda: kill_containers(run_id)):
            return int(original(client=client, image=image, command=command, volumes=volumes, **args))

    reaper = subprocess.Popen(
        [sys.executable, "-m", "pipelines.local.containers", "--parent", str(os.getpid()), run_id],
        stdin=subprocess.DEVNULL,
    )
    handler.run_docker_container = run
    try:
        yield
    finally:
        handler.run_docker_container = original
        with contextlib.suppress(ProcessLookupError):
            reaper.send_signal(signal.SIGUSR1)
        with contextlib.suppress(subprocess.TimeoutExpired):
            reaper.wait(timeout=10)


def reap(parent: int, run_id: str) -> int:
    """The reaper: wait until `parent` ends or says goodbye (SIGUSR1); kill the run's
    containers in the first case (and on SIGTERM)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the run's to handle
    watched = {signal.SIGTERM, signal.SIGUSR1}
    signal.pthread_sigmask(signal.SIG_BLOCK, watched)
    while os.getppid() == parent:
        info = signal.sigtimedwait(watched, POLL_S)
        if info is not None and info.si_signo == signal.SIGUSR1:
            return 0
        if info is not None:  # SIGTERM
            break
    try:
        killed = kill_containers(run_id)
    except Exception as exc:  # the engine does not answer: say so where the run printed
        print(f"containers of run {run_id} could not be stopped: {exc}", file=sys.stderr, flush=True)
        return 1
    if killed:
        print(f"stopped {killed} container(s) of the ended run {run_id}", file=sys.stderr, flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m pipelines.local.containers --parent PID RUN_ID``"""
    import argparse

    p = argparse.ArgumentParser(
        prog="python -m pipelines.local.containers", description=__doc__.split("\n")[0]
    )
    p.add_argument("--parent", type=int, required=True, help="the run's process")
    p.add_argument("run_id", help=f"value of the {LABEL} label of the run's containers")
    args = p.parse_args(argv)
    return reap(args.parent, args.run_id)


if __name__ == "__main__":
    sys.exit(main())
