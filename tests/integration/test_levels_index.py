"""Indices of several levels on a real Elasticsearch: deterministic ids and idempotent re-runs, chunk searches that
return chunks only (in an index without the `level` field too), and changes and deletions that leave no row of any
level behind."""

from __future__ import annotations

import dataclasses

import pytest
from embedded_chunks import MODEL_ID, document_chunks, leveled_rows
from latechunk.index.elasticsearch import ElasticsearchBackend
from latechunk.index.spec import IndexMismatchError, IndexSpec, index_body

LEVELS = ("chunk", "section", "document")


@pytest.fixture
def backend(es_client) -> ElasticsearchBackend:
    return ElasticsearchBackend(es_client)


@pytest.fixture
def spec(es_index) -> IndexSpec:
    return IndexSpec(name=es_index, dims=768, model_id=MODEL_ID, chunking={"strategy": "sentences"}, replicas=0,
                     levels=LEVELS)  # fmt: skip


def ids_by_level(es_client, index: str) -> dict[str, set[str]]:
    es_client.indices.refresh(index=index)
    hits = es_client.search(index=index, size=1000, source=["level"])["hits"]["hits"]
    found: dict[str, set[str]] = {}
    for hit in hits:
        found.setdefault(hit["_source"].get("level", "chunk"), set()).add(hit["_id"])
    return found


def test_rows_of_every_level_are_written_once_under_deterministic_ids(backend, spec, es_client):
    backend.ensure_index(spec)
    rows = leveled_rows("docs/guide.md")
    report = backend.upsert_documents(spec.name, rows)
    assert (report.chunks_indexed, report.level_rows_indexed) == (7, 5)
    first = ids_by_level(es_client, spec.name)
    doc_id = rows[0].doc_id
    assert first == {
        "chunk": {f"{doc_id}:{i}" for i in range(7)},
        "section": {f"{doc_id}:section-{i}" for i in range(4)},
        "document": {f"{doc_id}:document-0"},
    }
    report = backend.upsert_documents(spec.name, leveled_rows("docs/guide.md", seed=3))  # a re-run
    assert report.stale_chunks_deleted == 0
    assert ids_by_level(es_client, spec.name) == first
    assert backend.indexed_etags(spec.name, keys=["docs/guide.md"]) == {"docs/guide.md": '"v1"'}
    stored = backend.get_chunks(spec.name, [f"{doc_id}:2", f"{doc_id}:section-1"])
    assert stored[f"{doc_id}:2"]["section_id"] == f"{doc_id}:section-1"
    assert stored[f"{doc_id}:section-1"]["section"] == ["Part 0"]


def test_a_chunk_search_returns_chunks_only_and_another_level_on_request(backend, spec):
    backend.ensure_index(spec)
    rows = leveled_rows("docs/a.md") + leveled_rows("docs/b.md", seed=1)
    backend.upsert_documents(spec.name, rows)
    document_row = next(row for row in reversed(rows) if row.level == "document")  # docs/b.md's
    hits = backend.knn_search(spec.name, document_row.vector, k=50, num_candidates=100)
    assert len(hits) == 14 and {hit.source["level"] for hit in hits} == {"chunk"}
    (found,) = backend.knn_search(spec.name, document_row.vector, k=1, level="document")
    assert found.id == document_row.es_id
    sections = backend.knn_search(spec.name, document_row.vector, k=50, level="section")
    assert len(sections) == 8 and {hit.source["level"] for hit in sections} == {"section"}
    assert set(backend.count_by_doc(spec.name).values()) == {7}
    assert set(backend.count_by_doc(spec.name, level="section").values()) == {4}
    assert sum(len(ids) for ids, _ in backend.iter_vectors(spec.name)) == 14


def test_an_index_without_the_level_field_is_searched_as_before(backend, es_client, es_index):
    spec = IndexSpec(name=es_index, dims=768, model_id=MODEL_ID, replicas=0)
    body = index_body(spec)
    for name in ("level", "section_id"):  # an index created before levels existed
        del body["mappings"]["properties"][name]
    es_client.indices.create(index=es_index, **body)
    chunks = document_chunks("docs/old.txt", 3)
    backend.upsert_documents(es_index, chunks)
    assert len(backend.knn_search(es_index, chunks[0].vector, k=10)) == 3
    assert backend.count_by_doc(es_index) == {chunks[0].doc_id: 3}
    with pytest.raises(IndexMismatchError, match="levels is \\['chunk'\\] in the index"):
        backend.ensure_index(dataclasses.replace(spec, levels=LEVELS))


def test_changed_and_deleted_documents_leave_no_row_of_any_level(backend, spec, es_client):
    backend.ensure_index(spec)
    backend.upsert_documents(spec.name, leveled_rows("docs/a.md") + leveled_rows("docs/b.md", seed=1))
    report = backend.upsert_documents(spec.name, leveled_rows("docs/a.md", etag='"v2"', sections=1))
    assert report.stale_chunks_deleted == 12 - 6  # 7 chunks, 4 sections, 1 document before; 3, 2, 1 now
    a_rows = {row.es_id for row in leveled_rows("docs/a.md", etag='"v2"', sections=1)}
    remaining = set().union(*ids_by_level(es_client, spec.name).values())
    assert {row_id for row_id in remaining if row_id.startswith(leveled_rows("docs/a.md")[0].doc_id)} == a_rows
    backend.delete_superseded(spec.name, "corpus", {"docs/b.md": '"v9"'})
    backend.delete_objects(spec.name, "corpus", ["docs/a.md"])
    assert ids_by_level(es_client, spec.name) == {}
