"""Batches that failed in annotate or embed, and the objects they leave pending for later runs.

A failed batch does not sink its run. The index task writes the other batches and leaves the failed batch's objects
as they were in the index (their previous version, or nothing), then records them in the pending list of the DAG
and index: one small JSON file beside the DAG's run folders (`pending_uri`), which the extract of every later run
reads, whatever day folders its look-back selects. An object leaves the list when a run indexes it, quarantines it
or no longer finds it; one whose batch fails in `RETRY_RUNS` runs is quarantined instead of retried again.

Which batches failed is read from what they staged: a batch without staged chunks failed, whatever stopped it (an
error, a killed worker, an upstream failure). The operators record the error of a failed try
(`record_failure`), which gives the reason; a batch that a later try completed leaves its record unread.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from latechunk.pipeline.manifest import RunManifest
from latechunk.pipeline.shared import stage_uri
from latechunk.staging import tables as staging

FAILURES = "failures"  # <run>/failures/batch-00003.json: the last recorded error of the batch
BATCH_FAILED = "batch_failed"
RETRY_RUNS = 3  # runs whose batch of an object may fail before the object is quarantined
NO_RECORD = "batch failed before its chunks were staged (no error recorded: its task was killed or never ran)"
MAX_ERROR_CHARS = 2000
BATCH_FAILURES = "batch-failures.json"  # beside the run's manifest: what the index task made of them


class BatchesFailed(Exception):
    """Some batches of the run failed: their objects were left out of the index, pending for the next run."""


@dataclass(frozen=True)
class FailedObjects:
    """The run's objects with a document in a failed batch: retried by the next runs, or given up."""

    batches: dict[str, str]  # batch URI -> reason
    pending: dict[str, str]  # key -> reason; left to the next run
    given_up: dict[str, str]  # key -> reason; failed in RETRY_RUNS runs: quarantined

    @property
    def keys(self) -> set[str]:
        return set(self.pending) | set(self.given_up)

    def to_dict(self) -> dict[str, Any]:
        return {"batches": self.batches, "pending": self.pending, "given_up": self.given_up}


def failure_uri(batch_uri: str) -> str:
    return stage_uri(batch_uri, FAILURES).removesuffix(".parquet") + ".json"


def record_failure(s3, batch_uri: str, stage: str, error: BaseException) -> None:
    """Stage why a try of ``stage`` failed on the batch (the index task reports it if no later try succeeds)."""
    bucket, key = staging.parse_s3_uri(failure_uri(batch_uri))
    body = {"stage": stage, "error": f"{type(error).__name__}: {error}"[:MAX_ERROR_CHARS]}
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(body).encode(), ContentType="application/json")


def failed_batches(s3, manifest: RunManifest) -> dict[str, str]:
    """batch URI -> reason, for every batch of the manifest without staged chunks."""
    failed = {}
    for uri in manifest.batches:
        if not _exists(s3, stage_uri(uri, staging.STAGE_CHUNKS)):
            failed[uri] = _reason(s3, uri)
    return failed


def failed_objects(
    manifest: RunManifest, batches: dict[str, str], keys_by_batch: dict[str, set[str]]
) -> FailedObjects:
    """Sort the objects of the failed batches into pending and given up, by the runs they have failed in."""
    runs_before = manifest.retried
    pending: dict[str, str] = {}
    given_up: dict[str, str] = {}
    for uri, reason in batches.items():
        for key in sorted(keys_by_batch[uri]):
            runs = runs_before.get(key, 0) + 1
            if runs >= RETRY_RUNS:
                given_up.setdefault(key, f"{reason} (failed in {runs} runs, not retried again)")
            else:
                pending.setdefault(key, reason)
    for key in given_up:
        pending.pop(key, None)
    return FailedObjects(batches, pending, given_up)


def pending_uri(area: staging.StagingArea, index: str) -> str:
    return area.uri(area.dag_key(f"pending-{index}.json"))


def read_pending(s3, uri: str) -> dict[str, dict[str, Any]]:
    """key -> {"bucket", "etag", "reason", "runs"}; nothing when no run left anything pending."""
    bucket, key = staging.parse_s3_uri(uri)
    try:
        return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except s3.exceptions.NoSuchKey:
        return {}


def update_pending(
    s3, manifest: RunManifest, failed: FailedObjects, deferred: dict[str, str], *, settled: bool
) -> None:
    """Add the run's pending objects to the list, and the ``deferred`` ones (key -> ETag: changed while the run
    read them); with ``settled`` (the run's writes are verified) also remove the objects this run took from the
    list and indexed, quarantined or found gone. Every task that writes the list of a served index holds the slot
    of the index-writes pool (backfill runs may overlap the DAG's other runs, and the reindex adds to the ingest
    DAG's list), so a list is read and written by one task at a time; the reindex's own list is named after its new
    index, which no other run writes."""
    uri = manifest.pending_uri
    retried = manifest.retried
    if not uri or not (failed.pending or failed.given_up or deferred or (settled and retried)):
        return
    entries = read_pending(s3, uri)
    if settled:
        entries = {key: entry for key, entry in entries.items() if key not in retried}
    for key, etag in deferred.items():
        entries[key] = {"bucket": manifest.bucket, "etag": etag, "reason": "changed while the run read it",
                        "runs": retried.get(key, 0)}  # fmt: skip
    for key, reason in failed.pending.items():
        entries[key] = {"bucket": manifest.bucket, "etag": manifest.changed[key], "reason": reason,
                        "runs": retried.get(key, 0) + 1}  # fmt: skip
    _write_json(s3, uri, entries)


def add_pending(s3, uri: str, bucket: str, etags: dict[str, str], reason: str) -> None:
    """Put the objects ``etags`` (key -> ETag) on the pending list at ``uri``, for the next run of its DAG; an
    entry already there keeps its count of failed runs."""
    if not etags:
        return
    entries = read_pending(s3, uri)
    for key, etag in etags.items():
        entries[key] = {"bucket": bucket, "etag": etag, "reason": reason, "runs": entries.get(key, {}).get("runs", 0)}
    _write_json(s3, uri, entries)


def write_batch_failures(s3, manifest_path: str, failed: FailedObjects) -> None:
    bucket, key = staging.parse_s3_uri(_beside(manifest_path, BATCH_FAILURES))
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(failed.to_dict()).encode(), ContentType="application/json")


def read_batch_failures(s3, manifest_path: str) -> FailedObjects:
    """What `write_batch_failures` staged; none for a run whose index task predates it."""
    bucket, key = staging.parse_s3_uri(_beside(manifest_path, BATCH_FAILURES))
    try:
        return FailedObjects(**json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
    except s3.exceptions.NoSuchKey:
        return FailedObjects({}, {}, {})


def failure_summary(failed: FailedObjects) -> str:
    first = next(iter(failed.batches.values()), "")
    return (
        f"{len(failed.batches)} batches failed (first: {first}); {len(failed.pending)} of their objects were left "
        f"out of the index and are retried by the next run, {len(failed.given_up)} were quarantined after "
        f"failing in {RETRY_RUNS} runs. The other batches are indexed and validated"
    )


def _write_json(s3, uri: str, body: Any) -> None:
    bucket, key = staging.parse_s3_uri(uri)
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(body).encode(), ContentType="application/json")


def _beside(manifest_path: str, name: str) -> str:
    return f"{manifest_path.rpartition('/')[0]}/{name}"


def _exists(s3, uri: str) -> bool:
    bucket, key = staging.parse_s3_uri(uri)
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except s3.exceptions.ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise


def _reason(s3, batch_uri: str) -> str:
    bucket, key = staging.parse_s3_uri(failure_uri(batch_uri))
    try:
        record = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except s3.exceptions.NoSuchKey:
        return NO_RECORD
    return f"batch failed in {record['stage']}: {record['error']}"
