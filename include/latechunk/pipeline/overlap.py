"""Overlapping runs: what a run staged may be overtaken by the bucket before the run writes or checks it.

Several runs may have the same index in flight at once: a scheduled and a manual ingest run, a backfill day (Airflow
3 does not count backfill runs against a DAG's ``max_active_runs``), an events run, a reindex. The tasks that write
the served index take the Airflow pool ``latechunk_index_writes`` (one slot), so no two of them write at once (the
reindex writes a new index of its own, and takes the pool for its catch-up and swap: `latechunk.pipeline.catch_up`);
what remains is that a run writes what its extract saw, perhaps hours ago. So, just before writing, the index task asks
the bucket for the current state of every object it is about to write or delete (`current_etags`: a HEAD each
when they are few, else a listing of the key range they span):

- an object staged at ETag e whose bucket ETag is no longer e is not written: the index keeps whatever a later run
  wrote, and the object is deferred (pending for the next run), like an object that changed while extract read it.
  A stale version therefore never overwrites a newer one;
- an object staged but deleted from the bucket since is removed from the index, like the run's deleted keys;
- a key the run found deleted that the bucket holds again is not deleted: a later run indexes (or indexed) it.

The validate task meets the other side of the race: between this run's index and validate tasks a later run may
legitimately rewrite or delete an object this run wrote. Validation skips (and reports) an object whose index
version differs from the staged one when the bucket no longer holds the staged version either; an object whose
bucket still holds the staged version but whose index holds another was overwritten by a stale write, and fails the
run (`current_versions_check`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from latechunk.index.backend import SearchBackend
from latechunk.pipeline.index_plan import IndexPlan, Unchunked
from latechunk.pipeline.manifest import RunManifest
from latechunk.pipeline.read_objects import RACE_CHANGED
from latechunk.pipeline.scan import head_objects, list_objects
from latechunk.sources.documents import QuarantineEntry
from latechunk.sources.reconcile import KeyRange
from latechunk.validation.report import Check

log = logging.getLogger(__name__)

SUPERSEDED = "superseded_before_index"  # the index quarantine's reason for an object overtaken in the bucket
MAX_LISTED = 100
# Listing a page of 1,000 keys takes about as long as this many HEADs sent concurrently: 62 to 65 measured on MinIO
# (`bench/list_or_head.py`); a little less, as S3 prices a LIST request like 12.5 HEADs.
LIST_PAGE = 1000
HEADS_PER_PAGE = 50


@dataclass(frozen=True)
class Overtaken:
    """What the bucket changed since the run's extract, among the objects the run is about to write or delete."""

    changed: dict[str, str | None]  # staged key -> its ETag in the bucket now (None: deleted since)
    reappeared: dict[str, str]  # key the run found deleted -> the ETag the bucket holds again
    staged: dict[str, str]  # the ETag the run staged of each key of ``changed``

    @property
    def overwritten(self) -> dict[str, str]:
        return {key: etag for key, etag in self.changed.items() if etag is not None}

    @property
    def vanished(self) -> list[str]:
        return [key for key, etag in self.changed.items() if etag is None]

    def quarantine(self) -> list[dict[str, str]]:
        """The index quarantine's entries for the objects left unwritten: validation leaves them out."""
        return [QuarantineEntry(key, self.staged[key], SUPERSEDED, _detail(etag)).to_dict()
                for key, etag in self.overwritten.items()]  # fmt: skip

    def counts(self) -> dict[str, int]:
        return {"objects_overwritten_since_extract": len(self.overwritten),
                "objects_deleted_since_extract": len(self.vanished),
                "deletions_overtaken": len(self.reappeared)}  # fmt: skip


def overtaken_in_bucket(s3, manifest: RunManifest) -> Overtaken:
    """The run's changed and deleted keys whose state in the bucket is no longer the one the run staged."""
    keys = [*manifest.changed, *(key for key in manifest.deleted_keys if key not in manifest.changed)]
    if not keys:
        return Overtaken({}, {}, {})
    now = current_etags(s3, manifest, keys)
    changed = {key: now.get(key) for key, etag in manifest.changed.items() if now.get(key) != etag}
    reappeared = {key: now[key] for key in manifest.deleted_keys if key in now}
    if changed or reappeared:
        log.warning(
            "since this run's extract, %d of its objects were overwritten or deleted in the bucket (not written: "
            "the next run reads the new version, a deleted one leaves the index) and %d keys it found deleted are "
            "back (not deleted; first: %s)", len(changed), len(reappeared), [*changed, *reappeared][:5],
        )  # fmt: skip
    return Overtaken(changed, reappeared, {key: manifest.changed[key] for key in changed})


def current_etags(s3, manifest: RunManifest, keys: list[str]) -> dict[str, str]:
    """The bucket's ETag of each of ``keys`` that exists now. A few keys get a HEAD each; more are found by listing
    the key range they span (a page per 1,000 objects: a part of a first load checks its ten thousand objects in
    about ten requests). Where that range holds far more objects than keys (keys spread thin over a large prefix),
    the listing stops once it has cost what HEADs of every key would, and the keys after it get a HEAD each."""
    ordered = sorted(set(keys))
    found: dict[str, str] = {}
    if len(ordered) >= HEADS_PER_PAGE:
        wanted, listed, last = set(ordered), 0, ""
        budget = len(ordered) * LIST_PAGE // HEADS_PER_PAGE  # objects listed for the price of a HEAD per key
        span = KeyRange(ordered[0][:-1] or None, ordered[-1])  # from just before the first key through the last
        for obj in list_objects(s3, manifest.bucket, manifest.prefix, span):
            listed, last = listed + 1, obj.key
            if obj.key in wanted:
                found[obj.key] = obj.etag
            if listed >= budget:
                break
        else:
            return found
        ordered = [key for key in ordered if key > last]
    present, _ = head_objects(s3, manifest.bucket, ordered)
    found.update({obj.key: obj.etag for obj in present})
    return found


def without_overtaken(manifest: RunManifest, plan: IndexPlan, overtaken: Overtaken) -> tuple[RunManifest, IndexPlan]:
    """The run as the index task must write it: the overwritten objects deferred (out of ``changed``, with a
    deferral in the quarantine that `latechunk.pipeline.index_plan.account` counts), the vanished ones deleted, the
    keys back in the bucket out of ``deleted_keys``, and the plan without the documents of any of them."""
    if not (overtaken.changed or overtaken.reappeared):
        return manifest, plan
    gone = set(overtaken.changed)
    selected = manifest.objects_selected  # None in a manifest staged before the count was recorded
    deferrals = [QuarantineEntry(key, etag, RACE_CHANGED, _detail(etag)).to_dict()
                 for key, etag in overtaken.overwritten.items()]  # fmt: skip
    manifest = replace(
        manifest,
        changed={key: etag for key, etag in manifest.changed.items() if key not in gone},
        deleted_keys=[*(key for key in manifest.deleted_keys if key not in overtaken.reappeared), *overtaken.vanished],
        objects_selected=None if selected is None else selected - len(overtaken.vanished),  # deletions now
        quarantine=[*manifest.quarantine, *deferrals],
    )
    key_by_doc = {doc_id: key for doc_id, key in plan.key_by_doc.items() if key not in gone}
    plan = replace(
        plan,
        unchunked=Unchunked(
            [document for document in plan.unchunked.documents if document.key not in gone],
            plan.unchunked.bad_keys - gone,
        ),
        chunks_by_doc={doc_id: count for doc_id, count in plan.chunks_by_doc.items() if doc_id in key_by_doc},
        key_by_doc=key_by_doc,
        annotate_failed={key: entry for key, entry in plan.annotate_failed.items() if key not in gone},
        keys_by_failed_batch={uri: keys - gone for uri, keys in plan.keys_by_failed_batch.items()},
    )
    return manifest, plan


@dataclass(frozen=True)
class IndexedVersions:
    """The run's written objects whose index version is not the staged one, sorted by what the bucket says."""

    superseded: dict[str, str | None]  # key -> bucket ETag now: a later run rewrote or removed it (skipped)
    stale: dict[str, str | None]  # key -> the index's ETag while the bucket still holds the staged version


def indexed_versions(s3, backend: SearchBackend, index: str, manifest: RunManifest, keys: set[str]) -> IndexedVersions:
    """Compare the index's version of each of ``keys`` (the run's changed objects but those it left out) with the
    staged one; HEAD only the ones that differ."""
    if not keys:
        return IndexedVersions({}, {})
    held = backend.indexed_etags(index, keys=sorted(keys), bucket=manifest.bucket)
    differ = sorted(key for key in keys if held.get(key) != manifest.changed[key])
    present, _ = head_objects(s3, manifest.bucket, differ)
    now = {obj.key: obj.etag for obj in present}
    superseded = {key: now.get(key) for key in differ if now.get(key) != manifest.changed[key]}
    # An object the index lacks while the bucket holds the staged version was quarantined as a whole (or lost:
    # the counts check catches staged chunks that are not indexed); one held at another version is stale.
    stale = {key: held[key] for key in differ if key not in superseded and key in held}
    if superseded:
        log.info("%d objects of this run were rewritten or removed by a later run since: not checked (first: %s)",
                 len(superseded), sorted(superseded)[:5])  # fmt: skip
    return IndexedVersions(superseded, stale)


def current_versions_check(versions: IndexedVersions) -> Check:
    """Fails when the index holds another version of an object than the run wrote while the bucket still holds
    the run's version: a stale write overtook it (or the object is incomplete)."""
    return Check(
        "current_versions",
        value=len(versions.stale),
        threshold=0,
        passed=not versions.stale,
        details={
            "stale": [{"key": key, "indexed_etag": etag} for key, etag in sorted(versions.stale.items())][:MAX_LISTED],
            "superseded_since_indexed": [{"key": key, "bucket_etag": etag}
                                         for key, etag in sorted(versions.superseded.items())][:MAX_LISTED],
        },  # fmt: skip
    )


def _detail(etag: str | None) -> str:
    if etag is None:
        return "deleted from the bucket since extract: removed from the index"
    return f"overwritten since extract (ETag {etag} now): not written by this run, the next run reads it"
