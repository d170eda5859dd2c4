"""`validate_index` over the in-memory backend: a correct index passes every check, and each way of being wrong
fails its check (counts, mapping, self-retrieval); the real Elasticsearch is in tests/integration/test_validate.py."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from embedded_chunks import MODEL_ID
from latechunk.index.spec import IndexSpec
from latechunk.validation.run import ValidationError, validate_index
from memory_backend import MemoryBackend


@pytest.fixture
def spec() -> IndexSpec:
    return IndexSpec(name="chunks", dims=768, model_id=MODEL_ID, chunking={"strategy": "fixed"})


def oracle_encoder(chunks):
    """A query encoder that agrees with the index: a chunk's text encodes to that chunk's vector."""
    by_text = {chunk.text: chunk.vector for chunk in chunks}
    return lambda texts: np.stack([by_text[text] for text in texts])


def indexed(spec: IndexSpec, chunks) -> MemoryBackend:
    backend = MemoryBackend()
    backend.ensure_index(spec)
    assert backend.upsert_documents(spec.name, chunks).ok
    return backend


def test_a_correct_index_passes_every_check(spec, corpus_chunks):
    backend = indexed(spec, corpus_chunks)
    report = validate_index(
        backend, spec.name, corpus_chunks, spec=spec, sample_size=30, query_encoder=oracle_encoder(corpus_chunks)
    )
    assert report.passed and not report.warnings, report.summary()
    assert report.check("chunk_counts").details == {"documents": 20, "chunks": 82, "mismatches": []}
    assert report.check("self_retrieval").value == 1.0
    assert report.check("knn_recall@10").value == 1.0, "exact kNN finds the exact neighbours"
    assert report.check("exact_vectors").skipped


def test_a_missing_chunk_fails_the_counts(spec, corpus_chunks):
    backend = indexed(spec, corpus_chunks)
    victim = corpus_chunks[-1]
    backend.delete_documents(spec.name, [victim.doc_id])
    backend.upsert_documents(spec.name, [c for c in corpus_chunks if c.doc_id == victim.doc_id][:-1])
    report = validate_index(backend, spec.name, corpus_chunks, sample_size=5, query_encoder=None)
    counts = report.check("chunk_counts")
    assert not counts.passed and counts.value == 1
    (wrong,) = counts.details["mismatches"]
    assert wrong == {"doc_id": victim.doc_id, "key": victim.key, "staged": victim.n_chunks,
                     "n_chunks": victim.n_chunks, "indexed": victim.n_chunks - 1}  # fmt: skip
    assert not report.passed


def test_a_document_staged_with_fewer_chunks_than_it_declares_fails_the_counts(spec, corpus_chunks):
    backend = indexed(spec, corpus_chunks)
    staged = [chunk for chunk in corpus_chunks if chunk.chunk_id != 1]
    counts = validate_index(backend, spec.name, staged, sample_size=5, query_encoder=None).check("chunk_counts")
    assert not counts.passed
    assert all(wrong["staged"] == wrong["n_chunks"] - 1 for wrong in counts.details["mismatches"])


def test_an_index_of_another_model_or_size_fails_the_mapping_check(spec, corpus_chunks):
    backend = indexed(dataclasses.replace(spec, model_id="other/encoder"), corpus_chunks)
    mapping = validate_index(backend, spec.name, corpus_chunks, spec=spec, query_encoder=None).check("mapping")
    assert not mapping.passed
    assert any("model_id is 'other/encoder' in the index" in p for p in mapping.details["problems"])
    assert any("staged chunks come from" in p for p in mapping.details["problems"])
    small = [dataclasses.replace(chunk, vector=chunk.vector[:384]) for chunk in corpus_chunks]
    backend = indexed(dataclasses.replace(spec, dims=384), small)
    report = validate_index(backend, spec.name, corpus_chunks, spec=spec, sample_size=0, query_encoder=None)
    mapping = report.check("mapping")
    assert any("staged vectors have [768] dims, the index 384" in p for p in mapping.details["problems"])


def test_vectors_unlike_the_staged_ones_fail_self_retrieval(spec, corpus_chunks, random_unit_vectors):
    other = random_unit_vectors(len(corpus_chunks), seed=999)
    backend = indexed(spec, [dataclasses.replace(c, vector=v) for c, v in zip(corpus_chunks, other, strict=True)])
    report = validate_index(backend, spec.name, corpus_chunks, sample_size=30, query_encoder=None)
    self_retrieval = report.check("self_retrieval")
    assert not self_retrieval.passed and self_retrieval.value < 0.2
    assert report.check("chunk_counts").passed, "the counts are right: only the vectors are wrong"
    with pytest.raises(ValidationError, match="self_retrieval: FAILED"):
        report.raise_for_failure()


def test_without_a_query_encoder_the_model_grounded_checks_fail_as_warnings(spec, corpus_chunks):
    report = validate_index(indexed(spec, corpus_chunks), spec.name, corpus_chunks, query_encoder=None)
    assert {check.name for check in report.warnings} == {"query_retrieval", "document_query"}
    assert report.passed, "warnings never fail the run"
