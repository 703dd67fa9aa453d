"""The value that reaches every task input on the KFP backend, and whether the task takes it.

A simulation of the 2.17 driver, DAG by DAG from the root:

- The root DAG gets the run's parameters, else each parameter's default, else null for an
  optional one (``backend/src/v2/compiler/argocompiler/argo.go`` ``Compile``).
- A task input is a pipeline or DAG input (``componentInputParameter``), a constant
  (``runtimeValue``), or an upstream output (``taskOutputParameter``); an output is what its
  container task declared (the launcher types it: ``backend/src/v2/component/launcher_v2.go``
  ``collectOutputParameters``, ``backend/src/v2/metadata/converter.go`` ``TextToPbValue``; the
  Python executor writes typed values the same way), followed through nested DAGs'
  ``dag.outputs`` (``valueFromParameter``, ``valueFromOneof``) and collected into a list from
  a ParallelFor (``backend/src/v2/driver/resolve.go`` ``resolveUpstreamParameters``).
- Every driver (DAG, loop, iteration, container) then checks the resolved values against the
  input definitions of the task's component and converts what a STRING input receives to
  text (``resolve.go`` ``resolveInputs``: ``handleParamTypeValidationAndConversion``). A nested
  DAG's (``dsl.If`` branch's, pipeline's, loop's) inputs are the values after that step, so a
  ParallelFor item declared STRING by the loop component reaches the loop's tasks as text.
- A loop's items are a list, or a string holding a JSON list (``backend/src/v2/driver/util.go``
  ``getItems``); each iteration gets one item under the loop's item input
  (``resolve.go``, the iteration branch of ``resolveInputs``; ``backend/src/v2/driver/dag.go``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pipelines.conformance.spec import Pipeline, Site, parameters
from pipelines.conformance.values import CONVERT, RESOLVE, UNSET, Value, accept, kind_of

DAG_GO = "backend/src/v2/driver/dag.go"
ITEMS = "backend/src/v2/driver/util.go: getItems"
# The placeholders the driver substitutes in a task's constant input, each only as the whole
# value (resolve.go resolveInputParameter, a switch on the constant); the workspace path is
# the one replaced inside other text.
RUN_PLACEHOLDERS = {
    "{{$.pipeline_job_name}}",
    "{{$.pipeline_job_resource_name}}",
    "{{$.pipeline_job_uuid}}",
    "{{$.pipeline_task_name}}",
    "{{$.pipeline_task_uuid}}",
    "{{$.pipeline_job_create_time_utc}}",
    "{{$.pipeline_job_schedule_time_utc}}",
}
WORKSPACE_PLACEHOLDER = "{{$.workspace_path}}"
Scope = Mapping[str, Value]


class Simulation:
    """Runs the pipeline's DAGs on simulated values; reports every input the backend refuses."""

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline

    def run(self, arguments: Mapping[str, Any] | None = None) -> None:
        root = self.pipeline.spec.get("root", {})
        scope: dict[str, Value] = {}
        for name, spec in parameters(root).items():
            if arguments is not None and name in arguments:
                scope[name] = Value.of(arguments[name], f"run parameter {name}")
            elif "defaultValue" in spec:
                scope[name] = Value.of(spec["defaultValue"], f"the default of pipeline parameter {name}")
            elif spec.get("isOptional"):
                scope[name] = Value("null", f"optional pipeline parameter {name} without a default", None)
            else:  # required: the API server refuses a run without it or of another type
                scope[name] = Value.declared(spec.get("parameterType", ""), f"run parameter {name}")
        self.dag(root, "root", scope, ("root",))

    def dag(self, component: Mapping[str, Any], path: str, scope: Scope, stack: tuple[str, ...]) -> None:
        tasks = component.get("dag", {}).get("tasks", {}) or {}
        for key in sorted(tasks):
            ref = str(tasks[key].get("componentRef", {}).get("name", ""))
            sub = self.pipeline.components.get(ref)
            if sub is None or ref in stack:
                continue  # an unresolved or circular reference: names.py reports it
            site = Site(path, key, tasks[key], sub)
            inputs = self.task_inputs(site, scope, tasks)
            inner, deeper = f"{path}/{key}", (*stack, ref)
            if site.task.get("parameterIterator"):
                for body in self.iterations(site, inputs):
                    self.dag(sub, inner, body, deeper)
                continue
            accepted = self.accept_all(site, inputs, skip="")
            if "dag" in sub:
                self.dag(sub, inner, accepted, deeper)

    # ------------------------------------------------------------------ ParallelFor

    def iterations(self, site: Site, inputs: dict[str, Value]) -> list[dict[str, Value]]:
        """The inputs of the loop body: the loop's DAG driver, then one iteration driver per
        kind of item (dag.go DAG; resolve.go resolveInputs, iteration branch)."""
        iterator = site.task["parameterIterator"]
        item_name = str(iterator.get("itemInput", ""))
        items_spec = iterator.get("items", {})
        loop_inputs = self.accept_all(site, inputs, skip=item_name)
        if "inputParameter" in items_spec:
            items_name = str(items_spec["inputParameter"])
            if items_name not in loop_inputs:
                self.report(site, "loop items", f"cannot find input parameter {items_name}", DAG_GO)
                return []
            items = loop_inputs.pop(items_name)  # an iteration does not get the whole list
        elif "raw" in items_spec:
            try:
                items = Value.of(json.loads(items_spec["raw"]), "the loop's raw items")
            except ValueError as exc:
                self.report(site, "loop items", f"error unmarshall raw string: {exc}", DAG_GO)
                return []
        else:
            self.report(site, "loop items", "cannot find parameter iterator", DAG_GO)
            return []
        spec = parameters(site.component).get(item_name)
        bodies = []
        for item in self.items(site, items):
            if spec is not None:  # the iteration driver checks and converts the item
                converted, error = accept(item, spec, item_name, self.boundary(site, item_name))
                if converted is None:
                    self.mismatch(site, item_name, item, spec, error, "loop item")
                    continue
                item = converted
            bodies.append({**loop_inputs, item_name: item})
        return bodies

    def items(self, site: Site, items: Value) -> list[Value]:
        """One item of each kind the loop's items hold (getItems in util.go)."""
        literal = items.literal
        if items.kind not in ("list", "string", "any"):
            self.report(site, "loop items", f"{items.describe()} cannot be iterated", ITEMS)
            return []
        if items.kind == "string" and literal is not UNSET:
            try:
                literal = json.loads(literal)
            except ValueError as exc:
                self.report(site, "loop items", f"{items.describe()} is no JSON list: {exc}", ITEMS)
                return []
            if not isinstance(literal, list):
                self.report(site, "loop items", f"{items.describe()} is no list: no iteration runs", ITEMS)
                return []
        if literal is UNSET:
            return [Value("any", f"an item of {items.describe()}")]
        distinct: dict[tuple[str, bool], Value] = {}
        for index, item in enumerate(literal):
            key = (kind_of(item), isinstance(item, float) and not item.is_integer())
            distinct.setdefault(key, Value.of(item, f"item {index} of {items.what()}, {items.origin}"))
        return list(distinct.values())

    # ------------------------------------------------------------------ one task

    def task_inputs(self, site: Site, scope: Scope, tasks: Mapping[str, Any]) -> dict[str, Value]:
        """The resolved, not yet checked, parameters of `site`'s task (resolveInputs)."""
        defs = parameters(site.component)
        given = site.task.get("inputs", {}).get("parameters", {}) or {}
        out: dict[str, Value] = {}
        if "dag" in (site.component or {}) and not site.task.get("parameterIterator"):
            # A DAG driver passes the defaults of optional inputs the task leaves out, else null.
            for name, spec in defs.items():
                if name in given or not spec.get("isOptional"):
                    continue
                if "defaultValue" in spec:
                    out[name] = Value.of(spec["defaultValue"], f"the default of {name} in {site.ref}")
                else:
                    out[name] = Value("null", f"no value for {name}", None, nil_by_driver=True)
        for name, spec in given.items():
            if defs.get(name, {}).get("parameterType") == "TASK_CONFIG":
                continue  # filled in from the pod spec later
            value = self.resolve(site, name, spec, scope, tasks)
            if value is not None and value.kind == "null" and "componentInputParameter" in spec:
                if defs.get(name, {}).get("isOptional"):
                    continue  # left out: the component's own default applies
                message = f"the resolved input parameter is null: {value.origin}"  # ErrResolvedParameterNull
                self.report(site, f"input {name}", message, RESOLVE)
                value = None
            if value is None:  # reported: the driver stops here, so nothing more is said of it
                out[name] = Value("any", "an input that does not resolve")
                continue
            if spec.get("parameterExpressionSelector"):
                value = Value("any", f"{value.describe()}, selected by an expression")
            out[name] = value
        return out

    def resolve(
        self, site: Site, name: str, spec: Mapping[str, Any], scope: Scope, tasks: Any
    ) -> Value | None:
        """resolveInputParameter (resolve.go) for input `name` of `site`'s task."""
        if "componentInputParameter" in spec:
            ref = str(spec["componentInputParameter"])
            if ref not in scope:
                self.report(site, f"input {name}", f"parent DAG does not have input parameter {ref}", RESOLVE)
            return scope.get(ref)
        if "taskOutputParameter" in spec:
            output = spec["taskOutputParameter"]
            producer, key = str(output.get("producerTask", "")), str(output.get("outputParameterKey", ""))
            if producer not in tasks:
                return None  # names.py reports it (the Argo compiler refuses the pipeline)
            return self.output(site, name, tasks, producer, key, 0)
        if "runtimeValue" in spec:
            constant = spec["runtimeValue"].get("constant")
            if isinstance(constant, str) and constant in RUN_PLACEHOLDERS:
                return Value("string", f"the placeholder {constant}")  # run id, names, times
            if isinstance(constant, str) and "{{$." in constant.replace(WORKSPACE_PLACEHOLDER, ""):
                message = (
                    f"the constant {constant!r} holds a placeholder inside other text: the driver "
                    "substitutes a run placeholder only when it is the whole value, so the task would get "
                    "this text as it is"
                )
                self.report(site, f"input {name}", message, f"{RESOLVE}: resolveInputParameter")
            return Value.of(constant, "a constant")
        if "taskFinalStatus" in spec:
            return Value("struct", "the final status of the upstream task")
        self.report(site, f"input {name}", f"parameter spec of kind {sorted(spec)} not implemented", RESOLVE)
        return None

    def output(self, site: Site, name: str, tasks: Any, producer: str, key: str, depth: int) -> Value | None:
        """Output `key` of task `producer` of a DAG, followed down to the container task that
        writes it (resolveUpstreamParameters, GetProducerTask, CollectInputs in resolve.go)."""
        task = tasks[producer]
        component = self.pipeline.components.get(str(task.get("componentRef", {}).get("name", "")))
        if component is None or depth > 20:
            return None
        if "dag" not in component:
            declared = component.get("outputDefinitions", {}).get("parameters", {}).get(key)
            if declared is None:
                message = f"producer task {producer} has no output parameter {key!r}"
                self.report(site, f"input {name}", message, RESOLVE)
                return None
            kind = str(declared.get("parameterType", ""))
            return Value.declared(kind, f"output {key} of task {producer}, {kind}")
        spec = component["dag"].get("outputs", {}).get("parameters", {}).get(key)
        if spec is None:
            self.report(
                site, f"input {name}", f"DAG task {producer} has no output parameter {key!r}", RESOLVE
            )
            return None
        if task.get("parameterIterator"):
            return Value("list", f"output {key} of every iteration of {producer}, collected")
        inner = component["dag"].get("tasks", {}) or {}
        oneof = spec.get("valueFromOneof", {}).get("parameterSelectors")
        options = []
        for selector in oneof or [spec.get("valueFromParameter", {})]:
            subtask = str(selector.get("producerSubtask", ""))
            if subtask not in inner:
                return None  # names.py reports it
            option = self.output(
                site, name, inner, subtask, str(selector.get("outputParameterKey", "")), depth + 1
            )
            if option is None:
                return None
            options.append(option)
        if len(options) == 1:
            return options[0]
        return Value("oneof", f"output {key} of {producer}", options=tuple(options))

    def accept_all(self, site: Site, inputs: Mapping[str, Value], skip: str) -> dict[str, Value]:
        """handleParamTypeValidationAndConversion over the component's input definitions."""
        defs = parameters(site.component)
        out = {name: value for name, value in inputs.items() if name not in defs}  # passed on as they are
        for name, spec in defs.items():
            if name == skip:
                continue
            if name not in inputs:
                if spec.get("isOptional"):
                    continue  # the component's own default applies
                if "defaultValue" not in spec:
                    message = f"neither value nor default value provided for non-optional parameter {name!r}"
                    self.report(site, f"input {name}", message, CONVERT)
                elif spec.get("parameterType") != "STRING":  # the driver passes no default
                    message = "no value: a non-optional input's default is not passed, the driver fails"
                    self.report(site, f"input {name}", message, CONVERT)
                continue
            value, error = accept(inputs[name], spec, name, self.boundary(site, name))
            if value is None:
                self.mismatch(site, name, inputs[name], spec, error)
                continue
            fraction = isinstance(value.literal, float) and not value.literal.is_integer()
            if spec.get("parameterType") == "NUMBER_INTEGER" and fraction:
                message = f"{value.describe()} reaches a NUMBER_INTEGER input; the driver passes any number"
                self.report(site, f"input {name}", message, CONVERT)
            out[name] = value
        return out

    # ------------------------------------------------------------------ reporting

    def boundary(self, site: Site, name: str) -> str:
        declared = parameters(site.component).get(name, {}).get("parameterType", "?")
        return f"the {declared} input {name} of {site.ref}"

    def mismatch(
        self, site: Site, name: str, value: Value, spec: Mapping[str, Any], error: str, what: str = "input"
    ) -> None:
        declared = spec.get("parameterType", "PARAMETER_TYPE_ENUM_UNSPECIFIED")
        rule = "null input" if value.kind == "null" else "type mismatch"
        message = (
            f"{rule}: {value.describe()} reaches it, {site.ref} declares {declared} (the driver: {error})"
        )
        self.report(site, f"{what} {name}", message, CONVERT)

    def report(self, site: Site, field_name: str, message: str, source: str) -> None:
        self.pipeline.report(site, field_name, message, source)
