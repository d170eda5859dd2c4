"""`StagedScan`: the staged chunks streamed once, the counts over all of them, never more than a sample held."""

from __future__ import annotations

import dataclasses

import pytest
from embedded_chunks import MODEL_ID, document_chunks, unit_vectors
from latechunk.index.spec import IndexSpec
from latechunk.validation import staged
from latechunk.validation.geometry import load_index_vectors
from latechunk.validation.run import validate_index
from latechunk.validation.staged import StagedScan
from memory_backend import MemoryBackend

SPEC = IndexSpec(name="chunks", dims=8, model_id=MODEL_ID)


def run_chunks(documents: int):
    """Documents of 1 to 5 chunks with 8-dim vectors, as a run stages them (a document's chunks together)."""
    return [
        chunk
        for d in range(documents)
        for chunk in document_chunks(f"run/doc-{d:04d}.txt", 1 + d % 5, vectors=unit_vectors(5, dims=8, seed=d))
    ]


class CountingBackend(MemoryBackend):
    """Records how many documents each `count_by_doc` asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[int] = []

    def count_by_doc(self, index, doc_ids=None):
        self.asked.append(len(doc_ids))
        return super().count_by_doc(index, doc_ids)


@pytest.fixture(scope="module")
def chunks():
    return run_chunks(600)  # 1,800 chunks


def indexed(chunks) -> CountingBackend:
    backend = CountingBackend()
    backend.ensure_index(SPEC)
    assert backend.upsert_documents(SPEC.name, chunks).ok
    return backend


def test_a_long_stream_keeps_a_sample_and_counts_every_chunk_a_group_at_a_time(chunks, monkeypatch):
    monkeypatch.setattr(staged, "COUNT_GROUP", 100)
    backend = indexed(chunks)
    scan = StagedScan(backend, SPEC.name, sample_size=20).add_all(iter(chunks)).finish()
    assert (scan.documents, scan.chunks) == (600, len(chunks))
    assert scan.counts_check().passed
    assert len(scan.sample) == 20
    assert scan.most_chunks_held <= 3 * 20 + 1 < len(chunks) / 20, "never more than the sample and first chunks"
    assert max(backend.asked) <= 100 and sum(backend.asked) == 600, "every document counted, a group at a time"
    tokens, batch_of = scan.candidate_documents()
    assert len(tokens) <= staged.DOCUMENT_CANDIDATES + 1 and set(tokens) == set(batch_of)
    assert min(tokens.values()) == 4, "the run's shortest document is a candidate"
    sampled = {chunk.doc_id for chunk in scan.sample}
    first = scan.first_chunks
    assert all(chunk.chunk_id == 0 and chunk.doc_id in sampled for chunk in first) and len(first) == len(sampled)


def test_the_sample_does_not_depend_on_the_order_of_the_batches(chunks):
    backend = indexed(chunks)
    half = len(chunks) // 2
    while chunks[half].chunk_id != 0:
        half += 1
    forward = StagedScan(backend, SPEC.name, sample_size=15).add_all(chunks).finish()
    swapped = StagedScan(backend, SPEC.name, sample_size=15).add_all(chunks[half:] + chunks[:half]).finish()
    assert [chunk.es_id for chunk in forward.sample] == [chunk.es_id for chunk in swapped.sample]
    other_seed = StagedScan(backend, SPEC.name, sample_size=15, seed=1).add_all(chunks).finish()
    assert [chunk.es_id for chunk in other_seed.sample] != [chunk.es_id for chunk in forward.sample]


def test_a_missing_chunk_past_the_first_group_fails_the_counts(chunks, monkeypatch):
    monkeypatch.setattr(staged, "COUNT_GROUP", 50)
    backend = indexed(chunks)
    victim = chunks[-3]
    backend.delete_documents(SPEC.name, [victim.doc_id])
    backend.upsert_documents(SPEC.name, [chunk for chunk in chunks if chunk.doc_id == victim.doc_id][1:])
    counts = StagedScan(backend, SPEC.name).add_all(chunks).finish().counts_check()
    assert not counts.passed and counts.value == 1
    assert counts.details["mismatches"][0]["doc_id"] == victim.doc_id


def test_validate_index_streams_a_generator_of_staged_chunks_once(chunks):
    backend = indexed(chunks)
    read = []

    def stream():
        for chunk in chunks:
            read.append(chunk.es_id)
            yield chunk

    report = validate_index(backend, SPEC.name, stream(), sample_size=10, query_encoder=None)
    assert len(read) == len(chunks), "read once"
    assert report.check("chunk_counts").details["chunks"] == len(chunks)
    assert report.check("self_retrieval").details["sampled"] == 10


def test_the_mapping_check_sees_one_chunk_of_another_model_among_thousands(chunks):
    backend = indexed(chunks)
    odd = len(chunks) // 2
    staged_run = [*chunks[:odd], dataclasses.replace(chunks[odd], model_id="other/model"), *chunks[odd + 1 :]]
    mapping = validate_index(backend, SPEC.name, staged_run, sample_size=5, query_encoder=None).check("mapping")
    assert not mapping.passed and any("other/model" in problem for problem in mapping.details["problems"])


def test_an_index_past_the_cap_is_counted_and_never_paged(chunks):
    backend = indexed(chunks)
    pages = []
    backend.iter_vectors = lambda index: iter(pages.append(index) or [])
    assert load_index_vectors(backend, SPEC.name, len(chunks) - 1) is None
    assert pages == [], "no vector fetched"
    report = validate_index(
        backend, SPEC.name, chunks, sample_size=5, max_exact_vectors=100, max_streamed_vectors=1000,
        query_encoder=None,
    )
    assert report.check("knn_recall@10").skipped and pages == []


def test_recall_over_an_index_too_large_to_load_streams_it_a_page_at_a_time(chunks):
    backend = indexed(chunks)
    pages = []
    iter_vectors = backend.iter_vectors

    def counted(index):
        for ids, page in iter_vectors(index):
            pages.append(len(ids))
            yield ids, page

    backend.iter_vectors = counted
    recall = validate_index(
        backend, SPEC.name, chunks, sample_size=5, max_exact_vectors=100, query_encoder=None
    ).check("knn_recall@10")
    assert recall.passed and recall.value == 1.0 and recall.details["exact"] == "streamed"
    assert sum(pages) == len(chunks) and max(pages) < len(chunks), "every vector seen, a page at a time"
