"""An object of many documents (a .jsonl, one document per line) interrupted half-way through its indexing, through
whole DAG runs (dag.test, real Elasticsearch and MinIO): the index task stops after the node applied the first
bulk (the object's first documents, each whole, at the object's current ETag) and before the rest. The next run
must see the object as not indexed, read it again and complete it exactly: every document, every chunk once, the
current ETag, nothing lost because its first documents looked current."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from conftest import assert_exact, chunk_counts, indexed_chunks, put, run_state, task_states
from fault_proxy import FORWARD, Respond
from latechunk.index import ElasticsearchBackend

pytestmark = pytest.mark.integration

DAY = datetime(2026, 3, 2, tzinfo=UTC)
PRODUCT = {"X-Elastic-Product": "Elasticsearch"}
LINES = 10  # over three batches of 4 documents
FEED = "\n".join(
    json.dumps({"text": f"Record {i} is about reefs. It has a second sentence.", "n": i}) for i in range(LINES)
)
OBJECTS = {"feed.jsonl": FEED, "notes.txt": "The team dives daily. They count fish."}
STOPPED = json.dumps({"error": {"type": "test_stop", "reason": "the index task stops here (test proxy)"},
                      "status": 400}).encode()  # fmt: skip


def test_an_object_interrupted_between_its_documents_is_completed_by_the_next_run(
    pipeline, connections, proxies, s3_client, s3_bucket, es_client, es_index
):
    put(s3_client, s3_bucket, OBJECTS)
    feed_key = "incoming/feed.jsonl"
    etag = s3_client.head_object(Bucket=s3_bucket, Key=feed_key)["ETag"].strip('"')
    bulks = {"n": 0}

    def stop_after_first_bulk(request):
        if not request.is_bulk:
            return FORWARD
        bulks["n"] += 1
        return FORWARD if bulks["n"] == 1 else Respond(400, STOPPED, headers=PRODUCT)

    proxy = proxies("es", stop_after_first_bulk)
    connections(es_url=proxy.url)
    first = pipeline.run(DAY)
    assert run_state(first) == "failed" and task_states(first)["index"][0] == "failed", task_states(first)

    # The first batch holds four whole documents of the feed at its current ETag; the other six are missing.
    partial = [chunk for chunk in indexed_chunks(es_client, es_index) if chunk["key"] == feed_key]
    assert {chunk["etag"] for chunk in partial} == {etag}
    assert len({chunk["doc_id"] for chunk in partial}) == 4 and len(partial) == 4 * 2
    assert all(chunk["object_records"] == LINES * 2 for chunk in partial)
    backend = ElasticsearchBackend(es_client)
    assert backend.indexed_etags(es_index, keys=[feed_key], bucket=s3_bucket) == {feed_key: None}

    connections()  # the node answers again
    second = pipeline.run(DAY)
    assert run_state(second) == "success", task_states(second)
    assert feed_key in pipeline.manifest(s3_client, second)["changed"], "the incomplete object is read again"
    final = assert_exact(es_client, es_index, s3_client, s3_bucket)
    assert chunk_counts(final)[feed_key] == LINES * 2
    assert backend.indexed_etags(es_index, keys=[feed_key], bucket=s3_bucket) == {feed_key: etag}

    third = pipeline.run(DAY)
    assert run_state(third) == "success", task_states(third)
    assert pipeline.manifest(s3_client, third)["changed"] == {}, "complete now: nothing is read again"
