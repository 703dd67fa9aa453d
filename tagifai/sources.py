"""A source folder, read safely: regular files inside it only, and a fingerprint of the pair.

A source folder holds ``projects.csv`` and ``tags.csv``. Everything that reads one (the
embedded loader, the CLI's source check, the watcher) opens those files through here:

- Only a regular file directly inside the folder is read. A symbolic link (wherever it
  points: a key file elsewhere, or another file of the folder), a FIFO, a socket, a device
  or a directory under one of those names is refused before a byte of it is read, with a
  message naming the path and what it is, and nothing it holds.
- Checking and opening are one step: the file is opened without following a link
  (``O_NOFOLLOW``) and without waiting for a FIFO's writer (``O_NONBLOCK``), and what was
  opened must be the regular file that was checked (same device and inode), so a link
  swapped in between is refused too.
- A :class:`SourceFingerprint` names the content of the pair: the SHA-256 of each file. A
  run that records it for each of its reads can tell whether they all saw one version.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

SOURCE_FILES = ("projects.csv", "tags.csv")
_BLOCK = 1 << 20
# Digest characters kept per file in a fingerprint's token: enough to tell versions apart.
_TOKEN_HEX = 16
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | os.O_CLOEXEC


class SourceFileError(ValueError):
    """A source file cannot be read as one; the message names the path, never the content."""


class SourceChanged(SourceFileError):
    """A source file changed while it was being read."""


def _kind(mode: int) -> str:
    kinds = (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    )
    return next((text for test, text in kinds if test(mode)), "not a regular file")


def check_source_file(folder: str | Path, name: str) -> os.stat_result:
    """Check that ``folder/name`` is a regular file inside ``folder``, without reading it.

    Args:
        folder: The source folder (it may itself be reached through a link).
        name: A plain file name, e.g. ``projects.csv``.

    Returns:
        The file's ``lstat``.

    Raises:
        SourceFileError: The folder or the file does not exist, ``name`` is not a plain file
            name, or the file is a link, a FIFO, a socket, a device or a directory.
    """
    folder = Path(folder)
    path = folder / name
    if not name or name in (".", "..") or Path(name).name != name:
        raise SourceFileError(f"{path}: {name!r} is not a file name inside the source folder")
    if not folder.is_dir():
        raise SourceFileError(f"{path}: source folder {folder} does not exist")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise SourceFileError(f"{path}: file not found") from None
    except OSError as exc:
        raise SourceFileError(f"{path}: cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise SourceFileError(
            f"{path}: is {_kind(st.st_mode)}, not a regular file; sources are read only from "
            f"regular files inside the source folder (copy the file into {folder})"
        )
    return st


def open_source_file(folder: str | Path, name: str) -> BinaryIO:
    """Open ``folder/name`` for reading once :func:`check_source_file` accepts it.

    Returns:
        The open file (binary); the caller closes it (``with open_source_file(...) as fh``).

    Raises:
        SourceFileError: As :func:`check_source_file`.
        SourceChanged: The file was replaced between the check and the open.
    """
    checked = check_source_file(folder, name)
    path = Path(folder) / name
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:  # e.g. ELOOP: a link was put there after the check
        raise SourceChanged(f"{path}: was replaced while being opened ({exc.strerror})") from None
    opened = os.fstat(fd)
    if not stat.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) != (checked.st_dev, checked.st_ino):
        os.close(fd)
        raise SourceChanged(f"{path}: was replaced while being opened")
    return os.fdopen(fd, "rb")


def _stamp(st: os.stat_result) -> tuple[int, int, int]:
    return st.st_ino, st.st_size, st.st_mtime_ns


def _blocks(fh: BinaryIO) -> Iterator[bytes]:
    """A file's content, block by block."""
    yield from iter(lambda: fh.read(_BLOCK), b"")


def _digest(folder: Path, name: str, copy_to: Path | None = None) -> str:
    """SHA-256 of one source file (copied to ``copy_to`` on the way); refuses a file written meanwhile."""
    h = hashlib.sha256()
    with open_source_file(folder, name) as fh:
        before = _stamp(os.fstat(fh.fileno()))
        out = copy_to.open("xb") if copy_to is not None else None
        try:
            read = 0
            for block in _blocks(fh):
                h.update(block)
                read += len(block)
                if out is not None:
                    out.write(block)
        finally:
            if out is not None:
                out.close()
        after = _stamp(os.fstat(fh.fileno()))
    if before != after or read != after[1]:
        raise SourceChanged(
            f"{folder / name}: changed while it was being read; load again once it is written"
        )
    return h.hexdigest()


@dataclass(frozen=True)
class SourceFingerprint:
    """The content of a source folder's files: each file's SHA-256, in ``SOURCE_FILES`` order."""

    digests: tuple[tuple[str, str], ...]

    @property
    def key(self) -> str:
        """A short hash of the whole pair."""
        text = "".join(f"{name}\0{digest}\n" for name, digest in self.digests)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def token(self) -> str:
        """The fingerprint as artifacts record it: ``projects.csv=<hex>;tags.csv=<hex>``."""
        return ";".join(f"{name}={digest[:_TOKEN_HEX]}" for name, digest in self.digests)

    @staticmethod
    def files_of(token: str) -> dict[str, str]:
        """The per-file digests in a :attr:`token` (an unreadable token gives ``{}``)."""
        files = {}
        for part in token.split(";"):
            name, sep, digest = part.partition("=")
            if not sep:
                return {}
            files[name] = digest
        return files


def read_source_fingerprint(folder: str | Path, files: tuple[str, ...] = SOURCE_FILES) -> SourceFingerprint:
    """The fingerprint of what ``folder`` holds now, each file read through :func:`open_source_file`.

    Raises:
        SourceFileError: A file is missing or not a regular file inside the folder.
        SourceChanged: A file was written while it was being read.
    """
    folder = Path(folder)
    return SourceFingerprint(tuple((name, _digest(folder, name)) for name in files))


def snapshot_source_file(
    folder: str | Path, name: str, copy_to: str | Path, files: tuple[str, ...] = SOURCE_FILES
) -> SourceFingerprint:
    """Copy one source file to ``copy_to`` and return the fingerprint of the pair it belongs to.

    What is copied is exactly what is hashed (one read), so a loader that reads the copy
    loads what the fingerprint names. The other files are hashed before and after that read:
    the fingerprint is the pair as it stood while the file was copied, never a pair the folder
    never held at once.

    Raises:
        SourceFileError: A file is missing or not a regular file inside the folder.
        SourceChanged: A file changed while the pair was being read.
    """
    folder = Path(folder)
    if name not in files:
        raise SourceFileError(f"{folder / name}: not one of the source files {', '.join(files)}")
    others = [n for n in files if n != name]
    before = {n: _digest(folder, n) for n in others}
    copied = _digest(folder, name, copy_to=Path(copy_to))
    changed = [n for n in others if _digest(folder, n) != before[n]]
    if changed:
        raise SourceChanged(
            f"{folder}: {', '.join(changed)} changed while {name} was being read; load again once "
            "the source is written"
        )
    digests = {**before, name: copied}
    return SourceFingerprint(tuple((n, digests[n]) for n in files))
