"""A compiled pipeline as the KFP API server reads it, and the problems the check reports.

The API server splits an uploaded YAML file into documents and takes the one that
unmarshals as a ``PipelineSpec`` with a name and a root component, and the one that is a
``PlatformSpec`` with a ``kubernetes`` platform
(``backend/src/apiserver/template/v2_template.go`` ``NewV2SpecTemplate``,
``template.go`` ``isPipelineSpec``). :func:`load` does the same, through the same protobuf
messages (``ParseDict`` refuses unknown fields as ``protojson.Unmarshal`` does); the checks
then read the plain dicts (the proto JSON names: ``componentRef``, ``inputDefinitions``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

V2_TEMPLATE = "backend/src/apiserver/template/v2_template.go"


class NotAPipeline(ValueError):
    """The input is not a compiled KFP pipeline (no PipelineSpec document in it)."""


@dataclass(frozen=True)
class Problem:
    """One way the compiled pipeline breaks a rule of the KFP backend.

    Attributes:
        pipeline: The pipeline's name (``pipelineInfo.name``).
        dag: Where the task sits: the task keys from the root (``root/train-and-promote``).
        task: The task key in that DAG (``""`` for a pipeline-level problem).
        display: The task's display name (``taskInfo.name``).
        field: The input, output or spec field the problem is about.
        message: What is wrong: the value that reaches the field and what is declared.
        source: The backend (or Kubernetes, Argo) source the rule comes from.
    """

    pipeline: str
    dag: str
    task: str
    display: str
    field: str
    message: str
    source: str

    def line(self) -> str:
        """The problem in one line, as ``python -m pipelines check`` prints it."""
        where = self.dag
        if self.task:
            where += f": task {self.task} ({json.dumps(self.display)})"
        subject = f", {self.field}" if self.field else ""
        return f"{self.pipeline}: {where}{subject}: {self.message} [{self.source}]"


@dataclass(frozen=True)
class Site:
    """A task of a DAG, reached from the root through the task keys of `dag`."""

    dag: str
    key: str
    task: Mapping[str, Any]
    component: Mapping[str, Any] | None  # None: its componentRef resolves to nothing

    @property
    def display(self) -> str:
        return str(self.task.get("taskInfo", {}).get("name", ""))

    @property
    def ref(self) -> str:
        return str(self.task.get("componentRef", {}).get("name", ""))


@dataclass
class Pipeline:
    """The pipeline spec (as a dict) and its ``platforms.kubernetes`` section (``{}`` if none)."""

    spec: Mapping[str, Any]
    kubernetes: Mapping[str, Any] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    documents: int = 1  # the YAML documents of the file it was read from

    @property
    def name(self) -> str:
        return str(self.spec.get("pipelineInfo", {}).get("name", ""))

    @property
    def components(self) -> Mapping[str, Any]:
        return self.spec.get("components", {}) or {}

    def report(self, site: Site | None, field_name: str, message: str, source: str, dag: str = "") -> None:
        """Record a problem at `site` (or at `dag`, for one that is not about a task)."""
        problem = Problem(
            pipeline=self.name,
            dag=site.dag if site else dag,
            task=site.key if site else "",
            display=site.display if site else "",
            field=field_name,
            message=message,
            source=source,
        )
        if problem not in self.problems:
            self.problems.append(problem)

    def sites(self) -> Iterator[tuple[Mapping[str, Any], Site]]:
        """Every (DAG component, task) reachable from the root, each DAG component once per
        path, as the backend compiler visits them (``backend/src/v2/compiler/visitor.go``)."""
        yield from self._sites(self.spec.get("root", {}), "root", ("root",))

    def _sites(
        self, dag_component: Mapping[str, Any], path: str, stack: tuple[str, ...]
    ) -> Iterator[tuple[Mapping[str, Any], Site]]:
        tasks = dag_component.get("dag", {}).get("tasks", {}) or {}
        for key in sorted(tasks):
            task = tasks[key]
            ref = str(task.get("componentRef", {}).get("name", ""))
            component = self.components.get(ref)
            yield dag_component, Site(path, key, task, component)
            if component is not None and "dag" in component and ref not in stack:
                yield from self._sites(component, f"{path}/{key}", (*stack, ref))


def parameters(component: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """A component's input parameter definitions (name -> spec)."""
    return (component or {}).get("inputDefinitions", {}).get("parameters", {}) or {}


def _documents(text: str, origin: str) -> list[Any]:
    import yaml

    try:
        return [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise NotAPipeline(f"{origin} is not YAML{at}: {getattr(exc, 'problem', None) or exc}") from None


def _is_pipeline_spec(doc: Any) -> bool:
    """``isPipelineSpec`` (``backend/src/apiserver/template/template.go``)."""
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    if not isinstance(doc, dict):
        return False
    try:
        spec = json_format.ParseDict(doc, pipeline_spec_pb2.PipelineSpec())
    except (json_format.ParseError, TypeError, ValueError):
        return False
    return bool(spec.pipeline_info.name) and spec.HasField("root")


def _kubernetes_platform(doc: Any) -> Mapping[str, Any] | None:
    """The ``kubernetes`` platform of a ``PlatformSpec`` document, else None
    (``IsPlatformSpecWithKubernetesConfig`` in ``v2_template.go``)."""
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    if not isinstance(doc, dict) or "platforms" not in doc:
        return None
    try:
        json_format.ParseDict(doc, pipeline_spec_pb2.PlatformSpec())
    except (json_format.ParseError, TypeError, ValueError):
        return None
    platform = doc["platforms"].get("kubernetes")
    return platform if isinstance(platform, dict) else None


def from_documents(docs: list[Any], origin: str = "input") -> Pipeline:
    """The pipeline of a compiled file's YAML documents, as the API server picks them.

    Raises:
        NotAPipeline: No document is a pipeline spec; or two are (the server refuses that).
    """
    specs = [doc for doc in docs if _is_pipeline_spec(doc)]
    if not specs:
        raise NotAPipeline(
            f"{origin} holds no KFP pipeline spec (a YAML document with pipelineInfo.name and root, "
            "as `python -m pipelines compile` writes)"
        )
    if len(specs) > 1:
        raise NotAPipeline(f"{origin} holds {len(specs)} pipeline specs; the KFP API server takes one")
    platforms = [p for p in (_kubernetes_platform(doc) for doc in docs) if p is not None]
    if len(platforms) > 1:
        raise NotAPipeline(f"{origin} holds {len(platforms)} platform specs; the KFP API server takes one")
    return Pipeline(specs[0], platforms[0] if platforms else {})


def load(source: Any, kubernetes: Mapping[str, Any] | None = None) -> Pipeline:
    """A :class:`Pipeline` from a compiled YAML file, a spec dict or a ``PipelineSpec`` message.

    Args:
        source: A path to the compiled YAML; a dict (the pipeline spec document); or a
            ``PipelineSpec`` message (e.g. ``pipeline.pipeline_spec`` of a ``@dsl.pipeline``).
        kubernetes: With a dict or message: its ``platforms.kubernetes`` section, or the whole
            platform document (``{"platforms": {"kubernetes": ...}}``); a path brings its own.

    Raises:
        NotAPipeline: The source holds no KFP pipeline spec.
    """
    if isinstance(source, Path | str):
        path = Path(source)
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise NotAPipeline(f"cannot read {path}: {exc}") from None
        docs = _documents(text, str(path))
        pipeline = from_documents(docs, str(path))
        pipeline.documents = len(docs)
        return pipeline
    if hasattr(source, "DESCRIPTOR"):
        from google.protobuf import json_format

        source = json_format.MessageToDict(source)
    pipeline = from_documents([source], "the given spec")
    platform = dict(kubernetes or {})
    if "platforms" in platform:
        platform = dict(_kubernetes_platform(platform) or {})
    pipeline.kubernetes = platform
    return pipeline
