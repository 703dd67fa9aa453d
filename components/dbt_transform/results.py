"""What one ``dbt build`` did: every model and test with its status, and the error that names what broke."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The mart the project builds; a run reports its rows and data version.
MART = "labeled_projects"

# Statuses of a node that broke the build (a skipped node is a consequence, not a cause).
_BROKEN = {"error": "errored", "fail": "failed"}


class DbtTransformError(RuntimeError):
    """dbt did not build cleanly; the message names every failing model and test.

    ``result`` holds the run (for its Markdown summary) when dbt got as far as running nodes.
    """

    def __init__(self, message: str, result: DbtResult | None = None) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class NodeResult:
    """The outcome of one dbt node (model or data test) in a run."""

    unique_id: str
    name: str
    resource_type: str  # "model" | "test" | ...
    status: str  # "success" | "pass" | "fail" | "warn" | "error" | "skipped" | ...
    message: str
    failures: int | None
    execution_time: float
    # A generic data test's kind and what it tests, e.g. ("relationships", "stg_tags.id").
    test: str = ""
    tested: str = ""

    @property
    def broken(self) -> bool:
        return self.status in _BROKEN

    def describe(self) -> str:
        """One line naming the node and why it broke, e.g. ``test unique_x_id failed: 3 failures``.

        A generic test also names its kind and column: ``... failed: 2 failures
        (relationships on stg_tags.id)``.
        """
        verb = _BROKEN.get(self.status, self.status)
        if self.resource_type == "test" and self.failures:
            noun = "failure" if self.failures == 1 else "failures"
            what = f" ({self.test} on {self.tested})" if self.test and self.tested else ""
            return f"test {self.name} {verb}: {self.failures} {noun}{what}"
        detail = " ".join((self.message or "").split())
        return f"{self.resource_type} {self.name} {verb}" + (f": {detail}" if detail else "")


@dataclass(frozen=True)
class DbtResult:
    """What one ``dbt build`` did, and what the mart holds afterwards."""

    success: bool
    invocation_id: str
    warehouse: str  # the warehouse URI, normalised (components.warehouse.WarehouseURI)
    target: str
    target_schema: str
    nodes: tuple[NodeResult, ...] = ()
    rows: int | None = None  # rows of <target_schema>.labeled_projects when it was built
    data_version: str = ""  # content hash of the mart (components.versions.table_version)
    error: str = ""  # an error raised before any node ran (e.g. a compilation error)

    @property
    def failed(self) -> list[NodeResult]:
        return [n for n in self.nodes if n.broken]

    @property
    def skipped(self) -> list[NodeResult]:
        return [n for n in self.nodes if n.status == "skipped"]

    def failure_message(self) -> str:
        """Names each failing model/test (and what was skipped because of them)."""
        if self.error:
            return f"dbt build did not run: {self.error}"
        parts = [n.describe() for n in self.failed]
        if self.skipped:
            parts.append("skipped: " + ", ".join(n.name for n in self.skipped))
        return "dbt build failed: " + ("; ".join(parts) or "no node reported a failure")

    def summary_markdown(self) -> str:
        """A Markdown report of the run: one table row per model and test."""
        state = "succeeded" if self.success else "failed"
        lines = [
            f"## dbt build {state}",
            "",
            f"Target `{self.target}`, schema `{self.target_schema}`, invocation `{self.invocation_id}`.",
            "",
        ]
        if self.rows is not None:
            lines += [
                f"`{self.target_schema}.{MART}`: {self.rows} rows, data version `{self.data_version}`.",
                "",
            ]
        if not self.success:
            lines += [f"**{_md_cell(self.failure_message())}**", ""]
        lines += [
            "| node | type | status | failures | time (s) | message |",
            "|---|---|---|---:|---:|---|",
        ]
        for n in self.nodes:
            failures = "" if n.failures is None else str(n.failures)
            lines.append(
                f"| {n.name} | {n.resource_type} | {n.status} | {failures} "
                f"| {n.execution_time:.2f} | {_md_cell(n.message)} |"
            )
        return "\n".join(lines) + "\n"


def _md_cell(text: str | None) -> str:
    return " ".join((text or "").split()).replace("|", "\\|")


def _tested(node: Any) -> tuple[str, str]:
    """A generic test's kind and the ``model.column`` it tests; ("", "") for anything else."""
    metadata = getattr(node, "test_metadata", None)
    column = getattr(node, "column_name", None)
    model = str(getattr(node, "attached_node", None) or "").rsplit(".", 1)[-1]
    if metadata is None or not column or not model:
        return "", ""
    return str(metadata.name), f"{model}.{column}"


def node_results(run: Any) -> tuple[NodeResult, ...]:
    nodes = []
    for r in getattr(run, "results", None) or []:
        node = r.node
        test, tested = _tested(node)
        nodes.append(
            NodeResult(
                unique_id=node.unique_id,
                name=node.name,
                resource_type=str(getattr(node.resource_type, "value", node.resource_type)),
                status=str(getattr(r.status, "value", r.status)),
                message=r.message or "",
                failures=r.failures,
                execution_time=float(r.execution_time or 0.0),
                test=test,
                tested=tested,
            )
        )
    return tuple(nodes)
