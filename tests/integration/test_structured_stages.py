"""Structured documents through the staged annotate and embed stages against a real S3 server: the structure read
at extraction reaches the chunks, so every embedded chunk carries the section path of its first character and, for
PDFs and slides, its pages; headings start chunks there as they do in `latechunk.chunking.spans`."""

from __future__ import annotations

from pathlib import Path

import pytest
from latechunk.pipeline import annotate as annotate_stage
from latechunk.pipeline import embed as embed_stage
from latechunk.sources.documents import SourceObject, load_documents
from latechunk.staging import tables as staging
from latechunk.staging.tables import StagingArea

pytestmark = pytest.mark.integration

DATA = Path(__file__).parents[1] / "data" / "structured"
FILES = ["fastapi-debugging-de.md", "fastapi-debugging-ja.md", "devils-dictionary-q.html", "siege-of-vicksburg.pdf"]


@pytest.mark.parametrize("strategy", ["sentences", "sections"])
def test_embedded_chunks_carry_section_paths_and_pages(s3_client, s3_bucket, tiny_jina_model, strategy):
    documents = []
    for name in FILES:
        data = (DATA / name).read_bytes()
        found, quarantine = load_documents(SourceObject(s3_bucket, f"docs/{name}", '"e"', len(data)), data)
        assert quarantine == []
        documents += found
    area = StagingArea(bucket=s3_bucket, prefix="staging/", dag_id="latechunk_ingest", run_id=f"structured-{strategy}")
    batch = staging.write_documents(s3_client, area, 0, documents)
    chunking = {"strategy": strategy, "max_chunk_tokens": 96}
    annotate_stage.annotate(s3=s3_client, area=area, batch_path=batch, model=tiny_jina_model, chunking=chunking)
    summary = embed_stage.embed(s3=s3_client, area=area, batch_path=batch, model=tiny_jina_model, window=128,
                                window_overlap=32, device="cpu")  # fmt: skip
    chunks = staging.read_chunks(s3_client, summary["chunks_path"])
    by_doc = {document.doc_id: document for document in documents}
    assert {chunk.doc_id for chunk in chunks} == set(by_doc)
    for chunk in chunks:
        document = by_doc[chunk.doc_id]
        structure = document.structure
        assert chunk.text == document.text[chunk.char_start : chunk.char_end]
        assert chunk.section == structure.section_path(chunk.char_start)
        assert (chunk.page_start, chunk.page_end) == (
            structure.page_of(chunk.char_start), structure.page_of(chunk.char_end - 1),
        )  # fmt: skip
    for document in documents:
        starts = {chunk.char_start for chunk in chunks if chunk.doc_id == document.doc_id}
        assert {heading.start for heading in document.structure.headings} <= starts
    pdf = [chunk for chunk in chunks if chunk.key.endswith(".pdf")]
    assert {chunk.page_start for chunk in pdf} == set(range(1, 7)) and all(chunk.section == [] for chunk in pdf)
    german = [chunk for chunk in chunks if chunk.key.endswith("-de.md")]
    assert any(chunk.section == ["Debugging", "uvicorn aufrufen", 'Über __name__ == "__main__"', "Weitere Details"]
               for chunk in german)  # fmt: skip
