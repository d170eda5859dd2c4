"""Levels through the staged stages on the real servers: embed stages section and document rows beside the chunks
(the chunks themselves unchanged), the index serves them, and validation re-pools and counts them: a wrong section
vector fails the exact check, a missing row the level counts."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from latechunk.chunking.config import ChunkingConfig
from latechunk.embedding.config import LateChunkingConfig
from latechunk.embedding.encoders import load_encoder
from latechunk.index.elasticsearch import ElasticsearchBackend
from latechunk.index.spec import IndexSpec
from latechunk.pipeline import annotate as annotate_stage
from latechunk.pipeline import embed as embed_stage
from latechunk.sources.documents import SourceObject, load_documents
from latechunk.staging import tables as staging
from latechunk.staging.tables import StagingArea
from latechunk.validation.exact import MIN_COSINE
from latechunk.validation.run import Reencoder, validate_index

DATA = Path(__file__).parents[1] / "data" / "structured"
FILES = ["fastapi-debugging-de.md", "devils-dictionary-q.html"]
LEVELS = ("chunk", "section", "document")
CHUNKING = {"strategy": "sentences", "max_chunk_tokens": 96}


def staged_rows(s3_client, bucket: str, model: str, levels: tuple[str, ...], run_id: str):
    documents = []
    for name in FILES:
        data = (DATA / name).read_bytes()
        documents += load_documents(SourceObject(bucket, f"docs/{name}", '"e"', len(data)), data)[0]
    area = StagingArea(bucket=bucket, prefix="staging/", dag_id="latechunk_ingest", run_id=run_id)
    batch = staging.write_documents(s3_client, area, 0, documents)
    annotate_stage.annotate(s3=s3_client, area=area, batch_path=batch, model=model, chunking=CHUNKING)
    summary = embed_stage.embed(s3=s3_client, area=area, batch_path=batch, model=model, window=128,
                                window_overlap=32, device="cpu", levels=levels)  # fmt: skip
    return documents, staging.read_chunks(s3_client, summary["chunks_path"])


def test_levels_are_staged_indexed_and_validated(s3_client, s3_bucket, es_client, es_index, tiny_jina_model):
    documents, rows = staged_rows(s3_client, s3_bucket, tiny_jina_model, LEVELS, "levels")
    _, plain = staged_rows(s3_client, s3_bucket, tiny_jina_model, ("chunk",), "chunks-only")
    chunks = [row for row in rows if row.is_chunk]
    levels = [row for row in rows if not row.is_chunk]
    assert all(row.level is None and row.section_id is None for row in plain), "chunks only: rows as before"
    assert [dataclasses.replace(c, level=None, section_id=None).es_id for c in chunks] == [c.es_id for c in plain]
    for ours, before in zip(chunks, plain, strict=True):
        np.testing.assert_array_equal(ours.vector, before.vector)
    by_doc = {document.doc_id: document for document in documents}
    for document in documents:
        sections = [row for row in levels if row.doc_id == document.doc_id and row.level == "section"]
        assert len(sections) == len({c.section_id for c in chunks if c.doc_id == document.doc_id}) >= 1
        assert [row.level for row in levels if row.doc_id == document.doc_id].count("document") == 1
    assert sum(row.level == "section" for row in levels) > 2 * len(documents)
    assert max(len(by_doc[row.doc_id].text[row.char_start : row.char_end]) for row in levels) > 1000
    assert all(len(row.text) <= 1000 for row in levels)

    spec = IndexSpec(name=es_index, dims=chunks[0].vector.shape[0], model_id=tiny_jina_model, replicas=0,
                     chunking=CHUNKING, levels=LEVELS)  # fmt: skip
    backend = ElasticsearchBackend(es_client)
    backend.ensure_index(spec)
    backend.upsert_documents(es_index, rows)
    reencoder = Reencoder(
        encoder=load_encoder(tiny_jina_model, device="cpu"), chunking=ChunkingConfig(**CHUNKING), window=128,
        overlap=32, late_chunking=LateChunkingConfig(), levels=LEVELS,
    )  # fmt: skip

    def checks(staged_levels):
        report = validate_index(
            backend, es_index, chunks, query_encoder=None, spec=spec, exact_documents=documents, reencoder=reencoder,
            staged_levels=staged_levels,
        )  # fmt: skip
        return {check.name: check for check in report.checks}

    good = checks(levels)
    assert good["exact_vectors"].passed and good["exact_vectors"].details["level_rows"] == len(levels)
    assert good["level_counts"].passed and good["chunk_counts"].passed and good["mapping"].passed
    assert good["exact_vectors"].details["min_cosine"] >= MIN_COSINE["float32"]

    section = next(row for row in levels if row.level == "section")
    neighbour = next(row for row in levels if row.level == "section" and row.es_id != section.es_id)
    backend.upsert_documents(es_index, [dataclasses.replace(row, vector=neighbour.vector) if row is section else row
                                        for row in rows])  # fmt: skip
    wrong = checks(levels)["exact_vectors"]
    assert not wrong.passed and [(p["level"], p["ordinal"]) for p in wrong.details["problems"]] == [
        ("section", section.chunk_id)
    ]
    es_client.delete(index=es_index, id=section.es_id, refresh=True)
    missing = checks(levels)["level_counts"]
    assert not missing.passed and missing.details["mismatches"][0]["level"] == "section"
