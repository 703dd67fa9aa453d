"""Run a pipeline on this machine through `kfp.local` and report on every task.

`kfp.local` prints each task's whole log; here those logs go to a file per run (and to the
terminal with `verbose`), while the user sees one progress line per task. The run's record
(status, per-task status and seconds, outputs, report files) is returned as a `RunResult`.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from components.step import component_of
from pipelines.local.folders import REPORTS, TMP, new_run_folder, point_latest, write_result
from pipelines.local.hooks import (
    TaskStream,
    named_outputs_in_conditions,
    observe_tasks,
    root_logging,
    run_name_as_the_backend,
    write_task_logs,
)
from pipelines.local.records import FAILED, SUCCEEDED, Progress, RunResult, TaskRecord


def display_names(pipeline_spec: Any) -> dict[str, str]:
    """kfp task name (``ge-validate-2``) -> its display name (``validate tags``), all DAGs."""
    dags = [pipeline_spec.root.dag] + [c.dag for c in pipeline_spec.components.values() if c.HasField("dag")]
    return {
        task_name: task.task_info.name
        for dag in dags
        for task_name, task in dag.tasks.items()
        if task.task_info.name and task.task_info.name != task_name
    }


def report_types(pipeline_spec: Any) -> dict[tuple[str, str], str]:
    """(task name, output artifact) -> file suffix, for every HTML / Markdown output in the spec."""
    suffix = {"system.HTML": ".html", "system.Markdown": ".md"}
    comps = pipeline_spec.components
    out: dict[tuple[str, str], str] = {}
    dags = [pipeline_spec.root.dag] + [c.dag for c in comps.values() if c.HasField("dag")]
    for dag in dags:
        for task_name, task in dag.tasks.items():
            comp = comps.get(task.component_ref.name)
            if comp is None:
                continue
            for art_name, art in comp.output_definitions.artifacts.items():
                if art.artifact_type.schema_title in suffix:
                    out[(task_name, art_name)] = suffix[art.artifact_type.schema_title]
    return out


def _collect(
    run_dir: Path, kinds: dict[tuple[str, str], str], reports_dir: Path, names: dict[str, str]
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Task outputs from each executor_output.json, and the HTML / Markdown reports copied
    to `reports_dir` under stable names (`<task>.<artifact>.html`): artifact path -> copy.

    Reports are found by their place in the run folder, not through executor_output.json,
    which a failed task never writes: a failed validation's Data Docs are listed too.
    """
    outputs: dict[str, dict[str, Any]] = {}
    for eo in sorted(run_dir.rglob("executor_output.json")):
        task = eo.parent.name
        data = json.loads(eo.read_text())
        arts = {
            name: [a.get("metadata", {}) for a in art.get("artifacts", [])]
            for name, art in data.get("artifacts", {}).items()
        }
        # The task's folder is named after its component (``ge-validate-2``): its step.
        step = component_of(task).replace("-", "_")
        outputs[names.get(task, task)] = {
            "step": step,
            "parameters": data.get("parameterValues", {}),
            "artifacts": arts,
        }
    reports: dict[str, str] = {}
    for (task, art), ext in sorted(kinds.items()):
        for i, src in enumerate(
            sorted(p for p in run_dir.rglob(art) if p.parent.name == task and p.is_file())
        ):
            reports_dir.mkdir(parents=True, exist_ok=True)
            label = names.get(task, task).replace(" ", "-") + (f"-{i}" if i else "")
            dst = reports_dir / f"{label}.{art}{ext}"
            shutil.copyfile(src, dst)
            reports[str(src)] = str(dst)
    return outputs, reports


def backend_problems(pipeline_func: Any, arguments: dict[str, Any]) -> list[str]:
    """Where the pipeline, run with `arguments`, breaks the KFP backend's rules
    (:mod:`pipelines.conformance`: typed inputs, references, Kubernetes settings)."""
    from google.protobuf import json_format

    from pipelines import conformance

    platform = json_format.MessageToDict(pipeline_func.platform_spec) if pipeline_func.platform_spec else {}
    return [p.line() for p in conformance.check(pipeline_func.pipeline_spec, platform, arguments=arguments)]


def pipeline_images(pipeline_spec: Any) -> dict[str, list[str]]:
    """The container images a compiled pipeline runs, each with the components that use it."""
    from google.protobuf import json_format

    executors = json_format.MessageToDict(pipeline_spec.deployment_spec).get("executors", {})
    images: dict[str, list[str]] = {}
    for label, executor in sorted(executors.items()):
        image = executor.get("container", {}).get("image")
        component = component_of(label)
        if image and component not in images.get(image, []):
            images.setdefault(image, []).append(component)
    return images


def check_images(client: Any, images: dict[str, list[str]]) -> None:
    """Make sure the engine has every image, pulling those it lacks (as kfp.local would).

    Raises:
        RuntimeError: An image is neither there nor pullable; the message names each such
            image, the components that need it, and how to build them.
    """
    import docker

    missing = []
    for image, users in images.items():
        try:
            client.images.get(image)
            continue
        except docker.errors.ImageNotFound:
            pass
        print(f"pulling {image} (not in the Docker engine) ...", file=sys.stderr, flush=True)
        try:
            client.images.pull(image)
        except docker.errors.APIError as exc:
            reason = str(getattr(exc, "explanation", "") or exc).splitlines()[0][:200]
            missing.append(f"{image} (for {', '.join(users)}; pull: {reason})")
    if missing:
        raise RuntimeError(
            "the Docker engine has no image " + "; ".join(missing) + ". Build the images with "
            "`make images` (or set IMAGE_REGISTRY to the registry that holds them)"
        )


def docker_runner(
    runs_root: Path, mounts: dict[str, bool], images: dict[str, list[str]] | None = None
) -> Any:
    """A DockerRunner whose containers see `mounts` (host path -> read-only?) at the same
    paths as the host, so warehouse / MLflow / source URIs mean the same thing inside.
    Every one of `images` must be in the engine, or pullable (:func:`check_images`).

    Containers run as the invoking user so the files they write stay that user's.
    """
    import docker
    from docker.types import Mount
    from kfp import local

    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:
        raise RuntimeError(f"no Docker engine answers ({exc}); start one or use --local") from None
    try:
        check_images(client, images or {})
    finally:
        client.close()
    binds = [Mount(target=p, source=p, type="bind", read_only=ro) for p, ro in sorted(mounts.items())]
    return local.DockerRunner(mounts=binds, user=f"{os.getuid()}:{os.getgid()}", environment={"HOME": "/tmp"})


def run(
    pipeline_func: Any,
    arguments: dict[str, Any],
    runs_root: Path,
    *,
    runner: str = "subprocess",
    reports_root: Path | None = None,
    docker_mounts: dict[str, bool] | None = None,
    verbose: bool = False,
    progress: Progress | None = None,
    sequential: bool | None = None,
) -> RunResult:
    """Run `pipeline_func` with `arguments` locally; never raises for a failed task.

    Tasks start in Argo's order (:mod:`pipelines.local.scheduler`: each as soon as its own
    upstream tasks succeeded), unless `sequential` (default: ``KFP_MLOPS_SEQUENTIAL``) keeps
    kfp.local's one-at-a-time order.
    """
    from kfp import local

    from pipelines.local import scheduler

    if sequential is None:
        sequential = scheduler.sequential()
    refused = backend_problems(pipeline_func, arguments)
    if refused:
        # What a KFP backend would refuse must not pass here: nothing runs.
        return RunResult(
            pipeline=pipeline_func.pipeline_spec.pipeline_info.name,
            status=FAILED,
            seconds=0.0,
            tasks=[],
            error="the pipeline breaks the KFP backend's rules, so nothing ran: " + "; ".join(refused),
            order="sequential" if sequential else "argo",
        )

    name = pipeline_func.pipeline_spec.pipeline_info.name
    names = display_names(pipeline_func.pipeline_spec)
    starts: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if runner == "docker":
        from pipelines.local import containers

        kfp_runner: Any = docker_runner(
            runs_root, docker_mounts or {}, pipeline_images(pipeline_func.pipeline_spec)
        )
        starts = containers.ended_with_run()  # labelled, stopped on an interrupt, reaped
    else:
        from pipelines.local import warm

        kfp_runner = local.SubprocessRunner(use_venv=False)
        starts = warm.warm_starts()
        if warm.enabled():
            # Now, before TMPDIR points into the run: the server's socket lives in a temp dir.
            warm.start([name])
    run_home = new_run_folder(runs_root, name)  # once the runner is ready (no folder for a refused run)
    local.init(runner=kfp_runner, pipeline_root=str(run_home), raise_on_error=False)

    # kfp.local leaves a temp folder per task: give the run its own and remove it after (a
    # killed run's is removed by the next run: remove_stale_temp).
    tmp = run_home / TMP
    tmp.mkdir()
    old_tmp = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(tmp)
    tempfile.tempdir = None
    log_path = run_home / "run.log"
    records: list[TaskRecord] = []
    t0 = time.perf_counter()
    error = ""
    # kfp.local indents task logs by swapping builtins.print; parallel tasks (ParallelFor)
    # can restore each other's swap and leave it in place: put the original back afterwards.
    original_print = builtins.print
    with open(log_path, "w") as log:
        notes = None if verbose or progress is None else (lambda rec: progress("note", rec))
        stream = TaskStream(log, sys.stdout if verbose else None, note=notes)
        observer = observe_tasks(stream, records, progress or (lambda e, r: None), names)
        order = scheduler.argo_order(enabled=not sequential)
        with (
            observer,
            starts,
            order,
            named_outputs_in_conditions(),
            run_name_as_the_backend(),
            root_logging(stream),
            warnings.catch_warnings(),
        ):
            # kfp.local warns that display names and custom images have no local effect: expected here.
            warnings.filterwarnings("ignore", message=".*no effect in the current local runner.*")
            warnings.filterwarnings("ignore", message=".*custom or non-Python base image.*")
            real_stdout = sys.stdout
            sys.stdout = stream
            try:
                pipeline_func(**arguments)
            except Exception as exc:  # kfp raises for pipeline-level problems (bad arguments)
                error = f"{type(exc).__name__}: {exc}"
            finally:
                sys.stdout = real_stdout
                builtins.print = original_print
                if old_tmp is None:
                    os.environ.pop("TMPDIR", None)
                else:
                    os.environ["TMPDIR"] = old_tmp
                tempfile.tempdir = None
                shutil.rmtree(tmp, ignore_errors=True)
    seconds = time.perf_counter() - t0
    # kfp.local's own folder for the run (<pipeline>-<timestamp>), the one folder it made here.
    made = [p for p in run_home.iterdir() if p.is_dir() and p.name != TMP]
    run_dir = made[0] if len(made) == 1 else None
    kinds = report_types(pipeline_func.pipeline_spec)
    copied = _collect(run_dir, kinds, run_home / REPORTS, names) if run_dir else ({}, {})
    outputs, reports = copied[0], sorted(copied[1].values())
    write_task_logs(run_home / "tasks", records)
    failed = [t for t in records if t.status != SUCCEEDED]
    if failed and not error:
        error = "; ".join(f"task {t.name} failed: {t.error() or 'see ' + str(log_path)}" for t in failed)
    for src, dst in copied[1].items():  # name the report that opens as a page, not the artifact
        error = error.replace(src, dst)
    status = FAILED if error or failed or not records else SUCCEEDED
    if not records and not error:
        error = "no task ran"
    result = RunResult(
        pipeline=name,
        status=status,
        seconds=seconds,
        tasks=records,
        run_dir=str(run_dir or ""),
        log_file=str(log_path),
        outputs=outputs,
        reports=reports,
        error=error,
        order="sequential" if sequential else "argo",
    )
    write_result(run_home, result.to_dict())
    if reports:
        point_latest((reports_root or runs_root.parent / "reports") / name, run_home / REPORTS)
    return result
