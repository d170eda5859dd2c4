"""The extract stage on explicit keys (what the event DAG gives it) through the real stages, MinIO and
Elasticsearch: each key's current state decides, whatever the events said or in which order they came."""

from __future__ import annotations

import uuid

import pytest
from latechunk.pipeline.annotate import annotate
from latechunk.pipeline.embed import embed
from latechunk.pipeline.extract import ExtractSettings, extract
from latechunk.pipeline.index import index
from latechunk.staging import tables as staging
from support import assert_exact

PREFIX = "incoming/"
CHUNKING = {"strategy": "sentences", "sentences_per_chunk": 1}
TEXTS = {
    "reef": "Sarah Johnson is a marine biologist. She dives near coral reefs.",
    "bread": "Sourdough bread rises slowly. Its starter holds wild yeast.",
    "comet": "Comets are balls of ice and dust. Their tails point away from the sun.",
}


@pytest.fixture
def run_keys(s3_client, s3_bucket, staging_bucket, es_client, es_index, tiny_jina_model):
    def run(keys: list[str]) -> dict:
        area = staging.StagingArea(staging_bucket, "runs", "events", uuid.uuid4().hex)
        settings = ExtractSettings(bucket=s3_bucket, prefix=PREFIX, index=es_index, model=tiny_jina_model,
                                   chunking=CHUNKING, window=64, window_overlap=16, keys=tuple(keys))  # fmt: skip
        extracted = extract(s3=s3_client, es=es_client, area=area, settings=settings)
        for batch in extracted["batches"]:
            annotate(s3=s3_client, area=area, batch_path=batch, model=tiny_jina_model, chunking=CHUNKING)
            embed(s3=s3_client, area=area, batch_path=batch, model=tiny_jina_model, window=64, window_overlap=16)
        indexed = index(s3=s3_client, es=es_client, manifest_path=extracted["manifest"], index_name=es_index)
        return {"extract": extracted, "index": indexed}

    return run


def test_only_the_given_keys_are_read_by_their_current_state(run_keys, s3_client, s3_bucket, es_client, es_index):
    spaced, accented = PREFIX + "notes/a b.txt", PREFIX + "été/ß.txt"
    s3_client.put_object(Bucket=s3_bucket, Key=spaced, Body=TEXTS["reef"].encode())
    s3_client.put_object(Bucket=s3_bucket, Key=accented, Body=TEXTS["bread"].encode())
    first = run_keys([spaced, accented, spaced])  # a duplicate event
    assert (first["extract"]["keys_given"], first["extract"]["objects_changed"]) == (3, 2)
    assert_exact(es_client, es_index, s3_client, s3_bucket)

    # Overwritten, deleted, and a new object no event named (the daily run's business); a replayed event of the
    # deleted key and one outside the prefix.
    s3_client.put_object(Bucket=s3_bucket, Key=spaced, Body=TEXTS["comet"].encode())
    s3_client.delete_object(Bucket=s3_bucket, Key=accented)
    s3_client.put_object(Bucket=s3_bucket, Key=PREFIX + "unannounced.txt", Body=TEXTS["bread"].encode())
    s3_client.put_object(Bucket=s3_bucket, Key="elsewhere/x.txt", Body=TEXTS["reef"].encode())
    second = run_keys([accented, spaced, "elsewhere/x.txt", accented])
    assert second["extract"]["objects_changed"] == 1 and second["extract"]["keys_to_delete"] == 1
    assert second["index"]["removed_object_chunks_deleted"] == 2, "both chunks of the deleted object"
    assert_exact(es_client, es_index, s3_client, s3_bucket,
                 expect_missing={PREFIX + "unannounced.txt", "elsewhere/x.txt"})  # fmt: skip

    # The same events again (at-least-once delivery): nothing to write, nothing to delete.
    again = run_keys([accented, spaced])
    assert (again["extract"]["objects_changed"], again["extract"]["keys_to_delete"]) == (0, 0)


def test_a_put_event_for_an_object_deleted_since_is_not_indexed(run_keys, s3_client, s3_bucket, es_client, es_index):
    key = PREFIX + "short-lived.txt"
    s3_client.put_object(Bucket=s3_bucket, Key=key, Body=TEXTS["reef"].encode())
    s3_client.delete_object(Bucket=s3_bucket, Key=key)
    result = run_keys([key])
    assert (result["extract"]["objects_changed"], result["extract"]["keys_to_delete"]) == (0, 0)
    assert not es_client.indices.exists(index=es_index) or not es_client.count(index=es_index)["count"]
