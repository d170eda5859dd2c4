"""Span pooling: the chunk vector is the mean of its token embeddings, in float32, then L2-normalised."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from latechunk.spans import ChunkSpan


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation in float32; an all-zero row stays zero instead of becoming NaN."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0).astype(np.float32)


def pool_spans(token_embeddings: np.ndarray, spans: Sequence[ChunkSpan | tuple[int, int]]) -> np.ndarray:
    """Mean-pool ``token_embeddings`` (n_tokens, dim) over each span's [token_start, token_end).

    Returns (n_spans, dim) float32, L2-normalised, one row per span in the given order.
    """
    embeddings = np.asarray(token_embeddings, dtype=np.float32)  # (n_tokens, dim)
    n_tokens, dim = embeddings.shape
    pooled = np.empty((len(spans), dim), dtype=np.float32)  # (n_spans, dim)
    for row, span in enumerate(spans):
        start, end = (span.token_start, span.token_end) if isinstance(span, ChunkSpan) else span
        if not 0 <= start < end <= n_tokens:
            raise ValueError(f"span [{start}, {end}) is empty or outside the {n_tokens} token embeddings")
        pooled[row] = embeddings[start:end].mean(axis=0, dtype=np.float32)
    return l2_normalize(pooled)
