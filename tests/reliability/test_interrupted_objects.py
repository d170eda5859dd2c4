"""Objects indexed in part, through whole DAG runs (dag.test, real Elasticsearch and MinIO).

An object of many documents (a .jsonl, one document per line) interrupted half-way: the index task stops after the
node applied the first bulk (the object's first documents, each whole, at the object's current ETag) and before the
rest. The next run must see the object as not indexed, read it again and complete it exactly: every document, every
chunk once, the current ETag, nothing lost because its first documents looked current.

An object the node refuses a chunk of: quarantined with the node's reason and removed whole (neither its old
version nor part of the new one is served), the run goes on, and a later run indexes it once the node accepts it."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from conftest import assert_exact, chunk_counts, indexed_chunks, put, run_state, task_states
from fault_proxy import FORWARD, Respond, Rewrite
from latechunk.index.elasticsearch import ElasticsearchBackend
from support import run_objects

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
    read_again = run_objects(s3_client, pipeline.manifest(s3_client, second))
    assert feed_key in read_again, "the incomplete object is read again"
    final = assert_exact(es_client, es_index, s3_client, s3_bucket)
    assert chunk_counts(final)[feed_key] == LINES * 2
    assert backend.indexed_etags(es_index, keys=[feed_key], bucket=s3_bucket) == {feed_key: etag}

    third = pipeline.run(DAY)
    assert run_state(third) == "success", task_states(third)
    assert run_objects(s3_client, pipeline.manifest(s3_client, third)) == {}, "complete now: nothing is read again"


def index_summary(run) -> dict:
    from airflow import settings
    from airflow.models.xcom import XComModel

    with settings.Session() as session:
        row = session.query(XComModel).filter_by(
            dag_id=run.dag_id, run_id=run.run_id, task_id="index", key="return_value"
        ).one()
        return XComModel.deserialize_value(row)


def corrupt_first_chunk_of(key: str, body: bytes) -> bytes:
    """The bulk with chunk 0 of `key` made invalid (a string chunk_id): the real node refuses that item."""
    lines = body.splitlines()
    for index in range(1, len(lines), 2):
        if f'"key":"{key}"'.encode() in lines[index] and b'"chunk_id":0,' in lines[index]:
            lines[index] = re.sub(rb'"chunk_id":0,', b'"chunk_id":"corrupt",', lines[index])
    return b"\n".join(lines) + b"\n"


def test_an_object_the_node_refuses_is_quarantined_and_removed_whole(
    pipeline, connections, proxies, s3_client, s3_bucket, es_client, es_index
):
    objects = {f"doc-{i}.txt": f"Document {i} is about reefs. It has a second sentence." for i in range(6)}
    put(s3_client, s3_bucket, objects)
    assert run_state(pipeline.run(DAY)) == "success"
    assert_exact(es_client, es_index, s3_client, s3_bucket)

    odd = "incoming/doc-3.txt"
    put(s3_client, s3_bucket, {"doc-3.txt": "Document 3 changed. It now has three sentences. Here is the third."})
    proxy = proxies("es", lambda request: Rewrite(corrupt_first_chunk_of(odd, request.body)) if request.is_bulk
                    else FORWARD)  # fmt: skip
    connections(es_url=proxy.url)
    second = pipeline.run(DAY)
    assert run_state(second) == "success", task_states(second)
    assert task_states(second)["index"] == ("success", 1), "a refused object does not fail the task"
    summary = index_summary(second)
    assert (summary["objects_indexed"], summary["objects_quarantined"], summary["objects_unchanged"]) == (0, 1, 5)
    (entry,) = summary["index_quarantine"]
    assert (entry["key"], entry["reason"]) == (odd, "refused_by_index")
    assert entry["detail"].startswith("document_parsing_exception: ")
    served = assert_exact(es_client, es_index, s3_client, s3_bucket, expect_missing={odd})
    assert odd not in chunk_counts(served), "neither the old version nor part of the new one is served"

    connections()  # the node accepts it now
    third = pipeline.run(DAY)
    assert run_state(third) == "success", task_states(third)
    assert index_summary(third)["objects_indexed"] == 1
    assert chunk_counts(assert_exact(es_client, es_index, s3_client, s3_bucket))[odd] == 3
