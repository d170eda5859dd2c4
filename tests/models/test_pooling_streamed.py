"""Streamed pooling: `embed_documents` adds each window's kept outputs to running span sums right after its forward
pass. Its vectors must equal the whole-matrix way (every window encoded, the document's token matrix stitched, then
`pool_spans`, then the naive mix), written out here independently, for every layout, framing and naive weight."""

from __future__ import annotations

import random

import numpy as np
import pytest
from latechunk.chunking.config import ChunkingConfig
from latechunk.chunking.spans import annotate_spans
from latechunk.embedding.config import CHUNK_CENTRED, WINDOW_LAYOUTS
from latechunk.embedding.late_chunking import (
    LateChunkingConfig,
    embed_documents,
    mix_vectors,
    naive_sequences,
    plan_windows,
    special_affixes,
)
from latechunk.embedding.pooling import SpanPooler, l2_normalize, pool_spans
from tiny_models import WORDS

WINDOW, OVERLAP = 32, 8


def texts() -> list[str]:
    """One document within the window, the others over 2 to ~20 windows."""
    rng = random.Random(7)
    return [" ".join(rng.choice(WORDS) for _ in range(n)) + "." for n in (12, 40, 95, 300, 64)]


def whole_matrix_vectors(encoder, doc, config: LateChunkingConfig) -> np.ndarray:
    """The document's whole (n_tokens, dim) matrix from its windows, pooled per span, mixed with naive vectors."""
    ids = doc.input_ids
    special = set(encoder.tokenizer.all_special_ids) if config.frame_windows and len(ids) > WINDOW else set()
    prefix, suffix = special_affixes(ids, special)
    plan = plan_windows(len(ids), WINDOW - len(prefix) - len(suffix), OVERLAP, config.window_layout)
    rows = []
    for w in plan:
        head = prefix if w.start > 0 else []
        (output,) = encoder.encode_token_batches([head + ids[w.start : w.end] + (suffix if w.end < len(ids) else [])])
        rows.append(output[len(head) + w.keep_from - w.start : len(head) + w.keep_to - w.start])
    late = pool_spans(np.concatenate(rows), doc.spans)
    if config.naive_weight == 0.0 or len(ids) <= WINDOW:
        return late
    outputs = encoder.encode_token_batches(naive_sequences(doc, set(encoder.tokenizer.all_special_ids)))
    naive = l2_normalize(np.stack([output.mean(axis=0) for output in outputs]))
    return mix_vectors(late, naive, config.naive_weight)


CHUNKINGS = [ChunkingConfig("fixed", chunk_size=7, overlap=2), ChunkingConfig("sentences", max_chunk_tokens=20)]


@pytest.mark.parametrize("chunking", CHUNKINGS)
@pytest.mark.parametrize("naive_weight", [0.0, 0.6])
@pytest.mark.parametrize("frame_windows", [False, True])
# Layouts whose windows tile the document (chunk-centred windows: tests/unit/embedding/test_chunk_centred.py).
@pytest.mark.parametrize("layout", [layout for layout in WINDOW_LAYOUTS if layout != CHUNK_CENTRED])
def test_streamed_pooling_equals_whole_matrix_pooling(tiny_encoder, layout, frame_windows, naive_weight, chunking):
    config = LateChunkingConfig(window_layout=layout, frame_windows=frame_windows, naive_weight=naive_weight)
    docs = [annotate_spans(text, tiny_encoder.tokenizer, chunking) for text in texts()]
    assert sum(len(doc.input_ids) > 3 * WINDOW for doc in docs) >= 2, "documents of several windows"
    streamed = embed_documents(tiny_encoder, docs, window=WINDOW, overlap=OVERLAP, config=config, token_budget=100)
    for doc, vectors in zip(docs, streamed, strict=True):
        np.testing.assert_allclose(vectors, whole_matrix_vectors(tiny_encoder, doc, config), atol=1e-5)


def test_pieces_in_any_order_give_the_whole_matrix_pooling():
    rng = np.random.default_rng(1)
    matrix = rng.standard_normal((50, 6)).astype(np.float32)
    spans = [(0, 9), (9, 31), (31, 50), (4, 45)]  # the last crosses every piece
    pooler = SpanPooler(spans, 50, 6)
    for start, end in ((30, 50), (0, 12), (12, 30)):
        assert not pooler.complete
        pooler.add(start, matrix[start:end])
    np.testing.assert_allclose(pooler.vectors(), pool_spans(matrix, spans), atol=1e-6)


def test_a_document_with_missing_tokens_gives_no_vectors():
    pooler = SpanPooler([(0, 10)], 10, 4)
    pooler.add(0, np.ones((6, 4), np.float32))
    with pytest.raises(ValueError, match="6 of the document's 10"):
        pooler.vectors()
    with pytest.raises(ValueError, match="outside"):
        pooler.add(8, np.ones((6, 4), np.float32))
