"""Validation of an indexed run on a real node: a correct index passes, a corrupted one fails the right check."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from latechunk.index.elasticsearch import ElasticsearchBackend
from latechunk.index.spec import IndexSpec
from latechunk.validation.run import Probe, ValidationError, validate_index


@pytest.fixture
def backend(es_client) -> ElasticsearchBackend:
    return ElasticsearchBackend(es_client)


@pytest.fixture
def spec(es_index) -> IndexSpec:
    return IndexSpec(
        name=es_index, dims=768, model_id="test/random-encoder", chunking={"strategy": "fixed"}, replicas=0
    )


def oracle_encoder(chunks):
    """A query encoder that agrees with the index: a chunk's text encodes to that chunk's vector."""
    by_text = {chunk.text: chunk.vector for chunk in chunks}
    return lambda texts: np.stack([by_text[text] for text in texts])


def indexed(backend, spec, chunks):
    backend.ensure_index(spec)
    report = backend.upsert_documents(spec.name, chunks)
    assert report.ok
    return chunks


def test_a_correct_index_passes_every_check(backend, spec, corpus_chunks):
    staged = indexed(backend, spec, corpus_chunks)
    report = validate_index(
        backend, spec.name, staged, spec=spec, sample_size=30, query_encoder=oracle_encoder(staged)
    )
    assert report.passed, report.summary()
    assert [check.name for check in report.checks] == [
        "chunk_counts", "mapping", "exact_vectors", "self_retrieval", "knn_recall@10", "query_retrieval",
        "document_query", "vector_spread", "duplicate_vectors",
    ]  # fmt: skip
    assert report.check("exact_vectors").skipped, "no documents to re-encode were given"
    assert report.check("chunk_counts").details == {"documents": 20, "chunks": 82, "mismatches": []}
    assert report.check("self_retrieval").value == 1.0
    recall = report.check("knn_recall@10")
    assert recall.value >= 0.9 and recall.details["vectors"] == 82 and recall.details["queries"] == 30
    report.raise_for_failure()
    as_dict = report.to_dict()
    assert as_dict["passed"] is True and len(as_dict["checks"]) == 9 and as_dict["warnings"] == []
    assert all(check["description"] for check in as_dict["checks"])


def test_indexed_vectors_unlike_the_staged_ones_fail_self_retrieval(backend, spec, corpus_chunks, random_unit_vectors):
    other_model = random_unit_vectors(len(corpus_chunks), seed=999)
    indexed(backend, spec, [dataclasses.replace(c, vector=v) for c, v in zip(corpus_chunks, other_model, strict=True)])
    report = validate_index(backend, spec.name, corpus_chunks, sample_size=30, query_encoder=None)
    assert not report.passed
    self_retrieval = report.check("self_retrieval")
    assert not self_retrieval.passed and self_retrieval.value < 0.2
    assert self_retrieval.details["misses"][0]["rank"] != 1
    assert report.check("chunk_counts").passed, "the counts are right: only the vectors are wrong"
    with pytest.raises(ValidationError, match="self_retrieval: FAILED") as caught:
        report.raise_for_failure()
    assert caught.value.report is report


def test_a_missing_chunk_fails_the_counts(backend, spec, es_client, corpus_chunks):
    staged = indexed(backend, spec, corpus_chunks)
    victim = staged[-1]
    es_client.delete(index=spec.name, id=victim.es_id, refresh=True)
    report = validate_index(backend, spec.name, staged, sample_size=5, query_encoder=None)
    counts = report.check("chunk_counts")
    assert (counts.passed, counts.value) == (False, 1)
    assert counts.details["mismatches"] == [
        {"doc_id": victim.doc_id, "key": victim.key, "staged": victim.n_chunks, "n_chunks": victim.n_chunks,
         "indexed": victim.n_chunks - 1}
    ]  # fmt: skip


def test_a_mapping_for_another_model_fails_the_mapping_check(backend, spec, corpus_chunks):
    staged = indexed(backend, spec, corpus_chunks)
    report = validate_index(
        backend, spec.name, staged, spec=dataclasses.replace(spec, dims=384), sample_size=5, query_encoder=None
    )
    mapping = report.check("mapping")
    assert not mapping.passed
    assert mapping.details["problems"] == ["dims is 768 in the index, 384 configured"]

    relabelled = [dataclasses.replace(chunk, model_id="other/model") for chunk in staged]
    report = validate_index(backend, spec.name, relabelled, sample_size=5, query_encoder=None)
    problems = report.check("mapping").details["problems"]
    assert problems == ["staged chunks come from ['other/model'], the index is for 'test/random-encoder'"]


def test_probes_use_the_query_encoder(backend, spec, corpus_chunks):
    staged = indexed(backend, spec, corpus_chunks)
    target = staged[10]

    def encode(texts):
        return np.stack([target.vector if text == "where is chunk ten" else -target.vector for text in texts])

    good = [Probe("where is chunk ten", (target.key,))]
    report = validate_index(backend, spec.name, staged, sample_size=5, probes=good, query_encoder=encode)
    assert report.check("probes").value == 1.0 and report.check("probes").passed

    mixed = [*good, {"query": "nowhere", "expected_keys": ["never/indexed.txt"]}]
    report = validate_index(backend, spec.name, staged, sample_size=5, probes=mixed, query_encoder=encode)
    probes = report.check("probes")
    assert (probes.value, probes.passed) == (0.5, False)
    assert probes.details["misses"][0]["query"] == "nowhere"

    without_encoder = validate_index(backend, spec.name, staged, sample_size=5, probes=good, query_encoder=None)
    assert not without_encoder.check("probes").passed


def test_exact_recall_is_streamed_or_skipped_above_the_caps_and_an_empty_run_passes(backend, spec, corpus_chunks):
    staged = indexed(backend, spec, corpus_chunks)
    capped = validate_index(
        backend, spec.name, staged, sample_size=5, max_exact_vectors=50, query_encoder=None
    ).check("knn_recall@10")
    assert capped.passed and capped.details["exact"] == "streamed" and capped.details["vectors"] == len(staged)
    skipped = validate_index(
        backend, spec.name, staged, sample_size=5, max_exact_vectors=50, max_streamed_vectors=50, query_encoder=None
    ).check("knn_recall@10")
    assert skipped.skipped and skipped.passed and "more than 50 vectors" in skipped.details["reason"]

    empty = validate_index(backend, spec.name, [], query_encoder=None)
    assert empty.passed
    assert empty.check("self_retrieval").skipped
