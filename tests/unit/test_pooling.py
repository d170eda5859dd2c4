from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from latechunk.chunking.config import ChunkingConfig
from latechunk.chunking.spans import annotate_spans
from latechunk.embedding.late_chunking import embed_documents
from latechunk.embedding.pooling import l2_normalize, pool_spans

TEXT = (
    "Sarah Johnson is a marine biologist. She works in Hawaii!\r\n\r\nHer research focuses on coral reefs? "
    "They spend months diving near the reefs. 我爱你。 The end"
)
STRATEGIES = {
    "sentences": (ChunkingConfig("sentences"), None),
    "sentences_x2": (ChunkingConfig("sentences", sentences_per_chunk=2), None),
    "fixed": (ChunkingConfig("fixed", chunk_size=7), None),
    "fixed_overlap": (ChunkingConfig("fixed", chunk_size=9, overlap=3), None),
    "spans": (ChunkingConfig("spans"), [(0, 57), (61, 98), (99, 150)]),
}


def reference_token_embeddings(encoder, input_ids: list[int]) -> list[list[float]]:
    """The model's last hidden states for the whole document in one plain forward pass."""
    ids = torch.tensor([input_ids])
    with torch.no_grad():
        if hasattr(encoder.model, "embeddings") and hasattr(encoder.model, "layers"):
            hidden = encoder.model(ids)
        else:
            hidden = encoder.model(input_ids=ids).last_hidden_state
    return hidden[0].tolist()


def reference_chunk_vector(rows: list[list[float]], start: int, end: int) -> list[float]:
    """Mean of rows[start:end], then divided by its Euclidean norm: the formula, written out by hand."""
    dim = len(rows[0])
    total = [0.0] * dim
    for row in rows[start:end]:
        for k in range(dim):
            total[k] += row[k]
    mean = [value / (end - start) for value in total]
    norm = math.sqrt(sum(value * value for value in mean))
    return [value / norm for value in mean]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_late_chunked_vectors_equal_the_hand_written_reference(tiny_encoder, strategy):
    config, char_spans = STRATEGIES[strategy]
    doc = annotate_spans(TEXT, tiny_encoder.tokenizer, config, char_spans=char_spans)
    assert len(doc.input_ids) <= tiny_encoder.max_length, "this test is about the single-window case"
    (vectors,) = embed_documents(tiny_encoder, [doc])
    rows = reference_token_embeddings(tiny_encoder, doc.input_ids)
    expected = np.array([reference_chunk_vector(rows, s.token_start, s.token_end) for s in doc.spans])
    assert vectors.dtype == np.float32 and vectors.shape == (len(doc.spans), tiny_encoder.dim)
    np.testing.assert_allclose(vectors, expected, atol=1e-6, rtol=0)


def test_pool_spans_matches_the_formula_on_random_data():
    rng = np.random.default_rng(0)
    embeddings = rng.standard_normal((40, 16)).astype(np.float32)
    spans = [(0, 1), (1, 17), (10, 40), (39, 40)]
    pooled = pool_spans(embeddings, spans)
    for row, (start, end) in zip(pooled, spans, strict=True):
        expected = reference_chunk_vector(embeddings.tolist(), start, end)
        np.testing.assert_allclose(row, expected, atol=1e-6, rtol=0)
    np.testing.assert_allclose(np.linalg.norm(pooled, axis=1), 1.0, atol=1e-6)


def test_pool_spans_pools_in_float32_from_half_precision_input():
    embeddings = torch.randn(12, 8, dtype=torch.bfloat16)
    pooled = pool_spans(embeddings.float().numpy(), [(0, 12)])
    expected = reference_chunk_vector(embeddings.float().tolist(), 0, 12)
    assert pooled.dtype == np.float32
    np.testing.assert_allclose(pooled[0], expected, atol=1e-6)


@pytest.mark.parametrize("span", [(3, 3), (5, 2), (-1, 2), (0, 11)])
def test_empty_or_out_of_range_spans_are_rejected(span):
    with pytest.raises(ValueError, match="empty or outside"):
        pool_spans(np.ones((10, 4), np.float32), [span])


def test_zero_vectors_stay_zero_instead_of_nan():
    normalized = l2_normalize(np.array([[0.0, 0.0], [3.0, 4.0]]))
    np.testing.assert_array_equal(normalized, np.array([[0.0, 0.0], [0.6, 0.8]], np.float32))
