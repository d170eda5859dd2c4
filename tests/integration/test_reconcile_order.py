"""MinIO's listing and Elasticsearch's keyword order agree on keys that sort differently as UTF-16, so the streaming
merge can reconcile them, whole or in key ranges, against a real bucket and a real index."""

from __future__ import annotations

import numpy as np
from embedded_chunks import document_chunks
from latechunk.index.elasticsearch import ElasticsearchBackend
from latechunk.index.spec import IndexSpec
from latechunk.pipeline.scan import list_objects
from latechunk.sources.reconcile import Status, key_ranges, reconcile

KEYS = [
    "docs/Report.txt", "docs/report.txt", "docs/résumé.txt", "docs/Zebra.txt", "docs/a b.txt", "docs/a+b.txt",
    "docs/中文.txt", "docs/\ufffd.txt", "docs/\U0001f600.txt", "docs/z/deep/file.txt", "docs/0.txt",
]  # fmt: skip


def test_the_bucket_and_the_index_list_keys_in_the_same_order_and_reconcile_in_shards(
    s3_client, s3_bucket, es_client, es_index
):
    assert sorted(KEYS) != sorted(KEYS, key=lambda key: key.encode("utf-16-be"))  # the case that matters
    in_bucket = KEYS[:-2]  # docs/z/deep/file.txt and docs/0.txt are in the index only: deleted
    for key in in_bucket:
        s3_client.put_object(Bucket=s3_bucket, Key=key, Body=key.encode())
    backend = ElasticsearchBackend(es_client)
    backend.ensure_index(IndexSpec(name=es_index, dims=4, model_id="test/model", replicas=0))
    etags = {obj.key: obj.etag for obj in list_objects(s3_client, s3_bucket, "docs/")}
    indexed = [key for key in KEYS if key != "docs/résumé.txt"]  # new: in the bucket only
    for number, key in enumerate(indexed):
        etag = "stale" if key == "docs/Zebra.txt" else etags.get(key, "gone")
        vectors = np.eye(4, dtype=np.float32)[[number % 4]]
        chunks = document_chunks(key, 1, bucket=s3_bucket, etag=etag, vectors=vectors)
        assert backend.upsert_documents(es_index, chunks).ok
    es_client.indices.refresh(index=es_index)

    listed = [obj.key for obj in list_objects(s3_client, s3_bucket, "docs/")]
    from_index = [key for key, _ in backend.iter_indexed_etags(es_index, bucket=s3_bucket, prefix="docs/")]
    assert listed == sorted(in_bucket) and from_index == sorted(indexed)

    expected = {key: Status.UNCHANGED for key in in_bucket}
    expected |= {"docs/résumé.txt": Status.NEW, "docs/Zebra.txt": Status.CHANGED}
    expected |= {"docs/z/deep/file.txt": Status.DELETED, "docs/0.txt": Status.DELETED}
    many = ["docs/Report.txt", "docs/report.txt", "docs/中文.txt", "docs/\ufffd.txt"]
    for boundaries in ([], ["docs/a+b.txt"], many):
        found: dict[str, Status] = {}
        for shard in key_ranges(boundaries):
            listing = list_objects(s3_client, s3_bucket, "docs/", shard)
            in_index = backend.iter_indexed_etags(
                es_index, bucket=s3_bucket, prefix="docs/", after=shard.after, through=shard.through
            )
            for change in reconcile(listing, in_index):
                assert change.key in shard and change.key not in found
                found[change.key] = change.status
        assert found == expected, boundaries


def test_a_scan_reads_the_selected_changes_and_pending_keys_and_finds_the_deleted(
    s3_client, s3_bucket, es_client, es_index
):
    from datetime import UTC, datetime

    from latechunk.pipeline.extract import ExtractSettings
    from latechunk.pipeline.scan import Scan, walk_prefix
    from latechunk.sources.reconcile import ALL_KEYS

    for key in ("in/2026-03-01/old.txt", "in/2026-03-02/new.txt", "in/2026-03-02/same.txt", "in/2026-03-01/été.txt"):
        s3_client.put_object(Bucket=s3_bucket, Key=key, Body=key.encode())
    etags = {obj.key: obj.etag for obj in list_objects(s3_client, s3_bucket, "in/")}
    backend = ElasticsearchBackend(es_client)
    backend.ensure_index(IndexSpec(name=es_index, dims=4, model_id="test/model", replicas=0))
    vectors = np.eye(4, dtype=np.float32)[[0]]
    for key, etag in (("in/2026-03-02/same.txt", etags["in/2026-03-02/same.txt"]), ("in/gone.txt", "e")):
        chunks = document_chunks(key, 1, bucket=s3_bucket, etag=etag, vectors=vectors)
        assert backend.upsert_documents(es_index, chunks).ok
    es_client.indices.refresh(index=es_index)
    settings = ExtractSettings(
        bucket=s3_bucket, prefix="in/", index=es_index, model="m", chunking={}, select_prefixes=("in/2026-03-02/",),
        written_between=(datetime(2000, 1, 1, tzinfo=UTC), datetime(2000, 1, 2, tzinfo=UTC)),
    )
    scan = Scan()
    to_read = walk_prefix(s3_client, backend, settings, {"in/2026-03-01/été.txt"}, ALL_KEYS, scan)
    assert scan.listed == 0, "the merge streams: nothing is listed before the first object is asked for"
    assert [(change.key, change.indexed_etag) for change in to_read] == [
        ("in/2026-03-01/été.txt", None), ("in/2026-03-02/new.txt", None),
    ]  # fmt: skip
    assert (scan.listed, scan.selected, scan.unchanged, scan.missing) == (4, 3, 1, ["in/gone.txt"])
    assert scan.changed_bytes == len(b"in/2026-03-01/\xc3\xa9t\xc3\xa9.txt") + len(b"in/2026-03-02/new.txt")
    no_deletions = Scan()
    to_read = walk_prefix(s3_client, None, settings, set(), ALL_KEYS, no_deletions)
    assert [change.key for change in to_read] == ["in/2026-03-02/new.txt", "in/2026-03-02/same.txt"]
    assert no_deletions.missing == []
