"""``pipelines.conformance`` and ``python -m pipelines check``: compiled pipelines by the KFP
2.17 backend's rules.

The project's pipelines, compiled for the cluster, must conform. A small pipeline of trivial
components (a typed ParallelFor, an artifact, a nested pipeline inside ``dsl.If`` / ``Else``
with a ``dsl.OneOf`` output, Kubernetes wiring, a retry policy) conforms as compiled; each
case below then breaks one rule in its compiled spec and the check must name it.
"""

# No `from __future__ import annotations`: kfp reads the component signatures at runtime.

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kfp import compiler, dsl, kubernetes
from kfp.dsl import Dataset, Input, Output

from pipelines import conformance
from pipelines.__main__ import main as pipelines_main


@dsl.component(base_image="python:3.11-slim")
def count(n: int) -> int:
    return n


@dsl.component(base_image="python:3.11-slim")
def say(text: str, times: int = 1) -> str:
    return text * times


@dsl.component(base_image="python:3.11-slim")
def make(out: Output[Dataset]) -> None:
    open(out.path, "w").close()


@dsl.component(base_image="python:3.11-slim")
def use(data: Input[Dataset], flag: bool) -> bool:
    return flag


@dsl.pipeline(name="inner")
def inner(text: str) -> str:
    return say(text=text).output


@dsl.pipeline(name="base")
def base(workers: list[int] = [0, 1], text: str = "go", flag: bool = True) -> str:  # noqa: B006
    with dsl.ParallelFor(workers) as worker:
        count(n=worker)
    made = make()
    use(data=made.outputs["out"], flag=flag)
    said = say(text=text)
    kubernetes.use_secret_as_env(said, "creds", {"TOKEN": "API_TOKEN"}, optional=True)
    kubernetes.use_secret_as_volume(said, "creds", "/var/secrets/creds", optional=True)
    kubernetes.mount_pvc(said, "stores", "/mnt/stores")
    kubernetes.set_timeout(said, 600)
    said.set_retry(num_retries=2, backoff_duration="10s", backoff_factor=2.0)
    with dsl.If(said.output == "go", name="go"):
        nested = inner(text=said.output)
        count(n=3)
    with dsl.Else(name="stop"):
        other = say(text="stop")
    return dsl.OneOf(nested.output, other.output)


@dsl.pipeline(name="untyped")
def untyped(workers: list = [0, 1]) -> None:  # noqa: B006
    with dsl.ParallelFor(workers) as worker:
        count(n=worker).set_display_name("count worker")


def _compile(pipeline: Any, path: Path) -> Path:
    compiler.Compiler().compile(pipeline, str(path))
    return path


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The project's pipelines as `python -m pipelines compile` writes them for the cluster."""
    from pipelines.compile import compile_all

    return {path.stem: path for path in compile_all(tmp_path_factory.mktemp("cluster"))}


@pytest.fixture(scope="module")
def base_docs(tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    path = _compile(base, tmp_path_factory.mktemp("base") / "base.yaml")
    return list(yaml.safe_load_all(path.read_text()))


def _lines(problems: list[conformance.Problem]) -> str:
    return "\n".join(p.line() for p in problems)


# --------------------------------------------------------------------------- the project


@pytest.mark.parametrize("name", ["dataops", "mlops", "continual"])
def test_the_projects_pipelines_compiled_for_the_cluster_conform(
    compiled: dict[str, Path], name: str
) -> None:
    problems = conformance.check(compiled[name])
    assert problems == [], _lines(problems)


@pytest.mark.parametrize("name", ["mlops", "continual"])
def test_the_optimize_loop_item_compiles_as_an_integer(compiled: dict[str, Path], name: str) -> None:
    spec = next(yaml.safe_load_all(compiled[name].read_text()))
    loop = spec["components"]["comp-for-loop-1"]["inputDefinitions"]["parameters"]
    assert loop["pipelinechannel--workers-loop-item"]["parameterType"] == "NUMBER_INTEGER"
    assert spec["root"]["inputDefinitions"]["parameters"]["workers"]["parameterType"] == "LIST"


def test_an_untyped_list_loop_item_feeding_an_int_input_fails_naming_task_and_input(tmp_path: Path) -> None:
    [problem] = conformance.check(_compile(untyped, tmp_path / "untyped.yaml"))
    assert (problem.pipeline, problem.dag, problem.task, problem.display) == (
        "untyped",
        "root/for-loop-1",
        "count",
        "count worker",
    )
    assert problem.field == "input n"
    assert problem.message.startswith('type mismatch: string "0"')
    assert "converted to text by the STRING input pipelinechannel--workers-loop-item of comp-for-loop-1" in (
        problem.message
    )
    assert (
        'comp-count declares NUMBER_INTEGER (the driver: input parameter "n" type mismatch' in problem.message
    )
    assert problem.source == "backend/src/v2/driver/resolve.go: handleParamTypeValidationAndConversion"
    assert problem.line().startswith(
        'untyped: root/for-loop-1: task count ("count worker"), input n: type mismatch'
    )


def test_the_small_pipeline_conforms_as_compiled(base_docs: list[Any]) -> None:
    problems = conformance.check(base_docs[0], kubernetes=base_docs[1])
    assert problems == [], _lines(problems)
    assert base_docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-say"]


def test_a_pipeline_spec_message_and_its_platform_spec_are_read_like_the_file(base_docs: list[Any]) -> None:
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    message = json_format.ParseDict(base_docs[0], pipeline_spec_pb2.PipelineSpec())
    platform = copy.deepcopy(base_docs[1])
    platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-say"][
        "activeDeadlineSeconds"
    ] = "0"
    [problem] = conformance.check(message, kubernetes=platform)
    assert problem.field == "exec-say activeDeadlineSeconds" and "sets no deadline" in problem.message


# --------------------------------------------------------------------------- one broken rule per case

Docs = tuple[dict[str, Any], dict[str, Any]]  # the pipeline spec, platforms.kubernetes


def _tasks(spec: dict[str, Any], dag: str = "root") -> dict[str, Any]:
    body = spec["root"] if dag == "root" else spec["components"][dag]
    return body["dag"]["tasks"]


def _params(spec: dict[str, Any], component: str) -> dict[str, Any]:
    body = spec["root"] if component == "root" else spec["components"][component]
    return body["inputDefinitions"]["parameters"]


def _k8s(docs: Docs, label: str = "exec-say") -> dict[str, Any]:
    return docs[1]["deploymentSpec"]["executors"][label]


def _set(target: dict[str, Any], key: str, value: Any) -> None:
    target[key] = value


def _flag(docs: Docs, spec: dict[str, Any]) -> None:
    """Task `use` gets its BOOLEAN input `flag` from `spec`."""
    _tasks(docs[0])["use"]["inputs"]["parameters"]["flag"] = spec


def _pvc_name(docs: Docs, name: str) -> None:
    _k8s(docs)["pvcMount"][0]["pvcNameParameter"]["runtimeValue"]["constant"] = name


def _rename_task(spec: dict[str, Any], old: str, new: str) -> None:
    tasks = _tasks(spec)
    tasks[new] = tasks.pop(old)
    for task in tasks.values():
        task["dependentTasks"] = [new if d == old else d for d in task.get("dependentTasks", [])]
        for kind in ("parameters", "artifacts"):
            for spec_in in task.get("inputs", {}).get(kind, {}).values():
                for ref in ("taskOutputParameter", "taskOutputArtifact"):
                    if spec_in.get(ref, {}).get("producerTask") == old:
                        spec_in[ref]["producerTask"] = new


def _rename_component(spec: dict[str, Any], old: str, new: str) -> None:
    spec["components"][new] = spec["components"].pop(old)
    for body in [spec["root"], *spec["components"].values()]:
        for task in body.get("dag", {}).get("tasks", {}).values():
            if task["componentRef"]["name"] == old:
                task["componentRef"]["name"] = new


def _consume(spec: dict[str, Any], producer: str, key: str) -> None:
    """A root task `count-3` whose int input is output `key` of root task `producer`."""
    ref = {"taskOutputParameter": {"producerTask": producer, "outputParameterKey": key}}
    _tasks(spec)["count-3"] = {
        "componentRef": {"name": "comp-count"},
        "inputs": {"parameters": {"n": ref}},
        "taskInfo": {"name": "count-3"},
    }


def _collect_loop(spec: dict[str, Any]) -> None:
    loop = spec["components"]["comp-for-loop-1"]
    output = {"valueFromParameter": {"producerSubtask": "count", "outputParameterKey": "Output"}}
    loop["dag"]["outputs"] = {"parameters": {"pipelinechannel--count-Output": output}}
    _consume(spec, "for-loop-1", "pipelinechannel--count-Output")


def _loop_items(docs: Docs, kind: str, default: Any) -> None:
    spec = docs[0]
    _params(spec, "root")["workers"] = {"parameterType": kind, "defaultValue": default, "isOptional": True}
    _params(spec, "comp-for-loop-1")["pipelinechannel--workers"]["parameterType"] = kind


def _loop(spec: dict[str, Any]) -> dict[str, Any]:
    return _tasks(spec)["for-loop-1"]["parameterIterator"]


def _optional_without_default(spec: dict[str, Any], name: str) -> None:
    _params(spec, "root")[name] = {"parameterType": "STRING", "isOptional": True}


def _required(spec: dict[str, Any], name: str) -> None:
    _params(spec, "root")[name] = {"parameterType": _params(spec, "root")[name]["parameterType"]}


def _artifact_input(spec: dict[str, Any], value: dict[str, Any]) -> None:
    _tasks(spec)["use"]["inputs"]["artifacts"]["data"] = value


def _placeholder(spec: dict[str, Any]) -> None:
    spec["deploymentSpec"]["executors"]["exec-say"]["container"]["args"].append(
        "--times={{$.inputs.parameters['times']}}"
    )


CASES: list[tuple[str, Callable[[Docs], None], str]] = [
    # the value that reaches a task input (simulate.py)
    (
        "upstream output of another type",
        lambda d: _flag(d, {"taskOutputParameter": {"producerTask": "say", "outputParameterKey": "Output"}}),
        'a string (output Output of task say, STRING) reaches it, comp-use declares BOOLEAN (the driver: input parameter "flag" type mismatch',
    ),
    (
        "string constant for a bool",
        lambda d: _flag(d, {"runtimeValue": {"constant": "yes"}}),
        'string "yes" (a constant) reaches it, comp-use declares BOOLEAN',
    ),
    (
        "pipeline default of another type",
        lambda d: _set(_params(d[0], "root")["flag"], "defaultValue", "true"),
        'task use ("use"), input flag: type mismatch: string "true" (the default of pipeline parameter flag)',
    ),
    (
        "oneof output of a nested pipeline into an int",
        lambda d: _consume(d[0], "condition-branches-2", "pipelinechannel--condition-branches-2-oneof-1"),
        "a string (output Output of task say, STRING) or a string (output Output of task say-2, STRING) reaches it",
    ),
    (
        "collected loop outputs into an int",
        lambda d: _collect_loop(d[0]),
        "a list (output pipelinechannel--count-Output of every iteration of for-loop-1, collected) reaches it",
    ),
    (
        "raw loop items of another type",
        lambda d: _set(_loop(d[0]), "items", {"raw": '["a", "b"]'}),
        'loop item pipelinechannel--workers-loop-item: type mismatch: string "a" (item 0 of list ["a", "b"]',
    ),
    (
        "a null constant for a bool",
        lambda d: _flag(d, {"runtimeValue": {"constant": None}}),
        'null input: null (a constant) reaches it, comp-use declares BOOLEAN (the driver: got null for input parameter "flag")',
    ),
    (
        "a run placeholder for an int",
        lambda d: _set(
            _tasks(d[0], "comp-condition-3")["count-2"]["inputs"]["parameters"]["n"]["runtimeValue"],
            "constant",
            "{{$.pipeline_job_uuid}}",
        ),
        "a string (the placeholder {{$.pipeline_job_uuid}}) reaches it, comp-count-2 declares NUMBER_INTEGER",
    ),
    (
        "the DAG driver's null for an optional input without default",
        lambda d: (
            _set(_params(d[0], "comp-inner"), "text", {"parameterType": "STRING", "isOptional": True}),
            _tasks(d[0], "comp-condition-3")["inner"].pop("inputs"),
        ),
        'task say ("say"), input text: the resolved input parameter is null: no value for text',
    ),
    (
        "an input the parent DAG lacks",
        lambda d: _set(
            _tasks(d[0], "comp-inner")["say"]["inputs"]["parameters"]["text"],
            "componentInputParameter",
            "txt",
        ),
        "parent DAG does not have input parameter txt",
    ),
    (
        "an output the producer lacks",
        lambda d: _flag(d, {"taskOutputParameter": {"producerTask": "say", "outputParameterKey": "Nope"}}),
        "producer task say has no output parameter 'Nope'",
    ),
    (
        "an output the producer DAG lacks",
        lambda d: _consume(d[0], "condition-branches-2", "nope"),
        "DAG task condition-branches-2 has no output parameter 'nope'",
    ),
    (
        "null for a required input",
        lambda d: _optional_without_default(d[0], "text"),
        "input text: the resolved input parameter is null: optional pipeline parameter text without a default",
    ),
    (
        "a required input left out",
        lambda d: _tasks(d[0])["say"]["inputs"]["parameters"].pop("text"),
        "neither value nor default value provided for non-optional parameter 'text'",
    ),
    (
        "a non-optional input with a default left out",
        lambda d: (
            _set(_params(d[0], "comp-count-2")["n"], "defaultValue", 1.0),
            _tasks(d[0], "comp-condition-3")["count-2"].pop("inputs"),
        ),
        "no value: a non-optional input's default is not passed, the driver fails",
    ),
    (
        "loop items that are a number",
        lambda d: _loop_items(d, "NUMBER_INTEGER", 3),
        "number 3 (the default of pipeline parameter workers) cannot be iterated",
    ),
    (
        "loop items that are text but not JSON",
        lambda d: _loop_items(d, "STRING", "0,1"),
        'string "0,1" (the default of pipeline parameter workers) is no JSON list',
    ),
    (
        "loop items that are JSON but no list",
        lambda d: _loop_items(d, "STRING", '{"a": 1}'),
        "is no list: no iteration runs",
    ),
    (
        "raw loop items that are no JSON",
        lambda d: _set(_loop(d[0]), "items", {"raw": "[0, 1"}),
        "error unmarshall raw string",
    ),
    ("a loop without items", lambda d: _set(_loop(d[0]), "items", {}), "cannot find parameter iterator"),
    (
        "loop items from an input the loop does not get",
        lambda d: _set(_loop(d[0])["items"], "inputParameter", "pipelinechannel--nope"),
        "cannot find input parameter pipelinechannel--nope",
    ),
    (
        "a fraction for an integer",
        lambda d: _set(
            _tasks(d[0], "comp-condition-3")["count-2"]["inputs"]["parameters"]["n"]["runtimeValue"],
            "constant",
            2.5,
        ),
        "number 2.5 (a constant) reaches a NUMBER_INTEGER input; the driver passes any number",
    ),
    (
        "an input spec of no known kind",
        lambda d: _flag(d, {}),
        "not implemented",
    ),
    # names and references (names.py)
    (
        "another schema version",
        lambda d: _set(d[0], "schemaVersion", "2.0.0"),
        "KFP only supports schema version 2.1.0",
    ),
    (
        "a pipeline name without a lowercase letter",
        lambda d: _set(d[0]["pipelineInfo"], "name", "BASE_"),
        "should consist of lower case",
    ),
    (
        "a task key Argo refuses",
        lambda d: _rename_task(d[0], "make", "make_it"),
        "task key 'make_it' must consist of alpha-numeric",
    ),
    (
        "a task key starting with a digit",
        lambda d: _rename_task(d[0], "make", "1make"),
        "cannot begin with a digit",
    ),
    ("a task key too long", lambda d: _rename_task(d[0], "make", "m" * 122), "stay within 121 characters"),
    (
        "task keys that collide with the driver's",
        lambda d: _set(_tasks(d[0]), "make-driver", copy.deepcopy(_tasks(d[0])["make"])),
        "task keys 'make' and 'make-driver' collide as Argo task names",
    ),
    (
        "an empty display name",
        lambda d: _set(_tasks(d[0])["make"]["taskInfo"], "name", ""),
        "task spec is required",
    ),
    (
        "an empty component ref",
        lambda d: _set(_tasks(d[0])["make"]["componentRef"], "name", ""),
        "component ref name is empty",
    ),
    (
        "a missing component",
        lambda d: _set(_tasks(d[0])["make"]["componentRef"], "name", "comp-nope"),
        "cannot find component ref name='comp-nope'",
    ),
    (
        "an unknown dependency",
        lambda d: _set(_tasks(d[0])["make"], "dependentTasks", ["ghost"]),
        "dependency 'ghost' not defined",
    ),
    (
        "a dependency cycle",
        lambda d: _set(_tasks(d[0])["make"], "dependentTasks", ["use"]),
        "form a cycle through this task",
    ),
    (
        "an unknown producer task",
        lambda d: _artifact_input(
            d[0], {"taskOutputArtifact": {"producerTask": "ghost", "outputArtifactKey": "out"}}
        ),
        "unknown producer task 'ghost' in DAG",
    ),
    (
        "an artifact the producer lacks",
        lambda d: _artifact_input(
            d[0], {"taskOutputArtifact": {"producerTask": "make", "outputArtifactKey": "nope"}}
        ),
        "cannot find output artifact key 'nope' in producer task 'make'",
    ),
    (
        "an artifact the parent DAG lacks",
        lambda d: _artifact_input(d[0], {"componentInputArtifact": "dataset"}),
        "parent DAG does not have input artifact dataset",
    ),
    (
        "a condition on an input the task does not get",
        lambda d: _set(
            _tasks(d[0], "comp-condition-branches-2")["condition-3"]["triggerPolicy"],
            "condition",
            "inputs.parameter_values['pipelinechannel--nope'] == 'go'",
        ),
        "the condition reads inputs.parameter_values['pipelinechannel--nope'], which the task does not get",
    ),
    (
        "a backoff factor that is no integer",
        lambda d: _set(_tasks(d[0])["say"]["retryPolicy"], "backoffFactor", 1.5),
        "cannot be resolved to an int",
    ),
    (
        "a retry window shorter than the attempts it has to hold",
        lambda d: _set(_tasks(d[0])["say"]["retryPolicy"], "backoffMaxDuration", "600s"),
        "backoffMaxDuration 600s is shorter than 3 attempts of activeDeadlineSeconds 600",
    ),
    (
        "a DAG component named like a template of the compiler",
        lambda d: _rename_component(d[0], "comp-inner", "entrypoint"),
        "component 'entrypoint' becomes an Argo template name",
    ),
    (
        "a loop component name too long for its template",
        lambda d: _rename_component(d[0], "comp-for-loop-1", "c" * 110),
        "-for-loop-1-iterator is longer than 128 characters",
    ),
    (
        "a component without implementation",
        lambda d: d[0]["components"]["comp-make"].pop("executorLabel"),
        "unknown component implementation",
    ),
    (
        "a component name Argo refuses as a parameter",
        lambda d: _rename_component(d[0], "comp-make", "comp.make"),
        "names the Workflow argument kubernetes-comp.make",
    ),
    (
        "a pipeline parameter without a type",
        lambda d: _set(_params(d[0], "root")["text"], "parameterType", "PARAMETER_TYPE_ENUM_UNSPECIFIED"),
        "input parameter text has type PARAMETER_TYPE_ENUM_UNSPECIFIED, which a pipeline input cannot have",
    ),
    (
        "a pipeline parameter of the task status type",
        lambda d: _set(_params(d[0], "root")["text"], "parameterType", "TASK_FINAL_STATUS"),
        "input parameter text has type TASK_FINAL_STATUS",
    ),
    (
        "a default of another type",
        lambda d: _set(_params(d[0], "root")["text"], "defaultValue", 5),
        "default 5 is a number; the input is declared STRING",
    ),
    (
        "a fractional default of an integer DAG input",
        lambda d: _set(
            _params(d[0], "comp-inner"),
            "times",
            {"parameterType": "NUMBER_INTEGER", "defaultValue": 1.5, "isOptional": True},
        ),
        "default 1.5 of a NUMBER_INTEGER input is a fraction",
    ),
    (
        "a DAG output from no task",
        lambda d: _set(
            d[0]["components"]["comp-inner"]["dag"]["outputs"]["parameters"]["Output"]["valueFromParameter"],
            "producerSubtask",
            "ghost",
        ),
        "output Output comes from 'ghost', which is no task of this DAG",
    ),
    (
        "a DAG output its task does not have",
        lambda d: _set(
            d[0]["components"]["comp-inner"]["dag"]["outputs"]["parameters"]["Output"]["valueFromParameter"],
            "outputParameterKey",
            "nope",
        ),
        "output Output comes from say's 'nope', which that task does not output",
    ),
    (
        "an executor label without executor",
        lambda d: _set(d[0]["components"]["comp-make"], "executorLabel", "exec-ghost"),
        "executor(label='exec-ghost') not found in deployment config",
    ),
    (
        "an executor that is no container",
        lambda d: _set(d[0]["deploymentSpec"]["executors"], "exec-make", {"resolver": {}}),
        "non-container and non-importer executor not implemented",
    ),
    (
        "a placeholder of an input the task leaves out",
        lambda d: _placeholder(d[0]),
        "{{$.inputs.parameters['times']}}, which this task does not pass",
    ),
    # platforms.kubernetes (k8s.py)
    (
        "settings for no executor",
        lambda d: _set(
            d[1]["deploymentSpec"]["executors"],
            "exec-ghost",
            d[1]["deploymentSpec"]["executors"].pop("exec-say"),
        ),
        "matches no executor: the backend looks settings up by executor label",
    ),
    (
        "settings the driver cannot read",
        lambda d: _set(_k8s(d), "secretAsEnvv", []),
        "failed to unmarshal Kubernetes config",
    ),
    (
        "a Secret volume name that is no DNS label",
        lambda d: _set(
            _k8s(d)["secretAsVolume"][0]["secretNameParameter"]["runtimeValue"], "constant", "Creds_1"
        ),
        "Secret Creds_1 becomes a volume of that name, and a volume name must be a DNS-1123 label",
    ),
    (
        "a Secret name that is no DNS subdomain",
        lambda d: _set(_k8s(d)["secretAsEnv"][0]["secretNameParameter"]["runtimeValue"], "constant", "Creds"),
        "Secret name 'Creds' is not a DNS-1123 subdomain",
    ),
    (
        "a Secret key Kubernetes refuses",
        lambda d: _set(_k8s(d)["secretAsEnv"][0]["keyToEnv"][0], "secretKey", "a/b"),
        "Secret key 'a/b' is not a valid key",
    ),
    (
        "an env var name Kubernetes refuses",
        lambda d: _set(_k8s(d)["secretAsEnv"][0]["keyToEnv"][0], "envVar", "1TOKEN"),
        "env var name '1TOKEN' is not a valid",
    ),
    (
        "a PVC name with dots",
        lambda d: _pvc_name(d, "stores.v1"),
        "PVC stores.v1 becomes a volume of that name",
    ),
    (
        "a PVC without name",
        lambda d: _pvc_name(d, ""),
        "no name: pvcNameParameter or constant",
    ),
    (
        "a relative mount path",
        lambda d: _set(_k8s(d)["pvcMount"][0], "mountPath", "mnt/stores"),
        "mount path 'mnt/stores' must be an absolute path",
    ),
    (
        "a mount on the launcher's path",
        lambda d: _set(_k8s(d)["pvcMount"][0], "mountPath", "/gcs"),
        "mount path /gcs is where the launcher mounts its own volume",
    ),
    (
        "a volume named like the launcher's",
        lambda d: _pvc_name(d, "kfp-launcher"),
        "volume 'kfp-launcher' is also the launcher's own volume",
    ),
    (
        "a PVC and a Secret of one name",
        lambda d: _pvc_name(d, "creds"),
        "PVC creds and Secret creds both become volume 'creds'",
    ),
    (
        "two mounts on one path",
        lambda d: _set(_k8s(d)["secretAsVolume"][0], "mountPath", "/mnt/stores"),
        "mount path /mnt/stores is taken by volume",
    ),
    (
        "no deadline",
        lambda d: _set(_k8s(d), "activeDeadlineSeconds", "-5"),
        "-5 sets no deadline: the driver ignores values below 1",
    ),
    (
        "a deadline too long",
        lambda d: _set(_k8s(d), "activeDeadlineSeconds", str(2**31)),
        "is above 2147483647: Kubernetes refuses the pod",
    ),
    (
        "a run placeholder inside other text",
        lambda d: _set(
            _tasks(d[0])["say"]["inputs"]["parameters"],
            "text",
            {"runtimeValue": {"constant": "run-{{$.pipeline_job_uuid}}"}},
        ),
        "holds a placeholder inside other text: the driver substitutes a run placeholder only when it is the whole value",
    ),
    (
        "a PVC name from a DAG input that is no string",
        lambda d: _set(_k8s(d)["pvcMount"][0], "pvcNameParameter", {"componentInputParameter": "flag"}),
        "the name comes from DAG input 'flag', which is not a STRING input of the DAG",
    ),
]


@pytest.mark.parametrize("case, mutate, expected", CASES, ids=[case[0] for case in CASES])
def test_a_broken_rule_is_reported_with_its_backend_source(
    base_docs: list[Any], case: str, mutate: Callable[[Docs], None], expected: str
) -> None:
    docs = copy.deepcopy(base_docs)
    broken: Docs = (docs[0], docs[1]["platforms"]["kubernetes"])
    mutate(broken)
    problems = conformance.check(broken[0], kubernetes=broken[1])
    hits = [p for p in problems if expected in p.line()]
    assert hits, f"{case}: expected {expected!r} in:\n{_lines(problems)}"
    assert all(".go" in p.source for p in hits), _lines(hits)  # every rule names its source


# --------------------------------------------------------------------------- a run's parameters


def test_run_parameters_meet_the_api_servers_rules(base_docs: list[Any]) -> None:
    pipeline = conformance.load(base_docs[0], kubernetes=base_docs[1])
    assert conformance.check(pipeline, arguments={"workers": [3, 4], "flag": False}) == []
    lines = _lines(conformance.check(pipeline, arguments={"flag": "yes", "nope": 1}))
    assert "run parameters: parameter(s) provided are not required by pipeline: nope" in lines
    assert 'run parameters, flag: input parameter flag requires type BOOLEAN, but "yes" is a string' in lines
    spec = copy.deepcopy(base_docs[0])
    _required(spec, "text")
    lines = _lines(conformance.check(spec, arguments={}))
    assert "parameter text is not optional, yet has neither default value nor user provided value" in lines


def test_run_parameters_are_simulated_downstream(base_docs: list[Any]) -> None:
    [problem] = conformance.check(base_docs[0], arguments={"workers": [0, True]})
    assert problem.task == "for-loop-1" and problem.field == "loop item pipelinechannel--workers-loop-item"
    assert "bool true (item 1 of list [0, true], run parameter workers)" in problem.message


def test_text_parameters_are_typed_by_the_declared_types(base_docs: list[Any]) -> None:
    pipeline = conformance.load(base_docs[0])
    given = {"workers": "[0, 1, 2]", "text": "[1]", "flag": "true", "other": "7", "typed": 3}
    assert conformance.typed_arguments(pipeline, given) == {
        "workers": [0, 1, 2],
        "text": "[1]",  # a STRING parameter keeps its text
        "flag": True,
        "other": "7",  # not declared: left for the check to report
        "typed": 3,
    }
    assert conformance.typed_arguments(pipeline, {"flag": "yes"}) == {"flag": "yes"}  # no JSON: stays text


# --------------------------------------------------------------------------- the CLI


def test_check_command_exits_0_for_a_conforming_file(
    compiled: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert pipelines_main(["check", str(compiled["dataops"]), str(compiled["mlops"])]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out == ["checked 2 pipelines (dataops, mlops) by the KFP 2.17 backend's rules: no problems"]


def test_check_command_exits_1_and_prints_a_line_per_problem(
    compiled: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _compile(untyped, tmp_path / "untyped.yaml")
    assert pipelines_main(["check", str(compiled["dataops"]), str(path)]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(
        'untyped: root/for-loop-1: task count ("count worker"), input n: type mismatch'
    )
    assert lines[1] == "checked 2 pipelines (dataops, untyped) by the KFP 2.17 backend's rules: 1 problem"


def test_check_command_exits_2_for_a_file_that_is_no_kfp_pipeline(
    compiled: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "deployment.yaml"
    manifest.write_text(json.dumps({"apiVersion": "apps/v1", "kind": "Deployment"}))
    broken = tmp_path / "broken.yaml"
    broken.write_text("pipelineInfo: [unclosed\n")
    code = pipelines_main(["check", str(manifest), str(broken), str(compiled["dataops"])])
    assert code == 2
    captured = capsys.readouterr()
    assert f"error: {manifest} holds no KFP pipeline spec" in captured.err
    assert f"error: {broken} is not YAML at line 2" in captured.err
    assert "2 files could not be read as a compiled KFP pipeline" in captured.out


def test_a_file_with_two_pipeline_specs_is_refused_like_the_api_server_does(
    base_docs: list[Any], tmp_path: Path
) -> None:
    path = tmp_path / "twice.yaml"
    path.write_text(yaml.safe_dump_all([base_docs[0], base_docs[0], base_docs[1]]))
    with pytest.raises(
        conformance.NotAPipeline, match="holds 2 pipeline specs; the KFP API server takes one"
    ):
        conformance.load(path)
    path.write_text(yaml.safe_dump_all([base_docs[0], base_docs[1], base_docs[1]]))
    with pytest.raises(conformance.NotAPipeline, match="holds 2 platform specs"):
        conformance.load(path)


def test_check_command_without_files_compiles_and_checks_every_pipeline(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert pipelines_main(["check"]) == 0
    out = capsys.readouterr().out
    assert (
        "checked 3 pipelines (dataops, mlops, continual) by the KFP 2.17 backend's rules: no problems" in out
    )
