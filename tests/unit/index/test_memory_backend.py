"""The in-memory backend the unit tests use (tests/memory_backend.py) keeps the contract the Elasticsearch backend
keeps in tests/integration/test_index.py: the same scenarios, the same answers."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from embedded_chunks import MODEL_ID
from latechunk.index.backend import Tombstone
from latechunk.index.spec import IndexMismatchError, IndexSpec
from memory_backend import MemoryBackend

SPEC = IndexSpec(name="chunks", dims=768, model_id=MODEL_ID, chunking={"strategy": "fixed"})


@pytest.fixture
def backend() -> MemoryBackend:
    backend = MemoryBackend()
    assert backend.ensure_index(SPEC) is True
    return backend


def test_an_existing_index_is_checked_against_the_spec(backend):
    assert backend.ensure_index(SPEC) is False
    assert backend.describe_index(SPEC.name) == SPEC
    with pytest.raises(IndexMismatchError, match="dims is 768 in the index, 384 configured"):
        backend.ensure_index(dataclasses.replace(SPEC, dims=384))


def test_knn_is_exact_and_scored_as_the_engine_scores_cosine(backend, corpus_chunks):
    report = backend.upsert_documents(SPEC.name, corpus_chunks)
    assert (report.chunks_indexed, report.documents_written) == (82, 20)
    target = corpus_chunks[17]
    hits = backend.knn_search(SPEC.name, target.vector, k=3)
    assert hits[0].id == target.es_id and hits[0].score == pytest.approx(1.0)
    assert "vector" not in hits[0].source and hits[0].source["text"] == target.text
    assert hits[0].score >= hits[1].score >= hits[2].score
    opposite = {hit.id: hit.score for hit in backend.knn_search(SPEC.name, -target.vector, k=82)}
    assert opposite[target.es_id] == pytest.approx(0.0, abs=1e-6), "(1 + cosine) / 2"
    served = backend.get_chunks(SPEC.name, [target.es_id, "absent:0"])
    assert list(served) == [target.es_id]
    np.testing.assert_allclose(served[target.es_id]["vector"], target.vector, atol=1e-7)


def test_a_shrunk_document_leaves_no_stale_chunk(backend, make_chunks):
    keep = make_chunks("keep.txt", 4, seed=1)
    backend.upsert_documents(SPEC.name, make_chunks("shrinks.txt", 6, etag='"v1"') + keep)
    shrunk = make_chunks("shrinks.txt", 3, etag='"v2"', seed=9)
    assert backend.upsert_documents(SPEC.name, shrunk).stale_chunks_deleted == 3
    assert backend.count_by_doc(SPEC.name) == {shrunk[0].doc_id: 3, keep[0].doc_id: 4}
    fewer = make_chunks("shrinks.txt", 2, etag='"v2"', seed=9)
    assert backend.upsert_documents(SPEC.name, fewer).stale_chunks_deleted == 1


def test_a_refused_chunk_leaves_its_document_as_it_was(backend, make_chunks):
    backend.upsert_documents(SPEC.name, make_chunks("a.txt", 5, etag='"v1"'))
    broken = make_chunks("a.txt", 2, etag='"v2"')
    broken[1].vector = np.ones(5, dtype=np.float32)
    report = backend.upsert_documents(SPEC.name, broken + make_chunks("b.txt", 2))
    assert (report.chunks_indexed, report.chunks_failed, report.failed_doc_ids) == (3, 1, {broken[0].doc_id})
    assert report.stale_chunks_deleted == 0
    assert backend.count_by_doc(SPEC.name)[broken[0].doc_id] == 5


def test_superseded_parts_and_versions_of_an_object_are_deleted(backend, make_chunks):
    feed_v1 = [chunk for line in "123" for chunk in make_chunks("feed.jsonl", 2, part=line, etag='"v1"')]
    untouched = make_chunks("feed.jsonl", 1, bucket="elsewhere", etag='"v1"')
    backend.upsert_documents(SPEC.name, feed_v1 + make_chunks("report.pdf", 3, etag='"v1"') + untouched)
    feed_v2 = [chunk for line in "12" for chunk in make_chunks("feed.jsonl", 2, part=line, etag='"v2"')]
    backend.upsert_documents(SPEC.name, feed_v2)
    assert backend.delete_superseded(SPEC.name, "corpus", {"feed.jsonl": '"v2"', "report.pdf": '"v2"'}) == 2 + 3
    assert backend.indexed_etags(SPEC.name, bucket="corpus") == {"feed.jsonl": '"v2"'}
    assert backend.delete_objects(SPEC.name, "corpus", ["feed.jsonl"]) == 4
    assert backend.count_by_doc(SPEC.name) == {untouched[0].doc_id: 1}


def test_an_object_written_in_part_reads_as_incomplete(backend, make_chunks):
    first, second = make_chunks("feed.jsonl", 2, part="1"), make_chunks("feed.jsonl", 3, part="2")
    backend.upsert_documents(SPEC.name, first, object_records={("corpus", "feed.jsonl"): 5})
    assert backend.indexed_etags(SPEC.name, keys=["feed.jsonl"]) == {"feed.jsonl": None}
    assert backend.indexed_etags(SPEC.name, doc_ids=[first[0].doc_id]) == {first[0].doc_id: '"v1"'}
    backend.upsert_documents(SPEC.name, second, object_records={("corpus", "feed.jsonl"): 5})
    assert backend.indexed_etags(SPEC.name, keys=["feed.jsonl"]) == {"feed.jsonl": '"v1"'}


def test_a_tombstone_marks_its_object_indexed_and_is_never_searched(backend, make_chunks):
    (old,) = make_chunks("blank.txt", 1, etag='"v1"')
    backend.upsert_documents(SPEC.name, [old])
    tombstone = Tombstone(old.doc_id, old.bucket, old.key, "", '"v2"', "no_chunks")
    assert backend.record_tombstones(SPEC.name, [tombstone], model_id=MODEL_ID) == 1
    assert backend.indexed_etags(SPEC.name, keys=["blank.txt"]) == {"blank.txt": '"v2"'}
    assert backend.count_by_doc(SPEC.name) == {old.doc_id: 1}
    assert backend.knn_search(SPEC.name, old.vector, k=5) == []
    assert list(backend.iter_vectors(SPEC.name)) == []


def test_key_ranges_come_in_utf8_order(backend, make_chunks):
    keys = ["docs/b", "docs/\ufffd", "docs/\U0001f600", "docs/a", "other/a"]
    backend.upsert_documents(SPEC.name, [chunk for key in keys for chunk in make_chunks(key, 1)])
    found = [key for key, _ in backend.iter_indexed_etags(SPEC.name, bucket="corpus", prefix="docs/")]
    assert found == ["docs/a", "docs/b", "docs/\ufffd", "docs/\U0001f600"]
    ranged = backend.iter_indexed_etags(SPEC.name, bucket="corpus", after="docs/a", through="docs/\ufffd")
    assert [key for key, _ in ranged] == ["docs/b", "docs/\ufffd"]


def test_the_alias_moves_to_the_new_index(backend, make_chunks):
    backend.create_index(dataclasses.replace(SPEC, name="chunks-v2"))
    assert backend.swap_alias("served", "chunks") == []
    assert backend.swap_alias("served", "chunks-v2") == ["chunks"]
    backend.upsert_documents("served", make_chunks("a.txt", 2))
    assert backend.count_by_doc("chunks-v2") != {} and backend.count_by_doc("chunks") == {}
    with pytest.raises(ValueError, match="is an index, not an alias"):
        backend.swap_alias("chunks", "chunks-v2")
