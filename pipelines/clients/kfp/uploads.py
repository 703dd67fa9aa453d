"""Upload compiled pipelines as versions named after the package version and the git commit."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.clients.kfp.connection import ROOT, ClusterError, Connection, api_errors, quiet_sdk


def git_short_sha(cwd: Path = ROOT) -> str:
    """``git rev-parse --short HEAD``, or ``"nogit"`` outside a repository."""
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return "nogit"
    sha = proc.stdout.strip()
    return sha if proc.returncode == 0 and sha else "nogit"


def version_name(cwd: Path = ROOT) -> str:
    """Name of an uploaded pipeline version: ``<package version>-<git short sha>``."""
    from components.images import package_version

    return f"{package_version()}-{git_short_sha(cwd)}"


@dataclass(frozen=True)
class UploadResult:
    pipeline: str
    pipeline_id: str
    version: str
    version_id: str
    created_pipeline: bool
    uploaded: bool  # False: that version name was already there (no-op)

    def describe(self) -> str:
        if not self.uploaded:
            return (
                f"{self.pipeline}: version {self.version} already uploaded ({self.version_id}); nothing to do"
            )
        head = "created pipeline" if self.created_pipeline else "pipeline"
        return (
            f"{self.pipeline}: {head} {self.pipeline_id}, uploaded version {self.version} ({self.version_id})"
        )


def _eq_filter(key: str, value: str) -> str:
    # operation 1 is EQUALS in the v2beta1 filter proto (what kfp.Client itself sends)
    return json.dumps({"predicates": [{"operation": 1, "key": key, "stringValue": value}]})


def find_version(client: Any, pipeline_id: str, name: str) -> Any | None:
    """The pipeline version called ``name``, if any (filtered by the server, checked here)."""
    import kfp_server_api

    token = ""
    where: str | None = _eq_filter("display_name", name)
    while True:
        try:
            page = client.list_pipeline_versions(
                pipeline_id=pipeline_id, page_token=token, page_size=100, filter=where
            )
        except kfp_server_api.ApiException as exc:
            if exc.status != 400 or where is None:
                raise
            where = None  # a server that does not filter versions by name: scan them all
            continue
        for version in page.pipeline_versions or []:
            if name in (version.display_name, getattr(version, "name", None)):
                return version
        token = page.next_page_token or ""
        if not token:
            return None


def upload(
    pipeline_name: str,
    package_path: Path,
    conn: Connection,
    version: str | None = None,
    description: str | None = None,
) -> UploadResult:
    """Create the pipeline, or add version ``version`` to it; a no-op if that version exists.

    Args:
        pipeline_name: Display name of the pipeline on the server (e.g. ``"dataops"``).
        package_path: The compiled pipeline YAML.
        conn: Where and how to connect.
        version: Version name; default ``<package version>-<git short sha>``.
        description: Shown in the UI for a new pipeline / version.

    Returns:
        What happened: ids, names, and whether anything was uploaded.
    """
    version = version or version_name()
    client = conn.client()
    with api_errors(conn.host), quiet_sdk():
        try:
            pipeline_id = client.get_pipeline_id(pipeline_name)
        except ValueError as exc:  # several pipelines with that name
            raise ClusterError(f"KFP API at {conn.host}: {exc}") from None
        created = pipeline_id is None
        if created:
            # KFP also makes a first version named after the pipeline; ours follows it.
            pipeline_id = client.upload_pipeline(
                str(package_path), pipeline_name=pipeline_name, description=description
            ).pipeline_id
        existing = find_version(client, pipeline_id, version)
        if existing is not None:
            return UploadResult(
                pipeline_name, pipeline_id, version, existing.pipeline_version_id, created, uploaded=False
            )
        new = client.upload_pipeline_version(
            str(package_path), pipeline_version_name=version, pipeline_id=pipeline_id, description=description
        )
    return UploadResult(pipeline_name, pipeline_id, version, new.pipeline_version_id, created, uploaded=True)
