"""The vector checks over the in-memory backend (exact kNN): self-retrieval, recall against exact neighbours,
spread and duplicate vectors, each shown to fail on the vectors it is there to catch."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from embedded_chunks import MODEL_ID
from latechunk.index.spec import IndexSpec
from latechunk.validation.geometry import (
    check_duplicate_vectors,
    check_recall,
    check_self_retrieval,
    check_spread,
    load_index_vectors,
    stream_exact_scores,
)
from memory_backend import MemoryBackend

SPEC = IndexSpec(name="chunks", dims=768, model_id=MODEL_ID)


def indexed(chunks) -> MemoryBackend:
    backend = MemoryBackend()
    backend.ensure_index(SPEC)
    assert backend.upsert_documents(SPEC.name, chunks).ok
    return backend


def hits_of(backend, sample, k=10):
    return [backend.knn_search(SPEC.name, chunk.vector, k=k) for chunk in sample]


def test_the_index_vectors_are_every_chunk_vector_and_none_past_the_cap(corpus_chunks):
    backend = indexed(corpus_chunks)
    vectors = load_index_vectors(backend, SPEC.name, 1000)
    assert sorted(vectors.ids) == sorted(chunk.es_id for chunk in corpus_chunks)
    chunk = corpus_chunks[5]
    np.testing.assert_allclose(vectors.unit_vector(chunk.es_id), chunk.vector, atol=1e-6)
    assert load_index_vectors(backend, SPEC.name, 81) is None


def test_self_retrieval_passes_the_written_vectors_and_fails_others(corpus_chunks, random_unit_vectors):
    backend = indexed(corpus_chunks)
    vectors = load_index_vectors(backend, SPEC.name, 1000)
    assert check_self_retrieval(corpus_chunks, hits_of(backend, corpus_chunks), vectors, 0.95).value == 1.0
    staged = [dataclasses.replace(c, vector=v)
              for c, v in zip(corpus_chunks, random_unit_vectors(len(corpus_chunks), seed=5), strict=True)]  # fmt: skip
    check = check_self_retrieval(staged, hits_of(backend, staged), vectors, 0.95)
    assert not check.passed and check.value < 0.2


def test_a_duplicate_text_at_rank_one_counts_as_found(make_chunks, random_unit_vectors):
    first, second = make_chunks("a.txt", 1, seed=1), make_chunks("b.txt", 1, seed=2)
    twin = dataclasses.replace(second[0], text=first[0].text, vector=first[0].vector)
    backend = indexed([*first, twin])
    vectors = load_index_vectors(backend, SPEC.name, 10)
    check = check_self_retrieval(first, hits_of(backend, first), vectors, 1.0)
    assert check.passed and check.details["misses"] == []


def test_recall_judges_the_hits_against_exact_neighbours(corpus_chunks):
    backend = indexed(corpus_chunks)
    vectors = load_index_vectors(backend, SPEC.name, 1000)
    sample = corpus_chunks[:10]
    exact = hits_of(backend, sample)
    assert check_recall(sample, exact, vectors, 10, 0.9, 1000).value == 1.0
    # An approximate search that returns the right first hit and then far chunks.
    far = [[hits[0], *reversed(backend.knn_search(SPEC.name, -chunk.vector, k=9))] for chunk, hits in
           zip(sample, exact, strict=True)]  # fmt: skip
    check = check_recall(sample, far, vectors, 10, 0.9, 1000)
    assert not check.passed and check.value == pytest.approx(0.1)
    assert check_recall(sample, exact, None, 10, 0.9, 1000).skipped
    # An index too large to load: one streamed pass gives the same verdicts.
    exact_streamed = stream_exact_scores(backend, SPEC.name, sample, exact, 10)
    streamed = check_recall(sample, exact, None, 10, 0.9, 1000, exact_streamed)
    assert streamed.value == 1.0 and streamed.details["exact"] == "streamed"
    far_streamed = stream_exact_scores(backend, SPEC.name, sample, far, 10)
    assert check_recall(sample, far, None, 10, 0.9, 1000, far_streamed).value == pytest.approx(0.1)
    assert far_streamed.kth_best.shape == (10,) and far_streamed.vectors == len(corpus_chunks)


def test_spread_fails_vectors_collapsed_onto_one_direction(corpus_chunks, random_unit_vectors):
    backend = indexed(corpus_chunks)
    check = check_spread(corpus_chunks[:20], load_index_vectors(backend, SPEC.name, 1000), 0.95)
    assert check.passed and abs(check.value) < 0.05
    direction = random_unit_vectors(1, seed=3)[0]
    noise = random_unit_vectors(len(corpus_chunks), seed=4)
    collapsed = [dataclasses.replace(c, vector=(direction + 0.05 * n) / np.linalg.norm(direction + 0.05 * n))
                 for c, n in zip(corpus_chunks, noise, strict=True)]  # fmt: skip
    backend = indexed(collapsed)
    check = check_spread(collapsed[:20], load_index_vectors(backend, SPEC.name, 1000), 0.95)
    assert not check.passed and check.value > 0.99


def test_one_vector_for_different_texts_is_a_duplicate(corpus_chunks):
    backend = indexed(corpus_chunks)
    vectors = load_index_vectors(backend, SPEC.name, 1000)
    sample = corpus_chunks[:10]
    assert check_duplicate_vectors(sample, hits_of(backend, sample), vectors).passed
    copied = dataclasses.replace(corpus_chunks[40], vector=corpus_chunks[0].vector)
    backend.upsert_documents(SPEC.name, [c if c.es_id != copied.es_id else copied for c in corpus_chunks])
    vectors = load_index_vectors(backend, SPEC.name, 1000)
    check = check_duplicate_vectors(sample, hits_of(backend, sample), vectors)
    assert not check.passed and check.value == 1
    assert check.details["examples"][0]["ids"] == sorted([corpus_chunks[0].es_id, copied.es_id])
