"""Index and alias stages: upsert a run's staged chunks and remove what the bucket no longer has."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from latechunk import staging
from latechunk.documents import Document, EmbeddedChunk, QuarantineEntry, utf16_offsets
from latechunk.index import ElasticsearchBackend
from latechunk.index_mapping import IndexSpec, Tombstone
from latechunk.pipeline.embed import stage_uri
from latechunk.pipeline.extract import TooManyBadDocuments
from latechunk.pipeline.models import manifest_index_spec
from latechunk.pipeline.progress import Progress

log = logging.getLogger(__name__)

DEFAULT_INDEX_OPTIONS = {"type": "int8_hnsw", "m": 16, "ef_construction": 100}


class IndexingError(Exception):
    """Some chunks could not be written; a retry of the task writes them (upserts are idempotent)."""


NO_CHUNKS = "no_chunks"
NO_CHUNKS_DETAIL = "the text gives no token to chunk (e.g. only zero-width or control characters)"


@dataclass(frozen=True)
class Unchunked:
    """The run's documents that produced no chunk, and the objects none of whose documents did."""

    documents: list[Document]
    bad_keys: set[str]

    def quarantine(self) -> list[dict[str, str]]:
        return [QuarantineEntry(doc.ref, doc.etag, NO_CHUNKS, NO_CHUNKS_DETAIL).to_dict() for doc in self.documents]

    def tombstones(self) -> list[Tombstone]:
        return [
            Tombstone(doc.doc_id, doc.bucket, doc.key, doc.part, doc.etag, f"{NO_CHUNKS}: {NO_CHUNKS_DETAIL}")
            for doc in self.documents
        ]


def chunk_batch_uris(manifest: dict[str, Any]) -> list[str]:
    """The embed stage's output for every batch the extract stage staged."""
    return [stage_uri(uri, staging.STAGE_CHUNKS) for uri in manifest["batches"]]


def unchunked_documents(s3, manifest: dict[str, Any]) -> Unchunked:
    """Staged documents that the annotate stage gave no chunk (it stages only documents with chunks)."""
    documents: list[Document] = []
    chunked_keys: set[str] = set()
    for uri in manifest["batches"]:
        annotated = {document.doc_id for document, _ in staging.read_annotated(s3, stage_uri(uri, staging.STAGE_SPANS))}
        for document in staging.read_documents(s3, uri):
            if document.doc_id in annotated:
                chunked_keys.add(document.key)
            else:
                documents.append(document)
    return Unchunked(documents, {document.key for document in documents} - chunked_keys)


def check_bad_share(manifest: dict[str, Any], unchunked: Unchunked) -> None:
    """Fail when the objects quarantined by extract plus those that gave no chunk exceed ``max_bad_fraction``."""
    selected = manifest.get("objects_selected")
    if not selected:
        return
    bad = manifest["objects_quarantined"] + len(unchunked.bad_keys)
    limit = manifest["settings"]["max_bad_fraction"]
    if bad / selected > limit:
        raise TooManyBadDocuments(
            f"{bad} of {selected} objects ({bad / selected:.0%}) could not be ingested ({len(unchunked.bad_keys)} "
            f"gave no chunk), more than max_bad_fraction={limit:.0%}; nothing was indexed"
        )


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


def index(
    *,
    s3,
    es,
    manifest_path: str,
    index_name: str,
    index_options: dict[str, Any] | None = None,
    create_as_alias: bool = True,
) -> dict[str, Any]:
    """Create the index if needed, upsert every staged chunk, and delete superseded and removed objects.

    A new index is created behind an alias of the given name when ``create_as_alias`` (see
    `ensure_served_index`), else under that name itself (the reindex DAG's versioned index).
    """
    manifest = staging.read_json(s3, manifest_path)
    backend = ElasticsearchBackend(es)
    spec = manifest_index_spec(index_name, manifest, index_options or DEFAULT_INDEX_OPTIONS)
    unchunked = unchunked_documents(s3, manifest)
    check_bad_share(manifest, unchunked)
    created = ensure_served_index(es, backend, spec) if create_as_alias else backend.ensure_index(spec)
    progress = Progress("index", total_docs=None)
    failed_docs: set[str] = set()
    failed_keys: set[str] = set()
    errors: list[dict[str, Any]] = []
    totals = {"chunks_indexed": 0, "documents_written": 0, "stale_chunks_deleted": 0}
    for documents_uri, chunks_uri in zip(manifest["batches"], chunk_batch_uris(manifest), strict=True):
        chunks = with_utf16_offsets(staging.read_chunks(s3, chunks_uri), staging.read_documents(s3, documents_uri))
        report = backend.upsert_documents(index_name, chunks)
        failed_docs |= report.failed_doc_ids
        failed_keys |= {chunk.key for chunk in chunks if chunk.doc_id in report.failed_doc_ids}
        errors.extend(report.errors)
        totals["chunks_indexed"] += report.chunks_indexed
        totals["documents_written"] += report.documents_written
        totals["stale_chunks_deleted"] += report.stale_chunks_deleted
        progress.advance(docs=report.documents_written, chunks=report.chunks_indexed)
    # An object with a failed chunk keeps its previous version's chunks until the retry completes it.
    completed = {key: etag for key, etag in manifest["changed"].items() if key not in failed_keys}
    tombstones = backend.record_tombstones(index_name, unchunked.tombstones(), model_id=manifest["model"])
    superseded = backend.delete_superseded(index_name, manifest["bucket"], completed)
    removed = backend.delete_objects(index_name, manifest["bucket"], manifest["deleted_keys"])
    summary = {
        "index": index_name,
        "index_created": created,
        **totals,
        "superseded_chunks_deleted": superseded,
        "removed_object_chunks_deleted": removed,
        "failed_documents": len(failed_docs),
        "tombstones_recorded": tombstones,
        "quarantined_no_chunks": len(unchunked.documents),
        **{key: value for key, value in progress.summary().items() if key in ("seconds", "docs_per_s")},
    }
    log.info("index summary: %s", summary)
    if failed_docs:
        raise IndexingError(
            f"{len(failed_docs)} documents were not fully indexed into {index_name!r}; first errors: {errors[:3]}"
        )
    return summary


def ensure_served_index(es, backend: ElasticsearchBackend, spec: IndexSpec) -> bool:
    """Make sure ``spec.name`` can be written; returns True when an index was created.

    A name that does not exist yet becomes an alias over a new versioned index (``<name>-<timestamp>``), so the
    reindex DAG can later build a replacement and swap the alias without the ingest DAG changing its target.
    An existing index or alias is checked against the spec (and refused when it differs).
    """
    if es.indices.exists(index=spec.name):
        return backend.ensure_index(spec)
    concrete = f"{spec.name}-{datetime.now(UTC):%Y%m%d%H%M%S}"
    created = backend.ensure_index(replace(spec, name=concrete))
    es.indices.put_alias(index=concrete, name=spec.name, is_write_index=True)
    log.info("created index %s behind the new alias %s", concrete, spec.name)
    return created


def swap_alias(*, es, alias: str, new_index: str, delete_old: bool = False) -> dict[str, Any]:
    """Serve ``new_index`` under ``alias`` (atomically), optionally deleting the indices the alias left."""
    backend = ElasticsearchBackend(es)
    previous = backend.swap_alias(alias, new_index)
    if delete_old:
        for name in previous:
            es.indices.delete(index=name)
    log.info("alias %s -> %s (was %s%s)", alias, new_index, previous or "unset", ", deleted" if delete_old else "")
    return {"alias": alias, "index": new_index, "previous": previous, "deleted_previous": bool(delete_old)}
