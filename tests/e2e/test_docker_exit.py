"""A step's exit status under kfp.local.DockerRunner, in the train image: the task fails when
the step fails and succeeds when it returns, through components.executor (no teardown).
No `from __future__ import annotations` here: the component's signature is read by kfp."""

from pathlib import Path

import pytest
from kfp import dsl

from components.step import step_component
from pipelines import local

pytestmark = [pytest.mark.docker, pytest.mark.e2e]


def _finish(code: int) -> str:
    import sys

    print("finishing with", code)
    if code:
        sys.exit(code)
    return "done"


finish = step_component("finish", image="train")(_finish)


@dsl.pipeline(name="docker-exit")
def docker_exit(code: int = 3) -> str:
    return finish(code=code).output


@pytest.mark.parametrize("code", [3, 0])
def test_the_task_status_is_the_steps(docker_images, tmp_path: Path, code: int) -> None:
    result = local.run(docker_exit, {"code": code}, tmp_path / "runs", runner="docker", docker_mounts={})
    log = "".join(result.tasks[0].log)
    assert f"finishing with {code}" in log and "Found image" in log  # it ran in the container
    if code:
        assert result.status == local.FAILED
    else:
        assert result.status == local.SUCCEEDED, result.error
        assert result.outputs["finish"]["parameters"]["Output"] == "done"
