"""What a ``Dataset`` artifact holds, and the table references that travel between steps.

A step hands the next one either a *table reference* (the data stays in the warehouse: a
small JSON naming the table and what the step saw in it) or *parquet* (a file or a folder
of files). The step that writes a dataset records which in its metadata, ``kind``:
``table_ref`` (:func:`write_table_ref`) or ``parquet`` (extract, compose). The metadata
travels with the artifact: kfp hands an input's metadata to the component, so a reader
branches on it (:func:`dataset_kind`). ``kfp.local`` and the DockerRunner put it in the
executor input; on a cluster the backend stores an output's metadata as MLMD custom
properties and gives them back as the metadata of the input it resolves (KFP
``backend/src/v2/metadata/converter.go``, ``toMLMDArtifact`` / ``toRuntimeArtifact``,
called from ``backend/src/v2/driver/resolve.go``). An artifact without it (one made by
hand or imported) is known by its file's own marker: a parquet file begins with ``PAR1``,
a table reference is JSON that says ``"kind": "table_ref"``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

TABLE_REF = "table_ref"
PARQUET = "parquet"
KINDS = (TABLE_REF, PARQUET)
_PARQUET_MAGIC = b"PAR1"


class DatasetKindError(ValueError):
    """A dataset that does not hold what the step needs, or does not say what it holds."""


@dataclass(frozen=True)
class TableRef:
    """Names a warehouse table and records what a step saw in it."""

    warehouse: str  # warehouse URI (see components.warehouse)
    schema: str
    table: str
    rows: int
    data_version: str = ""
    # The fingerprint of the source files the table was loaded from (a tagifai.sources.SourceFingerprint
    # token), when the loader read them itself; "" otherwise (e.g. an Airbyte server sync).
    source_fingerprint: str = ""

    @property
    def fqn(self) -> str:
        return f"{self.schema}.{self.table}"

    def to_json(self) -> str:
        return json.dumps({"kind": TABLE_REF, **asdict(self)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TableRef:
        data = json.loads(text)
        if data.pop("kind", None) != TABLE_REF:
            raise ValueError("not a table reference")
        return cls(**data)


def write_table_ref(artifact: Any, ref: TableRef) -> None:
    """Write a table reference to a KFP artifact: the file body and its metadata (``kind: table_ref``)."""
    path = Path(artifact.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(ref.to_json())
    artifact.metadata.update({"kind": TABLE_REF, **asdict(ref)})


def dataset_kind(path: str | Path, metadata: Mapping[str, Any] | None = None) -> str:
    """What the dataset at `path` holds: ``table_ref`` or ``parquet``.

    Args:
        path: The artifact's file or folder.
        metadata: The artifact's metadata; its ``kind``, when recorded, says.

    Raises:
        DatasetKindError: The metadata names another kind; or it names none, and `path` is
            missing or holds neither parquet nor a table reference.
    """
    kind = str((metadata or {}).get("kind") or "")
    if kind:
        if kind not in KINDS:
            raise DatasetKindError(
                f"dataset {path}: its metadata says kind {kind!r}; a dataset holds {' or '.join(KINDS)}"
            )
        return kind
    p = Path(path)
    if p.is_dir():
        return PARQUET  # a folder of parquet files
    if not p.is_file():
        raise DatasetKindError(f"dataset {path} does not exist")
    with p.open("rb") as fh:
        head = fh.read(len(_PARQUET_MAGIC))
    if head == _PARQUET_MAGIC:
        return PARQUET
    if head.lstrip().startswith(b"{") and _is_table_ref(p):
        return TABLE_REF
    raise DatasetKindError(
        f"dataset {path} records no kind in its metadata and holds neither parquet (a file starting "
        f'with PAR1, or a folder of them) nor a table reference (JSON with "kind": "{TABLE_REF}")'
    )


def _is_table_ref(path: Path) -> bool:
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and data.get("kind") == TABLE_REF


def read_table_ref(path: str | Path, metadata: Mapping[str, Any] | None = None) -> TableRef:
    """The table reference the dataset at `path` holds (its kind as :func:`dataset_kind` says).

    Raises:
        DatasetKindError: The dataset holds parquet, or says it is a reference but is not one.
    """
    kind = dataset_kind(path, metadata)
    if kind != TABLE_REF:
        raise DatasetKindError(f"dataset {path} holds {kind}, not a table reference")
    try:
        return TableRef.from_json(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError, TypeError) as exc:
        raise DatasetKindError(
            f"dataset {path}: its metadata says {TABLE_REF}, but it holds no table reference ({exc})"
        ) from None
