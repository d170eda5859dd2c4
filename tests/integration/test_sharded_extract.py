"""The extract stage split into key ranges (`latechunk.pipeline.shards`) against real MinIO and Elasticsearch: the
ranges together stage, delete and quarantine exactly what one pass over the prefix does, their batches never
collide, and the index ends exact after a first load and after a change."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest
from latechunk.pipeline import extract as extract_stage
from latechunk.pipeline import shards
from latechunk.pipeline.annotate import annotate
from latechunk.pipeline.embed import embed
from latechunk.pipeline.extract import ExtractSettings, extract
from latechunk.pipeline.index import index
from latechunk.pipeline.manifest import read_manifest
from latechunk.staging import tables as staging
from support import assert_exact, recorded_s3_calls, run_objects

PREFIX = "incoming/"
CHUNKING = {"strategy": "sentences", "sentences_per_chunk": 1}
FOLDERS = ("2026-01-01/", "2026-01-02/", "2026-01-03/", "été/", "Z/")
SENTENCES = ("Coral reefs bleach in warm water.", "Sourdough rises slowly.", "Comets have icy tails.",
             "Glaciers carve valleys.", "Owls hunt at night.")  # fmt: skip


def text(number: int, version: int = 0) -> bytes:
    return f"{SENTENCES[number % 5]} Note {number} version {version}.".encode()


@pytest.fixture
def corpus(s3_client, s3_bucket) -> dict[str, int]:
    """Twenty-five objects in five folders, keys in several scripts and cases, one unreadable PDF."""
    keys = {}
    for number in range(25):
        name = ("a b", "résumé", "中文", "Case", "case")[number % 5]
        keys[f"{PREFIX}{FOLDERS[number % 5]}{name}-{number:02d}.txt"] = number
    for key, number in keys.items():
        s3_client.put_object(Bucket=s3_bucket, Key=key, Body=text(number))
    s3_client.put_object(Bucket=s3_bucket, Key=f"{PREFIX}2026-01-02/broken.pdf", Body=b"%PDF-1.7 not really")
    return keys


@pytest.fixture
def run(s3_client, s3_bucket, staging_bucket, es_client, es_index, tiny_jina_model):
    settings = ExtractSettings(bucket=s3_bucket, prefix=PREFIX, index=es_index, model=tiny_jina_model,
                               chunking=CHUNKING, window=64, window_overlap=16, max_bad_fraction=0.5)  # fmt: skip

    def extract_only(area: staging.StagingArea | None = None, **changes) -> dict:
        area = area or staging.StagingArea(staging_bucket, "runs", "shards", uuid.uuid4().hex)
        return extract(s3=s3_client, es=es_client, area=area, settings=replace(settings, **changes))

    def whole_run(**changes) -> dict:
        area = staging.StagingArea(staging_bucket, "runs", "shards", uuid.uuid4().hex)
        extracted = extract_only(area, **changes)
        for batch in extracted["batches"]:
            annotate(s3=s3_client, area=area, batch_path=batch, model=tiny_jina_model, chunking=CHUNKING)
            embed(s3=s3_client, area=area, batch_path=batch, model=tiny_jina_model, window=64, window_overlap=16)
        summary = index(s3=s3_client, es=es_client, manifest_path=extracted["manifest"], index_name=es_index)
        return {**extracted, "index": summary}

    return extract_only, whole_run


def outcome(s3_client, extracted: dict) -> dict:
    """What a run's extract decided, whatever its key ranges: the manifest's objects and counts."""
    manifest = read_manifest(s3_client, extracted["manifest"])
    return {
        "changed": run_objects(s3_client, manifest.to_dict()),
        "deleted": manifest.deleted_keys,
        "quarantine": sorted((entry["key"], entry["reason"]) for entry in manifest.quarantine),
        "selected": manifest.objects_selected,
        "bad": manifest.objects_quarantined,
        "documents": extracted["documents_staged"],
        "new": extracted["objects_new"],
        "modified": extracted["objects_modified"],
    }


def test_key_ranges_stage_exactly_what_one_pass_does_and_the_index_ends_exact(
    corpus, run, s3_client, s3_bucket, es_client, es_index, monkeypatch
):
    extract_only, whole_run = run
    # A first load (no index yet) of a prefix larger than a listing page splits at the prefix's folders.
    monkeypatch.setattr(shards, "FIRST_PAGE", 10)
    one_pass = extract_only(max_shards=1)
    first = whole_run(max_shards=4)
    assert one_pass["key_ranges"] == 1 and first["key_ranges"] == 4
    assert outcome(s3_client, first) == outcome(s3_client, one_pass)
    assert len(set(first["batches"])) == len(first["batches"]) >= 4, "each range stages its own batches"
    assert first["objects_new"] == 25 and first["objects_quarantined"] == 1
    # Index went through the run a batch at a time (one-document objects never straddle batches), then the rest.
    assert first["index"]["run_parts"] == len(first["batches"]) + 1
    assert (first["index"]["objects_indexed"], first["index"]["objects_quarantined"]) == (25, 1)
    assert_exact(es_client, es_index, s3_client, s3_bucket, expect_missing={f"{PREFIX}2026-01-02/broken.pdf"})

    # Overwritten, deleted and new objects across the folders; now the index's keys decide the ranges.
    numbers = sorted(corpus.items(), key=lambda item: item[1])
    for key, number in numbers[:4]:
        s3_client.put_object(Bucket=s3_bucket, Key=key, Body=text(number, version=1))
    for key, _ in numbers[10:13]:
        s3_client.delete_object(Bucket=s3_bucket, Key=key)
    for number in (30, 31):
        s3_client.put_object(Bucket=s3_bucket, Key=f"{PREFIX}Z/new-{number}.txt", Body=text(number))
    one_pass = extract_only(max_shards=1)
    sharded = whole_run(max_shards=3, objects_per_shard=5)
    assert sharded["key_ranges"] == 3
    assert outcome(s3_client, sharded) == outcome(s3_client, one_pass)
    assert (sharded["objects_new"], sharded["objects_modified"], sharded["keys_to_delete"]) == (2, 4, 3)
    assert_exact(es_client, es_index, s3_client, s3_bucket, expect_missing={f"{PREFIX}2026-01-02/broken.pdf"})

    again = extract_only(max_shards=3, objects_per_shard=5)
    assert (again["objects_changed"], again["keys_to_delete"]) == (1, 0), "only the quarantined PDF is read again"


def test_a_small_first_load_is_counted_and_split_by_its_keys(corpus, run, s3_client):
    extract_only, _ = run
    assert extract_only(max_shards=4)["key_ranges"] == 1, "26 objects, fewer than objects_per_shard"
    split = extract_only(max_shards=4, objects_per_shard=8)
    assert split["key_ranges"] == 4 and split["objects_new"] == 25
    assert outcome(s3_client, split) == outcome(s3_client, extract_only(max_shards=1))


def test_a_range_lists_once_when_the_count_can_keep_what_changed_and_twice_when_not(
    corpus, run, s3_client, monkeypatch
):
    """A daily delta is read from what the counting pass kept; a first load of more changed objects than it keeps
    is listed again to be read as the merge goes. Both stage the same objects."""
    extract_only, _ = run
    with recorded_s3_calls(s3_client) as calls:
        kept = extract_only(max_shards=1)
    listings_once = calls.count("ListObjectsV2")
    monkeypatch.setattr(extract_stage, "REMEMBERED_CHANGES", 3)
    with recorded_s3_calls(s3_client) as calls:
        relisted = extract_only(max_shards=1)
    assert kept["objects_changed"] == 26 > extract_stage.REMEMBERED_CHANGES
    assert calls.count("ListObjectsV2") == listings_once + 1, "the 26-object prefix (one page) listed again"
    assert outcome(s3_client, relisted) == outcome(s3_client, kept)
