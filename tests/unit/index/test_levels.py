"""Indices of several levels (`latechunk.chunking.levels`) without a server: the recorded setting, the rows the
embed stage stages, and the level-aware reads of the in-memory backend (the same scenarios against Elasticsearch:
tests/integration/test_levels_index.py)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import orjson
import pytest
from embedded_chunks import MODEL_ID, leveled_rows
from latechunk.index.actions import chunk_action
from latechunk.index.spec import META_KEY, IndexMismatchError, IndexSpec, index_body, mismatches, spec_from_mapping
from latechunk.pipeline.index import served_index_name
from memory_backend import MemoryBackend

SPEC = IndexSpec(name="chunks", dims=768, model_id=MODEL_ID, chunking={"strategy": "sentences"})
LEVELED = dataclasses.replace(SPEC, levels=("chunk", "section", "document"))
NOW = datetime(2026, 12, 4, tzinfo=UTC)


def test_chunks_only_records_nothing_new():
    meta = index_body(SPEC)["mappings"]["_meta"][META_KEY]
    assert "levels" not in meta
    before_levels = {name: value for name, value in meta.items() if name != "levels"}
    mapping = {**index_body(SPEC)["mappings"], "_meta": {META_KEY: before_levels}}
    assert mismatches(SPEC, mapping) == []
    assert served_index_name(SPEC) != served_index_name(LEVELED), "another configuration, another index"


def test_levels_are_recorded_read_back_and_refused_when_they_differ():
    mapping = index_body(LEVELED)["mappings"]
    assert mapping["_meta"][META_KEY]["levels"] == ["chunk", "section", "document"]
    assert spec_from_mapping("chunks", mapping).levels == LEVELED.levels
    assert mismatches(LEVELED, mapping) == []
    assert mismatches(SPEC, mapping) == [
        "levels is ['chunk', 'section', 'document'] in the index, ['chunk'] configured"
    ]
    assert mismatches(LEVELED, index_body(SPEC)["mappings"]) == [
        "levels is ['chunk'] in the index, ['chunk', 'section', 'document'] configured"
    ]


def test_a_spec_without_chunks_is_refused():
    with pytest.raises(ValueError, match="levels must include 'chunk'"):
        dataclasses.replace(SPEC, levels=("section",))


def test_the_rows_of_a_leveled_document_have_deterministic_ids_and_name_their_parents():
    rows = leveled_rows("docs/guide.md")
    doc_id = rows[0].doc_id
    ids = [row.es_id for row in rows]
    assert ids == [f"{doc_id}:section-{i}" for i in range(4)] + [f"{doc_id}:document-0"] + [
        f"{doc_id}:{i}" for i in range(7)
    ], "a document's other rows are written before its chunks"
    assert ids == [row.es_id for row in leveled_rows("docs/guide.md", seed=5)], "same document, same ids"
    chunks = [row for row in rows if row.level == "chunk"]
    assert [chunk.section_id for chunk in chunks] == [f"{doc_id}:section-{i}" for i in (0, 1, 1, 2, 2, 3, 3)]
    sections = [row for row in rows if row.level == "section"]
    assert [section.section for section in sections] == [[], ["Part 0"], ["Part 1"], ["Part 2"]]
    for section, first in zip(sections[1:], chunks[1::2], strict=True):
        assert (section.token_start, section.char_start) == (first.token_start, first.char_start)
        assert section.text.startswith(section.section[0])
    assert all(row.n_chunks == 7 and row.etag == '"v1"' for row in rows), "stale versions go with the chunks"


def test_rows_of_chunks_only_carry_no_level():
    (chunk, *_) = leveled_rows("docs/guide.md", levels=("chunk",))
    source = orjson.loads(chunk_action("chunks", chunk, NOW, object_records=7, metadata={})["_source"])
    assert "level" not in source and "section_id" not in source
    assert chunk.es_id == f"{chunk.doc_id}:0"


@pytest.fixture
def backend() -> MemoryBackend:
    backend = MemoryBackend()
    backend.ensure_index(LEVELED)
    return backend


def test_searches_counts_and_completeness_read_chunks_unless_told(backend):
    rows = leveled_rows("docs/a.md") + leveled_rows("docs/b.md", sections=1, seed=1)
    report = backend.upsert_documents(LEVELED.name, rows)
    assert (report.chunks_indexed, report.level_rows_indexed) == (10, 8)
    document_row = next(row for row in reversed(rows) if row.level == "document")  # docs/b.md's
    hits = backend.knn_search(LEVELED.name, document_row.vector, k=len(rows))
    assert len(hits) == 7 + 3 and all(hit.source["level"] == "chunk" for hit in hits)
    sections = backend.knn_search(LEVELED.name, document_row.vector, k=len(rows), level="section")
    assert len(sections) == 4 + 2 and all(hit.source["level"] == "section" for hit in sections)
    (document,) = backend.knn_search(LEVELED.name, document_row.vector, k=1, level="document")
    assert document.id == document_row.es_id and document.score == pytest.approx(1.0)
    assert backend.count_by_doc(LEVELED.name) == {rows[0].doc_id: 7, rows[-1].doc_id: 3}
    assert backend.count_by_doc(LEVELED.name, level="section") == {rows[0].doc_id: 4, rows[-1].doc_id: 2}
    assert backend.indexed_etags(LEVELED.name, keys=["docs/a.md", "docs/b.md"]) == {
        "docs/a.md": '"v1"', "docs/b.md": '"v1"'
    }
    assert sum(len(ids) for ids, _ in backend.iter_vectors(LEVELED.name)) == 10


def test_a_changed_or_deleted_document_leaves_no_row_of_any_level(backend):
    backend.upsert_documents(LEVELED.name, leveled_rows("docs/a.md") + leveled_rows("docs/b.md", seed=1))
    backend.upsert_documents(LEVELED.name, leveled_rows("docs/a.md", etag='"v2"', sections=1))
    assert backend.count_by_doc(LEVELED.name, level="section") == {
        leveled_rows("docs/a.md")[0].doc_id: 2, leveled_rows("docs/b.md")[0].doc_id: 4
    }
    backend.delete_objects(LEVELED.name, "corpus", ["docs/a.md", "docs/b.md"])
    for level in ("chunk", "section", "document"):
        assert backend.count_by_doc(LEVELED.name, level=level) == {}


def test_an_index_of_chunks_only_refuses_a_run_with_levels(backend):
    plain = MemoryBackend()
    plain.ensure_index(SPEC)
    with pytest.raises(IndexMismatchError, match="levels is"):
        plain.ensure_index(LEVELED)
