"""The Elasticsearch backend against a real node: mapping, refusal of a mismatched index, exact upserts, kNN."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
from latechunk.embedding.config import PLAIN, LateChunkingConfig
from latechunk.index.backend import Tombstone
from latechunk.index.elasticsearch import ElasticsearchBackend
from latechunk.index.spec import IndexMismatchError, IndexSpec, index_body

pytestmark = pytest.mark.integration

CHUNKING = {"strategy": "sentences", "chunk_size": 256, "overlap": 0, "sentences_per_chunk": 2}


@pytest.fixture
def backend(es_client) -> ElasticsearchBackend:
    return ElasticsearchBackend(es_client)


@pytest.fixture
def spec(es_index) -> IndexSpec:
    return IndexSpec(
        name=es_index,
        dims=768,
        model_id="test/random-encoder",
        model_revision="r1",
        index_options={"type": "int8_hnsw", "m": 16, "ef_construction": 100},
        chunking=CHUNKING,
        replicas=0,
        window=512,
        window_overlap=128,
    )


def total(es_client, index: str, **query) -> int:
    es_client.indices.refresh(index=index)
    return es_client.count(index=index, **query)["count"]


def test_ensure_index_creates_the_mapping_once(backend, spec, es_client):
    assert backend.ensure_index(spec) is True
    assert backend.ensure_index(spec) is False
    mapping = es_client.indices.get_mapping(index=spec.name)[spec.name]["mappings"]
    vector = mapping["properties"]["vector"]
    assert (vector["type"], vector["dims"], vector["similarity"]) == ("dense_vector", 768, "cosine")
    assert vector["index_options"]["type"] == "int8_hnsw"
    assert mapping["dynamic"] == "strict"
    assert mapping["properties"]["metadata"]["enabled"] is False
    assert mapping["_meta"]["latechunk"]["chunking"] == CHUNKING
    assert (mapping["_meta"]["latechunk"]["window"], mapping["_meta"]["latechunk"]["window_overlap"]) == (512, 128)
    assert "code points" in mapping["_meta"]["latechunk"]["offsets"]
    assert backend.describe_index(spec.name) == dataclasses.replace(spec, replicas=None)
    assert backend.index_mismatches(spec) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"dims": 384}, "dims is 768 in the index, 384 configured"),
        ({"similarity": "dot_product"}, "similarity"),
        ({"model_id": "jinaai/jina-embeddings-v2-base-en"}, "model_id"),
        ({"model_revision": "r2"}, "model_revision"),
        ({"chunking": {**CHUNKING, "sentences_per_chunk": 3}}, "chunking"),
        ({"index_options": {"type": "hnsw"}}, "index_options.type"),
        ({"window": 256}, "window is 512 in the index, 256 configured"),
        ({"window_overlap": 64}, "window_overlap is 128 in the index, 64 configured"),
        # The fixture's index records plain late chunking, as every index built before the measured default did.
        ({"late_chunking": LateChunkingConfig().recorded()},
         "late_chunking.window_layout is 'stitched' in the index, 'centred' configured"),
        ({"late_chunking": LateChunkingConfig().recorded()}, "late_chunking.naive_weight is 0.0 in the index, 0.6"),
    ],
)
def test_a_mismatched_existing_index_is_refused(backend, spec, es_client, change, message):
    assert spec.late_chunking == PLAIN.recorded()
    backend.ensure_index(spec)
    with pytest.raises(IndexMismatchError) as caught:
        backend.ensure_index(dataclasses.replace(spec, **change))
    assert message in str(caught.value)
    assert "new index" in str(caught.value)
    assert es_client.indices.get_mapping(index=spec.name)[spec.name]["mappings"]["properties"]["vector"]["dims"] == 768


def test_an_index_not_made_by_latechunk_is_refused(backend, spec, es_client):
    es_client.indices.create(index=spec.name, mappings={"properties": {"text": {"type": "text"}}})
    with pytest.raises(IndexMismatchError, match="not created by latechunk"):
        backend.ensure_index(spec)


def test_bulk_then_knn_finds_the_nearest_chunk(backend, spec, es_client, corpus_chunks):
    backend.ensure_index(spec)
    report = backend.upsert_documents(spec.name, corpus_chunks)
    assert (report.chunks_indexed, report.chunks_failed, report.documents_written) == (82, 0, 20)
    assert total(es_client, spec.name) == 82

    rng = np.random.default_rng(5)
    for target in (corpus_chunks[0], corpus_chunks[41], corpus_chunks[-1]):
        query = target.vector + 0.02 * rng.standard_normal(768).astype(np.float32)
        hits = backend.knn_search(spec.name, query, k=5, num_candidates=50)
        assert hits[0].id == target.es_id == f"{target.doc_id}:{target.chunk_id}"
        assert len(hits) == 5 and hits[0].score > hits[1].score
        source = hits[0].source
        assert "vector" not in source
        assert (source["key"], source["chunk_id"], source["text"]) == (target.key, target.chunk_id, target.text)
        assert (source["char_start"], source["char_end"], source["etag"]) == (
            target.char_start,
            target.char_end,
            target.etag,
        )
        assert source["metadata"] == target.metadata

    other = corpus_chunks[-1]
    filtered = backend.knn_search(spec.name, corpus_chunks[0].vector, k=3, filter={"term": {"key": other.key}})
    assert {hit.source["key"] for hit in filtered} == {other.key}


def test_re_upserting_the_same_chunks_writes_no_duplicates(backend, spec, es_client, corpus_chunks):
    backend.ensure_index(spec)
    backend.upsert_documents(spec.name, corpus_chunks)
    again = backend.upsert_documents(spec.name, corpus_chunks)
    assert (again.chunks_indexed, again.stale_chunks_deleted) == (82, 0)
    assert total(es_client, spec.name) == 82
    expected = {}
    for chunk in corpus_chunks:
        expected[chunk.doc_id] = chunk.n_chunks
    assert backend.count_by_doc(spec.name) == expected


def test_a_shrunk_document_leaves_no_stale_chunk(backend, spec, es_client, make_chunks):
    backend.ensure_index(spec)
    keep = make_chunks("keep.txt", 4, seed=1)
    backend.upsert_documents(spec.name, make_chunks("shrinks.txt", 6, etag='"v1"') + keep)

    # Written again right away (no refresh in between): the old chunks 3..5 must still be found and deleted.
    shrunk = make_chunks("shrinks.txt", 3, etag='"v2"', seed=9)
    report = backend.upsert_documents(spec.name, shrunk)
    assert report.stale_chunks_deleted == 3
    doc_id = shrunk[0].doc_id
    assert backend.count_by_doc(spec.name) == {doc_id: 3, keep[0].doc_id: 4}
    assert total(es_client, spec.name, query={"term": {"etag": '"v1"'}}) == 4, "only the other document's chunks"

    # Same ETag, fewer chunks (e.g. a re-annotation): the chunk count alone marks the stale chunks.
    fewer = make_chunks("shrinks.txt", 2, etag='"v2"', seed=9)
    assert backend.upsert_documents(spec.name, fewer).stale_chunks_deleted == 1
    assert backend.count_by_doc(spec.name, [doc_id]) == {doc_id: 2}


def test_a_failed_chunk_is_reported_and_its_document_keeps_its_old_chunks(backend, spec, es_client, make_chunks):
    backend.ensure_index(spec)
    backend.upsert_documents(spec.name, make_chunks("a.txt", 5, etag='"v1"'))
    broken = make_chunks("a.txt", 2, etag='"v2"')
    broken[1].vector = np.ones(5, dtype=np.float32)  # wrong number of dimensions: rejected by the mapping
    healthy = make_chunks("b.txt", 2)
    report = backend.upsert_documents(spec.name, broken + healthy)
    assert (report.chunks_indexed, report.chunks_failed, report.ok) == (3, 1, False)
    assert report.failed_doc_ids == {broken[0].doc_id}
    assert report.errors[0]["id"] == broken[1].es_id
    assert report.errors[0]["status"] == 400
    assert report.to_dict()["failed_doc_ids"] == [broken[0].doc_id]
    assert report.stale_chunks_deleted == 0, "a document with a failed chunk is not cleaned up"
    assert backend.count_by_doc(spec.name) == {broken[0].doc_id: 5, healthy[0].doc_id: 2}


def test_delete_documents_and_objects(backend, spec, es_client, make_chunks):
    backend.ensure_index(spec)
    first, second = make_chunks("one.txt", 3), make_chunks("two.txt", 2)
    lines = make_chunks("feed.jsonl", 2, part="1") + make_chunks("feed.jsonl", 1, part="2")
    other_bucket = make_chunks("feed.jsonl", 1, bucket="elsewhere")
    backend.upsert_documents(spec.name, first + second + lines + other_bucket)
    assert backend.delete_documents(spec.name, [first[0].doc_id]) == 3
    assert backend.delete_objects(spec.name, "corpus", ["feed.jsonl"]) == 3
    assert backend.count_by_doc(spec.name) == {second[0].doc_id: 2, other_bucket[0].doc_id: 1}
    assert backend.delete_documents(spec.name, []) == 0


def test_superseded_parts_and_versions_of_an_object_are_deleted(backend, spec, make_chunks):
    backend.ensure_index(spec)
    feed_v1 = [chunk for line in "123" for chunk in make_chunks("feed.jsonl", 2, part=line, etag='"v1"')]
    turned_bad_v1 = make_chunks("report.pdf", 3, etag='"v1"')
    untouched = make_chunks("feed.jsonl", 1, bucket="elsewhere", etag='"v1"')
    backend.upsert_documents(spec.name, feed_v1 + turned_bad_v1 + untouched)

    # v2 of the feed has lines 1 and 2 only; v2 of the PDF was quarantined, so nothing new was written for it.
    feed_v2 = [chunk for line in "12" for chunk in make_chunks("feed.jsonl", 2, part=line, etag='"v2"')]
    assert backend.upsert_documents(spec.name, feed_v2).stale_chunks_deleted == 0, "lines 1-2: overwritten in place"
    deleted = backend.delete_superseded(spec.name, "corpus", {"feed.jsonl": '"v2"', "report.pdf": '"v2"'})
    assert deleted == 2 + 3
    assert backend.indexed_etags(spec.name, bucket="corpus") == {"feed.jsonl": '"v2"'}
    assert backend.count_by_doc(spec.name) == {
        feed_v2[0].doc_id: 2,
        feed_v2[2].doc_id: 2,
        untouched[0].doc_id: 1,
    }
    assert backend.delete_superseded(spec.name, "corpus", {"feed.jsonl": '"v2"'}) == 0


def test_indexed_etags_pages_past_ten_thousand_documents(backend, es_client, es_index, make_chunks):
    small = IndexSpec(name=es_index, dims=4, model_id="test/tiny", index_options={"type": "flat"}, replicas=0)
    backend.ensure_index(small)
    vector = np.array([[1, 0, 0, 0]], dtype=np.float32)
    chunks = []
    for d in range(10_500):
        chunks += make_chunks(f"bulk/{d:05d}.txt", 1, etag=f'"e{d}"', vectors=vector)
    partial = make_chunks("partial.txt", 3, etag='"p"', vectors=np.eye(4, dtype=np.float32))
    started = time.perf_counter()
    report = backend.upsert_documents(es_index, chunks + partial[:2])
    assert report.chunks_indexed == 10_502
    print(f"indexed 10,502 small chunks in {time.perf_counter() - started:.1f}s")

    by_key = backend.indexed_etags(es_index, bucket="corpus")
    assert len(by_key) == 10_501
    assert by_key["bulk/00000.txt"] == '"e0"' and by_key["bulk/10499.txt"] == '"e10499"'
    assert by_key["partial.txt"] is None, "2 of 3 chunks indexed: incomplete, must be reprocessed"

    wanted = [chunk.doc_id for chunk in chunks[9_990:10_010]] + ["0" * 40]
    by_doc = backend.indexed_etags(es_index, doc_ids=wanted)
    assert by_doc == {chunk.doc_id: chunk.etag for chunk in chunks[9_990:10_010]}
    assert backend.indexed_etags(es_index, keys=["bulk/00007.txt", "missing.txt"]) == {"bulk/00007.txt": '"e7"'}
    assert backend.indexed_etags(es_index, bucket="elsewhere") == {}
    assert len(backend.count_by_doc(es_index)) == 10_501
    assert len(backend.indexed_keys(es_index, bucket="corpus")) == 10_501
    assert backend.indexed_keys(es_index, bucket="corpus", prefix="bulk/0000") == {
        f"bulk/0000{d}.txt" for d in range(10)
    }

    gone = [f"bulk/{d:05d}.txt" for d in range(2_500)]
    assert backend.delete_objects(es_index, "corpus", gone) == 2_500, "more than one page of ids to delete"
    assert len(backend.indexed_keys(es_index, bucket="corpus")) == 10_501 - 2_500


def test_swap_alias_moves_atomically_between_indices(backend, spec, es_client, make_chunks):
    alias = spec.name
    first = dataclasses.replace(spec, name=f"{alias}-v1")
    second = dataclasses.replace(spec, name=f"{alias}-v2", model_revision="r2")
    backend.ensure_index(first)
    backend.ensure_index(second)
    backend.upsert_documents(first.name, make_chunks("old.txt", 2))
    backend.upsert_documents(second.name, make_chunks("new.txt", 3))

    assert backend.swap_alias(alias, first.name) == []
    assert backend.alias_targets(alias) == [first.name]
    assert backend.swap_alias(alias, second.name) == [first.name]
    assert backend.alias_targets(alias) == [second.name]
    assert backend.swap_alias(alias, second.name) == []
    hits = backend.knn_search(alias, make_chunks("new.txt", 3)[1].vector, k=1)
    assert hits[0].source["key"] == "new.txt"
    assert total(es_client, alias) == 3
    # Through the alias, the spec check sees the index behind it.
    assert backend.ensure_index(dataclasses.replace(second, name=alias)) is False
    with pytest.raises(IndexMismatchError):
        backend.ensure_index(dataclasses.replace(first, name=alias))

    with pytest.raises(ValueError, match="is an index, not an alias"):
        backend.swap_alias(first.name, second.name)


def test_an_index_that_predates_window_recording_is_refused(backend, spec, es_client):
    body = index_body(spec)
    for setting in ("window", "window_overlap"):
        del body["mappings"]["_meta"]["latechunk"][setting]
    es_client.indices.create(index=spec.name, **body)
    with pytest.raises(IndexMismatchError, match="window is not recorded in the index"):
        backend.ensure_index(spec)


def test_a_tombstone_marks_its_object_indexed_and_is_never_searched(backend, spec, es_client, make_chunks):
    backend.ensure_index(spec)
    (old,) = make_chunks("blank.txt", 1, etag='"v1"')
    backend.upsert_documents(spec.name, [old])
    tombstone = Tombstone(old.doc_id, old.bucket, old.key, "", '"v2"', "no_chunks")
    assert backend.record_tombstones(spec.name, [tombstone], model_id=spec.model_id) == 1
    assert backend.indexed_etags(spec.name, keys=["blank.txt"]) == {"blank.txt": '"v2"'}
    assert backend.count_by_doc(spec.name) == {old.doc_id: 1}, "the v1 chunk is gone, the tombstone stands"
    assert backend.knn_search(spec.name, old.vector, k=5) == []
    assert list(backend.iter_vectors(spec.name)) == []
    assert backend.delete_objects(spec.name, old.bucket, ["blank.txt"]) == 1
