"""A Dataset says what it holds (metadata ``kind``); the steps branch on that, never on size."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from kfp import dsl

from components.artifacts import (
    PARQUET,
    TABLE_REF,
    DatasetKindError,
    TableRef,
    dataset_kind,
    read_table_ref,
    write_table_ref,
)
from components.ge_validate.core import validate_input
from components.publish.component import publish


def _ref(fingerprint: str = "") -> TableRef:
    return TableRef("duckdb:///w.duckdb", "mlops_course", "projects", 3, "v1", fingerprint)


def test_a_table_reference_is_read_by_its_kind_whatever_its_size(tmp_path: Path) -> None:
    artifact = dsl.Dataset(uri=str(tmp_path / "ref"))
    big = _ref(fingerprint="f" * 100_000)  # larger than any size guess would allow
    write_table_ref(artifact, big)
    assert artifact.metadata["kind"] == TABLE_REF
    assert Path(artifact.path).stat().st_size > 100_000
    assert read_table_ref(artifact.path, artifact.metadata) == big
    assert read_table_ref(artifact.path) == big  # no metadata: the JSON says it is a reference


def test_parquet_is_known_by_its_metadata_or_its_magic_and_is_no_reference(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    pd.DataFrame({"id": [1, 2]}).to_parquet(path)
    assert dataset_kind(path, {"kind": PARQUET}) == PARQUET
    assert dataset_kind(path) == PARQUET
    (tmp_path / "parts").mkdir()
    assert dataset_kind(tmp_path / "parts") == PARQUET
    with pytest.raises(DatasetKindError, match="holds parquet, not a table reference"):
        read_table_ref(path)


@pytest.mark.parametrize(
    ("body", "metadata", "message"),
    [
        (b"id,title\n1,a\n", None, "records no kind in its metadata and holds neither parquet"),
        (b'{"kind": "model"}', None, "holds neither parquet"),
        (b"PAR1....", {"kind": "csv"}, "its metadata says kind 'csv'; a dataset holds table_ref or parquet"),
        (b"PAR1....", {"kind": TABLE_REF}, "its metadata says table_ref, but it holds no table reference"),
    ],
)
def test_a_dataset_that_does_not_say_or_hold_what_it_should_is_refused_by_name(
    tmp_path: Path, body: bytes, metadata: dict[str, str] | None, message: str
) -> None:
    path = tmp_path / "dataset"
    path.write_bytes(body)
    with pytest.raises(DatasetKindError, match=message):
        read_table_ref(path, metadata)


def test_a_missing_dataset_is_named(tmp_path: Path) -> None:
    with pytest.raises(DatasetKindError, match=r"dataset .*nothing-here does not exist"):
        dataset_kind(tmp_path / "nothing-here")


def test_publish_refuses_parquet_and_validation_refuses_an_unknown_kind(tmp_path: Path) -> None:
    path = tmp_path / "snapshot"
    pd.DataFrame({"id": [1]}).to_parquet(path)
    audited = dsl.Dataset(uri=str(path), metadata={"kind": PARQUET})
    published = dsl.Dataset(uri=str(tmp_path / "published"))
    with pytest.raises(DatasetKindError, match="holds parquet, not a table reference"):
        publish.python_func(audited=audited, published=published)
    assert not Path(published.path).exists()  # nothing written
    with pytest.raises(DatasetKindError, match="kind 'rows'"):
        validate_input(path, "projects", metadata={"kind": "rows"})
