"""Small typed references that travel between steps while the data stays in the warehouse."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


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
        return json.dumps({"kind": "table_ref", **asdict(self)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TableRef:
        data = json.loads(text)
        if data.pop("kind", None) != "table_ref":
            raise ValueError("not a table reference")
        return cls(**data)


def write_table_ref(artifact: Any, ref: TableRef) -> None:
    """Write a table reference to a KFP artifact: the file body and its metadata."""
    path = Path(artifact.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(ref.to_json())
    artifact.metadata.update({"kind": "table_ref", **asdict(ref)})


def read_table_ref(path: str | Path) -> TableRef | None:
    """The table reference stored at ``path``, or None when the artifact holds data (parquet)."""
    p = Path(path)
    if p.is_dir() or p.stat().st_size > 65536:
        return None
    try:
        return TableRef.from_json(p.read_text())
    except (UnicodeDecodeError, ValueError, TypeError, json.JSONDecodeError):
        return None
