"""Run-scoped Parquet staging against a real S3 server: every stage round-trips, and a rewrite replaces."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from latechunk.chunking.spans import AnnotatedDocument, ChunkSpan
from latechunk.sources.documents import Document, document_id
from latechunk.sources.structure import TextBuilder
from latechunk.staging.tables import (
    STAGE_CHUNKS,
    STAGE_DOCUMENTS,
    STAGE_SPANS,
    StagingArea,
    delete_run,
    list_batches,
    parse_s3_uri,
    read_annotated,
    read_chunks,
    read_documents,
    read_json,
    span_counts,
    write_annotated,
    write_chunks,
    write_documents,
    write_json,
)

RUN_ID = "scheduled__2026-11-24T00:00:00+00:00"


@pytest.fixture
def area(s3_bucket) -> StagingArea:
    return StagingArea(bucket=s3_bucket, prefix="staging/", dag_id="latechunk_ingest", run_id=RUN_ID)


def make_documents() -> list[Document]:
    texts = ["Berlin is the capital of Germany. It is big.", "中文 עברית 🙂 naïve", "x" * 100_000]
    return [
        Document(
            doc_id=document_id("corpus", f"k{i}.jsonl", str(i + 1)),
            bucket="corpus",
            key=f"k{i}.jsonl",
            etag=f'"etag-{i}"',
            text=text,
            content_type="application/x-ndjson",
            part=str(i + 1),
            metadata={"n": i, "tags": ["a", "b"], "nested": {"deep": None}},
        )
        for i, text in enumerate(texts)
    ]


def structured_document() -> Document:
    builder = TextBuilder()
    builder.start_page()
    builder.add("paragraph", "Einleitung", level=1)
    builder.add("paragraph", "Erste Seite.")
    builder.start_page()
    builder.add("list_item", "Zweite Seite.")
    text, structure = builder.finish()
    return Document(document_id("corpus", "guide.pdf"), "corpus", "guide.pdf", '"s"', text, "application/pdf",
                    structure=structure)  # fmt: skip


def rewrite_without(s3_client, uri: str, columns: tuple[str, ...]) -> None:
    """Rewrite a staged batch as the code before ``columns`` existed wrote it (its stage tag kept)."""
    bucket, key = parse_s3_uri(uri)
    table = pq.read_table(pa.BufferReader(s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()))
    table = table.drop_columns(list(columns)).replace_schema_metadata(table.schema.metadata)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    s3_client.put_object(Bucket=bucket, Key=key, Body=sink.getvalue().to_pybytes())


def test_document_structures_round_trip_and_old_batches_read_without_one(area, s3_client):
    documents = [*make_documents(), structured_document()]
    uri = write_documents(s3_client, area, 0, documents)
    back = read_documents(s3_client, uri)
    assert back == documents and back[-1].structure.page_starts == [0, len("Einleitung\n\nErste Seite.\n\n")]
    assert back[-1].structure.section_path(back[-1].text.index("Zweite")) == ["Einleitung"]
    rewrite_without(s3_client, uri, ("structure",))
    old = read_documents(s3_client, uri)
    assert old == [replace(document, structure=type(document.structure)()) for document in documents]


def test_layout_is_run_scoped_and_safe_for_object_keys(area, s3_bucket):
    assert area.root == "staging/latechunk_ingest/scheduled__2026-11-24T00_00_00_00_00"
    assert area.batch_key(STAGE_CHUNKS, 7) == f"{area.root}/chunks/batch-00007.parquet"
    assert parse_s3_uri(area.uri(area.key("a/b.json"))) == (s3_bucket, f"{area.root}/a/b.json")
    with pytest.raises(ValueError, match="not an s3://"):
        parse_s3_uri("/local/path")


def test_documents_round_trip(area, s3_client):
    documents = make_documents()
    uri = write_documents(s3_client, area, 0, documents)
    assert uri == f"s3://{area.bucket}/{area.root}/documents/batch-00000.parquet"
    assert read_documents(s3_client, uri) == documents


def test_annotated_spans_round_trip(area, s3_client):
    documents = make_documents()[:2]
    text = documents[0].text
    spans = [
        [ChunkSpan(0, 0, 9, 0, 33, text[0:33]), ChunkSpan(1, 9, 15, 34, len(text), text[34:])],
        [],
    ]
    docs = [AnnotatedDocument([101, *range(7, 20), 102], spans[0]), AnnotatedDocument([], spans[1])]
    uri = write_annotated(s3_client, area, 3, zip(documents, docs, strict=True))
    assert uri.endswith("/spans/batch-00003.parquet")
    annotated = read_annotated(s3_client, uri)
    assert [document for document, _ in annotated] == documents
    assert [found for _, found in annotated] == docs
    assert all(isinstance(span, ChunkSpan) for span in annotated[0][1].spans)
    assert span_counts(s3_client, uri) == ({documents[0].doc_id: 2, documents[1].doc_id: 0}, {})


def test_embedded_chunks_round_trip_with_exact_float32_vectors(area, s3_client, make_chunks):
    chunks = make_chunks("a.txt", 3) + make_chunks("b.jsonl", 2, part="4", etag='"other"', seed=3)
    uri = write_chunks(s3_client, area, 1, chunks)
    back = read_chunks(s3_client, uri)
    assert len(back) == 5
    for original, found in zip(chunks, back, strict=True):
        assert found.vector.dtype == np.float32
        assert np.array_equal(found.vector, original.vector)
        assert {**vars(found), "vector": None} == {**vars(original), "vector": None}

    bucket, key = parse_s3_uri(uri)
    body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    schema = pq.read_schema(pa.BufferReader(body))
    assert schema.field("vector").type == pa.list_(pa.float32(), 768)


def test_chunk_sections_and_pages_round_trip_and_old_batches_read_without_them(area, s3_client, make_chunks):
    chunks = make_chunks("guide.pdf", 3)
    chunks[1] = replace(chunks[1], section=["Tutorial", "Erste Schritte"], page_start=2, page_end=3)
    uri = write_chunks(s3_client, area, 2, chunks)
    back = read_chunks(s3_client, uri)
    located = (["Tutorial", "Erste Schritte"], 2, 3)
    assert [(c.section, c.page_start, c.page_end) for c in back] == [([], None, None), located, ([], None, None)]
    rewrite_without(s3_client, uri, ("section", "page_start", "page_end"))
    old = read_chunks(s3_client, uri)
    assert [(c.section, c.page_start, c.page_end) for c in old] == [([], None, None)] * 3
    assert [c.text for c in old] == [c.text for c in chunks]


def test_empty_batches_round_trip(area, s3_client):
    assert read_documents(s3_client, write_documents(s3_client, area, 0, [])) == []
    assert read_annotated(s3_client, write_annotated(s3_client, area, 0, [])) == []
    assert read_chunks(s3_client, write_chunks(s3_client, area, 0, [], dims=768)) == []


def test_vectors_of_the_wrong_size_are_refused(area, s3_client, make_chunks):
    with pytest.raises(ValueError, match="768 dimensions, expected 384"):
        write_chunks(s3_client, area, 0, make_chunks("a.txt", 2), dims=384)


def test_a_rewrite_replaces_the_batch_instead_of_adding_one(area, s3_client, make_chunks):
    first = write_chunks(s3_client, area, 0, make_chunks("a.txt", 4))
    retried = write_chunks(s3_client, area, 0, make_chunks("a.txt", 2, etag='"v2"'))
    assert retried == first
    assert [chunk.etag for chunk in read_chunks(s3_client, first)] == ['"v2"', '"v2"']
    write_chunks(s3_client, area, 1, make_chunks("b.txt", 1))
    assert list_batches(s3_client, area, STAGE_CHUNKS) == [
        area.uri(area.batch_key(STAGE_CHUNKS, 0)),
        area.uri(area.batch_key(STAGE_CHUNKS, 1)),
    ]
    assert list_batches(s3_client, area, STAGE_DOCUMENTS) == []


def test_reading_a_batch_as_the_wrong_stage_fails_clearly(area, s3_client):
    uri = write_documents(s3_client, area, 0, make_documents()[:1])
    with pytest.raises(ValueError, match="holds a 'documents' batch, expected 'chunks'"):
        read_chunks(s3_client, uri)


def test_json_manifests_and_deleting_a_run(area, s3_client, s3_bucket):
    manifest = {"batches": [area.uri(area.batch_key(STAGE_SPANS, 0))], "quarantine": [{"key": "é.txt"}]}
    uri = write_json(s3_client, area, "manifest.json", manifest)
    assert read_json(s3_client, uri) == manifest
    write_json(s3_client, area, "manifest.json", {"replaced": True})
    assert read_json(s3_client, uri) == {"replaced": True}

    write_documents(s3_client, area, 0, make_documents())
    other_run = StagingArea(s3_bucket, "staging", "latechunk_ingest", "manual__2026-11-25")
    write_json(s3_client, other_run, "manifest.json", {})
    assert delete_run(s3_client, area) == 2
    assert list_batches(s3_client, area, STAGE_DOCUMENTS) == []
    assert read_json(s3_client, other_run.uri(other_run.key("manifest.json"))) == {}


def test_batch_tasks_read_the_run_settings_without_the_object_lists(s3_client, staging_bucket):
    """Annotate and embed read the small settings file beside the manifest; index and validate the whole manifest;
    a run staged before the settings file existed is read whole either way."""
    from latechunk.chunking.config import ChunkingConfig
    from latechunk.embedding.config import LateChunkingConfig
    from latechunk.pipeline.manifest import RUN_SETTINGS, RunManifest, read_manifest

    area = StagingArea(staging_bucket, "runs", "dag", "run-1")
    manifest = RunManifest(
        bucket="docs", prefix="in/", index="chunks", model="m", model_revision="r", dims=4,
        chunking=ChunkingConfig(), window=64, window_overlap=16, late_chunking=LateChunkingConfig(),
        max_bad_fraction=0.2, batches=["s3://s/b/documents/batch-00000.parquet"],
        changed={f"in/{number}.txt": f"e{number}" for number in range(1000)}, deleted_keys=["in/gone.txt"],
        quarantine=[{"key": "in/bad.pdf", "etag": "e", "reason": "corrupt_pdf", "detail": ""}], retried={"in/1.txt": 1},
        settings={"max_bad_fraction": 0.2},
    )  # fmt: skip
    uri = manifest.write(s3_client, area)
    assert read_manifest(s3_client, uri) == manifest
    settings_only = read_manifest(s3_client, uri, object_lists=False)
    assert (settings_only.changed, settings_only.deleted_keys, settings_only.quarantine, settings_only.retried) == (
        {}, [], [], {}
    )  # fmt: skip
    assert settings_only.batches == manifest.batches and settings_only.chunking == manifest.chunking
    s3_client.delete_object(Bucket=staging_bucket, Key=area.key(RUN_SETTINGS))
    assert read_manifest(s3_client, uri, object_lists=False) == manifest
