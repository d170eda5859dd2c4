"""Late chunking: encode whole documents, then mean-pool each chunk's token embeddings.

Documents longer than the encoder window are encoded in overlapping windows ("long late chunking"): each window
holds at most ``window`` tokens and starts ``overlap`` tokens before the end of the previous one; the first
``overlap`` outputs of every window after the first are dropped, so every token's embedding comes from exactly
one window, and one that saw at least ``overlap`` tokens of left context. The last window ends exactly at the
document's end, so no window is spent on tokens that were already covered. Windows of all documents are
batched together by length under a token budget.

What equality to expect: a document that fits one window gets exactly the single-pass result. A longer one
does not, for any attention model, since a token only sees its own window. Interior windows are raw slices of
the token sequence (no [CLS]/[SEP] of their own, as in the reference implementation). For an ALiBi model
(jina-embeddings-v2) a window's outputs depend on relative positions only, so they equal the single pass
of those tokens taken alone, wherever the window sits in the document (translation invariance); for an
absolute-position model (BERT/MiniLM) positions restart at 0 in every window, so interior tokens are also seen
at other positions than in a single pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from latechunk.encoders.base import DEFAULT_TOKEN_BUDGET, Encoder
from latechunk.pooling import pool_spans
from latechunk.spans import AnnotatedDocument

DEFAULT_OVERLAP = 256


@dataclass(frozen=True)
class Window:
    """Tokens [start, end) of one document go through the encoder; outputs for [keep_from, end) are kept."""

    start: int
    end: int
    keep_from: int


def plan_windows(n_tokens: int, window: int, overlap: int) -> list[Window]:
    """Overlapping windows covering [0, n_tokens) such that kept ranges tile it exactly once."""
    if window < 1:
        raise ValueError(f"window must be >= 1 token, got {window}")
    if not 0 <= overlap < window:
        raise ValueError(f"overlap must satisfy 0 <= overlap < window, got overlap={overlap}, window={window}")
    if n_tokens == 0:
        return []
    windows = [Window(0, min(window, n_tokens), 0)]
    while windows[-1].end < n_tokens:
        covered = windows[-1].end
        start = covered - overlap
        windows.append(Window(start, min(start + window, n_tokens), covered))
    return windows


def default_overlap(window: int) -> int:
    return min(DEFAULT_OVERLAP, window // 4)


def embed_tokens(
    encoder: Encoder,
    documents: Sequence[Sequence[int]],
    *,
    window: int | None = None,
    overlap: int | None = None,
    token_budget: int = DEFAULT_TOKEN_BUDGET,
) -> list[np.ndarray]:
    """Per-token embeddings of whole documents: one (n_tokens, dim) float32 matrix per document."""
    window = window or encoder.max_length
    if window > encoder.max_length:
        raise ValueError(f"window {window} exceeds the encoder window of {encoder.max_length}")
    overlap = default_overlap(window) if overlap is None else overlap
    plans = [plan_windows(len(ids), window, overlap) for ids in documents]
    slices = [list(ids[w.start : w.end]) for ids, plan in zip(documents, plans, strict=True) for w in plan]
    outputs = iter(encoder.encode_token_batches(slices, token_budget=token_budget))
    matrices = []
    for ids, plan in zip(documents, plans, strict=True):
        kept = [next(outputs)[w.keep_from - w.start :] for w in plan]  # each (end - keep_from, dim)
        matrices.append(np.concatenate(kept, axis=0) if ids else np.zeros((0, encoder.dim), np.float32))
    return matrices


def embed_documents(
    encoder: Encoder,
    docs: Sequence[AnnotatedDocument],
    *,
    window: int | None = None,
    overlap: int | None = None,
    token_budget: int = DEFAULT_TOKEN_BUDGET,
) -> list[np.ndarray]:
    """Late-chunked chunk vectors: per document an (n_chunks, dim) float32 array, L2-normalised, row i for
    ``doc.spans[i]``.

    ``window`` defaults to the encoder window; ``overlap`` to min(256, window // 4) tokens.
    """
    matrices = embed_tokens(
        encoder, [doc.input_ids for doc in docs], window=window, overlap=overlap, token_budget=token_budget
    )
    return [
        pool_spans(matrix, doc.spans) if doc.spans else np.zeros((0, encoder.dim), np.float32)
        for matrix, doc in zip(matrices, docs, strict=True)
    ]
