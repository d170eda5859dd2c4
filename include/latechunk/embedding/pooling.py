"""Span pooling: the chunk vector is the mean of its token embeddings, in float32, then L2-normalised."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from latechunk.chunking.spans import ChunkSpan


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
    pooler = SpanPooler(spans, *embeddings.shape)
    pooler.add(0, embeddings)
    return pooler.vectors()


class SpanPooler:
    """Mean-pools the spans of one document from its token embeddings given piece by piece (window by window, in
    any order), so that the whole (n_tokens, dim) matrix of a long document never exists: memory is one running
    float32 sum per span. A span within one piece gets exactly what `pool_spans` on the whole matrix gives; a span
    across pieces adds one float32 partial sum per piece."""

    def __init__(self, spans: Sequence[ChunkSpan | tuple[int, int]], n_tokens: int, dim: int) -> None:
        bounds = [(span.token_start, span.token_end) if isinstance(span, ChunkSpan) else span for span in spans]
        for start, end in bounds:
            if not 0 <= start < end <= n_tokens:
                raise ValueError(f"span [{start}, {end}) is empty or outside the {n_tokens} token embeddings")
        self.n_tokens = n_tokens
        self.tokens_added = 0
        self._starts = np.array([start for start, _ in bounds], dtype=np.int64)  # (n_spans,)
        self._ends = np.array([end for _, end in bounds], dtype=np.int64)  # (n_spans,)
        self._sums = np.zeros((len(bounds), dim), dtype=np.float32)  # (n_spans, dim)

    @property
    def complete(self) -> bool:
        return self.tokens_added == self.n_tokens

    def add(self, first_token: int, embeddings: np.ndarray) -> None:
        """Adds the embeddings (n, dim) of tokens [first_token, first_token + n); each token once, in all."""
        last = first_token + len(embeddings)
        if not 0 <= first_token <= last <= self.n_tokens:
            raise ValueError(f"tokens [{first_token}, {last}) outside the document's {self.n_tokens} tokens")
        for row in np.flatnonzero((self._starts < last) & (self._ends > first_token)):
            lo = max(int(self._starts[row]), first_token) - first_token
            hi = min(int(self._ends[row]), last) - first_token
            self._sums[row] += embeddings[lo:hi].sum(axis=0, dtype=np.float32)
        self.tokens_added += len(embeddings)

    def vectors(self) -> np.ndarray:
        """(n_spans, dim) float32 means, L2-normalised; only once every token was added."""
        if not self.complete:
            raise ValueError(f"{self.tokens_added} of the document's {self.n_tokens} token embeddings were added")
        lengths = (self._ends - self._starts).astype(np.float32)[:, None]  # (n_spans, 1)
        return l2_normalize(self._sums / lengths)
