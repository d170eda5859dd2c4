"""The extract stage split by key range: plan the ranges, extract each in its own mapped task, gather the results.

A run's extract lists its prefix and merges it with the index's keys (`latechunk.pipeline.scan`): at millions of
objects that pass, and the reading of what changed, are split into key ranges (`latechunk.sources.reconcile`
`KeyRange`, which cover every key exactly once) that run side by side on the workers. Where to split:

- with an index that holds objects under the prefix, at the quantiles of a seeded random draw of its chunks' keys,
  one range per ``objects_per_shard`` objects it holds (up to ``max_shards``): ranges of about equal work;
- on a first load (no such index), at the folders the prefix's listing shows (``Delimiter="/"``, a few pages):
  date folders, tenants, sources; a prefix of fewer than a page of objects is counted and split like the index;
- for the keys of object-storage notifications, at the quantiles of the keys themselves.

Each range stages its batches under its own numbers (``first_batch``), so ranges never overwrite each other's, and
stages its `ShardResult`; `gather_shards` turns them into the one run manifest every later stage reads.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from latechunk.pipeline.batch_failures import pending_uri
from latechunk.pipeline.manifest import RunManifest
from latechunk.sources.reconcile import KeyRange, key_ranges
from latechunk.staging import tables as staging

if TYPE_CHECKING:
    from latechunk.index.backend import SearchBackend
    from latechunk.pipeline.extract import ExtractSettings, RunTarget

log = logging.getLogger(__name__)

# Keys drawn from the index per planned range: enough for quantiles within a few percent of the work.
SAMPLE_PER_SHARD = 256
# Pages of the prefix's folder listing read to plan a first load (1,000 entries a page), after a first page of
# keys that showed the prefix holds more objects than that.
FOLDER_PAGES = 10
FIRST_PAGE = 1000


class TooManyBadDocuments(Exception):
    """More of the run's objects were quarantined than the configured share allows."""


@dataclass(frozen=True)
class Shard:
    """One key range of a run's extract: ``after < key <= through``; its batches are numbered from
    ``first_batch``, at most ``max_batches`` of them."""

    number: int
    of: int
    after: str | None
    through: str | None
    max_batches: int

    @property
    def keys(self) -> KeyRange:
        return KeyRange(self.after, self.through)

    @property
    def first_batch(self) -> int:
        return self.number * self.max_batches

    def describe(self) -> str:
        if self.of == 1:
            return "all keys"
        return f"key range {self.number + 1}/{self.of} ({self.after or '…'!r}, {self.through or '…'!r}]"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Shard:
        return cls(**data)


@dataclass
class ShardResult:
    """What one range's extract staged and what became of each of its objects."""

    shard: Shard
    listed: int = 0
    selected: int = 0
    unchanged: int = 0
    changed_objects: int = 0
    new: int = 0
    modified: int = 0
    bad_objects: int = 0
    documents_staged: int = 0
    batches: list[str] = field(default_factory=list)
    batching: dict[str, Any] = field(default_factory=dict)
    changed_count: int = 0  # objects read and not skipped by a race: staged, or quarantined in `unstaged`
    unstaged: dict[str, str] = field(default_factory=dict)  # key -> ETag of those that gave no document
    deleted_keys: list[str] = field(default_factory=list)
    quarantine: list[dict[str, str]] = field(default_factory=list)
    retried: dict[str, int] = field(default_factory=dict)
    progress: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "shard": self.shard.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShardResult:
        return cls(**{**data, "shard": Shard.from_dict(data["shard"])})

    def write(self, s3, area: staging.StagingArea) -> str:
        """Stage the result beside the run's manifest; returns its URI (the mapped task's XCom)."""
        return staging.write_json(s3, area, f"extract/shard-{self.shard.number:05d}.json", self.to_dict())


def read_shard_result(s3, uri: str) -> ShardResult:
    return ShardResult.from_dict(staging.read_json(s3, uri))


def plan_shards(s3, backend: SearchBackend | None, settings: ExtractSettings) -> list[Shard]:
    """The key ranges of the run's extract (see the module's docstring); ``backend`` None: no index yet."""
    boundaries = shard_boundaries(s3, backend, settings) if settings.max_shards > 1 else []
    ranges = key_ranges(boundaries)
    per_shard = max(settings.max_batches // len(ranges), 1)
    shards = [Shard(number, len(ranges), keys.after, keys.through, per_shard) for number, keys in enumerate(ranges)]
    log.info("extract planned in %d key ranges: %s", len(shards), [shard.describe() for shard in shards])
    return shards


def shard_boundaries(s3, backend: SearchBackend | None, settings: ExtractSettings) -> list[str]:
    if settings.keys is not None:
        keys = sorted({key for key in settings.keys if key.startswith(settings.prefix)})
        return quantiles(keys, _shards_for(len(keys), settings))
    if backend is not None:
        sample, objects = backend.sample_keys(
            settings.index, bucket=settings.bucket, prefix=settings.prefix, size=SAMPLE_PER_SHARD * settings.max_shards
        )
        if objects:
            return quantiles(sample, _shards_for(objects, settings))
    first_page = s3.list_objects_v2(Bucket=settings.bucket, Prefix=settings.prefix, MaxKeys=FIRST_PAGE)
    if not first_page.get("IsTruncated"):  # a small prefix, counted whole
        keys = [entry["Key"] for entry in first_page.get("Contents", [])]
        return quantiles(keys, _shards_for(len(keys), settings))
    folders = list_folders(s3, settings.bucket, settings.prefix)
    return quantiles(folders, settings.max_shards, starts=True)


def _shards_for(objects: int, settings: ExtractSettings) -> int:
    return max(1, min(settings.max_shards, math.ceil(objects / max(settings.objects_per_shard, 1))))


def quantiles(ordered: list[str], parts: int, *, starts: bool = False) -> list[str]:
    """Strictly ascending boundaries that cut ``ordered`` (sorted, distinct) into up to ``parts`` ranges of about
    equal counts (fewer when it has fewer values): the last value of each range but the last, as a range's
    inclusive upper bound; with ``starts``, the first value of each range but the first (for folder prefixes,
    whose keys sort after the prefix itself)."""
    if parts <= 1 or len(ordered) < 2:
        return []
    parts, shift = min(parts, len(ordered)), 0 if starts else 1
    cuts = [ordered[(part * len(ordered)) // parts - shift] for part in range(1, parts)]
    return sorted(set(cuts))


def list_folders(s3, bucket: str, prefix: str) -> list[str]:
    """The folders (common prefixes) and loose objects right under ``prefix``, in key order, from the first
    `FOLDER_PAGES` pages of its listing: a cheap map of a prefix the index knows nothing of yet."""
    entries: list[str] = []
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix, Delimiter="/", PaginationConfig={"MaxItems": FOLDER_PAGES * 1000}
    )
    for page in pages:
        entries += [entry["Prefix"] for entry in page.get("CommonPrefixes", [])]
        entries += [entry["Key"] for entry in page.get("Contents", [])]
    return sorted(set(entries))


def gather_shards(
    *, s3, area: staging.StagingArea, settings: ExtractSettings, target: RunTarget, results: list[ShardResult]
) -> dict[str, Any]:
    """Write the run manifest from every range's result and return the run's extract summary, with the staged
    batch URIs (``batches``) and the manifest's URI (``manifest``); raises `TooManyBadDocuments` (after writing
    the manifest, which lists the quarantine) when more than ``max_bad_fraction`` of the selected objects are bad."""
    results = sorted(results, key=lambda result: result.shard.number)
    numbers = [result.shard.number for result in results]
    if not results or numbers != list(range(results[0].shard.of)):
        raise ValueError(f"extract results of key ranges {numbers}, expected every one of {results[0].shard.of}"
                         if results else "no extract result to gather")  # fmt: skip
    listed = sum(result.listed for result in results)
    selected = sum(result.selected for result in results)
    bad_objects = sum(result.bad_objects for result in results)
    batches = [uri for result in results for uri in result.batches]
    if listed and not selected:
        log.warning(
            "NOTHING SELECTED: s3://%s/%s holds %d objects but none is in this run's selection (folders %s, "
            "modified between %s): check the prefix, partition_by_date and the run's data interval",
            settings.bucket, settings.prefix, listed, list(settings.select_prefixes) or "all",
            settings.modified_between or "any time",
        )  # fmt: skip
    batching = {
        **results[0].batching,
        "max_batches": settings.max_batches,
        "estimated_tokens": sum(result.batching.get("estimated_tokens", 0) for result in results),
        "batches": [cut for result in results for cut in result.batching.get("batches", [])],
        "key_ranges": len(results),
    }
    manifest = RunManifest(
        bucket=settings.bucket,
        prefix=settings.prefix,
        index=settings.index,
        model=settings.model,
        model_revision=target.model.revision,
        dims=target.model.dims,
        chunking=target.chunking,
        window=target.spec.window,
        window_overlap=target.spec.window_overlap,
        late_chunking=target.late_chunking,
        max_bad_fraction=settings.max_bad_fraction,
        objects_selected=selected,
        objects_under_prefix=listed,
        objects_quarantined=bad_objects,
        batches=batches,
        batching=batching,
        changed_count=sum(result.changed_count for result in results),
        unstaged={key: etag for result in results for key, etag in result.unstaged.items()},
        deleted_keys=[key for result in results for key in result.deleted_keys],
        quarantine=[entry for result in results for entry in result.quarantine],
        pending_uri=pending_uri(area, settings.index),
        retried={key: runs for result in results for key, runs in result.retried.items()},
        settings=asdict(settings),
        levels=target.levels,
    )
    manifest_uri = manifest.write(s3, area)
    seconds = [result.progress.get("seconds", 0.0) for result in results]
    documents = sum(result.progress.get("documents", 0) for result in results)
    summary = {
        "manifest": manifest_uri,
        "batches": batches,
        "prefix": settings.prefix,
        "select_prefixes": list(settings.select_prefixes),
        "objects_under_prefix": listed,
        "keys_given": None if settings.keys is None else len(settings.keys),
        "objects_listed": selected,
        "objects_changed": sum(result.changed_objects for result in results),
        "objects_new": sum(result.new for result in results),
        "objects_modified": sum(result.modified for result in results),
        "objects_unchanged": sum(result.unchanged for result in results),
        "objects_retried": len(manifest.retried),
        "objects_quarantined": bad_objects,
        "quarantined_entries": len(manifest.quarantine),
        "keys_to_delete": len(manifest.deleted_keys),
        "batches_staged": len(batches),
        "documents_staged": sum(result.documents_staged for result in results),
        "estimated_tokens": batching["estimated_tokens"],
        "key_ranges": len(results),
        "documents": documents,
        "seconds": round(max(seconds), 3),
        "docs_per_s": round(documents / max(max(seconds), 1e-9), 3),
        "key_range_seconds": seconds,
    }
    log.info("extract summary: %s", {k: v for k, v in summary.items() if k != "batches"})
    bad_share = bad_objects / selected if selected else 0.0
    if bad_share > settings.max_bad_fraction:
        raise TooManyBadDocuments(
            f"{bad_objects} of {selected} objects ({bad_share:.0%}) could not be ingested, more than "
            f"max_bad_fraction={settings.max_bad_fraction:.0%}; see the quarantine list in {manifest_uri}"
        )
    return summary

