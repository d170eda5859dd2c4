"""A run's parts (`latechunk.pipeline.run_parts`) against real staged batches: every object in exactly one part,
an object whose documents straddle a batch boundary kept whole, and what is not staged in the last part."""

from __future__ import annotations

from dataclasses import replace

import pytest
from latechunk.chunking.config import ChunkingConfig
from latechunk.embedding.config import LateChunkingConfig
from latechunk.pipeline.index_plan import UnaccountedObjects
from latechunk.pipeline.manifest import RunManifest
from latechunk.pipeline.run_parts import check_parts_add_up, run_parts
from latechunk.sources.documents import Document, document_id
from latechunk.staging.tables import StagingArea, write_documents


def documents(key: str, parts: int) -> list[Document]:
    return [
        Document(document_id("docs", key, str(part) if parts > 1 else ""), "docs", key, f"etag-{key}", f"{key} {part}",
                 "text/plain", part=str(part) if parts > 1 else "")
        for part in range(parts)
    ]  # fmt: skip


def run_manifest(batches: list[str], **lists) -> RunManifest:
    return RunManifest(
        bucket="docs", prefix="in/", index="chunks", model="m", model_revision="r", dims=4, chunking=ChunkingConfig(),
        window=64, window_overlap=16, late_chunking=LateChunkingConfig(), max_bad_fraction=0.2, batches=batches,
        objects_selected=100, **lists,
    )  # fmt: skip


def test_parts_hold_each_object_once_whole_and_the_unstaged_ones_last(s3_client, s3_bucket):
    area = StagingArea(s3_bucket, "runs", "dag", "run-1")
    feed = documents("in/feed.jsonl", 5)  # straddles batches 1 and 2
    staged = [
        [*documents("in/a.txt", 1), *documents("in/b.txt", 1)],
        [*documents("in/c.txt", 1), *feed[:2]],
        [*feed[2:], *documents("in/d.txt", 1)],
        documents("in/e.txt", 1),
    ]
    batches = [write_documents(s3_client, area, number, batch) for number, batch in enumerate(staged)]
    manifest = run_manifest(
        batches, changed_count=8, unstaged={"in/bad.pdf": "etag-bad", "in/folder/": "etag-empty"},
        deleted_keys=["in/gone.txt"], quarantine=[{"key": "in/bad.pdf", "etag": "etag-bad", "reason": "corrupt_pdf",
                                                   "detail": "x"}],
        retried={"in/c.txt": 1, "in/vanished.txt": 2},
    )  # fmt: skip

    parts = list(run_parts(s3_client, manifest))

    assert [part.batches for part in parts] == [batches[:1], batches[1:3], batches[3:], []]
    assert [sorted(part.changed) for part in parts] == [
        ["in/a.txt", "in/b.txt"], ["in/c.txt", "in/d.txt", "in/feed.jsonl"], ["in/e.txt"], ["in/bad.pdf", "in/folder/"]
    ]  # fmt: skip
    assert parts[1].changed["in/feed.jsonl"] == "etag-in/feed.jsonl"
    assert [part.retried for part in parts] == [{}, {"in/c.txt": 1}, {}, {"in/vanished.txt": 2}]
    assert [part.deleted_keys for part in parts] == [[], [], [], ["in/gone.txt"]]
    assert [len(part.quarantine) for part in parts] == [0, 0, 0, 1]
    assert all(part.objects_selected is None for part in parts), "a part has no share of the run's selection"
    check_parts_add_up(manifest, sum(len(part.changed) for part in parts))
    with pytest.raises(UnaccountedObjects, match="extract read 9 objects to index, but .* hold 8"):
        check_parts_add_up(replace(manifest, changed_count=9), 8)


def test_a_manifest_staged_before_the_parts_is_one_part(s3_client):
    manifest = run_manifest(["s3://s/b/documents/batch-00000.parquet"], changed={"in/a.txt": "e"})
    assert list(run_parts(s3_client, manifest)) == [manifest]
    check_parts_add_up(manifest, 1)
    with pytest.raises(UnaccountedObjects):
        check_parts_add_up(manifest, 2)
