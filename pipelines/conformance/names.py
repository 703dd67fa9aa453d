"""Names and references the KFP backend resolves before (or while) a run starts.

What the API server checks when a run is created (``backend/src/apiserver/template/
v2_template.go``), what its Argo compiler needs (``backend/src/v2/compiler/visitor.go``,
``backend/src/v2/compiler/argocompiler/{argo,dag,container}.go``), what Argo's validation of
the compiled Workflow refuses (the API server runs it on every new run:
``backend/src/apiserver/resource/resource_manager.go`` ``CreateRun`` -> Argo v4
``workflow/validate/validate.go``) and what the driver looks up at run time
(``backend/src/v2/driver/``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from pipelines.conformance.spec import V2_TEMPLATE, Pipeline, Site
from pipelines.conformance.values import ACCEPTS, kind_of

VISITOR = "backend/src/v2/compiler/visitor.go"
ARGO_DAG = "backend/src/v2/compiler/argocompiler/dag.go"
ARGO_VALIDATE = "argo-workflows v4 workflow/validate/validate.go"
SCHEMA_VERSION = "2.1.0"
# NewV2SpecTemplate matches the name with regexp.MatchString and no anchors, so the rule it
# enforces is "holds a lowercase letter or a digit somewhere".
PIPELINE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
WORKFLOW_FIELD = re.compile(r"^[a-zA-Z0-9][-a-zA-Z0-9]*$")  # isValidWorkflowFieldName
WORKFLOW_FIELD_MAX = 128
ARGO_PARAMETER = re.compile(r"^[-a-zA-Z0-9_]+$")  # isValidParamOrArtifactName
# Templates the Argo compiler adds itself; a DAG component of that name collides with one
# ("template already exists", argocompiler/common.go addTemplate).
RESERVED_TEMPLATES = {
    "entrypoint",
    "system-dag-driver",
    "system-container-driver",
    "system-container-executor",
    "system-container-impl",
    "retry-system-container-executor",
    "retry-system-container-impl",
    "system-importer",
}
PARAMETER_TYPES = set(ACCEPTS)
CONDITION_INPUT = re.compile(r"""inputs\.parameter_values\[\s*['"]([^'"]+)['"]\s*\]""")
PLACEHOLDER_INPUT = re.compile(r"""\{\{\$\.inputs\.parameters\[['"]([^'"]+)['"]\]\}\}""")


def check_names(pipeline: Pipeline) -> None:
    """Report every name and reference of `pipeline` that the backend would refuse."""
    spec = pipeline.spec
    if spec.get("schemaVersion") != SCHEMA_VERSION:
        message = f"KFP only supports schema version {SCHEMA_VERSION}, got {spec.get('schemaVersion')!r}"
        pipeline.report(None, "schemaVersion", message, f"{V2_TEMPLATE}: NewV2SpecTemplate", dag="pipeline")
    if not PIPELINE_NAME.search(pipeline.name):
        message = f"name {pipeline.name!r} should consist of lower case alphanumeric characters, '-' or '.'"
        pipeline.report(
            None, "pipelineInfo.name", message, f"{V2_TEMPLATE}: NewV2SpecTemplate", dag="pipeline"
        )
    _parameter_definitions(pipeline, "root", spec.get("root", {}), "root")
    _dag_outputs(pipeline, "root", spec.get("root", {}))
    _executors(pipeline)
    seen: set[str] = set()
    for dag_component, site in pipeline.sites():
        _task(pipeline, dag_component, site)
        if site.component is not None and site.ref not in seen:
            seen.add(site.ref)
            _component(pipeline, site)


def _task(pipeline: Pipeline, dag_component: Mapping[str, Any], site: Site) -> None:
    tasks = dag_component.get("dag", {}).get("tasks", {})
    # Argo DAG task names: the task key, and the key + "-driver" (argocompiler/dag.go task).
    if not WORKFLOW_FIELD.match(site.key) or len(site.key) + len("-driver") > WORKFLOW_FIELD_MAX:
        message = (
            f"task key {site.key!r} must consist of alpha-numeric characters or '-', start with one, "
            f"and stay within {WORKFLOW_FIELD_MAX - len('-driver')} characters (Argo adds '-driver')"
        )
        pipeline.report(site, "task key", message, f"{ARGO_VALIDATE}: isValidWorkflowFieldName")
    elif site.key[0].isdigit():
        message = f"task key {site.key!r} cannot begin with a digit: the compiled DAG uses 'depends'"
        pipeline.report(site, "task key", message, f"{ARGO_VALIDATE}: validateDAG")
    if f"{site.key}-driver" in tasks:
        message = f"task keys {site.key!r} and {site.key + '-driver'!r} collide as Argo task names"
        pipeline.report(site, "task key", message, f"{ARGO_VALIDATE}: validateWorkflowFieldNames")
    if not site.display:
        pipeline.report(
            site,
            "taskInfo.name",
            "task spec is required (empty taskInfo.name)",
            "backend/src/v2/driver/driver.go",
        )
    if not site.ref:
        pipeline.report(site, "componentRef", "component ref name is empty", VISITOR)
    elif site.component is None:
        pipeline.report(site, "componentRef", f"cannot find component ref name={site.ref!r}", VISITOR)
    for dep in site.task.get("dependentTasks", []) or []:
        if dep not in tasks:
            pipeline.report(
                site,
                "dependentTasks",
                f"dependency {dep!r} not defined in this DAG",
                f"{ARGO_VALIDATE}: validateDAG",
            )
    if _cycle(tasks, site.key):
        pipeline.report(
            site,
            "dependentTasks",
            "the DAG's dependencies form a cycle through this task",
            f"{ARGO_VALIDATE}: sortDAGTasks",
        )
    _references(pipeline, dag_component, site)
    _condition(pipeline, site)
    if site.component is not None and "executorLabel" in site.component:
        _placeholders(pipeline, site)
    factor = site.task.get("retryPolicy", {}).get("backoffFactor")
    if factor is not None and not float(factor).is_integer():
        message = (
            f"backoffFactor {factor} reaches Argo as {factor!r}, which is no integer: the first retry fails "
            "('cannot be resolved to an int')"
        )
        source = "backend/src/v2/compiler/argocompiler/container.go, argo-workflows v4 util/intstr/parametrizable.go"
        pipeline.report(site, "retryPolicy", message, source)


def _cycle(tasks: Mapping[str, Any], start: str) -> bool:
    """Whether `start` depends on itself through dependentTasks (explicit or via its inputs)."""

    def deps(key: str) -> set[str]:
        task = tasks.get(key, {})
        found = set(task.get("dependentTasks", []) or [])
        for kind, ref in (("parameters", "taskOutputParameter"), ("artifacts", "taskOutputArtifact")):
            for spec in (task.get("inputs", {}).get(kind, {}) or {}).values():
                if ref in spec:
                    found.add(str(spec[ref].get("producerTask", "")))
        return found & set(tasks)

    todo, seen = list(deps(start)), set()
    while todo:
        key = todo.pop()
        if key == start:
            return True
        if key not in seen:
            seen.add(key)
            todo.extend(deps(key))
    return False


def _references(pipeline: Pipeline, dag_component: Mapping[str, Any], site: Site) -> None:
    """Upstream tasks and outputs, parent DAG artifacts (argocompiler/dag.go, resolve.go)."""
    tasks = dag_component.get("dag", {}).get("tasks", {})
    parent = dag_component.get("inputDefinitions", {}).get("artifacts", {}) or {}
    inputs = site.task.get("inputs", {})
    for kind, ref, outputs_of in (
        ("parameters", "taskOutputParameter", "outputParameterKey"),
        ("artifacts", "taskOutputArtifact", "outputArtifactKey"),
    ):
        for name, spec in (inputs.get(kind, {}) or {}).items():
            if ref in spec:
                producer, key = str(spec[ref].get("producerTask", "")), str(spec[ref].get(outputs_of, ""))
                if producer not in tasks:
                    message = f"unknown producer task {producer!r} in DAG"
                    pipeline.report(site, f"input {name}", message, f"{ARGO_DAG}: addImplicitDependencies")
                elif (
                    kind == "artifacts"
                    and key not in _outputs(pipeline, tasks[producer], "artifacts")
                    and (_component_of(pipeline, tasks[producer]) is not None)
                ):
                    message = f"cannot find output artifact key {key!r} in producer task {producer!r}"
                    pipeline.report(site, f"input {name}", message, "backend/src/v2/driver/resolve.go")
            if (
                kind == "artifacts"
                and "componentInputArtifact" in spec
                and spec["componentInputArtifact"] not in parent
            ):
                message = f"parent DAG does not have input artifact {spec['componentInputArtifact']}"
                pipeline.report(site, f"input {name}", message, "backend/src/v2/driver/resolve.go")


def _component_of(pipeline: Pipeline, task: Mapping[str, Any]) -> Mapping[str, Any] | None:
    return pipeline.components.get(str(task.get("componentRef", {}).get("name", "")))


def _outputs(pipeline: Pipeline, task: Mapping[str, Any], kind: str) -> set[str]:
    component = _component_of(pipeline, task) or {}
    if "dag" in component:
        return set(component["dag"].get("outputs", {}).get(kind, {}) or {})
    return set(component.get("outputDefinitions", {}).get(kind, {}) or {})


def _condition(pipeline: Pipeline, site: Site) -> None:
    """Names a trigger condition reads must be inputs of the task (expression.go Condition)."""
    condition = str(site.task.get("triggerPolicy", {}).get("condition", ""))
    given = set(site.task.get("inputs", {}).get("parameters", {}) or {})
    if site.component is not None and "dag" in site.component:
        defs = site.component.get("inputDefinitions", {}).get("parameters", {})
        given |= {name for name, spec in defs.items() if spec.get("isOptional")}
    for name in CONDITION_INPUT.findall(condition):
        if name not in given:
            message = f"the condition reads inputs.parameter_values[{name!r}], which the task does not get"
            pipeline.report(
                site, "triggerPolicy.condition", message, "backend/src/v2/expression/expression.go"
            )


def _component(pipeline: Pipeline, site: Site) -> None:
    component = site.component or {}
    name = site.ref
    if "dag" in component:
        if (
            name in RESERVED_TEMPLATES
            or name == "root"
            or not WORKFLOW_FIELD.match(name)
            or len(name) > WORKFLOW_FIELD_MAX
        ):
            message = (
                f"component {name!r} becomes an Argo template name: it must be a valid, unreserved field name"
            )
            pipeline.report(site, "componentRef", message, f"{ARGO_VALIDATE}: validateWorkflowFieldNames")
        if site.task.get("parameterIterator") and len(f"{name}-{site.key}-iterator") > WORKFLOW_FIELD_MAX:
            message = (
                f"the loop template {name}-{site.key}-iterator is longer than {WORKFLOW_FIELD_MAX} characters"
            )
            pipeline.report(site, "componentRef", message, f"{ARGO_DAG}: iteratorTask")
        _parameter_definitions(pipeline, site.dag, component, name)
        _dag_outputs(pipeline, f"{site.dag}/{site.key}", component)
    elif "executorLabel" not in component:
        pipeline.report(site, "componentRef", f"unknown component implementation: {name}", VISITOR)
    if not ARGO_PARAMETER.match(name):
        message = f"component {name!r} names the Workflow argument kubernetes-{name}, which Argo refuses"
        pipeline.report(site, "componentRef", message, f"{ARGO_VALIDATE}: isValidParamOrArtifactName")


def _parameter_definitions(pipeline: Pipeline, dag: str, component: Mapping[str, Any], name: str) -> None:
    """Declared types, and defaults of that type: the root's and a DAG's defaults become input
    values (argo.go Compile; resolve.go resolveInputs for a DAG driver)."""
    for param, spec in (component.get("inputDefinitions", {}).get("parameters", {}) or {}).items():
        declared = str(spec.get("parameterType", "PARAMETER_TYPE_ENUM_UNSPECIFIED"))
        where = f"{name} input {param}"
        if declared not in PARAMETER_TYPES or (declared == "TASK_FINAL_STATUS" and name == "root"):
            message = f"input parameter {param} has type {declared}, which a pipeline input cannot have"
            pipeline.report(None, where, message, f"{V2_TEMPLATE}: validatePipelineJobInputs", dag=dag)
            continue
        if "defaultValue" not in spec:
            continue
        default = spec["defaultValue"]
        if kind_of(default) != ACCEPTS[declared]:
            message = (
                f"default {json.dumps(default)} is a {kind_of(default)}; the input is declared {declared}"
            )
            pipeline.report(None, where, message, "backend/src/v2/driver/resolve.go", dag=dag)
        elif declared == "NUMBER_INTEGER" and not float(default).is_integer():
            message = f"default {default} of a NUMBER_INTEGER input is a fraction; the driver passes it as is"
            pipeline.report(None, where, message, "backend/src/v2/driver/resolve.go", dag=dag)


def _dag_outputs(pipeline: Pipeline, dag: str, component: Mapping[str, Any]) -> None:
    """dag.outputs must name tasks of the DAG and their outputs (resolve.go GetProducerTask)."""
    body = component.get("dag", {})
    tasks = body.get("tasks", {}) or {}
    outputs = body.get("outputs", {}) or {}
    selectors = []
    for key, spec in (outputs.get("parameters", {}) or {}).items():
        for sel in spec.get("valueFromOneof", {}).get("parameterSelectors") or [
            spec.get("valueFromParameter", {})
        ]:
            selectors.append(
                (key, "parameters", sel.get("producerSubtask", ""), sel.get("outputParameterKey", ""))
            )
    for key, spec in (outputs.get("artifacts", {}) or {}).items():
        for sel in spec.get("artifactSelectors", []) or []:
            selectors.append(
                (key, "artifacts", sel.get("producerSubtask", ""), sel.get("outputArtifactKey", ""))
            )
    for key, kind, subtask, subkey in selectors:
        if subtask not in tasks:
            message = f"output {key} comes from {subtask!r}, which is no task of this DAG"
        elif subkey not in _outputs(pipeline, tasks[subtask], kind):
            message = f"output {key} comes from {subtask}'s {subkey!r}, which that task does not output"
        else:
            continue
        pipeline.report(None, f"dag.outputs {key}", message, "backend/src/v2/driver/resolve.go", dag=dag)


def _executors(pipeline: Pipeline) -> None:
    executors = pipeline.spec.get("deploymentSpec", {}).get("executors", {}) or {}
    for name, component in pipeline.components.items():
        label = component.get("executorLabel")
        if label is None:
            continue
        executor = executors.get(label)
        if executor is None:
            message = f"executor(label={label!r}) not found in deployment config"
            pipeline.report(None, name, message, VISITOR, dag="components")
        elif not ({"container", "importer"} & set(executor)):
            message = f"executor(label={label!r}): non-container and non-importer executor not implemented"
            pipeline.report(None, name, message, VISITOR, dag="components")


def _placeholders(pipeline: Pipeline, site: Site) -> None:
    """``{{$.inputs.parameters['x']}}`` in a container's command or args needs x in the executor
    input; an optional input the task leaves out is not there (driver/util.go resolveContainerArgs)."""
    executors = pipeline.spec.get("deploymentSpec", {}).get("executors", {}) or {}
    label = str((site.component or {}).get("executorLabel", ""))
    container = executors.get(label, {}).get("container", {}) or {}
    given = set(site.task.get("inputs", {}).get("parameters", {}) or {})
    defs = (site.component or {}).get("inputDefinitions", {}).get("parameters", {}) or {}
    for arg in [*(container.get("command") or []), *(container.get("args") or [])]:
        if str(arg).lstrip().startswith('{"IfPresent":'):
            continue  # resolved only when the input is there
        for name in PLACEHOLDER_INPUT.findall(str(arg)):
            if name not in given and not (name in defs and not defs[name].get("isOptional")):
                message = f"the container's command or args use {{{{$.inputs.parameters[{name!r}]}}}}, which this task does not pass"
                pipeline.report(
                    site, f"input {name}", message, "backend/src/v2/driver/util.go: resolveContainerArgs"
                )
