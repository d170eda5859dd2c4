"""What a run reads from the bucket and how much bad input it tolerates, without the extractors: the DAGs' params
and `latechunk.pipeline.extract.ExtractSettings` take their defaults from here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceSettings:
    delete_missing: bool = True  # remove from the index the keys under the prefix that are gone from the bucket
    max_object_bytes: int = 50 * 1024 * 1024  # larger objects are quarantined unread
    json_text_field: str = "text"  # the text of .json/.jsonl documents
    max_bad_fraction: float = 0.2  # a larger share of quarantined objects fails the run
    # Staged batches (one mapped annotate and embed task each, see latechunk.staging.batch_plan): at most this many
    # estimated tokens and documents each.
    batch_token_budget: int = 2_000_000
    docs_per_batch: int = 10_000
    # The extract stage's key ranges (latechunk.pipeline.shards): at most this many mapped extract tasks, and one
    # per this many objects the index holds (a first load, with no index yet, splits by the prefix's folders).
    extract_shards: int = 4
    objects_per_shard: int = 10_000
