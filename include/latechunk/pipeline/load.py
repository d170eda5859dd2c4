"""Index and alias stages: upsert a run's staged chunks and remove what the bucket no longer has."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from latechunk import staging
from latechunk.index import ElasticsearchBackend
from latechunk.index_mapping import IndexSpec
from latechunk.pipeline.embed import stage_uri
from latechunk.pipeline.progress import Progress

log = logging.getLogger(__name__)

DEFAULT_INDEX_OPTIONS = {"type": "int8_hnsw", "m": 16, "ef_construction": 100}


class IndexingError(Exception):
    """Some chunks could not be written; a retry of the task writes them (upserts are idempotent)."""


def chunk_batch_uris(manifest: dict[str, Any]) -> list[str]:
    """The embed stage's output for every batch the extract stage staged."""
    return [stage_uri(uri, staging.STAGE_CHUNKS) for uri in manifest["batches"]]


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
    spec = IndexSpec(
        name=index_name,
        dims=manifest["dims"],
        model_id=manifest["model"],
        model_revision=manifest["model_revision"],
        index_options=index_options or DEFAULT_INDEX_OPTIONS,
        chunking=manifest["chunking"],
    )
    created = ensure_served_index(es, backend, spec) if create_as_alias else backend.ensure_index(spec)
    progress = Progress("index", total_docs=None)
    failed_docs: set[str] = set()
    failed_keys: set[str] = set()
    errors: list[dict[str, Any]] = []
    totals = {"chunks_indexed": 0, "documents_written": 0, "stale_chunks_deleted": 0}
    for uri in chunk_batch_uris(manifest):
        chunks = staging.read_chunks(s3, uri)
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
    superseded = backend.delete_superseded(index_name, manifest["bucket"], completed)
    removed = backend.delete_objects(index_name, manifest["bucket"], manifest["deleted_keys"])
    summary = {
        "index": index_name,
        "index_created": created,
        **totals,
        "superseded_chunks_deleted": superseded,
        "removed_object_chunks_deleted": removed,
        "failed_documents": len(failed_docs),
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
