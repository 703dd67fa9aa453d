from __future__ import annotations

import hashlib
import http.server
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tagifai import datasets, sample


def test_sample_is_deterministic_and_independent_of_batching() -> None:
    p1, t1 = sample.generate_sample(500, seed=7)
    p2, t2 = sample.generate_sample(500, seed=7)
    pd.testing.assert_frame_equal(p1, p2)
    pd.testing.assert_frame_equal(t1, t2)
    p3, _ = sample.generate_sample(500, seed=8)
    assert not p1["title"].equals(p3["title"])


def test_sample_schema_uniqueness_and_dates() -> None:
    projects, tags = sample.generate_sample(3000)
    assert list(projects.columns) == ["id", "created_on", "title", "description"]
    assert list(tags.columns) == ["id", "tag"]
    assert projects["id"].is_unique and projects["id"].tolist() == tags["id"].tolist()
    assert not projects.duplicated(["title", "description"]).any()
    dates = pd.to_datetime(projects["created_on"], format="%Y-%m-%d %H:%M:%S")
    assert dates.is_monotonic_increasing and dates.min() >= pd.Timestamp("2020-02-20")


def test_sample_class_mix_matches_the_lesson() -> None:
    _, tags = sample.generate_sample(20_000)
    share = tags["tag"].value_counts(normalize=True)
    for tag, expected in sample.CLASS_MIX.items():
        assert share[tag] == pytest.approx(expected, abs=0.015), tag


def test_write_sample_streams_chunks_to_csv(tmp_path) -> None:
    seen = []
    out = sample.write_sample(
        tmp_path / "s", rows=sample.SAMPLE_CHUNK + 10, progress=lambda d, n: seen.append(d)
    )
    assert seen == [sample.SAMPLE_CHUNK, sample.SAMPLE_CHUNK + 10]
    projects = pd.read_csv(out / "projects.csv")
    assert len(projects) == sample.SAMPLE_CHUNK + 10 and projects["id"].is_unique


def test_resolve_source_sample_folder_and_errors(tmp_path, madewithml_dir) -> None:
    folder = datasets.resolve_source("sample:300", cache_dir=tmp_path)
    assert len(pd.read_csv(folder / "tags.csv")) == 300
    assert datasets.resolve_source(str(madewithml_dir)) == madewithml_dir
    with pytest.raises(datasets.SourceUnavailable, match="not sample, madewithml, or an existing folder"):
        datasets.resolve_source(str(tmp_path / "nope"))
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "projects.csv").write_text("id\n")
    with pytest.raises(datasets.SourceUnavailable, match=r"missing tags\.csv"):
        datasets.resolve_source(str(tmp_path / "half"))


@pytest.fixture
def local_file_server(tmp_path, local_http_server):
    """A local HTTP server standing in for the upstream repository (no internet here)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(root), **k)  # noqa: E731
    return root, local_http_server(handler)


def test_fetch_madewithml_from_local_stub_verifies_and_caches(
    tmp_path, madewithml_dir, local_file_server
) -> None:
    root, url = local_file_server
    for name in datasets.SOURCE_FILES:
        shutil.copy(madewithml_dir / name, root / name)
    out = datasets.fetch_madewithml(tmp_path / "cache", base_url=url)
    assert (
        hashlib.sha256((out / "projects.csv").read_bytes()).hexdigest()
        == datasets.MADEWITHML_SHA256["projects.csv"]
    )
    for name in datasets.SOURCE_FILES:
        (root / name).unlink()  # a second call must not download again
    assert datasets.fetch_madewithml(tmp_path / "cache", base_url=url) == out


def test_fetch_madewithml_rejects_a_checksum_mismatch(tmp_path, local_file_server) -> None:
    root, url = local_file_server
    for name in datasets.SOURCE_FILES:
        (root / name).write_text("id\n1\n")
    with pytest.raises(datasets.SourceUnavailable, match="checksum mismatch"):
        datasets.fetch_madewithml(tmp_path / "cache", base_url=url)
    assert not list(Path(tmp_path / "cache" / "madewithml").glob("*.csv"))


def test_fetch_madewithml_offline_gives_a_clear_error(tmp_path) -> None:
    with pytest.raises(datasets.SourceUnavailable, match="Are you offline"):
        datasets.fetch_madewithml(tmp_path, base_url="http://127.0.0.1:9/nowhere", timeout=2)
