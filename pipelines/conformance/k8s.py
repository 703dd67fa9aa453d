"""The ``platforms.kubernetes`` settings of a compiled pipeline, by the rules they meet on a cluster.

The driver turns each executor's ``KubernetesExecutorConfig`` into a patch of the step's pod
(``backend/src/v2/driver/k8s.go`` ``extendPodSpecPatch``): a Secret mounted as a volume
becomes a volume *named after the Secret*, a PVC a volume named after the claim, each with a
mount; Secret keys become env vars; ``activeDeadlineSeconds`` the pod's deadline. Argo merges
the patch into the executor template (``workflow/util/util.go`` ``ApplyPodSpecPatch``, a
strategic merge: volumes by name, mounts by path), which already holds the launcher's own
volumes (``backend/src/v2/compiler/argocompiler/container.go``), and Kubernetes validates the
pod (``pkg/apis/core/validation/validation.go``: ``ValidateVolumes``, ``ValidateVolumeMounts``,
``ValidateEnv``, ``validateSecretKeySelector``, ``ValidatePodSpec``).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from typing import Any

from pipelines.conformance.spec import Pipeline, Site

K8S_GO = "backend/src/v2/driver/k8s.go"
K8S_VALIDATION = "kubernetes pkg/apis/core/validation/validation.go"
LAUNCHER = "backend/src/v2/compiler/argocompiler/container.go"
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# IsEnvVarName (k8s.io/apimachinery util/validation): the rule clusters without the
# RelaxedEnvironmentVariableValidation gate enforce; names that meet it work everywhere.
ENV_VAR = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")  # IsConfigMapKey: a Secret's key
MAX_INT32 = 2**31 - 1
# The executor pod's own volumes and mounts (container.go: kfp-launcher and the scratch dirs).
LAUNCHER_VOLUMES = {
    "kfp-launcher": "/kfp-launcher",
    "gcs-scratch": "/gcs",
    "s3-scratch": "/s3",
    "minio-scratch": "/minio",
    "dot-local-scratch": "/.local",
    "dot-cache-scratch": "/.cache",
    "dot-config-scratch": "/.config",
}


def check_kubernetes(pipeline: Pipeline) -> None:
    """Report every ``platforms.kubernetes`` executor setting the cluster would refuse or drop."""
    executors = pipeline.kubernetes.get("deploymentSpec", {}).get("executors", {}) or {}
    declared = pipeline.spec.get("deploymentSpec", {}).get("executors", {}) or {}
    users: dict[str, list[tuple[Mapping[str, Any], Site | None]]] = {}
    for dag_component, task in pipeline.sites():
        label = (task.component or {}).get("executorLabel")
        if label:
            users.setdefault(str(label), []).append((dag_component, task))
    for label in sorted(executors):
        config = executors[label]
        if label not in declared:
            message = (
                "matches no executor: the backend looks settings up by executor label, so these never apply"
            )
            pipeline.report(
                None, label, message, "backend/src/v2/compiler/visitor.go", dag="platforms.kubernetes"
            )
            continue
        if not _parses(pipeline, label, config):
            continue
        # Settings reported once per executor; a name from a DAG input once per DAG using it.
        for dag_component, site in users.get(label) or [({}, None)]:
            _Executor(pipeline, label, config, site, dag_component).check()


def _parses(pipeline: Pipeline, label: str, config: Any) -> bool:
    """The driver unmarshals the config strictly (``backend/src/v2/cmd/driver/main.go``)."""
    from google.protobuf import json_format
    from kfp.kubernetes import kubernetes_executor_config_pb2 as k8s_pb2

    try:
        json_format.ParseDict(config, k8s_pb2.KubernetesExecutorConfig())
    except (json_format.ParseError, TypeError, ValueError) as exc:
        message = f"failed to unmarshal Kubernetes config: {exc}"
        pipeline.report(
            None,
            label,
            message,
            "backend/src/v2/cmd/driver/main.go: parseExecConfigJson",
            dag="platforms.kubernetes",
        )
        return False
    return True


class _Executor:
    """One executor's settings, as a task of `dag` (at `site`) runs them."""

    def __init__(
        self,
        pipeline: Pipeline,
        label: str,
        config: Mapping[str, Any],
        site: Site | None,
        dag: Mapping[str, Any],
    ):
        self.pipeline, self.label, self.config, self.site, self.dag = pipeline, label, config, site, dag
        self.volumes: dict[str, str] = {}  # volume name -> what it holds
        self.mounts: dict[str, str] = {}  # mount path -> volume name

    def report(self, field_name: str, message: str, source: str, at_task: bool = False) -> None:
        where = f"{self.label} {field_name}"
        site = self.site if at_task else None
        self.pipeline.report(site, where, message, source, dag="platforms.kubernetes")

    def check(self) -> None:
        for i, item in enumerate(self.config.get("secretAsVolume", []) or []):
            where = f"secretAsVolume[{i}]"
            name = self.name(where, item, "secretNameParameter", "secretName")
            if name is not None:
                self.volume(where, name, f"Secret {name}", item.get("mountPath", ""))
        for i, item in enumerate(self.config.get("secretAsEnv", []) or []):
            where = f"secretAsEnv[{i}]"
            name = self.name(where, item, "secretNameParameter", "secretName")
            if name is not None and not (DNS1123_SUBDOMAIN.match(name) and len(name) <= 253):
                self.report(
                    where,
                    f"Secret name {name!r} is not a DNS-1123 subdomain",
                    f"{K8S_VALIDATION}: validateSecretKeySelector",
                )
            for pair in item.get("keyToEnv", []) or []:
                key, env = str(pair.get("secretKey", "")), str(pair.get("envVar", ""))
                if not (CONFIG_KEY.match(key) and len(key) <= 253):
                    self.report(
                        where,
                        f"Secret key {key!r} is not a valid key",
                        f"{K8S_VALIDATION}: validateSecretKeySelector",
                    )
                if not ENV_VAR.match(env):
                    self.report(
                        where,
                        f"env var name {env!r} is not a valid environment variable name",
                        f"{K8S_VALIDATION}: ValidateEnv",
                    )
        for i, item in enumerate(self.config.get("pvcMount", []) or []):
            where = f"pvcMount[{i}]"
            name = self.name(where, item, "pvcNameParameter", "constant")
            if name is not None:
                self.volume(where, name, f"PVC {name}", item.get("mountPath", ""))
        self.deadline()

    def name(self, where: str, item: Mapping[str, Any], parameter: str, plain: str) -> str | None:
        """The Secret / PVC name: the parameter's value if set, else the plain field (k8s.go)."""
        spec = item.get(parameter)
        if spec:
            if "runtimeValue" in spec:
                value = spec["runtimeValue"].get("constant")
            elif "componentInputParameter" in spec:
                return self.from_parent(where, str(spec["componentInputParameter"]))
            else:
                return None  # an upstream output: only known at run time
        elif "componentInputParameter" in item:  # a deprecated pvcMount field
            return self.from_parent(where, str(item["componentInputParameter"]))
        elif "taskOutputParameter" in item:
            return None
        else:
            value = item.get(plain)
        if not isinstance(value, str) or not value:
            message = f"no name: {parameter} or {plain} must give a non-empty string, got {value!r}"
            self.report(
                where, message, f"{K8S_GO}, backend/src/v2/driver/resolve.go: resolveInputParameterStr"
            )
            return None
        return value

    def from_parent(self, where: str, input_name: str) -> str | None:
        """A name taken from the DAG's input: a non-empty string (resolveInputParameterStr)."""
        spec = (self.dag.get("inputDefinitions", {}).get("parameters", {}) or {}).get(input_name)
        if spec is None or spec.get("parameterType") != "STRING":
            message = f"the name comes from DAG input {input_name!r}, which is not a STRING input of the DAG"
            self.report(where, message, "backend/src/v2/driver/resolve.go: resolveInputParameterStr", True)
            return None
        default = spec.get("defaultValue")
        return default if isinstance(default, str) and default else None

    def volume(self, where: str, name: str, holds: str, mount_path: str) -> None:
        """A volume named `name` mounted at `mount_path` in the step's container."""
        if not (DNS1123_LABEL.match(name) and len(name) <= 63):
            message = f"{holds} becomes a volume of that name, and a volume name must be a DNS-1123 label (63 characters at most, no dots)"
            self.report(where, message, f"{K8S_GO}, {K8S_VALIDATION}: ValidateVolumes")
        if name in LAUNCHER_VOLUMES:
            self.report(
                where, f"volume {name!r} is also the launcher's own volume: Argo merges the two", LAUNCHER
            )
        elif self.volumes.get(name, holds) != holds:
            message = f"{holds} and {self.volumes[name]} both become volume {name!r}: merged into one, the pod is refused"
            self.report(
                where,
                message,
                f"argo-workflows v4 workflow/util/util.go: ApplyPodSpecPatch, {K8S_VALIDATION}",
            )
        self.volumes[name] = holds
        path = str(mount_path)
        if not path or not posixpath.isabs(path):
            self.report(
                where,
                f"mount path {path!r} must be an absolute path",
                f"{K8S_GO}, {K8S_VALIDATION}: ValidateVolumeMounts",
            )
        elif path in LAUNCHER_VOLUMES.values():
            message = (
                f"mount path {path} is where the launcher mounts its own volume: Argo replaces that mount"
            )
            self.report(where, message, LAUNCHER)
        elif path in self.mounts and self.mounts[path] != name:
            message = (
                f"mount path {path} is taken by volume {self.mounts[path]!r}: Argo keeps one mount per path"
            )
            self.report(where, message, "argo-workflows v4 workflow/util/util.go: ApplyPodSpecPatch")
        self.mounts.setdefault(path, name)

    def retry_window(self, deadline_s: int) -> None:
        """Argo's ``backoff.maxDuration`` is the whole retry window, counted from the first
        attempt's start, not a cap on one backoff: once it has passed no retry starts, and a
        retry's pod deadline is cut to what is left of it. It has to cover every attempt."""
        policy = (self.site.task.get("retryPolicy") if self.site is not None else None) or {}
        retries = int(policy.get("maxRetryCount", 0) or 0)
        if retries < 1 or "backoffMaxDuration" not in policy:
            return
        window = _seconds(policy["backoffMaxDuration"])
        first = _seconds(policy.get("backoffDuration", "0s"))
        factor = float(policy.get("backoffFactor", 2) or 2)
        backoffs = sum(first * factor**i for i in range(retries))
        needed = (retries + 1) * deadline_s + backoffs
        if window < needed:
            message = (
                f"retryPolicy backoffMaxDuration {window:g}s is shorter than {retries + 1} attempts of "
                f"activeDeadlineSeconds {deadline_s} plus their backoffs ({needed:g}s): Argo counts it from "
                "the first attempt's start, so a late failure is never retried and a retry's pod is cut short"
            )
            self.report(
                "activeDeadlineSeconds",
                message,
                f"{LAUNCHER}: getTaskRetryStrategyFromInput; argo-workflows v4 workflow/controller/operator.go",
                at_task=True,
            )

    def deadline(self) -> None:
        if "activeDeadlineSeconds" not in self.config:
            return
        seconds = int(self.config["activeDeadlineSeconds"])
        self.retry_window(seconds)
        if seconds <= 0:
            self.report(
                "activeDeadlineSeconds",
                f"{seconds} sets no deadline: the driver ignores values below 1",
                K8S_GO,
            )
        elif seconds > MAX_INT32:
            message = f"{seconds} is above {MAX_INT32}: Kubernetes refuses the pod"
            self.report("activeDeadlineSeconds", message, f"{K8S_VALIDATION}: ValidatePodSpec")


def _seconds(duration: Any) -> float:
    """A protobuf Duration as compiled (``"600s"``, or a number of seconds)."""
    text = str(duration).strip()
    return float(text[:-1] if text.endswith("s") else text)
