"""What the index task must write, and what became of every object of the run.

The plan comes from the staged documents and their annotated spans (no vectors): every document of the run, the
chunks each will have, the ones that gave no chunk. From it the task knows each object's size in index records
before writing any (`object_records`, see `latechunk.index_mapping`), so an object interrupted half-way reads back
as incomplete.

The account holds the run to its invariant: every changed object of the manifest ends indexed (all its documents,
all their chunks), quarantined (with a reason: by extract, by annotate for a document of too many tokens (the
whole object then, like one the engine refused), for giving no chunk, or refused by the engine) or
deferred, and every deleted key is deleted. An object that is none of these is a fault of the pipeline, and the task
fails on it rather than let the object be silently skipped.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from latechunk import staging
from latechunk.documents import Document, QuarantineEntry
from latechunk.index_mapping import Tombstone
from latechunk.pipeline.embed import stage_uri
from latechunk.pipeline.extract import RACE_CHANGED
from latechunk.staging_stream import QUARANTINE_KEY

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
    key_by_doc: dict[str, str]  # every staged document -> its object's key
    # Objects with a document annotate quarantined (too many tokens): key -> its entries. Nothing of them is indexed.
    annotate_quarantine: dict[str, list[dict[str, str]]] = field(default_factory=dict)

    def quarantine(self) -> list[dict[str, str]]:
        """One entry per object annotate quarantined a document of, under the object's key (validation leaves out
        the objects by key), each document's reference and detail in its detail."""
        return [
            QuarantineEntry(
                key, entries[0]["etag"], ", ".join(sorted({e["reason"] for e in entries})),
                "; ".join(f"{e['key']}: {e['detail']}" for e in entries),
            ).to_dict()
            for key, entries in self.annotate_quarantine.items()
        ]  # fmt: skip

    @property
    def staged_keys(self) -> set[str]:
        return set(self.key_by_doc.values())

    def object_records(self) -> dict[tuple[str, str], int]:
        """(bucket, key) -> records of the object: its documents' chunks, one tombstone per document without."""
        records: Counter[tuple[str, str]] = Counter()
        for doc_id, key in self.key_by_doc.items():
            records[self.bucket, key] += self.chunks_by_doc.get(doc_id, 1)
        return dict(records)


def read_plan(s3, manifest: dict[str, Any]) -> IndexPlan:
    """The plan of a run from its staged documents and spans (the annotate stage stages documents with chunks)."""
    documents: list[Document] = []
    chunks_by_doc: dict[str, int] = {}
    key_by_doc: dict[str, str] = {}
    refused_docs: dict[str, dict[str, str]] = {}  # doc_id -> annotate's quarantine entry
    for uri in manifest["batches"]:
        counts, footer = staging.spans_outline(s3, stage_uri(uri, staging.STAGE_SPANS))
        chunks_by_doc.update(counts)
        for entry in json.loads(footer.get(QUARANTINE_KEY, b"[]")):
            refused_docs[entry.pop("doc_id")] = entry
        for document in staging.read_documents(s3, uri):
            key_by_doc[document.doc_id] = document.key
            if document.doc_id not in chunks_by_doc:
                documents.append(document)
    annotate_quarantine: dict[str, list[dict[str, str]]] = {}
    for doc_id, entry in refused_docs.items():
        annotate_quarantine.setdefault(key_by_doc[doc_id], []).append(entry)
    documents = [document for document in documents if document.key not in annotate_quarantine]
    chunked_keys = {key_by_doc[doc_id] for doc_id in chunks_by_doc if doc_id in key_by_doc}
    unchunked = Unchunked(documents, {document.key for document in documents} - chunked_keys)
    return IndexPlan(manifest["bucket"], unchunked, chunks_by_doc, key_by_doc, annotate_quarantine)


@dataclass
class ObjectAccount:
    """What became of the run's objects, by key."""

    indexed: set[str] = field(default_factory=set)
    quarantined: dict[str, str] = field(default_factory=dict)  # key -> reason
    deferred: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    unchanged: int = 0

    def counts(self) -> dict[str, int]:
        return {
            "objects_indexed": len(self.indexed),
            "objects_quarantined": len(self.quarantined),
            "objects_deferred": len(self.deferred),
            "objects_deleted": len(self.deleted),
            "objects_unchanged": self.unchanged,
        }


def account(manifest: dict[str, Any], plan: IndexPlan, refused: dict[str, str]) -> ObjectAccount:
    """Sort every object of the manifest into one outcome; raises `UnaccountedObjects` when they do not add up.

    `refused`: the objects the engine refused while indexing, key -> reason (they were removed from the index).
    """
    changed: dict[str, str] = manifest["changed"]
    entries: dict[str, list[dict[str, str]]] = {}
    for entry in manifest["quarantine"]:
        entries.setdefault(entry["key"], []).append(entry)
    result = ObjectAccount(deleted=set(manifest["deleted_keys"]))
    result.deferred = {key for key, found in entries.items() if any(e["reason"] == RACE_CHANGED for e in found)}
    result.unchanged = manifest["objects_selected"] - len(changed) - len(result.deferred)
    staged = plan.staged_keys
    unaccounted = sorted(staged - set(changed))
    for key in changed:
        if key in refused:
            result.quarantined[key] = f"{REFUSED}: {refused[key]}"
        elif key in plan.annotate_quarantine:
            result.quarantined[key] = ", ".join(sorted({e["reason"] for e in plan.annotate_quarantine[key]}))
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
            f"{len(unaccounted)} objects of the run were neither indexed, quarantined nor deferred (first: "
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
