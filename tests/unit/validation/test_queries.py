"""The checks that query the index with the run's model, over the in-memory backend: an encoder that agrees with
the index passes, one that does not (another model) fails; probes find their objects; a tiny index is not judged."""

from __future__ import annotations

import numpy as np
from embedded_chunks import MODEL_ID, document_chunks
from latechunk.index.spec import IndexSpec
from latechunk.validation.geometry import load_index_vectors
from latechunk.validation.queries import Probe, check_document_queries, check_probes, check_query_retrieval
from latechunk.validation.report import Thresholds
from memory_backend import MemoryBackend

SPEC = IndexSpec(name="chunks", dims=768, model_id=MODEL_ID)


def indexed(chunks) -> MemoryBackend:
    backend = MemoryBackend()
    backend.ensure_index(SPEC)
    assert backend.upsert_documents(SPEC.name, chunks).ok
    return backend


def oracle_encoder(chunks):
    """A query encoder that agrees with the index: a chunk's text encodes to that chunk's vector."""
    by_text = {chunk.text: chunk.vector for chunk in chunks}
    return lambda texts: np.stack([by_text[text] for text in texts])


def another_model(texts):
    return np.random.default_rng(len(texts)).standard_normal((len(texts), 768)).astype(np.float32)


def test_chunk_texts_find_their_documents_with_the_runs_model_only(corpus_chunks):
    backend = indexed(corpus_chunks)
    vectors = load_index_vectors(backend, SPEC.name, 1000)
    sample = corpus_chunks[::4]
    good = check_query_retrieval(backend, SPEC.name, sample, oracle_encoder(corpus_chunks), vectors, Thresholds(), 100)
    assert good.passed and good.value == 1.0 and not good.skipped
    assert 0 < good.details["chance"] < Thresholds().query_retrieval
    bad = check_query_retrieval(backend, SPEC.name, sample, another_model, vectors, Thresholds(), 100)
    assert not bad.passed and bad.value < 0.5
    assert bad.details["misses"][0]["key"] == sample[0].key


def test_titles_find_their_documents(corpus_chunks):
    titled = corpus_chunks
    for chunk in titled:
        chunk.metadata["title"] = f"title of {chunk.key}"
    backend = indexed(titled)
    vectors = load_index_vectors(backend, SPEC.name, 1000)
    first = {chunk.doc_id: chunk.vector for chunk in titled if chunk.chunk_id == 0}
    by_title = {f"title of {chunk.key}": first[chunk.doc_id] for chunk in titled}

    def titles(texts):
        return np.stack([by_title[text] for text in texts])

    check = check_document_queries(backend, SPEC.name, titled[::3], titled, titles, vectors, Thresholds(), 100)
    assert check.passed and check.value == 1.0
    check = check_document_queries(backend, SPEC.name, titled[::3], titled, another_model, vectors, Thresholds(), 100)
    assert not check.passed


def test_an_index_too_small_to_judge_is_skipped():
    chunks = document_chunks("a.txt", 3, seed=1) + document_chunks("b.txt", 2, seed=2)
    backend = indexed(chunks)
    vectors = load_index_vectors(backend, SPEC.name, 1000)
    check = check_query_retrieval(backend, SPEC.name, chunks, another_model, vectors, Thresholds(), 100)
    assert check.skipped and check.passed and check.details["chance"] == 0.96  # (3 x 1 + 2 x 0.9) / 5


def test_probes_pass_when_an_expected_object_is_in_the_top_k(corpus_chunks):
    backend = indexed(corpus_chunks)
    encode = oracle_encoder(corpus_chunks)
    target = corpus_chunks[30]
    found = Probe(target.text, (target.key,))
    assert check_probes(backend, SPEC.name, [found], encode, 3, 100, 1.0).passed
    missed = Probe(target.text, ("docs/elsewhere.txt",))
    check = check_probes(backend, SPEC.name, [found, {"query": missed.query, "expected_keys": ["docs/elsewhere.txt"]}],
                         encode, 3, 100, 1.0)  # fmt: skip
    assert not check.passed and check.value == 0.5
    assert check.details["misses"][0]["top_keys"][0] == target.key
    assert not check_probes(backend, SPEC.name, [found], None, 3, 100, 1.0).passed
