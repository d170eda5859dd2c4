"""The reindex's catch-up: what the bucket changed while the new index was being built, settled before the swap.

The reindex builds its new index from a listing of the prefix at the start of its run; ingest and events runs keep
writing the served index meanwhile. Swapping the alias without more would drop their work: an object overwritten
since would go back to the version the reindex read, one deleted since would come back. So the swap task, holding
the index-writes pool's slot (no other run writes while it works), first compares the new index with a fresh
listing of the prefix (the streaming merge of `latechunk.sources.reconcile`: a reindex reads the whole prefix
anyway, this costs one more listing and one pass over the new index's keys):

- a key the new index holds and the bucket no longer has is deleted from the new index;
- an object the new index lacks or holds at another version than the bucket's (written or overwritten since the
  reindex listed it) cannot be encoded here: it goes on the ingest DAG's pending list
  (`latechunk.pipeline.batch_failures`), which the next ingest run reads whatever its date folders, and writes into
  the new index behind the alias. Objects the reindex itself quarantined at their current version are left out.
"""

from __future__ import annotations

import logging
from typing import Any

from latechunk.index.elasticsearch import ElasticsearchBackend
from latechunk.pipeline.batch_failures import add_pending
from latechunk.pipeline.index_plan import read_index_quarantine
from latechunk.pipeline.manifest import read_manifest
from latechunk.pipeline.scan import list_objects
from latechunk.sources.reconcile import Status, reconcile

log = logging.getLogger(__name__)

REASON = "written or overwritten while latechunk_reindex rebuilt the index"
MAX_LISTED = 100


def catch_up(*, s3, es, manifest_path: str, new_index: str, pending_at: str) -> dict[str, Any]:
    """Delete from ``new_index`` what the bucket no longer holds, and leave the objects it lacks or holds at an
    older version pending at ``pending_at`` (the ingest DAG's list for the alias); returns what it did."""
    manifest = read_manifest(s3, manifest_path)
    bucket = manifest.bucket
    backend = ElasticsearchBackend(es)
    es.indices.refresh(index=new_index)
    quarantined = {entry["key"]: entry["etag"]
                   for entry in [*manifest.quarantine, *read_index_quarantine(s3, manifest_path)]}  # fmt: skip
    gone: list[str] = []
    behind: dict[str, str] = {}
    listing = list_objects(s3, bucket, manifest.prefix)
    for change in reconcile(listing, backend.iter_indexed_etags(new_index, bucket=bucket, prefix=manifest.prefix)):
        if change.status is Status.DELETED:
            gone.append(change.key)
        elif change.status is not Status.UNCHANGED and quarantined.get(change.key) != change.listed.etag:
            behind[change.key] = change.listed.etag
    chunks_deleted = backend.delete_objects(new_index, bucket, gone)
    add_pending(s3, pending_at, bucket, behind, REASON)
    if gone or behind:
        log.warning(
            "catch-up of %s: %d objects deleted since the reindex listed the bucket were removed; %d written or "
            "overwritten since are pending for the next ingest run (%s; first: %s)",
            new_index, len(gone), len(behind), pending_at, sorted(behind)[:5],
        )  # fmt: skip
    return {
        "objects_removed": len(gone),
        "chunks_removed": chunks_deleted,
        "objects_pending": len(behind),
        "pending_list": pending_at,
        "removed": sorted(gone)[:MAX_LISTED],
        "pending": sorted(behind)[:MAX_LISTED],
    }
