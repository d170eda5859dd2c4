"""What a run reads: the prefix listed and merged with the index's keys in one streaming pass (see
`latechunk.sources.reconcile`), so that a run never holds the whole bucket or the whole index, and (streaming the
objects to read as the merge finds them) not even what changed."""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from latechunk.index.backend import SearchBackend
from latechunk.sources.documents import SourceObject
from latechunk.sources.reconcile import ALL_KEYS, Change, KeyRange, Status, reconcile
from latechunk.staging.prefetch import map_ahead

# Objects looked up concurrently (HEADs are round trips).
HEAD_THREADS = 8

log = logging.getLogger(__name__)


class Selection(Protocol):
    """The fields of `latechunk.pipeline.extract.ExtractSettings` that say which objects a run reads."""

    bucket: str
    prefix: str
    index: str
    keys: tuple[str, ...] | None
    select_prefixes: tuple[str, ...]
    modified_between: tuple[datetime, datetime] | None
    written_between: tuple[datetime, datetime] | None
    delete_missing: bool


@dataclass
class Scan:
    """One pass over the prefix: the selected objects to read (new, changed, or incompletely indexed) with what
    the index holds of each (None: nothing complete), the keys gone from the bucket, and counts of the rest.
    A pass that streams (`walk_prefix`) counts the objects to read without keeping them."""

    changed: list[SourceObject] = field(default_factory=list)
    indexed: dict[str, str | None] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    listed: int = 0  # objects under the prefix
    selected: int = 0  # of those, in this run's selection (or pending from earlier runs)
    changed_objects: int = 0
    changed_bytes: int = 0

    @property
    def unchanged(self) -> int:
        return self.selected - self.changed_objects


def list_objects(s3, bucket: str, prefix: str, keys: KeyRange = ALL_KEYS) -> Iterator[SourceObject]:
    """Every object under ``prefix`` (in the range ``keys``), in key order, over all pages of the listing; keys
    ending in "/" included, so that the run reports them instead of losing what they hold without a word."""
    start = {"StartAfter": keys.after} if keys.after is not None else {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, **start):
        for item in page.get("Contents", []):
            if keys.through is not None and item["Key"] > keys.through:
                return
            yield SourceObject(
                bucket=bucket,
                key=item["Key"],
                etag=item["ETag"].strip('"'),
                size=item["Size"],
                last_modified=item["LastModified"],
            )


def is_selected(obj: SourceObject, settings: Selection) -> bool:
    """Whether the run reads a listed object: in one of ``select_prefixes`` or written in ``written_between`` (when
    ``select_prefixes`` are given), and modified in the data interval (when ``modified_between`` is given)."""
    if settings.select_prefixes:
        start, end = settings.written_between or (None, None)
        in_window = start is not None and start <= obj.last_modified < end
        if not (obj.key.startswith(settings.select_prefixes) or in_window):
            return False
    if settings.modified_between:
        start, end = settings.modified_between
        return start <= obj.last_modified < end
    return True


def select(objects: list[SourceObject], settings: Selection) -> list[SourceObject]:
    """The listed objects this run reads (`is_selected`)."""
    return [obj for obj in objects if is_selected(obj, settings)]


def walk_prefix(
    s3, backend: SearchBackend | None, settings: Selection, retried: Collection[str], keys: KeyRange, scan: Scan
) -> Iterator[Change]:
    """Merge the listing of the prefix (in ``keys``) with the index's keys and ETags (``backend`` None: no index
    yet) and yield the selected objects to read, in key order, as the merge finds them; ``scan`` counts the pass
    and collects the keys gone from the bucket. Objects earlier runs left pending (``retried``) are read whatever
    the selection."""
    indexed = (
        backend.iter_indexed_etags(
            settings.index, bucket=settings.bucket, prefix=settings.prefix, after=keys.after, through=keys.through
        )
        if backend is not None
        else iter(())
    )
    for change in reconcile(list_objects(s3, settings.bucket, settings.prefix, keys), indexed):
        if change.status is Status.DELETED:
            if settings.delete_missing:
                scan.missing.append(change.key)
            continue
        scan.listed += 1
        if not (change.key in retried or is_selected(change.listed, settings)):
            continue
        scan.selected += 1
        if change.status is not Status.UNCHANGED:
            scan.changed_objects += 1
            scan.changed_bytes += change.listed.size
            yield change


def head_objects(s3, bucket: str, keys: list[str]) -> tuple[list[SourceObject], list[str]]:
    """The current state of each key (HEAD, concurrently): the objects that exist, and the keys that do not."""

    def head(key: str) -> SourceObject | None:
        try:
            item = s3.head_object(Bucket=bucket, Key=key)
        except s3.exceptions.ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return SourceObject(bucket=bucket, key=key, etag=item["ETag"].strip('"'), size=item["ContentLength"],
                            last_modified=item["LastModified"])  # fmt: skip

    found = list(map_ahead(head, keys, workers=HEAD_THREADS))
    return [obj for obj in found if obj is not None], [key for key, obj in zip(keys, found, strict=True) if obj is None]


def scan_keys(s3, backend: SearchBackend | None, settings: Selection, keys: list[str]) -> Scan:
    """The given keys (from object-storage notifications, and those pending) under the prefix, each as the bucket
    holds it now (HEAD at ingest time, whatever an event said): all are selected; the ones gone from the bucket
    leave the index with ``delete_missing``."""
    wanted = [key for key in dict.fromkeys(keys) if key.startswith(settings.prefix)]
    present, gone = head_objects(s3, settings.bucket, wanted)
    log.info("%d keys given: %d exist, %d are gone from the bucket", len(wanted), len(present), len(gone))
    indexed: dict[str, str | None] = {}
    scan = Scan(listed=len(present), selected=len(present))
    if backend is not None:
        indexed = backend.indexed_etags(settings.index, keys=[obj.key for obj in present], bucket=settings.bucket)
        if settings.delete_missing and gone:
            scan.missing = sorted(backend.indexed_etags(settings.index, keys=gone, bucket=settings.bucket))
    scan.changed = [obj for obj in present if indexed.get(obj.key) != obj.etag]
    scan.indexed = {obj.key: indexed.get(obj.key) for obj in scan.changed}
    scan.changed_objects, scan.changed_bytes = len(scan.changed), sum(obj.size for obj in scan.changed)
    return scan
