"""Search-engine faults during whole DAG runs (dag.test, real Elasticsearch and MinIO): 429 rejections and
partial bulk failures injected on the network path by a loopback proxy, and the real node stopped during the index
task and started again. Each run must end with exact counts: no duplicate, no stale chunk, nothing lost."""

from __future__ import annotations

import json
import re
import threading
from datetime import UTC, datetime

from conftest import assert_exact, chunk_counts, put, restarts_server, run_state, servers_sh, task_states
from fault_proxy import FORWARD, Respond, Rewrite

DAY = datetime(2026, 3, 2, tzinfo=UTC)
PRODUCT = {"X-Elastic-Product": "Elasticsearch"}

V1 = {
    "bio.txt": "Sarah Johnson is a marine biologist. She spends months diving near coral reefs. Her research "
    "focuses on how rising ocean temperatures affect them. She works in Hawaii.",
    "city.md": "# Berlin\n\nBerlin is the capital of Germany. It has a population of 3.8 million people. "
    "The city is known for its museums.",
    "notes.jsonl": '{"text": "The first record is short. It has two sentences."}\n{"text": "The second one."}\n',
    "reef.txt": "Coral reefs are dying. They bleach when the water warms. Some recover. Many do not.",
    "gone.txt": "This object will be deleted. Its chunks must go too.",
    "team.txt": "The team dives daily. They count fish. They map the reef. They publish every year.",
}
V2 = {
    "bio.txt": "Sarah Johnson moved. She works in Berlin now.",  # fewer chunks: the old tail is stale
    "reef.txt": "Coral reefs are dying. They bleach when the water warms. Some recover. Many do not. Divers "
    "watch them. Scientists measure them. The data is public.",  # more chunks
    "notes.jsonl": '{"text": "The first record is short. It has two sentences."}\n',  # a part removed
}


def item_rejections(request_body: bytes) -> bytes:
    """A 200 bulk answer that rejects every item with 429, as an overloaded node does."""
    items = []
    for line in request_body.splitlines()[::2]:
        ((op, meta),) = json.loads(line).items()
        error = {"type": "es_rejected_execution_exception", "reason": "rejected execution (test proxy)"}
        items.append({op: {"_index": meta["_index"], "_id": meta["_id"], "status": 429, "error": error}})
    return json.dumps({"took": 1, "errors": True, "items": items}).encode()


REQUEST_429 = json.dumps(
    {"error": {"type": "es_rejected_execution_exception", "reason": "rejected execution (test proxy)"}, "status": 429}
).encode()


def corrupt_every_third_item(request_body: bytes) -> bytes:
    """The same bulk with every third document's chunk_id made a string: the real node rejects those items."""
    lines = request_body.splitlines()
    for index in range(1, len(lines), 6):
        lines[index] = re.sub(rb'"chunk_id":\d+', b'"chunk_id":"corrupt"', lines[index])
    return b"\n".join(lines) + b"\n"


def test_429_rejections_are_retried_with_backoff_and_failed_items_complete_on_the_task_retry(
    pipeline, connections, proxies, s3_client, s3_bucket, es_client, es_index
):
    bulks = {"n": 0}

    def rejecting(request):
        if not request.is_bulk:
            return FORWARD
        bulks["n"] += 1
        if bulks["n"] == 1:
            return Respond(200, item_rejections(request.body), headers=PRODUCT)
        if bulks["n"] <= 5:
            return Respond(429, REQUEST_429, headers=PRODUCT)
        return FORWARD

    proxy = proxies("es", rejecting)
    connections(es_url=proxy.url)
    put(s3_client, s3_bucket, V1)
    run = pipeline.run(DAY)
    assert run_state(run) == "success", task_states(run)
    assert task_states(run)["index"] == ("success", 1), "429s are retried inside the task"
    answered = [entry for entry in proxy.requests(bulk=True) if entry[2].startswith("respond")]
    forwarded = proxy.requests(what=FORWARD, bulk=True)
    assert [entry[2] for entry in answered] == ["respond 200"] + ["respond 429"] * 4
    assert forwarded and forwarded[0][3] - answered[0][3] >= 1.0, "the retry waited for the backoff"
    v1 = assert_exact(es_client, es_index, s3_client, s3_bucket)
    assert sum(chunk_counts(v1).values()) == len(v1)

    # Version 2 with a partial bulk failure: the node itself rejects a third of the first bulk's items, a chunk of
    # each changed object. Each refused object is quarantined and removed whole; three of five is more than
    # max_bad_fraction, so the index task fails (TooManyBadDocuments), and its retry writes them all.
    rewritten = {"done": False}

    def partly_corrupt(request):
        if request.is_bulk and not rewritten["done"]:
            rewritten["done"] = True
            return Rewrite(corrupt_every_third_item(request.body))
        return FORWARD

    proxy.rule = partly_corrupt
    put(s3_client, s3_bucket, V2)
    s3_client.delete_object(Bucket=s3_bucket, Key="incoming/gone.txt")
    run = pipeline.run(DAY, retries=1)
    assert run_state(run) == "success", task_states(run)
    assert task_states(run)["index"] == ("success", 2), "the first try fails on the rejected items, the retry completes"
    assert proxy.requests(what="rewrite")
    final = assert_exact(es_client, es_index, s3_client, s3_bucket)
    assert "incoming/gone.txt" not in chunk_counts(final)
    assert chunk_counts(final)["incoming/bio.txt"] == 2


def test_node_stopped_during_the_index_task_and_started_again(
    pipeline, connections, proxies, servers, s3_client, s3_bucket, es_client, es_index
):
    put(s3_client, s3_bucket, V1)
    assert run_state(pipeline.run(DAY)) == "success"
    assert_exact(es_client, es_index, s3_client, s3_bucket)

    restarted = threading.Event()

    def restart_later():
        try:
            servers_sh("start", "es")
        finally:
            restarted.set()

    stopped = {"done": False}

    def stop_node_on_first_bulk(request):
        if request.is_bulk and not stopped["done"]:
            stopped["done"] = True
            servers_sh("stop", "es")  # the real node goes down with this bulk on its way to it
            threading.Thread(target=restart_later, daemon=True).start()
        return FORWARD

    proxy = proxies("es", stop_node_on_first_bulk)
    connections(es_url=proxy.url)
    put(s3_client, s3_bucket, V2)
    s3_client.delete_object(Bucket=s3_bucket, Key="incoming/gone.txt")
    with restarts_server("es", servers):
        run = pipeline.run(DAY, retries=4, retry_delay_s=10)
        restarted.wait(timeout=300)
    assert stopped["done"], "the node was stopped during the index task"
    assert run_state(run) == "success", task_states(run)
    state, tries = task_states(run)["index"]
    assert state == "success"
    print(f"index task succeeded on try {tries}")
    final = assert_exact(es_client, es_index, s3_client, s3_bucket)
    assert "incoming/gone.txt" not in chunk_counts(final)
