"""Upsert a run part's staged chunks into the index, batch by batch (`latechunk.pipeline.index`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from latechunk.index.elasticsearch import ElasticsearchBackend
from latechunk.pipeline.index_plan import IndexPlan
from latechunk.pipeline.manifest import RunManifest
from latechunk.pipeline.progress import Progress
from latechunk.pipeline.shared import stage_uri
from latechunk.sources.documents import Document, EmbeddedChunk, utf16_offsets
from latechunk.staging import tables as staging


def chunk_batch_uris(manifest: RunManifest) -> list[str]:
    """The embed stage's output for every batch the extract stage staged."""
    return [stage_uri(uri, staging.STAGE_CHUNKS) for uri in manifest.batches]


def with_utf16_offsets(chunks: Sequence[EmbeddedChunk], documents: Sequence[Document]) -> list[EmbeddedChunk]:
    """The chunks with their character spans also in UTF-16 code units, from their documents' texts."""
    by_doc: dict[str, list[EmbeddedChunk]] = defaultdict(list)
    for chunk in chunks:
        by_doc[chunk.doc_id].append(chunk)
    texts = {document.doc_id: document.text for document in documents}
    converted = []
    for doc_id, doc_chunks in by_doc.items():
        starts = utf16_offsets(texts[doc_id], [chunk.char_start for chunk in doc_chunks])
        ends = utf16_offsets(texts[doc_id], [chunk.char_end for chunk in doc_chunks])
        converted += [
            replace(chunk, char_start_utf16=start, char_end_utf16=end)
            for chunk, start, end in zip(doc_chunks, starts, ends, strict=True)
        ]
    return converted


def write_chunks(
    s3, backend: ElasticsearchBackend, index_name: str, manifest: RunManifest, plan: IndexPlan, progress: Progress
) -> dict[str, Any]:
    """Upsert every staged batch of chunks; the totals, the objects refused and those with transient failures."""
    records = plan.object_records()
    written: dict[str, Any] = {"chunks_indexed": 0, "level_rows_indexed": 0, "documents_written": 0,
                               "stale_chunks_deleted": 0, "failed_documents": 0, "refused": {},
                               "transient_keys": set(), "errors": []}  # fmt: skip
    for documents_uri, chunks_uri in zip(manifest.batches, chunk_batch_uris(manifest), strict=True):
        if documents_uri in plan.keys_by_failed_batch:
            continue
        chunks = [chunk for chunk in staging.read_chunks(s3, chunks_uri) if chunk.doc_id in plan.key_by_doc]
        chunks = with_utf16_offsets(chunks, staging.read_documents(s3, documents_uri))
        report = backend.upsert_documents(index_name, chunks, object_records=records)
        for ref, reason in report.refused_objects.items():
            written["refused"].setdefault(ref, reason)
        refused_docs = {chunk.doc_id for chunk in chunks if (chunk.bucket, chunk.key) in report.refused_objects}
        written["transient_keys"] |= {plan.key_by_doc[doc_id] for doc_id in report.failed_doc_ids - refused_docs}
        written["errors"].extend(report.errors)
        written["failed_documents"] += len(report.failed_doc_ids)
        for name in ("chunks_indexed", "level_rows_indexed", "documents_written", "stale_chunks_deleted"):
            written[name] += getattr(report, name)
        progress.advance(docs=report.documents_written, chunks=report.chunks_indexed)
    written["transient_keys"] -= {key for _, key in written["refused"]}
    return written
