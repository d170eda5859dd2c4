"""Builders of embedded chunks for the index, staging and validation tests (the servers come from tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest
from latechunk.sources.documents import EmbeddedChunk, document_id

DIMS = 768
MODEL_ID = "test/random-encoder"


def unit_vectors(n: int, dims: int = DIMS, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, dims)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def document_chunks(
    key: str,
    n_chunks: int,
    *,
    bucket: str = "corpus",
    etag: str = '"v1"',
    vectors: np.ndarray | None = None,
    part: str = "",
    seed: int = 0,
) -> list[EmbeddedChunk]:
    """The chunks of one document; chunk i covers characters [10 i, 10 i + 9) of a made-up text."""
    if vectors is None:
        vectors = unit_vectors(n_chunks, seed=seed)
    return [
        EmbeddedChunk(
            doc_id=document_id(bucket, key, part),
            bucket=bucket,
            key=key,
            part=part,
            etag=etag,
            chunk_id=i,
            n_chunks=n_chunks,
            text=f"{key} chunk {i} of {n_chunks} ({etag})",
            char_start=10 * i,
            char_end=10 * i + 9,
            token_start=4 * i,
            token_end=4 * i + 4,
            vector=vectors[i],
            model_id=MODEL_ID,
            metadata={"source": key, "nested": {"i": i}},
        )
        for i in range(n_chunks)
    ]


@pytest.fixture
def make_chunks():
    """`document_chunks(key, n_chunks, *, bucket, etag, vectors, part, seed)`: the chunks of one document."""
    return document_chunks


@pytest.fixture
def random_unit_vectors():
    """`unit_vectors(n, dims=768, seed=0)`: seeded random unit vectors, float32."""
    return unit_vectors


@pytest.fixture
def corpus_chunks() -> list[EmbeddedChunk]:
    """Twenty documents of 1 to 8 chunks (82 chunks), each with its own random unit vectors."""
    chunks = []
    for d in range(20):
        chunks += document_chunks(f"docs/doc-{d:02d}.txt", 1 + d % 8, seed=100 + d)
    return chunks
