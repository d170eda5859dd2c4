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


def chunk_windows(
    doc: AnnotatedDocument, window: int, context: int, special_ids: set[int]
) -> tuple[list[list[int]], list[tuple[int, int]]]:
    """Per span of ``doc``: its window's token ids and where the span's tokens sit in it ([first, last)).

    ``special_ids`` empty: raw slices, no frame. The context shrinks where a chunk and its frame leave less than
    ``2 * context`` tokens of ``window``; a chunk that does not fit the window with its frame is an error (the
    annotate stage caps chunks at the model window)."""
    ids = doc.input_ids
    prefix, suffix = special_affixes(ids, special_ids)
    windows, kept = [], []
    for span in doc.spans:
        size = span.token_end - span.token_start
        room = window - size - len(prefix) - len(suffix)
        if room < 0:
            raise ValueError(f"a chunk of {size} tokens does not fit a window of {window} tokens with its frame")
        side = min(context, room // 2)
        start, end = max(0, span.token_start - side), min(len(ids), span.token_end + side)
        head = prefix if start > 0 else []
        windows.append(head + list(ids[start:end]) + (suffix if end < len(ids) else []))
        kept.append((len(head) + span.token_start - start, len(head) + span.token_end - start))
    return windows, kept


def chunk_centred_work(doc: AnnotatedDocument, window: int, context: int, special_ids: set[int]) -> int:
    """Tokens the encoder processes for ``doc``'s chunk-centred windows."""
    return sum(len(ids) for ids in chunk_windows(doc, window, context, special_ids)[0])


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
    windows: list[list[int]] = []
    kept: list[tuple[int, int]] = []
    owners: list[tuple[int, int]] = []  # per window: (document, row)
    for d, doc in enumerate(docs):
        w, k = chunk_windows(doc, window, context, special_ids)
        windows += w
        kept += k
        owners += [(d, row) for row in range(len(w))]
    means = [np.zeros((len(doc.spans), encoder.dim), np.float32) for doc in docs]
    remaining = [len(doc.spans) for doc in docs]
    told = 0
    try:
        for index, output in encoder.iter_token_batches(windows, token_budget=token_budget):
            (d, row), (first, last) = owners[index], kept[index]
            means[d][row] = output[first:last].mean(axis=0, dtype=np.float32)
            remaining[d] -= 1
            if remaining[d] == 0 and on_tokens is not None:
                on_tokens(len(docs[d].input_ids))
                told += len(docs[d].input_ids)
    except SequenceDoesNotFit:
        if on_tokens is not None and told:
            on_tokens(-told)
        raise
    return [l2_normalize(vectors) for vectors in means]


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
