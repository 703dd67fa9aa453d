"""Parquet datasets, the files steps hand each other: written and read with fastparquet.

fastparquet writes and reads them in every image, so the train and optimize images need
neither pyarrow (~150 MB) nor DuckDB (~70 MB). A step that works on a dataset in DuckDB
(ge_validate streams it in bounded chunks) opens it as a view (:func:`parquet_view`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.warehouse import WarehouseError, duckdb_memory_limit

if TYPE_CHECKING:
    import duckdb
    import pandas as pd


def write_parquet(df: pd.DataFrame, path: str | Path) -> Path:
    """Write `df` as one parquet file (snappy, no index) with fastparquet; returns the path.

    A frame read back with :func:`read_parquet` equals the frame written (same dtypes, so the
    same data version). The file appears whole or not at all: it is written beside its final
    name and renamed into place.
    """
    import fastparquet

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    try:
        fastparquet.write(str(partial), df.reset_index(drop=True), write_index=False, compression="SNAPPY")
        partial.replace(out)
    except (ValueError, TypeError) as exc:  # a column fastparquet cannot store
        mixed = [str(c) for c in df.columns if df[c].dtype == object and not _all_text(df[c])]
        cause = f"column(s) {', '.join(mixed)} hold values that are not text" if mixed else exc
        raise WarehouseError(f"cannot write {out} as parquet: {cause}") from None
    finally:
        partial.unlink(missing_ok=True)
    return out


def _all_text(column: pd.Series) -> bool:
    return bool(column.dropna().map(lambda v: isinstance(v, str)).all())


def parquet_files(path: str | Path) -> list[str]:
    """The files of a parquet dataset: `path` itself, or the ``*.parquet`` files at any depth
    of the folder `path` (sorted); a clear error when there are none."""
    src = Path(path)
    if src.is_dir():
        files = sorted(str(f) for f in src.rglob("*.parquet") if f.is_file())
        if not files:
            raise WarehouseError(f"no parquet files in the folder {src}")
        return files
    if src.is_file():
        return [str(src)]
    raise WarehouseError(f"parquet dataset not found: {src}")


def read_parquet(path: str | Path) -> pd.DataFrame:
    """Read a parquet dataset (one file, or a folder of ``*.parquet`` files at any depth)
    into pandas with fastparquet, without pyarrow or DuckDB.

    Columns convert as in :func:`components.warehouse.read_table`: text is pandas' ``str`` dtype, an integer
    column with nulls is ``Int64`` (where pandas with pyarrow gives float64).
    """
    import fastparquet
    import pandas as pd

    parts = []
    for file in parquet_files(path):
        try:
            parquet = fastparquet.ParquetFile(file)
            part = parquet.to_pandas()
        except Exception as exc:  # fastparquet raises many types for a file that is not parquet
            raise WarehouseError(f"cannot read {file} as parquet: {type(exc).__name__}: {exc}") from None
        # fastparquet gives text as object columns; the warehouse readers give pandas' str.
        text = [c for c in part.columns if part[c].dtype == object and _is_text(parquet, c)]
        parts.append(part.astype(dict.fromkeys(text, "str")))
    return pd.concat(parts, ignore_index=True)


def _is_text(parquet: Any, column: str) -> bool:
    """Whether `column` of a fastparquet file holds UTF-8 strings (converted type UTF8 or
    logical type STRING), as opposed to bytes, JSON or nested values."""
    element = parquet.schema.schema_element(column)
    logical = getattr(element, "logicalType", None)
    return element.converted_type == 0 or getattr(logical, "STRING", None) is not None


# Where :func:`parquet_view` shows a parquet dataset to DuckDB.
PARQUET_SCHEMA = "artifact"
PARQUET_VIEW = "dataset"


@contextmanager
def parquet_view(path: str | Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB connection in which the parquet dataset at `path` is the view
    ``artifact.dataset``, for steps that work on it in DuckDB (ge_validate streams it in
    bounded chunks, as it does warehouse tables). Its rows convert to pandas as
    :func:`read_parquet`'s do, so :func:`components.versions.duckdb_table_version` of the view equals
    ``frame_version(read_parquet(path))``.
    """
    import duckdb

    listing = ", ".join("'" + f.replace("'", "''") + "'" for f in parquet_files(path))
    con = duckdb.connect(config={"memory_limit": duckdb_memory_limit()})
    try:
        con.execute(f"create schema {PARQUET_SCHEMA}")
        # Creating the view reads every file's footer: a file that is not parquet fails here.
        con.execute(f"create view {PARQUET_SCHEMA}.{PARQUET_VIEW} as select * from read_parquet([{listing}])")
    except duckdb.Error as exc:
        con.close()
        raise WarehouseError(f"cannot read {path} as parquet: {exc}") from None
    try:
        yield con
    finally:
        con.close()
