"""Chunk-centred windows: a late-only method for documents longer than the encoder window.

Every chunk gets a window of its own: up to ``context`` tokens of the document before it, the chunk, and up to
``context`` tokens after it, framed with the document's own leading and trailing special tokens where the slice
lacks them ([CLS] ... [SEP] for BERT). Only the chunk's own outputs are pooled. Every chunk thus sees the same
symmetric context whatever its position, and the window follows the chunk size instead of the encoder's. There is
no naive pass; the encoder processes about (C + 2 * context + 2) / C tokens per document token for chunks of C
tokens (2.0 for 64-token chunks and 1.26 for 256-token chunks at ``context`` 32).

Why: with windows of the encoder's size, pure late chunking lost to naive chunking on long meetings at 256-token
chunks whatever the layout; chunk-centred windows with 32 tokens of context were measured at or above naive chunking
at 64 and 256 tokens (docs/retrieval-quality.md, "A late-only method").
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from latechunk.chunking.spans import AnnotatedDocument
from latechunk.embedding.batching import MIN_WINDOW, SequenceDoesNotFit
from latechunk.embedding.config import LateChunkingConfig
from latechunk.embedding.encoders.base import DEFAULT_TOKEN_BUDGET, Encoder
from latechunk.embedding.pooling import l2_normalize

log = logging.getLogger(__name__)


def special_affixes(input_ids: Sequence[int], special_ids: set[int]) -> tuple[list[int], list[int]]:
    """The document's leading and trailing special tokens, e.g. ([CLS], [SEP])."""
    start, end = 0, len(input_ids)
    while start < end and input_ids[start] in special_ids:
        start += 1
    while end > start and input_ids[end - 1] in special_ids:
        end -= 1
    return list(input_ids[:start]), list(input_ids[end:])


@dataclass(frozen=True)
class ChunkWindow:
    """One encoder input of a chunk: ``ids``, whose outputs [first, last) are tokens of span ``row``."""

    row: int
    ids: list[int]
    first: int
    last: int


def chunk_windows(doc: AnnotatedDocument, window: int, context: int, special_ids: set[int]) -> list[ChunkWindow]:
    """The windows of ``doc``'s spans, one per span in span order, except for a span longer than ``window``.

    ``special_ids`` empty: raw slices, no frame. The context shrinks where a chunk and its frame leave less than
    ``2 * context`` tokens of ``window``; a chunk too long to be framed in the window is encoded alone, unframed;
    a chunk longer than the window (chunks are capped at the model's window, not at a shorter configured one) is
    encoded in consecutive raw slices of its own tokens, without context."""
    ids = doc.input_ids
    prefix, suffix = special_affixes(ids, special_ids)
    windows = []
    for row, span in enumerate(doc.spans):
        size = span.token_end - span.token_start
        if size > window:
            windows += [ChunkWindow(row, list(ids[at : min(at + window, span.token_end)]), 0,
                                    min(window, span.token_end - at))
                        for at in range(span.token_start, span.token_end, window)]  # fmt: skip
            continue
        frame = (prefix if span.token_start > 0 else [], suffix if span.token_end < len(ids) else [])
        if size + len(frame[0]) + len(frame[1]) > window:  # a chunk about the window's size: alone, unframed
            frame = ([], [])
        side = min(context, (window - size - len(frame[0]) - len(frame[1])) // 2)
        start, end = max(0, span.token_start - side), min(len(ids), span.token_end + side)
        head = frame[0] if start > 0 else []
        first = len(head) + span.token_start - start
        windows.append(ChunkWindow(row, head + list(ids[start:end]) + (frame[1] if end < len(ids) else []), first,
                                   first + size))  # fmt: skip
    return windows


def chunk_centred_work(doc: AnnotatedDocument, window: int, context: int, special_ids: set[int]) -> int:
    """Tokens the encoder processes for ``doc``'s chunk-centred windows."""
    return sum(len(w.ids) for w in chunk_windows(doc, window, context, special_ids))


def embed_chunk_centred(
    encoder: Encoder,
    docs: Sequence[AnnotatedDocument],
    *,
    window: int,
    context: int,
    frame_windows: bool = True,
    token_budget: int = DEFAULT_TOKEN_BUDGET,
    on_tokens: Callable[[int], None] | None = None,
) -> list[np.ndarray]:
    """Chunk vectors of ``docs`` from chunk-centred windows: per document an (n_chunks, dim) float32 array,
    L2-normalised, row i for ``doc.spans[i]``. ``on_tokens(n)`` is told a document's tokens once its last window is
    encoded (and, if a window does not fit the device, the tokens told so far as a negative number before
    `SequenceDoesNotFit` is raised)."""
    special_ids = set(encoder.tokenizer.all_special_ids) if frame_windows else set()
    windows: list[tuple[int, ChunkWindow]] = [(d, w) for d, doc in enumerate(docs)
                                              for w in chunk_windows(doc, window, context, special_ids)]  # fmt: skip
    sums = [np.zeros((len(doc.spans), encoder.dim), np.float32) for doc in docs]  # (n_chunks, dim) token sums
    remaining = np.bincount([d for d, _ in windows], minlength=len(docs))
    told = 0
    try:
        for index, output in encoder.iter_token_batches([w.ids for _, w in windows], token_budget=token_budget):
            d, w = windows[index]
            sums[d][w.row] += output[w.first : w.last].sum(axis=0, dtype=np.float32)
            remaining[d] -= 1
            if remaining[d] == 0 and on_tokens is not None:
                on_tokens(len(docs[d].input_ids))
                told += len(docs[d].input_ids)
    except SequenceDoesNotFit:
        if on_tokens is not None and told:
            on_tokens(-told)
        raise
    sizes = [np.array([[s.token_end - s.token_start] for s in doc.spans], np.float32) for doc in docs]
    return [l2_normalize(total / np.maximum(size, 1)) for total, size in zip(sums, sizes, strict=True)]


def embed_chunk_centred_retrying(
    encoder: Encoder,
    docs: Sequence[AnnotatedDocument],
    window: int,
    config: LateChunkingConfig,
    token_budget: int,
    on_tokens: Callable[[int], None] | None,
) -> list[np.ndarray]:
    """`embed_chunk_centred`, retried at the shorter window the encoder learnt when one window alone does not fit
    the device (as `latechunk.embedding.late_chunking.embed_documents` does for the other layouts)."""
    while True:
        fitted = min(window, encoder.window_limit or window)
        if fitted < MIN_WINDOW:
            raise SequenceDoesNotFit(fitted * 2)
        try:
            return embed_chunk_centred(encoder, docs, window=fitted, context=config.chunk_context,
                                       frame_windows=config.frame_windows, token_budget=token_budget,
                                       on_tokens=on_tokens)  # fmt: skip
        except SequenceDoesNotFit as error:
            log.warning("%s: %d documents are encoded again in chunk-centred windows of at most %d tokens",
                        error, len(docs), min(window, encoder.window_limit or window))  # fmt: skip
