"""The exact check over the in-memory backend with the tiny jina encoder: the index the run's path builds passes,
and wrong vectors, shifted spans and missing chunks fail it (with MiniLM and a real node in
tests/integration/test_validate_exact.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from latechunk.chunking.config import ChunkingConfig
from latechunk.index.spec import IndexSpec
from latechunk.sources.documents import Document, EmbeddedChunk, document_id
from latechunk.validation.exact import MIN_COSINE, Reencoder, check_exact_vectors, sample_by_tokens
from memory_backend import MemoryBackend

TEXTS = {
    "reef.txt": "Sarah Johnson is a marine biologist. She works in Hawaii. She spends months diving near coral reefs.",
    "berlin.txt": "Berlin is the capital of Germany. Its population is 3 million people. It is a city.",
}
BOUND = MIN_COSINE["float32"]


@pytest.fixture(scope="module")
def reencoder(tiny_jina) -> Reencoder:
    return Reencoder(tiny_jina, ChunkingConfig(strategy="sentences", sentences_per_chunk=1), window=64, overlap=16)


@pytest.fixture(scope="module")
def run(reencoder):
    """The run's documents and the chunks its path stages for them."""
    documents = [Document(document_id("corpus", key), "corpus", key, "v1", text, "text/plain")
                 for key, text in TEXTS.items()]  # fmt: skip
    chunks = []
    for document, (annotated, vectors) in zip(documents, reencoder.chunks(list(TEXTS.values())), strict=True):
        chunks += [
            EmbeddedChunk(
                document.doc_id, "corpus", document.key, "", "v1", span.chunk_id, len(annotated.spans), span.text,
                span.char_start, span.char_end, span.token_start, span.token_end, vector, reencoder.encoder.model_id,
            )  # fmt: skip
            for span, vector in zip(annotated.spans, vectors, strict=True)
        ]
    return documents, chunks


def checked(reencoder, documents, chunks):
    backend = MemoryBackend()
    backend.ensure_index(IndexSpec(name="chunks", dims=chunks[0].vector.shape[0], model_id=chunks[0].model_id))
    assert backend.upsert_documents("chunks", chunks).ok
    return check_exact_vectors(backend, "chunks", documents, reencoder, BOUND)


def test_the_index_the_runs_path_wrote_passes(reencoder, run):
    documents, chunks = run
    check = checked(reencoder, documents, chunks)
    assert check.passed and check.value == 1.0, check.details
    assert check.details["chunks"] == len(chunks) > 2 and check.details["min_cosine"] >= BOUND


def rotated(chunks):
    return [dataclasses.replace(c, vector=np.roll(c.vector, 1)) for c in chunks]


def neighbours(chunks):
    return [dataclasses.replace(c, vector=chunks[(i + 1) % len(chunks)].vector) for i, c in enumerate(chunks)]


def shifted(chunks):
    return [dataclasses.replace(c, token_end=c.token_end + 1) if c.chunk_id == 0 else c for c in chunks]


def missing(chunks):
    return [dataclasses.replace(c, n_chunks=c.n_chunks - 1) for c in chunks if c.chunk_id != c.n_chunks - 1]


@pytest.mark.parametrize(
    ("corrupt", "problem"),
    [
        (rotated, "vector differs from the model's"),
        (neighbours, "vector differs from the model's"),
        (shifted, "span differs in token_end"),
        (missing, "missing: the index serves no such chunk"),
    ],
)
def test_wrong_vectors_spans_and_missing_chunks_fail(reencoder, run, corrupt, problem):
    documents, chunks = run
    check = checked(reencoder, documents, corrupt(chunks))
    assert not check.passed and check.value < 1.0
    assert check.details["problems"][0]["problem"] == problem


def test_no_documents_skip_the_check_and_no_encoder_fails_it(run):
    documents, chunks = run
    backend = MemoryBackend()
    assert check_exact_vectors(backend, "chunks", [], None, BOUND).skipped
    check = check_exact_vectors(backend, "chunks", documents, None, BOUND)
    assert not check.passed and not check.skipped


def test_the_sample_is_bounded_by_tokens():
    tokens = {"a": 10, "b": 20, "c": 30, "d": 500}
    chosen = sample_by_tokens(tokens, 60)
    assert sum(tokens[doc] for doc in chosen) <= 60 and "d" not in chosen
    assert sample_by_tokens({"d": 500, "e": 400}, 60) == ["e"], "at least the shortest document"
    assert sample_by_tokens({}, 60) == []
