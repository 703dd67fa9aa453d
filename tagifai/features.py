"""Feature families: TF-IDF n-grams, sentence embeddings, or both side by side.

Both blocks are row-normalized (TF-IDF rows and embeddings are unit vectors), so joined
they weigh the same and one linear classifier reads them together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer

from tagifai.config import FEATURE_FAMILIES as FAMILIES
from tagifai.config import TrainParams

TFIDF, EMBEDDINGS, BOTH = FAMILIES

# Texts -> one embedding row per text (an EmbeddingCache's or an encoder's method).
Embedder = Callable[[Sequence[str]], np.ndarray]


def check_family(family: str) -> str:
    if family not in FAMILIES:
        raise ValueError(f"unknown feature family {family!r}; known: {', '.join(FAMILIES)}")
    return family


def uses_tfidf(family: str) -> bool:
    return check_family(family) in (TFIDF, BOTH)


def uses_embeddings(family: str) -> bool:
    return check_family(family) in (EMBEDDINGS, BOTH)


def make_vectorizer(params: TrainParams) -> TfidfVectorizer:
    # Word unigrams carry most of the signal for the word analyzer; for characters,
    # single letters are noise, so character n-grams start at 2.
    low = 1 if params.analyzer == "word" else 2
    return TfidfVectorizer(
        analyzer=params.analyzer, ngram_range=(low, max(low, params.ngram_max_range)), sublinear_tf=True
    )


def join(
    texts: Sequence[str], vectorizer: TfidfVectorizer | None, embed: Embedder | None
) -> sparse.csr_matrix:
    """The feature rows of `texts`: the fitted TF-IDF block, the embedding block, or both."""
    blocks = []
    if vectorizer is not None:
        blocks.append(vectorizer.transform(texts))
    if embed is not None:
        blocks.append(sparse.csr_matrix(embed(texts)))
    if not blocks:
        raise ValueError("a model needs at least one feature block")
    return blocks[0].tocsr() if len(blocks) == 1 else sparse.hstack(blocks, format="csr")
