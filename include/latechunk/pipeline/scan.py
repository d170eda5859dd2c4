"""What a run reads: the prefix listed and merged with the index's keys in one streaming pass (see
`latechunk.sources.reconcile`), so that a run holds what changed, never the whole bucket or the whole index."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from latechunk.index.backend import SearchBackend
from latechunk.sources.documents import SourceObject
from latechunk.sources.reconcile import ALL_KEYS, KeyRange, Status, reconcile


class Selection(Protocol):
    """The fields of `latechunk.pipeline.extract.ExtractSettings` that say which objects a run reads."""

    bucket: str
    prefix: str
    index: str
    select_prefixes: tuple[str, ...]
    modified_between: tuple[datetime, datetime] | None
    written_between: tuple[datetime, datetime] | None
    delete_missing: bool


@dataclass
class Scan:
    """One pass over the prefix: the selected objects to read (new, changed, or incompletely indexed) with what
    the index holds of each (None: nothing complete), the keys gone from the bucket, and counts of the rest."""

    changed: list[SourceObject] = field(default_factory=list)
    indexed: dict[str, str | None] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    listed: int = 0  # objects under the prefix
    selected: int = 0  # of those, in this run's selection (or pending from earlier runs)

    @property
    def unchanged(self) -> int:
        return self.selected - len(self.changed)


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


def scan_prefix(
    s3, backend: SearchBackend | None, settings: Selection, retried: Collection[str], keys: KeyRange = ALL_KEYS
) -> Scan:
    """Merge the listing of the prefix (in ``keys``) with the index's keys and ETags (``backend`` None: no index
    yet). Objects earlier runs left pending (``retried``) are read whatever the selection."""
    indexed = (
        backend.iter_indexed_etags(
            settings.index, bucket=settings.bucket, prefix=settings.prefix, after=keys.after, through=keys.through
        )
        if backend is not None
        else iter(())
    )
    scan = Scan()
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
            scan.changed.append(change.listed)
            scan.indexed[change.key] = change.indexed_etag
    return scan
