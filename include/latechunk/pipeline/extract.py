"""Extract stage: find the new or changed objects under a prefix, read them, and stage their documents.

A run's extract is planned, done per key range and gathered (`latechunk.pipeline.shards`): each shard lists its
range of the prefix, merges it with the index's keys of the range and reads what changed, so that shards run side
by side on the workers; `extract` does all of it in one process.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from latechunk.chunking.config import ChunkingConfig
from latechunk.chunking.levels import DEFAULT_LEVELS, parse_levels
from latechunk.embedding.config import CHUNK_CENTRED, LateChunkingConfig, default_overlap
from latechunk.index.elasticsearch import ElasticsearchBackend
from latechunk.index.spec import IndexMismatchError, IndexSpec
from latechunk.pipeline.batch_failures import pending_uri, read_pending
from latechunk.pipeline.models import ModelInfo, describe_model, index_spec
from latechunk.pipeline.progress import Progress
from latechunk.pipeline.read_objects import (
    RACE_CHANGED,
    READ_AHEAD_BYTES,
    READ_AHEAD_OBJECTS,
    READER_THREADS,
    fetch_object,
    is_folder_marker,
    parse_object,
    skipped_by_race,
)
from latechunk.pipeline.scan import Scan, scan_keys, walk_prefix
from latechunk.pipeline.shards import Shard, ShardResult, gather_shards, plan_shards
from latechunk.pipeline.shards import TooManyBadDocuments as TooManyBadDocuments  # raised by extract, as before
from latechunk.sources.documents import Document, Limits, SourceObject
from latechunk.sources.settings import SourceSettings
from latechunk.staging import tables as staging
from latechunk.staging.batch_plan import Batch, BatchPlanner, estimate_tokens
from latechunk.staging.prefetch import map_ahead

# The changed objects a range's counting pass keeps so that the reading need not list the range again: a few MB
# (each a listed key, ETag, size and date).
REMEMBERED_CHANGES = 10_000

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class ExtractSettings:
    """What one run reads. ``prefix`` is the scope of the run: deletions are looked for under all of it.
    ``select_prefixes`` (e.g. the day folders of the run's interval) narrow what is read; empty means all of it."""

    bucket: str
    prefix: str
    index: str
    model: str
    chunking: dict[str, Any]
    select_prefixes: tuple[str, ...] = ()
    modified_between: tuple[datetime, datetime] | None = None
    # With ``select_prefixes``: objects written (LastModified) in this window are read whatever their folder, so an
    # object rewritten in an old day's folder is read by the run of the day it was written.
    written_between: tuple[datetime, datetime] | None = None
    delete_missing: bool = SourceSettings.delete_missing
    # Staged batches (one mapped annotate and embed task each; see latechunk.staging.batch_plan): at most this many
    # estimated tokens and documents each, and at most max_batches of them (Airflow's [core] max_map_length),
    # whose limits grow when the run needs more batches than that.
    batch_token_budget: int = SourceSettings.batch_token_budget
    docs_per_batch: int = SourceSettings.docs_per_batch
    max_batches: int = 1024
    max_object_bytes: int = SourceSettings.max_object_bytes
    json_text_field: str = SourceSettings.json_text_field
    max_bad_fraction: float = SourceSettings.max_bad_fraction
    # Per-object extraction limits (latechunk.sources.extractors.Limits): beyond them the object is quarantined.
    max_nesting_depth: int = Limits.max_depth
    max_parts_per_object: int = Limits.max_parts
    max_extract_seconds: float = Limits.time_budget_s
    max_pdf_page_bytes: int = Limits.max_pdf_page_bytes
    max_pdf_bytes: int = Limits.max_pdf_bytes
    max_unzipped_bytes: int = Limits.max_unzipped_bytes
    # The embed stage's window settings, checked here so that a bad combination fails before anything is staged.
    window: int | None = None
    window_overlap: int | None = None
    # How the embed stage computes vectors beyond one window (LateChunkingConfig fields), recorded with the index.
    late_chunking: dict[str, Any] = field(default_factory=dict)
    # The levels indexed (`latechunk.chunking.levels`), e.g. "chunk,section,document"; recorded with the index
    # when not chunks only.
    levels: str = ",".join(DEFAULT_LEVELS)
    # Explicit keys (from object-storage notifications): instead of listing the prefix, each key's current state is
    # read (HEAD); a key gone from the bucket leaves the index (with ``delete_missing``), whatever event named it.
    keys: tuple[str, ...] | None = None
    # The most key ranges the run's extract is split into (`latechunk.pipeline.shards`), and the objects the index
    # holds per range below which fewer ranges are planned.
    max_shards: int = SourceSettings.extract_shards
    objects_per_shard: int = SourceSettings.objects_per_shard


@dataclass(frozen=True)
class RunTarget:
    """The checked configuration a run writes with: what the manifest records and the index must match."""

    chunking: ChunkingConfig
    late_chunking: LateChunkingConfig
    levels: tuple[str, ...]
    model: ModelInfo
    spec: IndexSpec
    index_exists: bool


def day_prefixes(prefix: str, start: datetime, end: datetime, lookback_days: int = 0) -> tuple[str, ...]:
    """The date folders ``<prefix><YYYY-MM-DD>/`` of the days in ``[start, end)`` (at least the start's day),
    preceded by ``lookback_days`` earlier days, for objects that arrive after their day's run."""
    first = start.date() - timedelta(days=lookback_days)
    last = max(start.date(), (end - timedelta(microseconds=1)).date())
    days = (first + timedelta(days=offset) for offset in range((last - first).days + 1))
    return tuple(f"{prefix}{day.isoformat()}/" for day in days)


def extract(*, s3, es, area: staging.StagingArea, settings: ExtractSettings) -> dict[str, Any]:
    """Plan, extract every shard and gather them, in this process: stage the documents of new or changed objects
    in batches and write the run manifest.

    Returns a summary with the staged batch URIs (``batches``) and the manifest's URI (``manifest``).
    Raises before anything is written when the configuration does not match an existing index.
    """
    target = check_target(es, settings)
    shards = plan_shards(s3, ElasticsearchBackend(es) if target.index_exists else None, settings)
    results = [extract_shard(s3=s3, es=es, area=area, settings=settings, shard=shard) for shard in shards]
    return gather_shards(s3=s3, area=area, settings=settings, target=target, results=results)


def check_target(es, settings: ExtractSettings) -> RunTarget:
    """Check the run's settings and, when the index exists, that it was built with the same ones; raises
    ValueError or `IndexMismatchError` with the reason before anything is read or written."""
    chunking = ChunkingConfig(**settings.chunking)
    chunking.validate()
    model = describe_model(settings.model)
    check_windows(settings, chunking)
    late_chunking = LateChunkingConfig(**settings.late_chunking)
    late_chunking.validate()
    levels = parse_levels(settings.levels)
    if late_chunking.window_layout == CHUNK_CENTRED and levels != DEFAULT_LEVELS:
        raise ValueError(
            f"levels {','.join(levels)} need windows over the whole document; chunk_centred windows encode each "
            "chunk with its context only: choose centred or stitched, or chunk levels"
        )
    window = settings.window or model.window
    overlap = default_overlap(window) if settings.window_overlap is None else settings.window_overlap
    spec = index_spec(
        settings.index, model=settings.model, dims=model.dims, revision=model.revision, chunking=chunking.as_dict(),
        window=window, window_overlap=overlap, late_chunking=late_chunking.recorded(), levels=levels,
    )  # fmt: skip
    index_exists = bool(es.indices.exists(index=settings.index))
    if index_exists:
        problems = ElasticsearchBackend(es).index_mismatches(spec)
        if problems:
            raise IndexMismatchError(settings.index, problems)
    return RunTarget(chunking, late_chunking, levels, model, spec, index_exists)


def extract_shard(*, s3, es, area: staging.StagingArea, settings: ExtractSettings, shard: Shard) -> ShardResult:
    """Stage the new or changed objects of one key range of the prefix in batches, and say what became of every
    object of the range (`ShardResult`); `latechunk.pipeline.shards.gather_shards` turns the results of all
    ranges into the run manifest."""
    backend = ElasticsearchBackend(es) if es.indices.exists(index=settings.index) else None
    # Objects earlier runs could not finish (failed batches, changed while read) are read again, whatever folders
    # this run selects.
    pending_at = pending_uri(area, settings.index)
    retried = {key: entry["runs"] for key, entry in read_pending(s3, pending_at).items()
               if entry["bucket"] == settings.bucket and key.startswith(settings.prefix)
               and key in shard.keys}  # fmt: skip
    if retried:
        log.info("reading again %d objects earlier runs left pending (%s)", len(retried), pending_at)
    estimate, scan, to_read = _objects_to_read(s3, backend, settings, retried, shard)
    planner = BatchPlanner(
        token_budget=settings.batch_token_budget, max_batches=shard.max_batches,
        unread_bytes=estimate.changed_bytes, docs_per_batch=settings.docs_per_batch,
    )  # fmt: skip
    result = ShardResult(shard=shard, retried=retried)

    def stage(cut: list[Batch[Document]]) -> None:
        result.batches.extend(
            staging.write_documents(s3, area, shard.first_batch + len(result.batches), batch.items) for batch in cut
        )

    with Progress(f"extract {shard.describe()}", total_docs=estimate.changed_objects) as progress:
        fetched = map_ahead(
            lambda item: (*item, fetch_object(s3, item[0], settings)), to_read, workers=READER_THREADS,
            ahead=READ_AHEAD_OBJECTS, max_cost_ahead=READ_AHEAD_BYTES,
            cost=lambda item: item[0].size if item[0].size <= settings.max_object_bytes else 0,
        )  # fmt: skip
        for obj, indexed_etag, body in fetched:
            documents, skipped = parse_object(obj, body, settings)
            result.quarantine.extend(entry.to_dict() for entry in skipped)
            if not any(entry.reason == RACE_CHANGED for entry in skipped):
                result.changed_count += 1  # else keep the indexed version; the next run reads the new one
                if not documents:
                    result.unstaged[obj.key] = obj.etag
            if not documents and not is_folder_marker(obj) and not skipped_by_race(skipped):
                result.bad_objects += 1
            if documents:
                result.new += indexed_etag is None
                result.modified += indexed_etag is not None
                stage(planner.add(obj.size, ((doc, estimate_tokens(doc.text)) for doc in documents)))
            else:
                planner.forget(obj.size)
            progress.advance(docs=1)
        stage(planner.finish())
    planner.log_summary()
    log.info(
        "s3://%s/%s, %s: %d objects listed, %d selected, %d new or changed, %d unchanged, %d gone from the bucket",
        settings.bucket, settings.prefix, shard.describe(), scan.listed, scan.selected, scan.changed_objects,
        scan.unchanged, len(scan.missing),
    )  # fmt: skip
    for entry in result.quarantine:
        log.warning("quarantined %s (etag %s): %s %s", entry["key"], entry["etag"], entry["reason"], entry["detail"])
    result.listed, result.selected, result.unchanged = scan.listed, scan.selected, scan.unchanged
    result.changed_objects, result.deleted_keys = scan.changed_objects, scan.missing
    result.batching = planner.summary()
    result.documents_staged = planner.read_docs
    result.progress = progress.summary()
    return result


def _objects_to_read(
    s3, backend: ElasticsearchBackend | None, settings: ExtractSettings, retried: dict[str, int], shard: Shard
) -> tuple[Scan, Scan, Iterator[tuple[SourceObject, str | None]]]:
    """A first count of the range (for the batch plan and the progress), the scan that the reading fills as it
    goes, and the objects to read with the ETag the index holds of each. The count keeps what changed while it is
    at most ``REMEMBERED_CHANGES`` objects, and the reading goes through those (a daily delta lists the range once).
    More than that, and the range is merged again to read as the merge goes, so that the task never holds the
    listing nor even the objects that changed (a first load of millions)."""
    if settings.keys is not None:
        scan = scan_keys(s3, backend, settings, [key for key in (*settings.keys, *retried) if key in shard.keys])
        return scan, scan, ((obj, scan.indexed.get(obj.key)) for obj in scan.changed)
    counted = Scan()
    remembered: list[tuple[SourceObject, str | None]] = []
    for change in walk_prefix(s3, backend, settings, retried, shard.keys, counted):
        if len(remembered) < REMEMBERED_CHANGES:
            remembered.append((change.listed, change.indexed_etag))
    if counted.changed_objects == len(remembered):
        return counted, counted, iter(remembered)
    reading = Scan()
    changes = walk_prefix(s3, backend, settings, retried, shard.keys, reading)
    return counted, reading, ((change.listed, change.indexed_etag) for change in changes)


def check_windows(settings: ExtractSettings, chunking: ChunkingConfig) -> None:
    """Refuse window settings the embed stage cannot honour: a window larger than the model's, an overlap that
    is not smaller than the window, fixed chunks longer than the window (a chunk must fit one window)."""
    limit = describe_model(settings.model).window
    window = settings.window or limit
    if window > limit:
        raise ValueError(f"window={window} tokens exceeds the model's window of {limit} tokens ({settings.model})")
    if settings.window_overlap is not None and not 0 <= settings.window_overlap < window:
        raise ValueError(
            f"window_overlap must satisfy 0 <= window_overlap < window, got window_overlap={settings.window_overlap}"
            f", window={window}"
        )
    if chunking.strategy == "fixed" and chunking.chunk_size > window:
        raise ValueError(
            f"chunk_size={chunking.chunk_size} tokens is larger than the encoder window of {window} tokens: "
            "lower chunk_size or raise window"
        )
