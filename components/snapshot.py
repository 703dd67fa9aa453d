"""extract's parquet snapshot of the published table, as monitor and compose read it.

Both steps read the same snapshot (never the warehouse), so they see the same rows; its
metadata names the table and the cutoff extract applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.cutoff import NO_CUTOFF, Cutoff
from components.parquet import read_parquet
from components.warehouse import RAW_SCHEMA

if TYPE_CHECKING:
    import pandas as pd

# The published table extract snapshots (schema.table): named in messages and reports.
DEFAULT_TABLE = f"{RAW_SCHEMA}.labeled_projects"


@dataclass(frozen=True)
class Origin:
    """What a snapshot was taken of: the table (``schema.table``) and the cutoff extract applied."""

    table: str = DEFAULT_TABLE
    cutoff: Cutoff = NO_CUTOFF

    @property
    def note(self) -> str:
        """E.g. ``snapshot of mlops_course.labeled_projects: no cutoff: every row``."""
        return f"snapshot of {self.table}: {self.cutoff.note}"

    def metadata(self) -> dict[str, str]:
        """The table and the cutoff as extract records them on its snapshot."""
        return {"table": self.table, **self.cutoff.metadata()}


# A snapshot without recorded metadata: the published table, every row.
NO_ORIGIN = Origin()


def snapshot_origin(metadata: Mapping[str, Any]) -> Origin:
    """The table and the cutoff that extract recorded on its snapshot."""
    return Origin(str(metadata.get("table") or DEFAULT_TABLE), Cutoff.from_metadata(metadata))


def read_snapshot(path: str | Path, table: str = DEFAULT_TABLE) -> pd.DataFrame:
    """The rows of extract's parquet snapshot (a file or a folder of parquet files), sorted by id.

    Raises:
        ValueError: The snapshot has no rows (extract never writes one, but a hand-made
            dataset could be empty).
        components.warehouse.WarehouseError: It is missing or not parquet.
    """
    df = read_parquet(path)
    if df.empty:
        raise ValueError(f"the snapshot of {table} at {path} has no rows: nothing to monitor or compose")
    # A folder of files has no order; what follows must not depend on it (extract sorted by id).
    if "id" in df.columns:
        df = df.sort_values("id", kind="stable")
    return df.reset_index(drop=True)
