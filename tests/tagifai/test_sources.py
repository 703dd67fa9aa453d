"""tagifai.sources: a source folder is read only from regular files inside it, in one version."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from tagifai import datasets, sources
from tagifai.sources import (
    SourceChanged,
    SourceFileError,
    SourceFingerprint,
    check_source_file,
    open_source_file,
    read_source_fingerprint,
    snapshot_source_file,
)

PROJECTS = b"id,created_on,title,description\n1,2020-01-01,a,b\n"
TAGS = b"id,tag\n1,mlops\n"
# What a one-line service-account key looks like: the content no message may ever show.
KEY = b'{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----MIIEvAIBADANBg-SECRET"}\n'
SECRET = "MIIEvAIBADANBg-SECRET"


def _folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "projects.csv").write_bytes(PROJECTS)
    (path / "tags.csv").write_bytes(TAGS)
    return path


def _outside_key(tmp_path: Path) -> Path:
    key = tmp_path / "elsewhere" / "key.json"
    key.parent.mkdir()
    key.write_bytes(KEY)
    return key


def _link_out(folder: Path, tmp_path: Path) -> None:
    (folder / "projects.csv").symlink_to(_outside_key(tmp_path))


def _link_in(folder: Path, tmp_path: Path) -> None:
    (folder / "real.csv").write_bytes(PROJECTS)
    (folder / "projects.csv").symlink_to(folder / "real.csv")


def _fifo(folder: Path, tmp_path: Path) -> None:
    os.mkfifo(folder / "projects.csv")


def _directory(folder: Path, tmp_path: Path) -> None:
    (folder / "projects.csv").mkdir()


NOT_REGULAR: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "symlink to a key outside the folder": (_link_out, "a symbolic link"),
    "symlink to a file inside the folder": (_link_in, "a symbolic link"),
    "fifo": (_fifo, r"a FIFO \(named pipe\)"),
    "directory": (_directory, "a directory"),
}


def _source_with(case: str, tmp_path: Path) -> Path:
    folder = tmp_path / "source"
    folder.mkdir()
    (folder / "tags.csv").write_bytes(TAGS)
    NOT_REGULAR[case][0](folder, tmp_path)
    return folder


def _within(seconds: float, call: Callable[[], object]) -> BaseException | None:
    """Run `call` in a thread; fail the test if it blocks (a FIFO opened for reading would)."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # handed to the test
            raised.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "reading the source blocked"
    return raised[0] if raised else None


@pytest.mark.parametrize("case", list(NOT_REGULAR))
def test_a_source_file_that_is_not_a_regular_file_is_refused_before_it_is_read(
    case: str, tmp_path: Path
) -> None:
    folder = _source_with(case, tmp_path)
    path = folder / "projects.csv"
    kind = NOT_REGULAR[case][1]

    for call in (
        lambda: check_source_file(folder, "projects.csv"),
        lambda: open_source_file(folder, "projects.csv"),
        lambda: read_source_fingerprint(folder),
        lambda: snapshot_source_file(folder, "tags.csv", tmp_path / "copy.csv"),  # the other file of the pair
    ):
        error = _within(10, call)
        assert isinstance(error, SourceFileError)
        message = str(error)
        assert message.startswith(f"{path}: is "), message
        assert re.search(kind, message) and "not a regular file" in message
        assert SECRET not in message and "service_account" not in message
    assert not (tmp_path / "copy.csv").exists()


def test_a_device_is_refused() -> None:
    with pytest.raises(SourceFileError, match=r"^/dev/null: is a character device, not a regular file"):
        check_source_file("/dev", "null")


def test_only_plain_names_inside_the_folder_are_read(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "source")
    _outside_key(tmp_path)
    for name in ("../elsewhere/key.json", "sub/projects.csv", "..", ""):
        with pytest.raises(SourceFileError, match="is not a file name inside the source folder"):
            check_source_file(folder, name)
    with pytest.raises(SourceFileError, match=r"projects\.csv: file not found"):
        check_source_file(tmp_path / "elsewhere", "projects.csv")
    with pytest.raises(SourceFileError, match=r"source folder .*nope does not exist"):
        check_source_file(tmp_path / "nope", "projects.csv")


def test_a_link_put_in_place_after_the_check_is_not_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _folder(tmp_path / "source")
    key = _outside_key(tmp_path)
    real_check = sources.check_source_file

    def check_then_swap(f: str | Path, name: str) -> os.stat_result:
        checked = real_check(f, name)
        (folder / name).unlink()  # the race: a link replaces the checked file before the open
        (folder / name).symlink_to(key)
        return checked

    monkeypatch.setattr(sources, "check_source_file", check_then_swap)
    with pytest.raises(SourceChanged, match=r"projects\.csv: was replaced while being opened") as err:
        open_source_file(folder, "projects.csv")
    assert SECRET not in str(err.value)


def test_the_regular_file_reads_as_it_is(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "source")
    with open_source_file(folder, "projects.csv") as fh:
        assert fh.read() == PROJECTS


def test_the_fingerprint_names_the_content_of_each_file(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "source")
    first = read_source_fingerprint(folder)

    assert [name for name, _ in first.digests] == list(sources.SOURCE_FILES)
    assert SourceFingerprint.files_of(first.token) == {n: d[:16] for n, d in first.digests}
    assert read_source_fingerprint(_folder(tmp_path / "copy")) == first  # same bytes, same fingerprint
    os.utime(folder / "tags.csv", (0, 0))
    assert read_source_fingerprint(folder) == first  # a new mtime is not a new version

    (folder / "tags.csv").write_bytes(b"id,tag\n1,computer-vision\n")
    second = read_source_fingerprint(folder)
    assert second.key != first.key
    changed = SourceFingerprint.files_of(second.token)
    assert changed["projects.csv"] == SourceFingerprint.files_of(first.token)["projects.csv"]
    assert changed["tags.csv"] != SourceFingerprint.files_of(first.token)["tags.csv"]
    assert SourceFingerprint.files_of("not a token") == {}


def test_a_snapshot_holds_exactly_the_bytes_its_fingerprint_names(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "source")
    copy = tmp_path / "snapshot.csv"

    fingerprint = snapshot_source_file(folder, "projects.csv", copy)

    assert copy.read_bytes() == PROJECTS
    assert fingerprint == read_source_fingerprint(folder)
    with pytest.raises(SourceFileError, match="not one of the source files"):
        snapshot_source_file(folder, "other.csv", tmp_path / "x.csv")


def test_a_snapshot_refuses_a_pair_that_changed_while_it_was_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _folder(tmp_path / "source")
    real_blocks = sources._blocks
    reads: list[int] = []

    def rewrite_tags_meanwhile(fh: BinaryIO) -> Iterator[bytes]:
        # The reads are: tags (before), projects (the copy), tags (after).
        reads.append(os.fstat(fh.fileno()).st_ino)
        yield from real_blocks(fh)
        if len(reads) == 2:
            (folder / "tags.csv").write_bytes(b"id,tag\n1,computer-vision\n")

    monkeypatch.setattr(sources, "_blocks", rewrite_tags_meanwhile)
    with pytest.raises(SourceChanged, match=r"tags\.csv changed while projects\.csv was being read"):
        snapshot_source_file(folder, "projects.csv", tmp_path / "snapshot.csv")
    assert reads[1] == (folder / "projects.csv").stat().st_ino and len(reads) == 3


def test_a_file_written_while_it_is_read_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _folder(tmp_path / "source")
    real_blocks = sources._blocks

    def append_meanwhile(fh: BinaryIO) -> Iterator[bytes]:
        with (folder / "projects.csv").open("ab") as writer:  # the same file, written in place
            writer.write(b"2,2020-01-02,c,d\n")
        yield from real_blocks(fh)

    monkeypatch.setattr(sources, "_blocks", append_meanwhile)
    monkeypatch.setattr(sources, "_BLOCK", 4)
    with pytest.raises(SourceChanged, match=r"projects\.csv: changed while it was being read"):
        read_source_fingerprint(folder, files=("projects.csv",))


@pytest.mark.parametrize("case", list(NOT_REGULAR))
def test_the_cli_source_check_refuses_what_is_not_a_regular_file(case: str, tmp_path: Path) -> None:
    folder = _source_with(case, tmp_path)
    error = _within(10, lambda: datasets.check_source_spec(str(folder)))
    assert isinstance(error, datasets.SourceUnavailable)
    assert f"{folder / 'projects.csv'}: is " in str(error) and SECRET not in str(error)


def test_the_cli_source_check_still_names_a_missing_file(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "source")
    (folder / "tags.csv").unlink()
    (folder / "tags.csv").symlink_to(tmp_path / "gone")  # a dangling link is there, not missing
    with pytest.raises(datasets.SourceUnavailable, match=r"tags\.csv: is a symbolic link"):
        datasets.check_source_spec(str(folder))
    (folder / "tags.csv").unlink()
    with pytest.raises(datasets.SourceUnavailable, match=r"missing tags\.csv"):
        datasets.check_source_spec(str(folder))
