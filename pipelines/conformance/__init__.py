"""Conformance of a compiled pipeline with the KFP 2.17 backend's rules, checked offline.

``kfp.local`` runs tasks in Python and never applies the backend's rules; a cluster does.
:func:`check` reads a compiled pipeline the way the API server does and reports, as
:class:`Problem` s, what a first cluster run would trip over:

- the value that reaches every task input, simulated through constants, pipeline
  parameters, ParallelFor items, upstream outputs, nested pipelines and ``dsl.If`` branches,
  against the type the consuming component declares (:mod:`.values`);
- names and references the API server, its Argo compiler, Argo's validation and the driver
  resolve: schema version, pipeline and task names, component refs, executor labels,
  producer tasks and output keys, condition inputs, parameter types and defaults (:mod:`.names`);
- the ``platforms.kubernetes`` settings: Secret and PVC names, mount paths, env var names,
  deadlines (:mod:`.k8s`);
- for Vertex AI (``target="vertex"``), what its SDK refuses and what would put a credential in
  the YAML: one document, no Kubernetes section, the derived job id (:mod:`.vertex`).

With ``arguments`` the check also applies the API server's rules for a run's parameters and
simulates the run with them (``submit`` and ``schedule`` do this before sending anything).
Each rule cites the backend file it comes from.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

from pipelines.conformance.k8s import check_kubernetes
from pipelines.conformance.names import check_names
from pipelines.conformance.simulate import Simulation
from pipelines.conformance.spec import V2_TEMPLATE, NotAPipeline, Pipeline, Problem, load
from pipelines.conformance.values import ACCEPTS, kind_of
from pipelines.conformance.vertex import check_vertex

__all__ = ["TARGETS", "NotAPipeline", "Pipeline", "Problem", "check", "load", "typed_arguments"]


TARGETS = ("kfp", "vertex")


def check(
    source: Any,
    kubernetes: Mapping[str, Any] | None = None,
    arguments: Mapping[str, Any] | None = None,
    target: str = "kfp",
) -> list[Problem]:
    """Every way `source` breaks the backend's rules (an empty list when it conforms).

    Args:
        source: A compiled pipeline YAML path, a pipeline spec dict, a ``PipelineSpec`` or a
            :class:`Pipeline`.
        kubernetes: The ``platforms.kubernetes`` section for a dict or message source.
        arguments: The run's parameters, if known; else the pipeline's defaults are simulated.
        target: ``kfp`` (a KFP backend on Kubernetes) or ``vertex`` (Vertex AI Pipelines: the
            same rules, then :func:`.vertex.check_vertex`).

    Raises:
        NotAPipeline: `source` holds no KFP pipeline spec.
    """
    pipeline = source if isinstance(source, Pipeline) else load(source, kubernetes)
    pipeline.problems = []
    check_names(pipeline)
    if arguments is not None:
        _check_arguments(pipeline, arguments)
    Simulation(pipeline).run(arguments)
    check_kubernetes(pipeline)
    if target == "vertex":
        check_vertex(pipeline)
    elif target != "kfp":
        raise ValueError(f"unknown target {target!r}; choose from {', '.join(TARGETS)}")
    return list(pipeline.problems)


def _check_arguments(pipeline: Pipeline, arguments: Mapping[str, Any]) -> None:
    """``validatePipelineJobInputs`` (``backend/src/apiserver/template/v2_template.go``)."""
    declared = pipeline.spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {}) or {}
    source = f"{V2_TEMPLATE}: validatePipelineJobInputs"
    extra = sorted(set(arguments) - set(declared))
    if extra:
        message = f"parameter(s) provided are not required by pipeline: {', '.join(extra)}"
        pipeline.report(None, "", message, source, dag="run parameters")
    for name, spec in declared.items():
        kind = str(spec.get("parameterType", ""))
        if name not in arguments:
            if not spec.get("isOptional") and "defaultValue" not in spec:
                message = (
                    f"parameter {name} is not optional, yet has neither default value nor user provided value"
                )
                pipeline.report(None, name, message, source, dag="run parameters")
        elif kind_of(arguments[name]) != ACCEPTS.get(kind) or kind == "TASK_FINAL_STATUS":
            value = json.dumps(arguments[name])
            message = (
                f"input parameter {name} requires type {kind}, but {value} is a {kind_of(arguments[name])}"
            )
            pipeline.report(None, name, message, source, dag="run parameters")


def typed_arguments(pipeline: Pipeline, given: Mapping[str, Any]) -> dict[str, Any]:
    """`given` with text values of non-STRING pipeline parameters read as JSON.

    ``--param k=v`` values arrive as text; a STRING parameter keeps its text as it is (also
    text that looks like JSON, such as ``param_overrides='{"alpha": 0.1}'``), any other type
    is read as JSON (``workers=[0,1,2]`` -> a list of numbers, ``margin=0.01`` -> a number).
    Text that is not JSON stays text, for the check to report against the declared type.
    """
    declared = pipeline.spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {}) or {}
    out: dict[str, Any] = {}
    for name, value in given.items():
        kind = declared.get(name, {}).get("parameterType")
        if isinstance(value, str) and kind is not None and kind != "STRING":
            with contextlib.suppress(ValueError):  # not JSON: stays text, for the check to report
                value = json.loads(value)
        out[name] = value
    return out
