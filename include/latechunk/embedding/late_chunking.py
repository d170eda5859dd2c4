"""Late chunking: encode whole documents, then mean-pool each chunk's token embeddings.

Documents longer than the encoder window are encoded in overlapping windows ("long late chunking"): each window
holds at most ``window`` tokens and consecutive windows share ``overlap`` tokens; the outputs of every token are
kept from exactly one window. Windows of all documents are batched together by length under a token budget.

Window layouts (``LateChunkingConfig.window_layout``):

* ``stitched`` (the reference implementation's): a window starts ``overlap`` tokens before the end of the
  previous one and its first ``overlap`` outputs are dropped, so a kept token saw at least ``overlap`` tokens of
  left context and none on its right at the window's end. The last window ends at the document's end.
* ``centred``: the same windows (same encoder work), but each keeps its middle: ``overlap // 2`` tokens of
  context on the left and the rest on the right, so no kept token sits at a window's edge (except at the
  document's own ends). The last window is a full window ending at the document's end.

``frame_windows`` gives every window the document's own leading and trailing special tokens ([CLS] ... [SEP]
for BERT) where the raw slice lacks them; their outputs are dropped. BERT-style encoders were trained only on
framed sequences and use [CLS]/[SEP] as attention sinks, so a raw interior slice is out of distribution for them.

``naive_weight`` mixes each late chunk vector of a document longer than the window with the chunk's naive vector
(the chunk encoded alone as ``[CLS] chunk [SEP]``): ``l2(w * naive + (1 - w) * late)``, both L2-normalised first.
A document that fits one window keeps its pure late vectors: its chunks saw the whole document, which is where late
chunking is known to win; windowing is where it can lose, since a chunk's context is then an arbitrary slice.
Naive vectors cost one more encoder pass over a long document's tokens (plus two special tokens per chunk).

What equality to expect: a document that fits one window gets exactly the single-pass result (framing and layout
change nothing then). A longer one does not, for any attention model, since a token only sees its own window.
For an ALiBi model (jina-embeddings-v2) a window's outputs depend on relative positions only; for an
absolute-position model (BERT/MiniLM) positions restart at 0 in every window.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from latechunk.chunking.spans import AnnotatedDocument
from latechunk.embedding.batching import MIN_WINDOW, SequenceDoesNotFit
from latechunk.embedding.chunk_centred import chunk_centred_work, embed_chunk_centred_retrying, special_affixes
from latechunk.embedding.config import CHUNK_CENTRED, WINDOW_LAYOUTS, LateChunkingConfig, default_overlap
from latechunk.embedding.encoders.base import DEFAULT_TOKEN_BUDGET, Encoder
from latechunk.embedding.pooling import SpanPooler, l2_normalize

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Window:
    """Tokens [start, end) of one document go through the encoder; outputs for [keep_from, keep_to) are kept."""

    start: int
    end: int
    keep_from: int
    keep_to: int


def plan_windows(n_tokens: int, window: int, overlap: int, layout: str = "stitched") -> list[Window]:
    """Overlapping windows covering [0, n_tokens) such that kept ranges tile it exactly once, in order."""
    if window < 1:
        raise ValueError(f"window must be >= 1 token, got {window}")
    if not 0 <= overlap < window:
        raise ValueError(f"overlap must satisfy 0 <= overlap < window, got overlap={overlap}, window={window}")
    if layout not in WINDOW_LAYOUTS:
        raise ValueError(f"window layout must be one of {WINDOW_LAYOUTS}, got {layout!r}")
    if n_tokens <= window:
        return [Window(0, n_tokens, 0, n_tokens)] if n_tokens else []
    left = overlap if layout == "stitched" else overlap // 2
    right = overlap - left
    windows = [Window(0, window, 0, window - right)]
    while windows[-1].keep_to < n_tokens:
        covered = windows[-1].keep_to
        start = covered - left
        if start + window >= n_tokens:  # the last window: it ends at the document's end
            start = start if layout == "stitched" else n_tokens - window
            windows.append(Window(start, n_tokens, covered, n_tokens))
        else:
            windows.append(Window(start, start + window, covered, start + window - right))
    return windows


def encoded_tokens(
    n_tokens: int, window: int, overlap: int, layout: str = "stitched", frame: tuple[int, int] = (0, 0)
) -> int:
    """Tokens the encoder processes for a document of ``n_tokens`` (``frame``: special tokens added per window)."""
    plan = plan_windows(n_tokens, window - sum(frame) if n_tokens > window else window, overlap, layout)
    return sum(w.end - w.start + frame[0] * (w.start > 0) + frame[1] * (w.end < n_tokens) for w in plan)


def document_work(
    doc: AnnotatedDocument, window: int, overlap: int, config: LateChunkingConfig, special_ids: set[int]
) -> int:
    """Tokens the encoder processes for one document with `embed_documents`: its windows (with their frames) and,
    for a document longer than the window with a naive mix, every chunk again as ``[CLS] chunk [SEP]``."""
    n_tokens = len(doc.input_ids)
    if n_tokens <= window:
        return n_tokens
    prefix, suffix = special_affixes(doc.input_ids, special_ids) if config.frame_windows else ([], [])
    if config.window_layout == CHUNK_CENTRED:
        work = chunk_centred_work(doc, window, config.chunk_context, special_ids if config.frame_windows else set())
    else:
        work = encoded_tokens(n_tokens, window, overlap, config.window_layout, (len(prefix), len(suffix)))
    if config.naive_weight:
        work += sum(len(sequence) for sequence in naive_sequences(doc, special_ids))
    return work


def embed_tokens(encoder: Encoder, documents: Sequence[Sequence[int]], **options: Any) -> list[np.ndarray]:
    """Per-token embeddings of whole documents: one (n_tokens, dim) float32 matrix per document, in input order.
    ``options``: the keyword arguments of `iter_token_matrices`."""
    matrices: list[np.ndarray | None] = [None] * len(documents)
    for position, matrix in iter_token_matrices(encoder, documents, **options):
        matrices[position] = matrix
    return matrices


def iter_token_matrices(
    encoder: Encoder, documents: Sequence[Sequence[int]], **options: Any
) -> Iterator[tuple[int, np.ndarray]]:
    """``(position, (n_tokens, dim) float32 matrix)`` of each document as soon as its last window is encoded.
    ``options``: the keyword arguments of `iter_kept_outputs`. The embed stage never holds such a matrix
    (`embed_documents` pools the windows as they come); evaluations that compare poolings do."""
    filling: dict[int, tuple[np.ndarray, list[int]]] = {}  # position -> (matrix, [tokens filled])
    for position, ids in enumerate(documents):
        if not ids:
            yield position, np.zeros((0, encoder.dim), np.float32)
    for position, first, kept in iter_kept_outputs(encoder, documents, **options):
        n_tokens = len(documents[position])
        if len(kept) == n_tokens:
            yield position, kept
            continue
        if position not in filling:
            filling[position] = (np.empty((n_tokens, encoder.dim), np.float32), [0])
        matrix, filled = filling[position]
        matrix[first : first + len(kept)] = kept
        filled[0] += len(kept)
        if filled[0] == n_tokens:
            del filling[position]
            yield position, matrix


def iter_kept_outputs(
    encoder: Encoder,
    documents: Sequence[Sequence[int]],
    *,
    window: int | None = None,
    overlap: int | None = None,
    layout: str = "stitched",
    frame_windows: bool = False,
    token_budget: int = DEFAULT_TOKEN_BUDGET,
) -> Iterator[tuple[int, int, np.ndarray]]:
    """``(position, first token, kept outputs (n, dim) float32)`` of every window of every non-empty document,
    right after its forward pass. A document's windows tile its tokens exactly once, in no particular order; the
    outputs are views of the forward pass's output array, so that keeping none of them frees it.

    Documents that fit one window are encoded together, batched by length. Longer ones go in groups of about
    ``token_budget`` encoded tokens, so that a group's windows are batched together however many long documents
    there are.

    With ``frame_windows`` a document longer than the window is cut into raw slices of ``window`` minus its
    special tokens, and each slice gets the document's leading/trailing special tokens where it lacks them.
    """
    window = window or encoder.max_length
    if window > encoder.max_length:
        raise ValueError(f"window {window} exceeds the encoder window of {encoder.max_length}")
    overlap = default_overlap(window) if overlap is None else overlap
    special_ids = set(encoder.tokenizer.all_special_ids) if frame_windows else set()
    groups: list[list[int]] = [[k for k, ids in enumerate(documents) if len(ids) <= window]]
    group_tokens = token_budget
    for k, ids in enumerate(documents):
        if len(ids) > window:
            if group_tokens >= token_budget:
                groups.append([])
                group_tokens = 0
            groups[-1].append(k)
            group_tokens += encoded_tokens(len(ids), window, overlap, layout)
    for group in groups:
        yield from _encode_group(encoder, documents, group, window, overlap, layout, special_ids, token_budget)


def _encode_group(
    encoder: Encoder,
    documents: Sequence[Sequence[int]],
    group: Sequence[int],
    window: int,
    overlap: int,
    layout: str,
    special_ids: set[int],
    token_budget: int,
) -> Iterator[tuple[int, int, np.ndarray]]:
    slices: list[list[int]] = []
    owners: list[tuple[int, Window, int]] = []  # per slice: (position, window, shift of its outputs)
    for k in group:
        ids = documents[k]
        prefix, suffix = special_affixes(ids, special_ids) if len(ids) > window else ([], [])
        for w in plan_windows(len(ids), window - len(prefix) - len(suffix), overlap, layout):
            head = prefix if w.start > 0 else []
            slices.append(head + list(ids[w.start : w.end]) + (suffix if w.end < len(ids) else []))
            owners.append((k, w, len(head) - w.start))
    for index, output in encoder.iter_token_batches(slices, token_budget=token_budget):
        k, w, shift = owners[index]
        yield k, w.keep_from, output[w.keep_from + shift : w.keep_to + shift]  # (keep_to - keep_from, dim)


def naive_sequences(doc: AnnotatedDocument, special_ids: set[int]) -> list[list[int]]:
    """Each chunk alone with the document's own special tokens around its content tokens: [CLS] chunk [SEP]."""
    prefix, suffix = special_affixes(doc.input_ids, special_ids)
    lo, hi = len(prefix), len(doc.input_ids) - len(suffix)
    return [
        prefix + doc.input_ids[max(span.token_start, lo) : min(span.token_end, hi)] + suffix for span in doc.spans
    ]


def embed_naive(
    encoder: Encoder, docs: Sequence[AnnotatedDocument], *, token_budget: int = DEFAULT_TOKEN_BUDGET
) -> list[np.ndarray]:
    """Naive chunk vectors: every chunk encoded alone (``naive_sequences``) and mean-pooled, L2-normalised; each
    output is pooled right after its forward pass."""
    special_ids = set(encoder.tokenizer.all_special_ids)
    sequences = [naive_sequences(doc, special_ids) for doc in docs]
    means = [np.zeros((len(seqs), encoder.dim), np.float32) for seqs in sequences]
    owners = [(d, row) for d, seqs in enumerate(sequences) for row in range(len(seqs))]
    flat = [sequence for seqs in sequences for sequence in seqs]
    for index, output in encoder.iter_token_batches(flat, token_budget=token_budget):
        d, row = owners[index]
        means[d][row] = output.mean(axis=0, dtype=np.float32)
    return [l2_normalize(vectors) for vectors in means]


def mix_vectors(late: np.ndarray, naive: np.ndarray, naive_weight: float) -> np.ndarray:
    """``l2(w * naive + (1 - w) * late)`` row by row; both inputs L2-normalised (n_chunks, dim)."""
    if naive_weight == 0.0:
        return late
    return l2_normalize(naive_weight * naive + (1.0 - naive_weight) * late)


def embed_documents(
    encoder: Encoder,
    docs: Sequence[AnnotatedDocument],
    *,
    window: int | None = None,
    overlap: int | None = None,
    config: LateChunkingConfig | None = None,
    token_budget: int = DEFAULT_TOKEN_BUDGET,
    on_tokens: Callable[[int], None] | None = None,
    extra_spans: Sequence[Sequence[tuple[int, int]]] | None = None,
) -> list[np.ndarray]:
    """Late-chunked chunk vectors: per document an (n_chunks, dim) float32 array, L2-normalised, row i for
    ``doc.spans[i]``.

    ``extra_spans`` (per document, token spans [start, end) of its sections or whole text:
    `latechunk.chunking.levels`) are mean-pooled in the same pass, from the same windows, and follow the chunk rows
    of their document's array (n_chunks + n_extra rows). They are pure late vectors: the naive mix applies to
    chunks only (a section or a document can be longer than any window, so it has no naive vector).

    ``window`` defaults to the encoder window; ``overlap`` to min(256, window // 4) tokens; ``config`` to the
    default `LateChunkingConfig` (centred framed windows, naive weight 0.6; ``PLAIN`` is the reference's method).
    ``config.naive_weight`` applies to documents longer than ``window`` only. ``on_tokens(n)`` is told after every
    forward pass how many of the documents' tokens it encoded (their kept outputs; negative when a window that did
    not fit undid part of a document).

    Each window's kept outputs are added to its document's span sums right after its forward pass
    (`latechunk.embedding.pooling.SpanPooler`): memory grows with a document's chunks, never with its tokens times the
    vector size. A window that runs out of memory alone (`SequenceDoesNotFit`) is retried at the shorter window
    the encoder learnt (``encoder.window_limit``, kept for the rest of the task), with a warning: the documents it
    touches then get the vectors of that window, not of the configured one.
    """
    config = config or LateChunkingConfig()
    config.validate()
    window = window or encoder.max_length
    late: list[np.ndarray] = [np.zeros((0, encoder.dim), np.float32)] * len(docs)
    pending = [k for k, doc in enumerate(docs) if doc.spans]
    chunk_centred = [k for k in pending if config.window_layout == CHUNK_CENTRED and len(docs[k].input_ids) > window]
    pending = [k for k in pending if k not in set(chunk_centred)]
    if extra_spans and any(extra_spans[k] for k in chunk_centred):
        raise ValueError("chunk_centred windows pool chunks only: sections and documents need whole-document windows")
    while pending:
        fitted = min(window, encoder.window_limit or window)
        if fitted < MIN_WINDOW:
            raise SequenceDoesNotFit(fitted * 2)
        poolers = {k: SpanPooler([*docs[k].spans, *(extra_spans[k] if extra_spans else ())],
                                 len(docs[k].input_ids), encoder.dim) for k in pending}  # fmt: skip
        try:
            for position, first, kept in iter_kept_outputs(
                encoder,
                [docs[k].input_ids for k in pending],
                window=fitted,
                overlap=overlap if fitted == window or overlap is None else min(overlap, default_overlap(fitted)),
                layout=config.window_layout,
                frame_windows=config.frame_windows,
                token_budget=token_budget,
            ):
                k = pending[position]
                poolers[k].add(first, kept)
                if on_tokens is not None:
                    on_tokens(len(kept))
                if poolers[k].complete:
                    late[k] = poolers.pop(k).vectors()
            pending = []
        except SequenceDoesNotFit as error:
            undone = sum(pooler.tokens_added for pooler in poolers.values())
            log.warning(
                "%s: %d documents are encoded again in windows of %d tokens (configured: %d)",
                error, len(poolers), min(window, encoder.window_limit), window,
            )  # fmt: skip
            if on_tokens is not None and undone:
                on_tokens(-undone)
            pending = list(poolers)
    if chunk_centred:
        vectors = embed_chunk_centred_retrying(
            encoder, [docs[k] for k in chunk_centred], window, config, token_budget, on_tokens
        )
        for k, chunk_vectors in zip(chunk_centred, vectors, strict=True):
            late[k] = chunk_vectors
    long = [k for k, doc in enumerate(docs) if len(doc.input_ids) > window]
    if config.naive_weight == 0.0 or not long:
        return late
    naive = embed_naive(encoder, [docs[k] for k in long], token_budget=token_budget)
    for k, vectors in zip(long, naive, strict=True):
        n_chunks = len(docs[k].spans)
        late[k] = np.concatenate([mix_vectors(late[k][:n_chunks], vectors, config.naive_weight), late[k][n_chunks:]])
    return late

