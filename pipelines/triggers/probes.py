"""What the watcher (:mod:`pipelines.triggers.watch`) watches: the *data version* of a source folder
(``projects.csv`` + ``tags.csv``) or of the published warehouse table — row count, latest
``created_on`` and a content hash, whose ``key`` identifies it. The same content gives the
same key whenever it is seen, so a source that goes back to an earlier content has that
content's key again.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

DEFAULT_SETTLE_S = 5.0
SOURCE_FILES = ("projects.csv", "tags.csv")


@dataclass(frozen=True)
class DataVersion:
    """What the watched data looks like now; `key` (a content hash) identifies it."""

    key: str
    rows: int
    max_created_on: str

    def describe(self) -> str:
        return f"{self.key} ({self.rows} rows, latest created_on {self.max_created_on or '-'})"


class Probe(Protocol):
    """Computes the current data version; None when the data cannot be read right now."""

    description: str
    problem: str  # why the last `current()` returned None

    def current(self) -> DataVersion | None: ...


class SourceProbe:
    """A folder with ``projects.csv`` and ``tags.csv`` (what the dataops pipeline loads).

    Files modified less than `settle_s` seconds ago are being written: the poll waits.
    Unchanged files (size and mtime) are not read again.
    """

    def __init__(
        self, folder: str | Path, settle_s: float = DEFAULT_SETTLE_S, clock: Callable[[], float] = time.time
    ):
        self.folder = Path(folder).expanduser().resolve()
        self.settle_s = settle_s
        self.clock = clock
        self.description = f"source {self.folder}"
        self.problem = ""
        self._cache: tuple[Any, DataVersion] | None = None

    def current(self) -> DataVersion | None:
        from tagifai.sources import SourceFileError, check_source_file, open_source_file

        paths = [self.folder / name for name in SOURCE_FILES]
        missing = [p.name for p in paths if not p.exists() and not p.is_symlink()]
        if missing:
            self.problem = f"{self.folder} has no {', '.join(missing)}"
            return None
        # The loader reads only regular files inside the folder; the watcher reads what it reads.
        try:
            stats = [check_source_file(self.folder, name) for name in SOURCE_FILES]
        except SourceFileError as exc:
            self.problem = str(exc)
            return None
        age = self.clock() - max(s.st_mtime for s in stats)
        if age < self.settle_s:
            self.problem = f"source files changed {age:.1f}s ago (settle time {self.settle_s:g}s)"
            return None
        fingerprint = tuple((s.st_size, s.st_mtime_ns) for s in stats)
        if self._cache is not None and self._cache[0] == fingerprint:
            return self._cache[1]
        digest = hashlib.sha256()
        import pandas as pd

        try:
            for path in paths:
                digest.update(path.name.encode() + b"\0")
                with open_source_file(self.folder, path.name) as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        digest.update(block)
            with open_source_file(self.folder, paths[0].name) as f:
                created = pd.read_csv(f, usecols=["created_on"])["created_on"]
        except SourceFileError as exc:
            self.problem = str(exc)
            return None
        except (ValueError, pd.errors.ParserError) as exc:
            self.problem = f"cannot read {paths[0]}: {exc}"
            return None
        version = DataVersion(
            digest.hexdigest()[:16], len(created), str(created.dropna().astype(str).max() or "")
        )
        self._cache = (fingerprint, version)
        return version


# How long a warehouse probe waits for its read turn before it reports the warehouse busy.
PROBE_WAIT_S = 10.0


class WarehouseProbe:
    """The published table: ``count(*)``, ``max(created_on)`` and a sum of row hashes.

    DuckDB computes all three in SQL. A run that holds the warehouse's write turn makes
    the probe wait up to ``PROBE_WAIT_S``, then report "busy" (naming the holder) and try
    again at the next poll. BigQuery: the table is read and hashed like extract's data_version.
    """

    def __init__(self, uri: str, schema: str = "mlops_course", table: str = "labeled_projects"):
        from components.warehouse import ident, parse_uri

        self.uri = uri
        self.wh = parse_uri(uri)
        self.schema, self.table = ident(schema), ident(table)
        self.description = f"warehouse {self.wh} table {schema}.{table}"
        self.problem = ""

    def current(self) -> DataVersion | None:
        if self.wh.kind != "duckdb":
            from components.versions import frame_version
            from components.warehouse import read_table

            df = read_table(self.uri, self.schema, self.table)
            latest = str(df["created_on"].max()) if len(df) else ""
            return DataVersion(frame_version(df), len(df), latest)
        from components.warehouse import WarehouseError, duckdb_connect, duckdb_table_exists

        if not Path(self.wh.path).exists():
            self.problem = f"{self.wh.path} does not exist yet"
            return None
        try:
            # A short wait: a run that holds the write turn is reported, and polled again later.
            with duckdb_connect(
                self.wh.path, read_only=True, purpose="probe for new data", wait_s=PROBE_WAIT_S
            ) as con:
                if not duckdb_table_exists(con, self.schema, self.table):
                    self.problem = f"table {self.schema}.{self.table} does not exist yet"
                    return None
                row = con.execute(
                    f"select count(*), max(created_on)::varchar, coalesce(sum(hash(t)), 0)::varchar "
                    f'from "{self.schema}"."{self.table}" t'
                ).fetchone()
        except WarehouseError as exc:  # e.g. a pipeline holds the write turn
            self.problem = f"warehouse busy or unreadable: {str(exc).splitlines()[0]}"
            return None
        assert row is not None
        rows, latest, hashes = int(row[0]), str(row[1] or ""), str(row[2])
        key = hashlib.sha256(f"{rows}:{latest}:{hashes}".encode()).hexdigest()[:16]
        return DataVersion(key, rows, latest)
