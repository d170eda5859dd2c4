"""What the index task must write, and what became of every object of the run.

The plan comes from the staged documents and their annotated spans (no vectors): every document of the run, the
chunks each will have, the ones that gave no chunk. From it the task knows each object's size in index records
before writing any (`object_records`, see `latechunk.index.spec`), so an object interrupted half-way reads back
as incomplete.

The account holds the run to its invariant: every changed object of the manifest ends indexed (all its documents,
all their chunks), quarantined (with a reason: by extract, for giving no chunk, for a document annotate quarantined
(too many tokens, or the tokenizer or chunker failed on it: the whole object then), refused by the engine, or after
its batch failed in too many runs), deferred, or pending (its batch failed: the next run retries it), and every
deleted key is deleted. An object that is none of these is a fault of the pipeline, and the task fails on it rather
than let the object be silently skipped.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field

from latechunk.index.backend import Tombstone
from latechunk.pipeline.batch_failures import BATCH_FAILED, FailedObjects
from latechunk.pipeline.manifest import RunManifest
from latechunk.pipeline.read_objects import RACE_CHANGED
from latechunk.pipeline.shared import stage_uri
from latechunk.sources.documents import Document, QuarantineEntry
from latechunk.staging import tables as staging

INDEX_QUARANTINE = "index-quarantine.json"  # beside the run's manifest
NO_CHUNKS = "no_chunks"
NO_CHUNKS_DETAIL = "the text gives no token to chunk (e.g. only zero-width or control characters)"
REFUSED = "refused_by_index"


class UnaccountedObjects(Exception):
    """The run's objects do not add up: some changed object was neither indexed, quarantined nor deferred."""


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


@dataclass(frozen=True)
class IndexPlan:
    bucket: str
    unchunked: Unchunked
    chunks_by_doc: dict[str, int]  # every document that has chunks -> how many
    key_by_doc: dict[str, str]  # every staged document to index -> its object's key
    # Objects left out: with a document the annotate stage could not annotate (quarantined), with a document in
    # a failed batch (see `latechunk.pipeline.batch_failures`); key -> the first reason, batch URI -> its keys.
    annotate_failed: dict[str, dict[str, str]] = field(default_factory=dict)
    keys_by_failed_batch: dict[str, set[str]] = field(default_factory=dict)

    @property
    def staged_keys(self) -> set[str]:
        return set(self.key_by_doc.values())

    def object_records(self) -> dict[tuple[str, str], int]:
        """(bucket, key) -> records of the object: its documents' chunks, one tombstone per document without."""
        records: Counter[tuple[str, str]] = Counter()
        for doc_id, key in self.key_by_doc.items():
            records[self.bucket, key] += self.chunks_by_doc.get(doc_id, 1)
        return dict(records)


def read_plan(s3, manifest: RunManifest, failed_batches: Collection[str] = ()) -> IndexPlan:
    """The plan of a run from its staged documents and spans (the annotate stage stages documents with chunks,
    and records the documents it failed on). Objects with a document in one of ``failed_batches`` or one that
    failed annotation are left out of the plan, whichever batches hold their other documents."""
    documents: list[Document] = []
    chunks_by_doc: dict[str, int] = {}
    key_by_doc: dict[str, str] = {}
    annotate_failed: dict[str, dict[str, str]] = {}
    keys_by_failed_batch: dict[str, set[str]] = {}
    for uri in manifest.batches:
        staged = staging.read_documents(s3, uri)
        if uri in failed_batches:
            keys_by_failed_batch[uri] = {document.key for document in staged}
            continue
        counts, failures = staging.span_counts(s3, stage_uri(uri, staging.STAGE_SPANS))
        chunks_by_doc.update(counts)
        for document in staged:
            if document.doc_id in failures:
                failure = failures[document.doc_id]  # the detail names the document of a multi-document object
                detail = {"reason": failure["reason"], "detail": f"{document.ref}: {failure['detail']}"}
                annotate_failed.setdefault(document.key, detail)
                continue
            key_by_doc[document.doc_id] = document.key
            if document.doc_id not in chunks_by_doc:
                documents.append(document)
    left_out = set(annotate_failed).union(*keys_by_failed_batch.values())
    key_by_doc = {doc_id: key for doc_id, key in key_by_doc.items() if key not in left_out}
    chunks_by_doc = {doc_id: count for doc_id, count in chunks_by_doc.items() if doc_id in key_by_doc}
    documents = [document for document in documents if document.key not in left_out]
    chunked_keys = {key_by_doc[doc_id] for doc_id in chunks_by_doc}
    unchunked = Unchunked(documents, {document.key for document in documents} - chunked_keys)
    return IndexPlan(manifest.bucket, unchunked, chunks_by_doc, key_by_doc, annotate_failed, keys_by_failed_batch)


@dataclass
class ObjectAccount:
    """What became of the run's objects, by key."""

    indexed: set[str] = field(default_factory=set)
    quarantined: dict[str, str] = field(default_factory=dict)  # key -> reason
    deferred: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    pending: dict[str, str] = field(default_factory=dict)  # key -> reason; its batch failed, the next run retries
    unchanged: int = 0

    def counts(self) -> dict[str, int]:
        return {
            "objects_indexed": len(self.indexed),
            "objects_quarantined": len(self.quarantined),
            "objects_deferred": len(self.deferred),
            "objects_pending": len(self.pending),
            "objects_deleted": len(self.deleted),
            "objects_unchanged": self.unchanged,
        }


def account(
    manifest: RunManifest, plan: IndexPlan, refused: dict[str, str], failed: FailedObjects | None = None
) -> ObjectAccount:
    """Sort every object of the manifest into one outcome; raises `UnaccountedObjects` when they do not add up.

    `refused`: the objects the engine refused while indexing, key -> reason (they were removed from the index).
    `failed`: the objects of failed batches, pending a retry or given up (quarantined).
    """
    failed = failed or FailedObjects({}, {}, {})
    changed: dict[str, str] = manifest.changed
    entries: dict[str, list[dict[str, str]]] = {}
    for entry in manifest.quarantine:
        entries.setdefault(entry["key"], []).append(entry)
    result = ObjectAccount(deleted=set(manifest.deleted_keys))
    result.deferred = {key for key, found in entries.items() if any(e["reason"] == RACE_CHANGED for e in found)}
    if manifest.objects_selected is not None:  # a part of a run (`latechunk.pipeline.run_parts`) has none
        result.unchanged = manifest.objects_selected - len(changed) - len(result.deferred)
    staged = plan.staged_keys
    unaccounted = sorted(staged - set(changed))
    for key in changed:
        if key in refused:
            result.quarantined[key] = f"{REFUSED}: {refused[key]}"
        elif key in failed.pending:
            result.pending[key] = failed.pending[key]
        elif key in failed.given_up:
            result.quarantined[key] = f"{BATCH_FAILED}: {failed.given_up[key]}"
        elif key in plan.annotate_failed:
            entry = plan.annotate_failed[key]
            result.quarantined[key] = f"{entry['reason']}: {entry['detail']}"
        elif key in plan.unchunked.bad_keys:
            result.quarantined[key] = NO_CHUNKS
        elif key in staged:
            result.indexed.add(key)
        else:
            reasons = sorted({e["reason"] for name, found in entries.items() for e in found
                              if name == key or name.startswith(f"{key}#")})  # fmt: skip
            if reasons:
                result.quarantined[key] = ", ".join(reasons)
            else:
                unaccounted.append(key)
    if unaccounted:
        raise UnaccountedObjects(
            f"{len(unaccounted)} objects of the run were neither indexed, quarantined, deferred nor pending (first: "
            f"{unaccounted[:5]}): their documents were lost between the stages, or staged for an object the "
            "manifest does not list as changed"
        )
    return result


def index_quarantine_uri(manifest_path: str) -> str:
    return f"{manifest_path.rpartition('/')[0]}/{INDEX_QUARANTINE}"


def write_index_quarantine(s3, manifest_path: str, entries: list[dict[str, str]]) -> None:
    """Stage the objects the index task quarantined (every try writes it, so a retry replaces an earlier list)."""
    bucket, key = staging.parse_s3_uri(index_quarantine_uri(manifest_path))
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(entries).encode(), ContentType="application/json")


def read_index_quarantine(s3, manifest_path: str) -> list[dict[str, str]]:
    """What `write_index_quarantine` staged; nothing for a run whose index task predates it."""
    bucket, key = staging.parse_s3_uri(index_quarantine_uri(manifest_path))
    try:
        return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except s3.exceptions.NoSuchKey:
        return []
