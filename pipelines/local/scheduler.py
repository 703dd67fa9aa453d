"""Argo's task order for ``kfp.local``: a task starts as soon as its own upstream tasks succeeded.

``kfp.local`` runs a DAG's tasks one at a time in a topological order (only the iterations
of a ``ParallelFor`` overlap, two at a time). The KFP backend compiles every DAG to an Argo
DAG template in which each task ``depends`` on ``<upstream>.Succeeded`` for each of its
``dependentTasks`` (``backend/src/v2/compiler/argocompiler/dag.go``, ``depends``), so Argo
starts every task whose own upstreams are done, at once. Steps that are safe one at a time
can break when they overlap (two writers of one DuckDB file, a reader beside a writer): a
local run has to overlap them the same way to show it.

:func:`argo_order` swaps kfp.local's DAG runners for :func:`run_dag`, which follows the
backend's rules:

- a task starts when every task in its ``dependentTasks`` has succeeded; a task whose
  upstream failed, or was skipped by a false ``dsl.If`` condition, never starts (Argo's
  ``.Succeeded`` dependency is not met by Failed, Skipped or Omitted);
- once a task has failed, no new task starts in that DAG and the running ones finish
  (Argo's DAG ``failFast``, which defaults to true and which the KFP compiler does not set);
- a ``ParallelFor`` runs its iterations with the loop's ``parallelism`` (all at once when it
  has none: ``iteratorTask`` in ``argocompiler/dag.go`` sets the Argo template's
  ``parallelism`` only from ``iteratorPolicy.parallelismLimit``);
- exit-handler tasks run after the body, whatever its outcome.

Each task itself is still run by kfp.local's own executor (``execute_task``: caching,
retries, nested DAGs, loop iterations), so outputs, conditions and artifacts resolve as
they do in a sequential local run. ``KFP_MLOPS_SEQUENTIAL=1`` (or ``run --sequential``)
keeps kfp.local's one-at-a-time order.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any

SEQUENTIAL_ENV = "KFP_MLOPS_SEQUENTIAL"
# Threads that run the tasks of one DAG (and the iterations of one loop without a
# parallelism). Argo has no such cap; this only bounds a runaway fan-out on one machine.
MAX_PARALLEL_TASKS = 32

# How long the scheduler waits for a task at a time before it looks at signals again.
WAIT_S = 0.1

SUCCEEDED, FAILED, SKIPPED, NOT_STARTED = "SUCCEEDED", "FAILED", "SKIPPED", "NOT_STARTED"


def sequential(env: dict[str, str] | None = None) -> bool:
    """True when ``KFP_MLOPS_SEQUENTIAL`` asks for kfp.local's one-at-a-time order."""
    value = (os.environ if env is None else env).get(SEQUENTIAL_ENV, "")
    return value.strip().lower() in ("1", "true", "yes", "on")


def _loop_executor() -> Any:
    """kfp.local's loop executor, with the loop's own parallelism instead of its cap of two."""
    from kfp.local.orchestrator import enhanced_dag_orchestrator as kfp_dag

    class LoopExecutor(kfp_dag.ParallelExecutor):
        def __init__(self) -> None:
            super().__init__()
            self.conservative_max = MAX_PARALLEL_TASKS
            self.max_workers = MAX_PARALLEL_TASKS

    return LoopExecutor()


def _kind(task_spec: Any) -> str:
    """exit | condition | loop | task, as kfp.local classifies a DAG's tasks."""
    from kfp.local.orchestrator import enhanced_dag_orchestrator as kfp_dag
    from kfp.pipeline_spec import pipeline_spec_pb2

    strategy = pipeline_spec_pb2.PipelineTaskSpec.TriggerPolicy.TriggerStrategy
    if task_spec.trigger_policy.strategy == strategy.ALL_UPSTREAM_TASKS_COMPLETED and (
        kfp_dag._has_task_final_status_input(task_spec)
    ):
        return "exit"
    if task_spec.trigger_policy.condition:
        return "condition"
    if task_spec.WhichOneof("iterator") and kfp_dag._has_valid_iterator(task_spec):
        return "loop"
    return "task"


def run_dag(
    pipeline_resource_name: str,
    dag_component_spec: Any,
    executors: dict[str, Any],
    components: dict[str, Any],
    dag_arguments: dict[str, Any],
    pipeline_root: str,
    runner: Any,
    unique_pipeline_id: str,
    fail_stack: list[str],
    parent_io_store: Any = None,
) -> tuple[dict[str, Any], Any]:
    """Run one DAG (the pipeline's root or a nested one) in Argo's order.

    Takes and returns what kfp.local's ``run_dag`` / ``run_enhanced_dag`` do: the DAG's
    outputs and its status.
    """
    from kfp.local import io, status
    from kfp.local.orchestrator import enhanced_dag_orchestrator as kfp_dag
    from kfp.local.orchestrator.orchestrator_utils import OrchestratorUtils

    arguments = OrchestratorUtils.join_user_inputs_and_defaults(
        dag_arguments=dag_arguments, dag_inputs_spec=dag_component_spec.input_definitions
    )
    store = io.IOStore(parent=parent_io_store)
    for key, value in arguments.items():
        store.put_parent_input(key, value)

    tasks = dict(dag_component_spec.dag.tasks.items())
    kinds = {name: _kind(spec) for name, spec in tasks.items()}
    body = [name for name in tasks if kinds[name] != "exit"]
    exits = [name for name in tasks if kinds[name] == "exit"]
    upstream = {name: set(tasks[name].dependent_tasks) & set(body) for name in body}
    loop_executor = _loop_executor()
    common = {
        "pipeline_resource_name": pipeline_resource_name,
        "components": components,
        "executors": executors,
        "io_store": store,
        "pipeline_root": pipeline_root,
        "runner": runner,
        "unique_pipeline_id": unique_pipeline_id,
        "fail_stack": fail_stack,
    }

    def execute(name: str) -> str:
        spec = tasks[name]
        if kinds[name] == "condition" and not kfp_dag.ConditionEvaluator.evaluate_condition(
            spec.trigger_policy.condition, store
        ):
            return SKIPPED
        if kinds[name] == "loop":
            failed = kfp_dag._run_parallel_for_task(
                task_name=name, task_spec=spec, parallel_executor=loop_executor, **common
            )
            return FAILED if failed else SUCCEEDED
        outputs, outcome = kfp_dag.execute_task(task_name=name, task_spec=spec, **common)
        if outcome != status.Status.SUCCESS:
            store.put_task_status(name, FAILED)
            fail_stack.append(name)
            return FAILED
        for key, output in outputs.items():
            store.put_task_output(name, key, output)
        store.put_task_status(name, SUCCEEDED)
        return SUCCEEDED

    states = _schedule(body, upstream, execute)
    for name in exits:  # after the body, whatever its outcome (ExitHandler)
        states[name] = execute(name)
    if any(state == FAILED for state in states.values()):
        return {}, status.Status.FAILURE
    outputs = OrchestratorUtils.get_dag_outputs(
        dag_outputs_spec=dag_component_spec.dag.outputs, io_store=store
    )
    return outputs, status.Status.SUCCESS


def _schedule(
    names: list[str],
    upstream: dict[str, set[str]],
    execute: Any,
    states: dict[str, str] | None = None,
    max_parallel: int = MAX_PARALLEL_TASKS,
) -> dict[str, str]:
    """Start each task once all its upstream tasks succeeded; stop starting after a failure.

    Returns every task's state (in `states`, filled as tasks end): SUCCEEDED, FAILED,
    SKIPPED (a false condition) or NOT_STARTED (an upstream did not succeed, or another
    task failed first).
    """
    states = {} if states is None else states
    pending = list(names)  # in the DAG's declaration order, for a stable start order
    running: dict[futures.Future[str], str] = {}
    failed = False
    with futures.ThreadPoolExecutor(max_workers=max(1, min(max_parallel, len(names) or 1))) as pool:
        while pending or running:
            if not failed:
                for name in [n for n in pending if all(states.get(u) == SUCCEEDED for u in upstream[n])]:
                    pending.remove(name)
                    running[pool.submit(execute, name)] = name
            for name in [
                n
                for n in pending
                if any(states.get(u) in (FAILED, SKIPPED, NOT_STARTED) for u in upstream[n])
            ]:
                pending.remove(name)
                states[name] = NOT_STARTED
            if not running:
                for name in pending:  # fail-fast left them waiting
                    states[name] = NOT_STARTED
                break
            # In short waits: a signal the kernel hands to a task thread is only acted on when
            # the main thread runs Python code again (pipelines.local.interrupt), and a wait
            # without a timeout would hold it until a task ends.
            done, _ = futures.wait(running, timeout=WAIT_S, return_when=futures.FIRST_COMPLETED)
            for future in done:
                name = running.pop(future)
                try:
                    states[name] = future.result()
                except Exception:  # kfp.local raised instead of reporting a failure
                    states[name] = FAILED
                    raise
                failed = failed or states[name] == FAILED
    return states


_patch_lock = threading.Lock()


@contextlib.contextmanager
def argo_order(enabled: bool = True) -> Iterator[None]:
    """Run kfp.local pipelines in Argo's order (:func:`run_dag`) while the context is open."""
    if not enabled:
        yield
        return
    from kfp.local.orchestrator import dag_orchestrator, enhanced_dag_orchestrator

    with _patch_lock:
        saved = (dag_orchestrator.run_dag, enhanced_dag_orchestrator.run_enhanced_dag)
        # Nested DAGs go through enhanced_dag_orchestrator.execute_task, which looks
        # run_enhanced_dag up in its module at call time: they are covered too.
        dag_orchestrator.run_dag = run_dag
        enhanced_dag_orchestrator.run_enhanced_dag = run_dag
    try:
        yield
    finally:
        with _patch_lock:
            dag_orchestrator.run_dag, enhanced_dag_orchestrator.run_enhanced_dag = saved
