"""Index and alias stages: upsert a run's staged chunks and remove what the bucket no longer has."""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from typing import Any

from latechunk.index.elasticsearch import ElasticsearchBackend
from latechunk.index.settings import IndexSettings, bulk_refresh
from latechunk.index.spec import IndexSpec
from latechunk.pipeline.batch_failures import (
    FailedObjects,
    failed_batches,
    failed_objects,
    failure_summary,
    update_pending,
    write_batch_failures,
)
from latechunk.pipeline.index_plan import (
    BATCH_FAILED,
    NO_CHUNKS,
    REFUSED,
    IndexPlan,
    ObjectAccount,
    Unchunked,
    account,
    read_plan,
    write_index_quarantine,
)
from latechunk.pipeline.index_writes import write_chunks
from latechunk.pipeline.manifest import RunManifest, read_manifest
from latechunk.pipeline.models import manifest_index_spec
from latechunk.pipeline.overlap import overtaken_in_bucket, without_overtaken
from latechunk.pipeline.progress import Progress
from latechunk.pipeline.read_objects import RACE_CHANGED
from latechunk.pipeline.run_parts import check_parts_add_up, objects_read, run_parts
from latechunk.pipeline.shards import TooManyBadDocuments
from latechunk.sources.documents import QuarantineEntry

log = logging.getLogger(__name__)

DEFAULT_INDEX_OPTIONS = {"type": "int8_hnsw", "m": 16, "ef_construction": 100}
MAX_LISTED = 100  # quarantine entries listed in the summary (all are counted)


class IndexingError(Exception):
    """Some chunks could not be written, or the index does not hold what was written; a retry of the task writes
    them again (upserts are idempotent)."""


def unchunked_documents(s3, manifest: RunManifest, failed_batches: Collection[str] = ()) -> Unchunked:
    """Staged documents that the annotate stage gave no chunk (it stages only documents with chunks)."""
    return read_plan(s3, manifest, failed_batches).unchunked


def check_bad_share(manifest: RunManifest, bad_objects: int, *, refused: bool = False) -> None:
    """Fail when the objects quarantined by extract plus ``bad_objects`` (objects that gave no chunk or that
    annotate failed on, or that the engine refused when ``refused``) exceed ``max_bad_fraction``."""
    selected = manifest.objects_selected
    if not selected:
        return
    bad = manifest.objects_quarantined + bad_objects
    limit = manifest.max_bad_fraction
    if bad / selected > limit:
        what = "gave no chunk or were refused by the index" if refused else "gave no chunk"
        raise TooManyBadDocuments(
            f"{bad} of {selected} objects ({bad / selected:.0%}) could not be ingested ({bad_objects} {what}), "
            f"more than max_bad_fraction={limit:.0%}" + ("" if refused else "; nothing was indexed")
        )


def index(
    *,
    s3,
    es,
    manifest_path: str,
    index_name: str,
    index_options: dict[str, Any] | None = None,
    create_as_alias: bool = True,
    settings: IndexSettings | None = None,
) -> dict[str, Any]:
    """Create the index if needed, upsert every staged chunk, and delete superseded and removed objects.

    A new index is created behind an alias of the given name when ``create_as_alias`` (see
    `ensure_served_index`), else under that name itself (the reindex DAG's versioned index). An object with a
    chunk the engine refuses is quarantined and removed from the index; items that fail for the cluster's sake
    (429, 5xx) fail the task, whose retry writes them. An object the bucket no longer holds at the staged version
    is not written (deferred, or removed when deleted since) and a deleted key back in the bucket is not deleted
    (`latechunk.pipeline.overlap`: runs that overlap). Checks that every object it indexed is complete in the index
    and that the run's objects add up (`latechunk.pipeline.index_plan`). ``settings``: the shards and replicas of a
    new index, and the refresh interval during the writes (`latechunk.index.settings`).

    The run is written a part at a time (`latechunk.pipeline.run_parts`), so the task holds one part's objects:
    the first load of a million objects costs the memory of a few batches. The share of bad objects is checked
    over the whole run before anything is written.
    """
    manifest = read_manifest(s3, manifest_path)
    backend = ElasticsearchBackend(es)
    settings = settings or IndexSettings()
    spec = replace(
        manifest_index_spec(index_name, manifest, index_options or DEFAULT_INDEX_OPTIONS),
        shards=int(settings.shards), replicas=settings.replicas,
    )  # fmt: skip
    batches_failed = failed_batches(s3, manifest)
    bad = 0
    for part in run_parts(s3, manifest):
        plan = read_plan(s3, part, batches_failed)
        bad += len(plan.unchunked.bad_keys | set(plan.annotate_failed))
    check_bad_share(manifest, bad)
    created = ensure_served_index(es, backend, spec) if create_as_alias else backend.ensure_index(spec)
    run = RunWrites()
    with bulk_refresh(es, index_name, settings.bulk_refresh_interval):
        for part in run_parts(s3, manifest):
            _index_part(s3, backend, index_name, part, batches_failed, run)
    check_parts_add_up(manifest, run.objects)
    counts = {**run.counts, "objects_unchanged": _unchanged(manifest, run.counts["objects_deferred"], run.overtaken)}
    check_bad_share(manifest, run.bad, refused=True)
    failed = FailedObjects(batches_failed, run.pending, run.given_up)
    write_index_quarantine(s3, manifest_path, run.quarantine)  # validation leaves these objects out
    write_batch_failures(s3, manifest_path, failed)
    if failed.batches:
        log.warning("%s", failure_summary(failed))
    summary = {
        "index": index_name,
        "index_created": created,
        **{name: run.written[name] for name in WRITTEN},
        "tombstones_recorded": run.tombstones,
        **counts,
        **run.overtaken,
        "failed_batches": [{"batch": uri, "reason": reason} for uri, reason in failed.batches.items()][:MAX_LISTED],
        "objects_retried": len(manifest.retried),
        "index_quarantine": run.quarantine[:MAX_LISTED],
        "run_parts": run.parts,
        **{key: value for key, value in run.progress.summary().items() if key in ("seconds", "docs_per_s")},
    }
    log.info("index summary: %s", summary)
    return summary


WRITTEN = ("chunks_indexed", "level_rows_indexed", "documents_written", "stale_chunks_deleted",
           "superseded_chunks_deleted", "removed_object_chunks_deleted", "quarantined_object_chunks_deleted",
           "failed_documents", "quarantined_no_chunks")  # fmt: skip


@dataclass
class RunWrites:
    """What the parts of a run wrote and what became of their objects: counts, and the lists of the objects left
    out (quarantined, pending), which grow with what went wrong, not with the run."""

    parts: int = 0
    objects: int = 0  # the parts' objects, to check against extract's count
    bad: int = 0  # objects that gave no chunk, failed annotation or were refused by the engine
    tombstones: int = 0
    written: Counter = field(default_factory=Counter)
    counts: Counter = field(default_factory=Counter)
    overtaken: Counter = field(default_factory=Counter)
    quarantine: list[dict[str, str]] = field(default_factory=list)
    pending: dict[str, str] = field(default_factory=dict)
    given_up: dict[str, str] = field(default_factory=dict)
    progress: Progress = field(default_factory=lambda: Progress("index", total_docs=None))


def _index_part(
    s3, backend: ElasticsearchBackend, index_name: str, part: RunManifest, batches_failed: dict[str, str],
    run: RunWrites,
) -> None:
    """Write one part of the run (`latechunk.pipeline.run_parts`), verify it and add it to ``run``."""
    bucket = part.bucket
    run.parts += 1
    run.objects += len(part.changed)
    plan = read_plan(s3, part, batches_failed)
    # Another run may have written or deleted some of these objects since extract (`latechunk.pipeline.overlap`).
    overtaken = overtaken_in_bucket(s3, part)
    part, plan = without_overtaken(part, plan, overtaken)
    part_failed = {uri: batches_failed[uri] for uri in plan.keys_by_failed_batch}
    failed = failed_objects(part, part_failed, plan.keys_by_failed_batch)
    # Deferred objects (changed while extract read them, or since; deleted keys back in the bucket) wait for the
    # next run like those of failed batches.
    deferred = {entry["key"]: entry["etag"] for entry in part.quarantine if entry["reason"] == RACE_CHANGED}
    deferred.update(overtaken.reappeared)
    update_pending(s3, part, failed, deferred, settled=False)  # recorded before anything can fail the task
    written = write_chunks(s3, backend, index_name, part, plan, run.progress)
    refused = {key: reason for (_, key), reason in written.pop("refused").items()}
    transient_keys = written.pop("transient_keys")
    run.tombstones += backend.record_tombstones(
        index_name, plan.unchunked.tombstones(), model_id=part.model, object_records=plan.object_records()
    )
    # Complete or absent: a changed object that has nothing to index (quarantined by extract or annotate, given
    # up after failed batches) or that the engine refused in part leaves the index whole, whatever an earlier
    # version or an interrupted run left of it. An object of a failed batch pending a retry keeps its version.
    unusable = (set(part.changed) - plan.staged_keys - set(failed.pending)) | set(refused)
    written["quarantined_object_chunks_deleted"] = backend.delete_objects(index_name, bucket, sorted(unusable))
    # An object with a chunk that failed for the cluster's sake keeps its previous version until the retry.
    completed = {key: etag for key, etag in part.changed.items()
                 if key not in unusable and key not in transient_keys and key not in failed.pending}  # fmt: skip
    written["superseded_chunks_deleted"] = backend.delete_superseded(index_name, bucket, completed)
    written["removed_object_chunks_deleted"] = backend.delete_objects(index_name, bucket, part.deleted_keys)
    if transient_keys:
        raise IndexingError(
            f"{len(transient_keys)} objects were not fully indexed into {index_name!r} (the cluster throttled or "
            f"failed some writes); first errors: {written['errors'][:3]}"
        )
    outcome = account(part, plan, refused, failed)
    _verify(backend, index_name, part, outcome)
    update_pending(s3, part, failed, deferred, settled=True)
    written["quarantined_no_chunks"] = len(plan.unchunked.documents)
    run.written.update({name: written[name] for name in WRITTEN})
    run.counts.update(outcome.counts())
    run.overtaken.update(overtaken.counts())
    run.bad += len(plan.unchunked.bad_keys | set(plan.annotate_failed) | set(refused))
    run.quarantine += run_quarantine(part, plan, refused, failed) + overtaken.quarantine()
    run.pending.update(failed.pending)
    run.given_up.update(failed.given_up)


def _unchanged(manifest: RunManifest, deferred: int, overtaken: Counter) -> int:
    """The selected objects the run did not write because the index held them already: those extract found
    unchanged. (An object deferred or deleted since extract counts as neither changed nor unchanged.)"""
    if manifest.objects_selected is None:
        return 0
    overwritten = overtaken["objects_overwritten_since_extract"]
    return manifest.objects_selected - (deferred - overwritten) - objects_read(manifest)


def run_quarantine(
    manifest: RunManifest, plan: IndexPlan, refused: dict[str, str], failed: FailedObjects
) -> list[dict[str, str]]:
    """The objects the index task left out, with their reasons: refused by the engine, with a document annotate
    failed on, of a failed batch (pending a retry, or given up)."""
    changed = manifest.changed
    entries = [QuarantineEntry(key, changed[key], REFUSED, reason) for key, reason in refused.items()]
    left_out = set(refused) | failed.keys
    entries += [QuarantineEntry(key, changed[key], entry["reason"], entry["detail"])
                for key, entry in plan.annotate_failed.items() if key not in left_out]  # fmt: skip
    entries += [QuarantineEntry(key, changed[key], BATCH_FAILED, f"{reason}; pending: the next run retries it")
                for key, reason in failed.pending.items()]  # fmt: skip
    entries += [QuarantineEntry(key, changed[key], BATCH_FAILED, reason) for key, reason in failed.given_up.items()]
    return [entry.to_dict() for entry in entries]


def _verify(backend: ElasticsearchBackend, index_name: str, manifest: dict, outcome: ObjectAccount) -> None:
    """The index holds every object written complete at its current ETag (those that gave no chunk as their
    tombstones), and nothing of the deleted keys nor of the other quarantined objects."""
    bucket, changed = manifest.bucket, manifest.changed
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
