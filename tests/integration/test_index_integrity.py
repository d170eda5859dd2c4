"""Complete-or-absent objects, metadata that cannot break a write, refused items, and the served index's name,
against a real node."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from elasticsearch import helpers
from latechunk.index.actions import MAX_METADATA_BYTES, MAX_METADATA_DEPTH, TRUNCATED
from latechunk.index.backend import Tombstone
from latechunk.index.elasticsearch import ElasticsearchBackend
from latechunk.index.spec import IndexSpec, index_body
from latechunk.pipeline.index import IndexingError, ensure_served_index, served_index_name

pytestmark = pytest.mark.integration

FEED = "feed.jsonl"


@pytest.fixture
def backend(es_client) -> ElasticsearchBackend:
    return ElasticsearchBackend(es_client)


@pytest.fixture
def spec(es_index) -> IndexSpec:
    return IndexSpec(name=es_index, dims=768, model_id="test/random-encoder", replicas=0, window=512)


def feed_parts(make_chunks, etag: str = '"v1"') -> list[list]:
    """Three documents of one .jsonl object, 2 + 3 + 1 chunks."""
    return [make_chunks(FEED, n, part=str(part), etag=etag, seed=part) for part, n in ((1, 2), (2, 3), (3, 1))]


def test_an_object_interrupted_between_its_documents_is_not_indexed(backend, spec, es_client, make_chunks):
    backend.ensure_index(spec)
    parts = feed_parts(make_chunks)
    records = {("corpus", FEED): 6}
    # A kill after the first two documents: each of them is whole, the object is not.
    backend.upsert_documents(spec.name, parts[0] + parts[1], object_records=records)
    assert backend.indexed_etags(spec.name, keys=[FEED], bucket="corpus") == {FEED: None}
    assert backend.indexed_etags(spec.name, doc_ids=[parts[0][0].doc_id]) == {parts[0][0].doc_id: '"v1"'}

    backend.upsert_documents(spec.name, parts[2], object_records=records)
    assert backend.indexed_etags(spec.name, keys=[FEED], bucket="corpus") == {FEED: '"v1"'}
    stored = {hit["_source"]["object_records"] for hit in es_client.search(index=spec.name, size=10)["hits"]["hits"]}
    assert stored == {6}

    # One call with every document of the object: its size comes from the chunks themselves.
    v2 = feed_parts(make_chunks, etag='"v2"')
    backend.upsert_documents(spec.name, v2[0] + v2[1] + v2[2])
    assert backend.indexed_etags(spec.name, keys=[FEED]) == {FEED: '"v2"'}


def test_an_object_with_more_records_than_its_total_is_not_indexed(backend, spec, make_chunks):
    backend.ensure_index(spec)
    parts = feed_parts(make_chunks)
    backend.upsert_documents(spec.name, parts[0] + parts[1] + parts[2], object_records={("corpus", FEED): 5})
    assert backend.indexed_etags(spec.name, keys=[FEED]) == {FEED: None}


def test_tombstones_count_toward_their_object(backend, spec, make_chunks):
    backend.ensure_index(spec)
    (line,) = feed_parts(make_chunks)[:1]
    blank = Tombstone("f" * 40, "corpus", FEED, "9", '"v1"', "no_chunks")
    records = {("corpus", FEED): len(line) + 1}
    backend.upsert_documents(spec.name, line, object_records=records)
    assert backend.indexed_etags(spec.name, keys=[FEED]) == {FEED: None}, "the tombstone is not written yet"
    backend.record_tombstones(spec.name, [blank], model_id=spec.model_id, object_records=records)
    assert backend.indexed_etags(spec.name, keys=[FEED]) == {FEED: '"v1"'}


def test_an_index_that_predates_object_records_gets_the_field_and_keeps_its_objects(
    backend, spec, es_client, make_chunks
):
    body = index_body(spec)
    del body["mappings"]["properties"]["object_records"]
    es_client.indices.create(index=spec.name, **body)
    old = make_chunks("old.txt", 2)
    actions = [{"_index": spec.name, "_id": c.es_id, "_source": {
        "doc_id": c.doc_id, "bucket": c.bucket, "key": c.key, "part": "", "etag": c.etag, "chunk_id": c.chunk_id,
        "n_chunks": c.n_chunks, "text": c.text, "vector": c.vector.tolist(), "model_id": c.model_id}} for c in old]
    helpers.bulk(es_client, actions, refresh=True)
    assert backend.indexed_etags(spec.name, keys=["old.txt"]) == {"old.txt": '"v1"'}, "judged per document"

    assert backend.index_mismatches(spec) == [], "a missing added field is no mismatch"
    assert backend.ensure_index(spec) is False
    properties = es_client.indices.get_mapping(index=spec.name)[spec.name]["mappings"]["properties"]
    assert properties["object_records"] == {"type": "integer"}
    backend.upsert_documents(spec.name, make_chunks("new.txt", 3))
    assert backend.indexed_etags(spec.name, bucket="corpus") == {"old.txt": '"v1"', "new.txt": '"v1"'}


def test_an_index_that_predates_sections_gets_the_fields_and_serves_section_paths_and_pages(
    backend, spec, es_client, make_chunks
):
    body = index_body(spec)
    for field in ("section", "page_start", "page_end"):
        del body["mappings"]["properties"][field]
    es_client.indices.create(index=spec.name, **body)
    assert backend.index_mismatches(spec) == [], "a missing added field is no mismatch"
    assert backend.ensure_index(spec) is False
    properties = es_client.indices.get_mapping(index=spec.name)[spec.name]["mappings"]["properties"]
    assert properties["section"] == {"type": "keyword", "ignore_above": 1024}
    assert properties["page_start"] == properties["page_end"] == {"type": "integer"}

    chunks = make_chunks("guide.pdf", 3)
    chunks[1] = dataclasses.replace(chunks[1], section=["Tutorial", "Erste Schritte"], page_start=4, page_end=5)
    backend.upsert_documents(spec.name, chunks)
    es_client.indices.refresh(index=spec.name)
    found = es_client.search(index=spec.name, query={"term": {"section": "Erste Schritte"}})["hits"]["hits"]
    assert [(hit["_source"]["chunk_id"], hit["_source"]["page_start"], hit["_source"]["page_end"]) for hit in found] \
        == [(1, 4, 5)]
    hits = backend.knn_search(spec.name, chunks[0].vector, k=1)
    assert hits[0].source["section"] == [] and hits[0].source["page_start"] is None


def nasty_metadata(depth: int = 300) -> dict:
    deep: dict = {}
    node = deep
    for _ in range(depth):
        node["d"] = {}
        node = node["d"]
    return {
        "title": "Nasty",
        "big": 2**70,
        "huge": int("9" * 2000),
        "negative": -(2**64),
        "nan": math.nan,
        "inf": [math.inf, -math.inf, 1.5],
        "deep": deep,
        "surrogate": "broken \ud800 text",
        "\udfff key": 1,
        "": "empty key",
        "a.b": {"c": [1, "two", None, {"x": True}]},
    }


def test_metadata_of_any_shape_never_fails_a_write(backend, spec, es_client, make_chunks):
    backend.ensure_index(spec)
    first = make_chunks("nasty.json", 2)
    second = make_chunks("mixed.json", 1)
    third = make_chunks("large.json", 1)
    for chunk in first:
        chunk.metadata = nasty_metadata()
    second[0].metadata = {"big": {"now": "an object"}, "deep": 7, "nan": "text"}  # other types, same names
    third[0].metadata = {"small": 1, "blob": "x" * (2 * MAX_METADATA_BYTES), "after": 2}
    report = backend.upsert_documents(spec.name, first + second + third)
    assert (report.chunks_indexed, report.chunks_failed) == (4, 0), report.errors
    assert backend.indexed_etags(spec.name, keys=["nasty.json", "mixed.json", "large.json"]) == {
        "nasty.json": '"v1"', "mixed.json": '"v1"', "large.json": '"v1"'
    }

    es_client.indices.refresh(index=spec.name)
    hit = es_client.get(index=spec.name, id=first[0].es_id)["_source"]["metadata"]
    assert (hit["title"], hit["big"], hit["huge"], hit["negative"]) == ("Nasty", str(2**70), "9" * 2000, str(-(2**64)))
    assert hit["nan"] is None and hit["inf"] == [None, None, 1.5]
    assert hit["surrogate"] == "broken ? text" and hit["? key"] == 1 and hit[""] == "empty key"
    assert hit["a.b"] == {"c": [1, "two", None, {"x": True}]}
    depth, node = 0, hit["deep"]
    while isinstance(node, dict):
        depth, node = depth + 1, node["d"]
    assert depth == MAX_METADATA_DEPTH - 1 and node is None, "nesting is cut at the depth bound"
    large = es_client.get(index=spec.name, id=third[0].es_id)["_source"]["metadata"]
    assert large == {"small": 1, "after": 2, TRUNCATED: True}
    assert len(json.dumps(hit)) <= MAX_METADATA_BYTES + 64


def test_a_refused_chunk_marks_its_object_and_not_the_others(backend, spec, make_chunks):
    backend.ensure_index(spec)
    wrong_dims = make_chunks("dims.txt", 2)
    wrong_dims[1].vector = np.ones(5, dtype=np.float32)
    unserialisable = make_chunks("surrogate.txt", 2)
    unserialisable[0].text = "lone \ud800 surrogate"
    healthy = make_chunks("fine.txt", 3)
    report = backend.upsert_documents(spec.name, wrong_dims + unserialisable + healthy)
    assert (report.chunks_indexed, report.chunks_failed, report.transient_failures) == (5, 2, 0)
    assert set(report.refused_objects) == {("corpus", "dims.txt"), ("corpus", "surrogate.txt")}
    assert report.refused_objects["corpus", "dims.txt"].startswith("document_parsing_exception: ")
    assert report.refused_objects["corpus", "surrogate.txt"].startswith("serialisation_error: ")
    assert report.to_dict()["refused_objects"]["corpus/dims.txt"] == report.refused_objects["corpus", "dims.txt"]
    found = backend.indexed_etags(spec.name, keys=["dims.txt", "surrogate.txt", "fine.txt"])
    assert found == {"dims.txt": None, "surrogate.txt": None, "fine.txt": '"v1"'}


def test_a_retry_after_dying_before_the_alias_reuses_the_empty_index(backend, spec, es_client):
    physical = served_index_name(spec)
    assert physical == served_index_name(dataclasses.replace(spec)) != served_index_name(
        dataclasses.replace(spec, window=256)
    )
    backend.ensure_index(dataclasses.replace(spec, name=physical))  # the first try dies right after this

    assert ensure_served_index(es_client, backend, spec) is False, "the retry creates nothing"
    assert ensure_served_index(es_client, backend, spec) is False
    assert sorted(es_client.indices.get(index=f"{spec.name}*")) == [physical]
    assert list(es_client.indices.get_alias(name=spec.name)) == [physical]


def test_a_first_run_creates_the_served_index_behind_its_alias(backend, spec, es_client):
    assert ensure_served_index(es_client, backend, spec) is True
    assert list(es_client.indices.get_alias(name=spec.name)) == [served_index_name(spec)]


def test_an_alias_less_index_with_chunks_is_not_adopted(backend, spec, es_client, make_chunks):
    physical = served_index_name(spec)
    backend.ensure_index(dataclasses.replace(spec, name=physical))
    backend.upsert_documents(physical, make_chunks("kept.txt", 2))
    with pytest.raises(IndexingError, match="exists with 2 chunks but no alias"):
        ensure_served_index(es_client, backend, spec)
    assert not es_client.indices.exists_alias(name=spec.name)
