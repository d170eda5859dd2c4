"""A document of a million tokens embeds with memory bounded by its chunks, not by its tokens times the vector
size: its whole token matrix (1M x 768 float32, 3 GB) would be what the embed task held before. tracemalloc sees
every NumPy array the pooling allocates (the forward pass's own output lives in torch's allocator, one budget at a
time)."""

from __future__ import annotations

import tracemalloc

import numpy as np
from latechunk.chunking.spans import AnnotatedDocument, ChunkSpan
from latechunk.embedding.config import PLAIN
from latechunk.embedding.late_chunking import embed_documents, plan_windows
from tiny_models import stand_in_encoder

N_TOKENS = 1_000_000
DIM = 768
CHUNK = 256


def test_a_million_token_document_embeds_in_bounded_memory():
    encoder = stand_in_encoder(dim=DIM)
    ids = np.random.default_rng(0).integers(0, 1000, N_TOKENS).tolist()
    starts = range(0, N_TOKENS, CHUNK)
    spans = [ChunkSpan(i, start, min(start + CHUNK, N_TOKENS), 0, 0, "") for i, start in enumerate(starts)]
    doc = AnnotatedDocument(ids, spans)
    counted: list[int] = []
    tracemalloc.start()
    try:
        (vectors,) = embed_documents(encoder, [doc], overlap=256, token_budget=16384, config=PLAIN,
                                       on_tokens=counted.append)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    whole_matrix = N_TOKENS * DIM * 4
    assert peak < whole_matrix / 20, f"peak {peak / 2**20:.0f} MiB against {whole_matrix / 2**20:.0f} MiB"
    assert vectors.shape == (len(spans), DIM)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert sum(counted) == N_TOKENS and len(counted) == len(plan_windows(N_TOKENS, 8192, 256))
    (first,) = encoder.encode_token_batches([ids[:8192]])  # the first window's outputs, kept whole
    expected = first[:CHUNK].mean(axis=0)
    np.testing.assert_allclose(vectors[0], expected / np.linalg.norm(expected), atol=1e-5)
