"""Data sources for local runs: folders holding `projects.csv` and `tags.csv`.

- ``sample``: generated (:mod:`tagifai.sample`), deterministic, any size (the default;
  works offline).
- ``madewithml``: the lesson's public dataset, downloaded once at a pinned commit and
  checksum-verified.
- any folder path that holds the two files, as regular files (``tagifai.sources``).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from tagifai.sample import DEFAULT_SAMPLE_ROWS, write_sample
from tagifai.sources import SOURCE_FILES, SourceFileError, check_source_file

MADEWITHML_COMMIT = "e8dfdbe98f55cba8befaf8409e16e48fac2d26d8"
MADEWITHML_URL = f"https://raw.githubusercontent.com/GokuMohandas/Made-With-ML/{MADEWITHML_COMMIT}/datasets"
MADEWITHML_SHA256 = {
    "projects.csv": "fd698d5471c476b3831d992296f7be0487d6b0fb5ba4452aa9ad6b490d0ed335",
    "tags.csv": "ceac72f34d894565b84e5a40f447e7f1e5421c3bfdf2375291780f653ba7c8fb",
}


class SourceUnavailable(RuntimeError):
    """A data source could not be found or fetched."""


# --------------------------------------------------------------------------- madewithml


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch_madewithml(cache_dir: str | Path, base_url: str = MADEWITHML_URL, timeout: float = 30) -> Path:
    """Download the lesson's dataset at the pinned commit into `cache_dir/madewithml` (once).

    Each file is checked against its pinned SHA-256; a mismatch or a network failure raises
    `SourceUnavailable` and leaves no partial file in the cache.
    """
    out = Path(cache_dir) / "madewithml"
    if all((out / f).exists() and sha256_file(out / f) == MADEWITHML_SHA256[f] for f in SOURCE_FILES):
        return out
    out.mkdir(parents=True, exist_ok=True)
    for name in SOURCE_FILES:
        url = f"{base_url}/{name}"
        part = out / f".{name}.part"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(part, "wb") as f:
                shutil.copyfileobj(resp, f)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            part.unlink(missing_ok=True)
            raise SourceUnavailable(
                f"could not download the madewithml dataset from {url} ({exc}). Are you offline? "
                "Use --source PATH with a folder holding projects.csv and tags.csv, or --source sample."
            ) from None
        digest = sha256_file(part)
        if digest != MADEWITHML_SHA256[name]:
            part.unlink(missing_ok=True)
            raise SourceUnavailable(
                f"checksum mismatch for {url}: got {digest}, expected {MADEWITHML_SHA256[name]}"
            )
        part.replace(out / name)
    return out


# --------------------------------------------------------------------------- resolve


def resolve_source(
    spec: str, cache_dir: str | Path | None = None, sample_rows: int = DEFAULT_SAMPLE_ROWS, seed: int = 0
) -> Path:
    """A folder holding `projects.csv` and `tags.csv` for `spec`.

    `spec` is ``sample`` (or ``sample:ROWS``), ``madewithml``, or a folder path. Generated and
    downloaded sources are cached under `cache_dir` (default: a temp folder).
    """
    cache = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "kfp-mlops-cache"
    rows = check_source_spec(spec, sample_rows)
    if rows is not None:
        folder = cache / f"sample-{rows}-seed{seed}"
        if not all((folder / f).exists() for f in SOURCE_FILES):
            write_sample(folder, rows=rows, seed=seed)
        return folder
    if spec == "madewithml":
        return fetch_madewithml(cache)
    return Path(spec).expanduser().resolve()


def check_source_spec(spec: str, sample_rows: int = DEFAULT_SAMPLE_ROWS) -> int | None:
    """Check a source as given, without generating or downloading anything.

    Returns:
        The rows of a ``sample`` / ``sample:ROWS`` source; None for the others.

    Raises:
        SourceUnavailable: Not ``sample[:ROWS]``, ``madewithml`` or a folder with both files,
            each a regular file inside it (:func:`tagifai.sources.check_source_file`).
    """
    if spec == "sample" or spec.startswith("sample:"):
        text = spec.split(":", 1)[1] if ":" in spec else str(sample_rows)
        if not text.isdigit() or int(text) < 1:
            raise SourceUnavailable(f"source {spec!r}: sample:ROWS takes a positive whole number of rows")
        return int(text)
    if spec == "madewithml":
        return None
    folder = Path(spec).expanduser()
    if not folder.is_dir():
        raise SourceUnavailable(f"source {spec!r} is not sample, madewithml, or an existing folder")
    missing = [f for f in SOURCE_FILES if not (folder / f).exists() and not (folder / f).is_symlink()]
    if missing:
        raise SourceUnavailable(f"source folder {folder} is missing {', '.join(missing)}")
    for name in SOURCE_FILES:  # only regular files inside the folder are ever read
        try:
            check_source_file(folder, name)
        except SourceFileError as exc:
            raise SourceUnavailable(f"source {spec!r}: {exc}") from None
    return None
