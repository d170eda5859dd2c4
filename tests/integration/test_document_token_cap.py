"""Documents of more than ``max_document_tokens`` tokens through the real stages: annotate quarantines them
(``too_many_tokens``, with the count), the index task quarantines their whole object (a .jsonl line too long keeps
its short sibling lines out of the index too: an object is complete or absent), they count toward
max_bad_fraction, and validation passes and lists them."""

from __future__ import annotations

import json
import uuid

import pytest
from latechunk.pipeline.annotate import TOO_MANY_TOKENS, annotate
from latechunk.pipeline.embed import embed
from latechunk.pipeline.extract import ExtractSettings, TooManyBadDocuments, extract
from latechunk.pipeline.index import index
from latechunk.pipeline.validate import ValidationSettings, validate
from latechunk.staging import tables as staging

pytestmark = pytest.mark.integration

PREFIX = "incoming/"
LONG = " ".join(f"Sarah dives near coral reefs in Hawaii {i}." for i in range(30))
OBJECTS = {
    "one.txt": "Sarah Johnson is a marine biologist. She spends months diving near coral reefs.",
    "two.txt": "Berlin is the capital of Germany. It has a population of millions of people.",
    "three.txt": "The city is known for its museums. They were built in the capital.",
    "long.txt": LONG,
    "feed.jsonl": json.dumps({"text": "A short line about Berlin."}) + "\n" + json.dumps({"text": LONG}) + "\n",
}
CHUNKING = {"strategy": "sentences", "sentences_per_chunk": 1}
MAX_TOKENS = 100


def run(s3_client, es_client, bucket, staging_bucket, index_name, model, max_bad_fraction) -> dict:
    area = staging.StagingArea(staging_bucket, "runs", "test", uuid.uuid4().hex)
    settings = ExtractSettings(
        bucket=bucket, prefix=PREFIX, index=index_name, model=model, chunking=CHUNKING,
        max_bad_fraction=max_bad_fraction, window=64, window_overlap=16,
    )  # fmt: skip
    extracted = extract(s3=s3_client, es=es_client, area=area, settings=settings)
    annotated = []
    for batch in extracted["batches"]:
        annotated.append(annotate(s3=s3_client, area=area, batch_path=batch, model=model, chunking=CHUNKING,
                                  max_document_tokens=MAX_TOKENS))  # fmt: skip
        embed(s3=s3_client, area=area, batch_path=batch, model=model, window=64, window_overlap=16)
    common = {"s3": s3_client, "es": es_client, "manifest_path": extracted["manifest"], "index_name": index_name}
    indexed = index(**common)
    validated = validate(**common, settings=ValidationSettings())
    return {"annotate": annotated, "index": indexed, "report": staging.read_json(s3_client, validated["report"])}


@pytest.fixture
def uploaded(s3_client, s3_bucket):
    for name, text in OBJECTS.items():
        s3_client.put_object(Bucket=s3_bucket, Key=PREFIX + name, Body=text.encode())


def test_documents_over_the_token_cap_are_quarantined_with_their_objects(
    uploaded, s3_client, s3_bucket, staging_bucket, es_client, es_index, tiny_jina_model
):
    result = run(s3_client, es_client, s3_bucket, staging_bucket, es_index, tiny_jina_model, max_bad_fraction=0.5)
    refused = {e["key"]: e for summary in result["annotate"] for e in summary["quarantine"]}
    assert set(refused) == {PREFIX + "long.txt", PREFIX + "feed.jsonl#2"}
    assert all(e["reason"] == TOO_MANY_TOKENS and f"max_document_tokens={MAX_TOKENS}" in e["detail"]
               for e in refused.values())  # fmt: skip
    assert result["index"]["objects_quarantined"] == 2 and result["index"]["objects_indexed"] == 3
    objects = {PREFIX + "long.txt", PREFIX + "feed.jsonl"}
    listed = result["index"]["index_quarantine"]
    assert {e["key"]: e["reason"] for e in listed} == dict.fromkeys(objects, TOO_MANY_TOKENS)
    (feed,) = [e for e in listed if e["key"].endswith("feed.jsonl")]
    assert feed["detail"].startswith(PREFIX + "feed.jsonl#2: ") and "tokens, more than" in feed["detail"]
    report = {e["key"]: e["reason"] for e in result["report"]["quarantine"]}
    assert report == dict.fromkeys(objects, TOO_MANY_TOKENS), "listed once each, not as documents without chunks"
    es_client.indices.refresh(index=es_index)
    keys = {hit["_source"]["key"] for hit in es_client.search(index=es_index, size=100)["hits"]["hits"]}
    assert keys == {PREFIX + name for name in ("one.txt", "two.txt", "three.txt")}, "no line of feed.jsonl either"


def test_documents_over_the_token_cap_count_toward_max_bad_fraction(
    uploaded, s3_client, s3_bucket, staging_bucket, es_client, es_index, tiny_jina_model
):
    with pytest.raises(TooManyBadDocuments, match=r"2 of 5 objects \(40%\) could not be ingested"):
        run(s3_client, es_client, s3_bucket, staging_bucket, es_index, tiny_jina_model, max_bad_fraction=0.2)
    assert not es_client.indices.exists(index=es_index), "nothing was indexed"
