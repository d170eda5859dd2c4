"""Overlapping runs against a real bucket and a real node, their stages called in an interleaved order: a stale
version never overwrites a newer one, a deletion never removes an object uploaded again, validation of an earlier
run passes when a later run rewrote its objects but still catches a stale overwrite, and a reindex's swap neither
loses nor resurrects what other runs changed while it built the new index (latechunk.pipeline.overlap, catch_up)."""

from __future__ import annotations

import uuid

import pytest
from latechunk.pipeline import index as index_stage
from latechunk.pipeline.alias import swap_alias
from latechunk.pipeline.annotate import annotate
from latechunk.pipeline.batch_failures import pending_uri, read_pending
from latechunk.pipeline.catch_up import catch_up
from latechunk.pipeline.embed import embed
from latechunk.pipeline.extract import ExtractSettings, extract
from latechunk.pipeline.index import index
from latechunk.pipeline.overlap import Overtaken
from latechunk.pipeline.validate import ValidationSettings, validate
from latechunk.staging import tables as staging
from latechunk.validation.report import ValidationError
from support import assert_exact, indexed_chunks, recorded_s3_calls

PREFIX = "incoming/"
CHUNKING = {"strategy": "sentences", "sentences_per_chunk": 1}
V1 = "Sarah Johnson is a marine biologist. She spends months diving near coral reefs."
V2 = "Berlin is the capital of Germany. It has millions of people. The city is known for its museums."
OTHER = "The server restarts every night. Logs are kept for seven days."
DAG_ID = "test_ingest"


class Runs:
    """Each stage of a run as a call, so that a test can interleave the stages of several runs."""

    def __init__(self, s3, es, bucket: str, staging_bucket: str, index_name: str, model: str):
        self.s3, self.es, self.bucket, self.index_name, self.model = s3, es, bucket, index_name, model
        self.staging_bucket = staging_bucket

    def area(self, dag_id: str = DAG_ID) -> staging.StagingArea:
        return staging.StagingArea(self.staging_bucket, "runs", dag_id, uuid.uuid4().hex)

    def put(self, name: str, text: str) -> str:
        return self.s3.put_object(Bucket=self.bucket, Key=PREFIX + name, Body=text.encode())["ETag"].strip('"')

    def delete(self, name: str) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=PREFIX + name)

    def stage(self, *, index_name: str | None = None, dag_id: str = DAG_ID, **selection) -> str:
        """Extract, annotate and embed a run; its manifest's path."""
        area = self.area(dag_id)
        settings = ExtractSettings(bucket=self.bucket, prefix=PREFIX, index=index_name or self.index_name,
                                   model=self.model, chunking=CHUNKING, window=64, window_overlap=16,
                                   delete_missing=True, **selection)  # fmt: skip
        extracted = extract(s3=self.s3, es=self.es, area=area, settings=settings)
        for batch in extracted["batches"]:
            annotate(s3=self.s3, area=area, batch_path=batch, model=self.model, chunking=CHUNKING)
            embed(s3=self.s3, area=area, batch_path=batch, model=self.model, window=64, window_overlap=16)
        return extracted["manifest"]

    def index(self, manifest: str, index_name: str | None = None, **kwargs) -> dict:
        return index(s3=self.s3, es=self.es, manifest_path=manifest, index_name=index_name or self.index_name,
                     **kwargs)  # fmt: skip

    def validate(self, manifest: str, index_name: str | None = None) -> dict:
        validated = validate(s3=self.s3, es=self.es, manifest_path=manifest, index_name=index_name or self.index_name,
                             settings=ValidationSettings())  # fmt: skip
        return staging.read_json(self.s3, validated["report"])

    def pending(self, dag_id: str = DAG_ID) -> dict[str, dict]:
        return read_pending(self.s3, pending_uri(self.area(dag_id), self.index_name))

    def indexed_etags(self, index_name: str | None = None) -> dict[str, str]:
        return {chunk["key"]: chunk["etag"] for chunk in indexed_chunks(self.es, index_name or self.index_name)}

    def exact(self) -> None:
        assert_exact(self.es, self.index_name, self.s3, self.bucket)


@pytest.fixture
def runs(s3_client, s3_bucket, staging_bucket, es_client, es_index, tiny_jina_model) -> Runs:
    return Runs(s3_client, es_client, s3_bucket, staging_bucket, es_index, tiny_jina_model)


def test_a_stale_version_never_overwrites_a_newer_one(runs):
    runs.put("a.txt", V1)
    runs.put("b.txt", OTHER)
    first = runs.stage()  # stages a.txt at v1
    v2 = runs.put("a.txt", V2)
    second = runs.stage()  # stages a.txt at v2
    runs.index(second)
    summary = runs.index(first)  # later, with what it staged before
    runs.exact()  # a.txt at v2, exactly
    assert runs.indexed_etags()[PREFIX + "a.txt"] == v2
    assert summary["objects_overwritten_since_extract"] == 1 and summary["objects_indexed"] == 1  # b.txt
    assert runs.pending()[PREFIX + "a.txt"]["etag"] == v2, "the next run reads it again (unchanged: it settles)"
    for manifest in (first, second):
        runs.validate(manifest)


def test_a_deletion_never_removes_an_object_uploaded_again(runs):
    runs.put("a.txt", V1)
    runs.put("b.txt", OTHER)
    runs.index(runs.stage())
    runs.delete("a.txt")
    deleting = runs.stage()  # finds a.txt gone
    v2 = runs.put("a.txt", V2)
    uploading = runs.stage()  # finds it back
    runs.index(uploading)
    summary = runs.index(deleting)
    runs.exact()
    assert runs.indexed_etags()[PREFIX + "a.txt"] == v2
    assert summary["deletions_overtaken"] == 1 and summary["objects_deleted"] == 0
    runs.validate(deleting)


def test_an_object_deleted_after_extract_leaves_the_index_and_is_not_checked(runs):
    runs.put("a.txt", V1)
    runs.put("b.txt", OTHER)
    staged = runs.stage()
    runs.delete("a.txt")
    summary = runs.index(staged)
    runs.exact()
    assert PREFIX + "a.txt" not in runs.indexed_etags()
    assert summary["objects_deleted_since_extract"] == 1 and summary["objects_deleted"] == 1
    assert (summary["objects_indexed"], summary["objects_unchanged"]) == (1, 0)
    report = runs.validate(staged)
    (check,) = [check for check in report["checks"] if check["name"] == "current_versions"]
    assert check["details"]["superseded_since_indexed"] == [{"key": PREFIX + "a.txt", "bucket_etag": None}]


def test_validation_passes_when_a_later_run_rewrote_an_object_and_catches_a_stale_overwrite(runs, monkeypatch):
    runs.put("a.txt", V1)
    runs.put("b.txt", OTHER)
    first = runs.stage()
    runs.index(first)
    v2 = runs.put("a.txt", V2)
    second = runs.stage()
    runs.index(second)
    # The first run's validate comes after the second run rewrote a.txt: skipped and reported, not failed.
    report = runs.validate(first)
    (check,) = [check for check in report["checks"] if check["name"] == "current_versions"]
    assert check["passed"] and check["details"]["superseded_since_indexed"] == [
        {"key": PREFIX + "a.txt", "bucket_etag": v2}
    ]
    runs.validate(second)

    # Without the guard the first run writes its v1 over the served v2: the second run's validation catches it.
    monkeypatch.setattr(index_stage, "overtaken_in_bucket", lambda s3, manifest: Overtaken({}, {}, {}))
    runs.index(first)
    assert runs.indexed_etags()[PREFIX + "a.txt"] != v2
    with pytest.raises(ValidationError) as failed:
        runs.validate(second)
    (check,) = [check for check in failed.value.report.checks if check.name == "current_versions"]
    assert not check.passed and [entry["key"] for entry in check.details["stale"]] == [PREFIX + "a.txt"]


def test_a_reindex_swap_neither_loses_nor_resurrects_what_other_runs_changed_meanwhile(runs, es_client):
    for name, text in (("a.txt", V1), ("b.txt", OTHER), ("c.txt", V1 + " " + OTHER)):
        runs.put(name, text)
    runs.index(runs.stage())
    new_index = f"{runs.index_name}-rebuild"
    rebuild = runs.stage(index_name=new_index, dag_id="test_reindex")  # lists a, b, c
    runs.index(rebuild, index_name=new_index, create_as_alias=False)
    runs.validate(rebuild, index_name=new_index)
    # Before the swap, an ingest run writes what changed since into the served index.
    v2 = runs.put("a.txt", V2)
    runs.delete("b.txt")
    d = runs.put("d.txt", OTHER + " Again.")
    runs.index(runs.stage())
    caught_up = catch_up(s3=runs.s3, es=es_client, manifest_path=rebuild, new_index=new_index,
                         pending_at=pending_uri(runs.area(), runs.index_name))  # fmt: skip
    swap_alias(es=es_client, alias=runs.index_name, new_index=new_index)
    assert caught_up["removed"] == [PREFIX + "b.txt"], "b.txt was deleted meanwhile: not resurrected"
    assert caught_up["pending"] == [PREFIX + "a.txt", PREFIX + "d.txt"]
    assert {key: entry["etag"] for key, entry in runs.pending().items()} == {PREFIX + "a.txt": v2, PREFIX + "d.txt": d}
    assert PREFIX + "b.txt" not in runs.indexed_etags()
    # The next ingest run reads the pending objects whatever its selection (here: a day folder with nothing).
    runs.index(runs.stage(select_prefixes=(PREFIX + "2026-01-01/",)))
    runs.exact()
    assert runs.pending() == {}


def listing_manifest(bucket: str, prefix: str, **fields):
    """A run manifest of ``bucket`` and ``prefix``, for `current_etags`."""
    from latechunk.chunking.config import ChunkingConfig
    from latechunk.embedding.config import LateChunkingConfig
    from latechunk.pipeline.manifest import RunManifest

    return RunManifest(
        bucket=bucket, prefix=prefix, index="i", model="m", model_revision="r", dims=4, chunking=ChunkingConfig(),
        window=64, window_overlap=16, late_chunking=LateChunkingConfig(), max_bad_fraction=0.2, **fields,
    )  # fmt: skip


def test_many_keys_are_checked_by_listing_their_range_few_by_head_with_the_same_answer(s3_client, s3_bucket):
    from dataclasses import replace

    from latechunk.pipeline.overlap import HEADS_PER_PAGE, current_etags

    keys = [f"{PREFIX}{number:03d}.txt" for number in range(HEADS_PER_PAGE + 5)]
    for key in keys[:25]:
        s3_client.put_object(Bucket=s3_bucket, Key=key, Body=key.encode())
    s3_client.put_object(Bucket=s3_bucket, Key=f"{PREFIX}other.txt", Body=b"not asked for")
    manifest = listing_manifest(s3_bucket, PREFIX, objects_under_prefix=26)
    expected = {key: s3_client.head_object(Bucket=s3_bucket, Key=key)["ETag"].strip('"') for key in keys[:25]}
    with recorded_s3_calls(s3_client) as calls:
        assert current_etags(s3_client, manifest, keys) == expected
    assert calls == ["ListObjectsV2"], f"{len(keys)} keys of a 26-object prefix: one page of listing"
    with recorded_s3_calls(s3_client) as calls:
        assert current_etags(s3_client, replace(manifest, objects_under_prefix=1_000_000), keys[20:30]) == {
            key: expected[key] for key in keys[20:25]
        }
    assert calls == ["HeadObject"] * 10, "10 keys: a HEAD each"


def test_keys_spread_thin_over_a_large_range_stop_the_listing_and_get_heads(s3_client, s3_bucket, monkeypatch):
    """A part's keys may span a range holding many more objects (keys retried from all over the prefix): the
    listing stops once it has cost what a HEAD per key would, and the keys after it get HEADs."""
    from latechunk.pipeline import overlap

    monkeypatch.setattr(overlap, "LIST_PAGE", overlap.HEADS_PER_PAGE)  # a budget of one listed object per key
    prefix = f"{PREFIX}thin/"
    objects = [f"{prefix}{number:03d}.txt" for number in range(120)]
    for key in objects:
        s3_client.put_object(Bucket=s3_bucket, Key=key, Body=key.encode())
    asked = [*objects[0:100:2], f"{prefix}gone.txt"]  # 51 keys over 100 objects; one never existed
    expected = {key: s3_client.head_object(Bucket=s3_bucket, Key=key)["ETag"].strip('"') for key in asked[:-1]}
    manifest = listing_manifest(s3_bucket, prefix)
    with recorded_s3_calls(s3_client) as calls:
        assert overlap.current_etags(s3_client, manifest, asked) == expected
    # 51 objects listed (000 to 050) cover the keys through 050; the 25 after it and gone.txt get a HEAD each.
    assert calls == ["ListObjectsV2"] + ["HeadObject"] * 25
