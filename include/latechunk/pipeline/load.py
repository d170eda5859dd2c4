"""Index and alias stages: upsert a run's staged chunks and remove what the bucket no longer has."""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from latechunk import staging
from latechunk.documents import Document, EmbeddedChunk, QuarantineEntry, utf16_offsets
from latechunk.index import ElasticsearchBackend
from latechunk.index_mapping import IndexSpec
from latechunk.pipeline.embed import stage_uri
from latechunk.pipeline.extract import TooManyBadDocuments
from latechunk.pipeline.index_plan import (
    NO_CHUNKS,
    REFUSED,
    IndexPlan,
    ObjectAccount,
    Unchunked,
    account,
    read_plan,
    write_index_quarantine,
)
from latechunk.pipeline.models import manifest_index_spec
from latechunk.pipeline.progress import Progress

log = logging.getLogger(__name__)

DEFAULT_INDEX_OPTIONS = {"type": "int8_hnsw", "m": 16, "ef_construction": 100}
MAX_LISTED = 100  # quarantine entries listed in the summary (all are counted)


class IndexingError(Exception):
    """Some chunks could not be written, or the index does not hold what was written; a retry of the task writes
    them again (upserts are idempotent)."""


def chunk_batch_uris(manifest: dict[str, Any]) -> list[str]:
    """The embed stage's output for every batch the extract stage staged."""
    return [stage_uri(uri, staging.STAGE_CHUNKS) for uri in manifest["batches"]]


def unchunked_documents(s3, manifest: dict[str, Any]) -> Unchunked:
    """Staged documents that the annotate stage gave no chunk (it stages only documents with chunks)."""
    return read_plan(s3, manifest).unchunked


def check_bad_share(manifest: dict[str, Any], bad_keys: set[str], *, refused: bool = False) -> None:
    """Fail when the objects quarantined by extract plus ``bad_keys`` (objects that gave no chunk, that had a
    document of too many tokens, or that the engine refused when ``refused``) exceed ``max_bad_fraction``. The
    message counts documents of too many tokens with those that gave no chunk."""
    selected = manifest.get("objects_selected")
    if not selected:
        return
    bad = manifest["objects_quarantined"] + len(bad_keys)
    limit = manifest["settings"]["max_bad_fraction"]
    if bad / selected > limit:
        what = "gave no chunk or were refused by the index" if refused else "gave no chunk"
        raise TooManyBadDocuments(
            f"{bad} of {selected} objects ({bad / selected:.0%}) could not be ingested ({len(bad_keys)} {what}), "
            f"more than max_bad_fraction={limit:.0%}" + ("" if refused else "; nothing was indexed")
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
    `ensure_served_index`), else under that name itself (the reindex DAG's versioned index). An object with a
    chunk the engine refuses is quarantined and removed from the index; items that fail for the cluster's sake
    (429, 5xx) fail the task, whose retry writes them. Ends by checking that every object it indexed is complete
    in the index and that the run's objects add up (`latechunk.pipeline.index_plan`).
    """
    manifest = staging.read_json(s3, manifest_path)
    bucket = manifest["bucket"]
    backend = ElasticsearchBackend(es)
    spec = manifest_index_spec(index_name, manifest, index_options or DEFAULT_INDEX_OPTIONS)
    plan = read_plan(s3, manifest)
    check_bad_share(manifest, plan.unchunked.bad_keys | set(plan.annotate_quarantine))
    created = ensure_served_index(es, backend, spec) if create_as_alias else backend.ensure_index(spec)
    written = _write_chunks(s3, backend, index_name, manifest, plan)
    refused = {key: reason for (_, key), reason in written.pop("refused").items()}
    transient_keys = written.pop("transient_keys")
    tombstones = backend.record_tombstones(
        index_name, plan.unchunked.tombstones(), model_id=manifest["model"], object_records=plan.object_records()
    )
    # Complete or absent: a changed object that has nothing to index (quarantined by extract) or that the engine
    # refused in part leaves the index whole, whatever an earlier version or an interrupted run left of it.
    unusable = (set(manifest["changed"]) - plan.staged_keys) | set(refused) | set(plan.annotate_quarantine)
    quarantined_deleted = backend.delete_objects(index_name, bucket, sorted(unusable))
    # An object with a chunk that failed for the cluster's sake keeps its previous version until the retry.
    completed = {key: etag for key, etag in manifest["changed"].items()
                 if key not in unusable and key not in transient_keys}  # fmt: skip
    superseded = backend.delete_superseded(index_name, bucket, completed)
    removed = backend.delete_objects(index_name, bucket, manifest["deleted_keys"])
    if transient_keys:
        raise IndexingError(
            f"{len(transient_keys)} objects were not fully indexed into {index_name!r} (the cluster throttled or "
            f"failed some writes); first errors: {written['errors'][:3]}"
        )
    outcome = account(manifest, plan, refused)
    check_bad_share(manifest, plan.unchunked.bad_keys | set(plan.annotate_quarantine) | set(refused), refused=True)
    _verify(backend, index_name, manifest, outcome)
    quarantine = plan.quarantine() + [
        QuarantineEntry(key, manifest["changed"][key], REFUSED, reason).to_dict() for key, reason in refused.items()
    ]
    write_index_quarantine(s3, manifest_path, quarantine)  # validation leaves these objects out
    summary = {
        "index": index_name,
        "index_created": created,
        **{name: written[name] for name in ("chunks_indexed", "documents_written", "stale_chunks_deleted")},
        "superseded_chunks_deleted": superseded,
        "removed_object_chunks_deleted": removed,
        "quarantined_object_chunks_deleted": quarantined_deleted,
        "failed_documents": written["failed_documents"],
        "tombstones_recorded": tombstones,
        "quarantined_no_chunks": len(plan.unchunked.documents),
        **outcome.counts(),
        "index_quarantine": quarantine[:MAX_LISTED],
        **{key: value for key, value in written["progress"].items() if key in ("seconds", "docs_per_s")},
    }
    log.info("index summary: %s", summary)
    return summary


def _write_chunks(s3, backend: ElasticsearchBackend, index_name: str, manifest: dict, plan: IndexPlan) -> dict:
    """Upsert every staged batch of chunks; the totals, the objects refused and those with transient failures."""
    progress = Progress("index", total_docs=None)
    records = plan.object_records()
    written: dict[str, Any] = {"chunks_indexed": 0, "documents_written": 0, "stale_chunks_deleted": 0,
                               "failed_documents": 0, "refused": {}, "transient_keys": set(), "errors": []}  # fmt: skip
    for documents_uri, chunks_uri in zip(manifest["batches"], chunk_batch_uris(manifest), strict=True):
        chunks = [chunk for chunk in staging.read_chunks(s3, chunks_uri) if chunk.key not in plan.annotate_quarantine]
        chunks = with_utf16_offsets(chunks, staging.read_documents(s3, documents_uri))
        report = backend.upsert_documents(index_name, chunks, object_records=records)
        for ref, reason in report.refused_objects.items():
            written["refused"].setdefault(ref, reason)
        refused_docs = {chunk.doc_id for chunk in chunks if (chunk.bucket, chunk.key) in report.refused_objects}
        written["transient_keys"] |= {plan.key_by_doc[doc_id] for doc_id in report.failed_doc_ids - refused_docs}
        written["errors"].extend(report.errors)
        written["failed_documents"] += len(report.failed_doc_ids)
        for name in ("chunks_indexed", "documents_written", "stale_chunks_deleted"):
            written[name] += getattr(report, name)
        progress.advance(docs=report.documents_written, chunks=report.chunks_indexed)
    written["transient_keys"] -= {key for _, key in written["refused"]}
    written["progress"] = progress.summary()
    return written


def _verify(backend: ElasticsearchBackend, index_name: str, manifest: dict, outcome: ObjectAccount) -> None:
    """The index holds every object written complete at its current ETag (those that gave no chunk as their
    tombstones), and nothing of the deleted keys nor of the other quarantined objects."""
    bucket, changed = manifest["bucket"], manifest["changed"]
    present = outcome.indexed | {key for key, reason in outcome.quarantined.items() if reason == NO_CHUNKS}
    absent = outcome.deleted | (set(outcome.quarantined) - present)
    found = backend.indexed_etags(index_name, keys=sorted(present | absent), bucket=bucket) if present | absent else {}
    incomplete = sorted(key for key in present if found.get(key) != changed[key])
    left = sorted(absent & set(found))
    if incomplete or left:
        raise IndexingError(
            f"after writing, {len(incomplete)} objects are not complete at their current ETag in {index_name!r} "
            f"(first: {incomplete[:5]}) and {len(left)} deleted or quarantined objects still have chunks (first: "
            f"{left[:5]})"
        )


def ensure_served_index(es, backend: ElasticsearchBackend, spec: IndexSpec) -> bool:
    """Make sure ``spec.name`` can be written; returns True when an index was created.

    A name that does not exist yet becomes an alias over a versioned index named after the spec
    (`served_index_name`), so the reindex DAG can later build a replacement and swap the alias without the ingest
    DAG changing its target. The name is the same on every try: a task killed between creating the index and the
    alias finds the empty index on its retry and puts the alias on it, instead of leaving it behind as an orphan.
    An existing index or alias is checked against the spec (and refused when it differs).
    """
    if es.indices.exists(index=spec.name):
        return backend.ensure_index(spec)
    concrete = served_index_name(spec)
    created = backend.ensure_index(replace(spec, name=concrete))
    if not created:
        held = es.count(index=concrete)["count"]
        if held:
            raise IndexingError(
                f"index {concrete!r} of this configuration exists with {held} chunks but no alias {spec.name!r}: it "
                f"is not a leftover of a failed first run. Put the alias on it ({concrete!r} -> {spec.name!r}) to "
                "serve it again, or delete it to start anew"
            )
        log.info("adopting the empty index %s that an interrupted run created", concrete)
    es.indices.put_alias(index=concrete, name=spec.name, is_write_index=True)
    log.info("serving index %s behind the new alias %s", concrete, spec.name)
    return created


def served_index_name(spec: IndexSpec) -> str:
    """``<alias>-<digest of the spec's recorded settings>``: the same for the same model, chunking and window."""
    settings = json.dumps({"meta": spec.meta(), "shards": spec.shards}, sort_keys=True)
    return f"{spec.name}-{hashlib.sha256(settings.encode()).hexdigest()[:12]}"


def swap_alias(*, es, alias: str, new_index: str, delete_old: bool = False) -> dict[str, Any]:
    """Serve ``new_index`` under ``alias`` (atomically), optionally deleting the indices the alias left."""
    backend = ElasticsearchBackend(es)
    previous = backend.swap_alias(alias, new_index)
    if delete_old:
        for name in previous:
            es.indices.delete(index=name)
    log.info("alias %s -> %s (was %s%s)", alias, new_index, previous or "unset", ", deleted" if delete_old else "")
    return {"alias": alias, "index": new_index, "previous": previous, "deleted_previous": bool(delete_old)}
