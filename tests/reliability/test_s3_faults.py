"""Object-storage faults during whole DAG runs (dag.test, real MinIO and Elasticsearch): the real server stopped
during the extract task and started again; transient 5xx answers and objects deleted or rewritten between the
listing and the read, injected on the network path by a loopback proxy."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime

from conftest import assert_exact, chunk_counts, put, restarts_server, run_state, servers_sh, task_states
from fault_proxy import FORWARD, Respond

DAY = datetime(2026, 3, 2, tzinfo=UTC)
DOCS = {
    f"doc-{i}.txt": f"Document number {i} is about coral reefs. It has a second sentence. And a third one {i}."
    for i in range(6)
}
S3_ERROR = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>injected by the test proxy'
    b"</Message></Error>"
)


def document_get(request, bucket: str) -> str | None:
    """The key when the request reads a document object (not a listing, not the staging bucket)."""
    path = request.path.split("?", 1)[0]
    prefix = f"/{bucket}/incoming/"
    return path[len(f"/{bucket}/") :] if request.method == "GET" and path.startswith(prefix) else None


def test_s3_server_stopped_during_extract_and_started_again(
    pipeline, connections, proxies, servers, s3_client, s3_bucket, es_client, es_index
):
    put(s3_client, s3_bucket, DOCS)
    stopped = {"at": None}
    restarted = threading.Event()

    def restart_later():
        try:
            time.sleep(3)
            servers_sh("start", "s3")
        finally:
            restarted.set()

    def stop_on_first_read(request):
        if document_get(request, s3_bucket) and stopped["at"] is None:
            stopped["at"] = time.monotonic()
            servers_sh("stop", "s3")  # the real server goes down under the extract task's first read
            threading.Thread(target=restart_later, daemon=True).start()
        return FORWARD

    proxy = proxies("s3", stop_on_first_read)
    connections(s3_url=proxy.url)
    with restarts_server("s3", servers):
        run = pipeline.run(DAY, retries=3, retry_delay_s=3)
        restarted.wait(timeout=120)
    assert stopped["at"] is not None
    assert run_state(run) == "success", task_states(run)
    print("extract task:", task_states(run)["extract"])
    chunks = assert_exact(es_client, es_index, s3_client, s3_bucket)
    assert set(chunk_counts(chunks)) == {f"incoming/{name}" for name in DOCS}


def test_transient_5xx_and_objects_deleted_or_changed_between_list_and_get(
    pipeline, connections, proxies, s3_client, s3_bucket, staging_bucket, es_client, es_index
):
    put(s3_client, s3_bucket, {**DOCS, "doomed.txt": "Deleted after listing. Never read.", "changing.txt": "Old."})
    reads: Counter = Counter()
    staging_puts: Counter = Counter()

    def faults(request):
        key = document_get(request, s3_bucket)
        if key == "incoming/doomed.txt":
            s3_client.delete_object(Bucket=s3_bucket, Key=key)  # the writer deletes it after our listing
        elif key == "incoming/changing.txt" and not reads[key]:
            reads[key] += 1
            s3_client.put_object(Bucket=s3_bucket, Key=key, Body=b"New text. Written after the listing.")
        elif key:
            reads[key] += 1
            if reads[key] == 1:  # every document's first read fails with a 503
                return Respond(503, S3_ERROR.replace(b"{code}", b"SlowDown"), content_type="application/xml")
        if request.method == "PUT" and request.path.startswith(f"/{staging_bucket}/"):
            staging_puts[request.path] += 1
            if staging_puts[request.path] == 1:
                return Respond(500, S3_ERROR.replace(b"{code}", b"InternalError"), content_type="application/xml")
        return FORWARD

    proxy = proxies("s3", faults)
    connections(s3_url=proxy.url)
    run = pipeline.run(DAY)
    assert run_state(run) == "success", task_states(run)
    assert task_states(run)["extract"] == ("success", 1), "transient 5xx are retried inside the task"
    injected = Counter(entry[2] for entry in proxy.requests())
    assert injected["respond 503"] == len(DOCS) and injected["respond 500"] >= 2, injected

    quarantine = {entry["key"]: entry["reason"] for entry in pipeline.manifest(s3_client, run)["quarantine"]}
    assert quarantine == {"incoming/doomed.txt": "deleted_before_read", "incoming/changing.txt": "changed_before_read"}
    # The changed object is left for the next run (its new version was never read); the deleted one is gone.
    assert_exact(es_client, es_index, s3_client, s3_bucket, expect_missing={"incoming/changing.txt"})

    proxy.rule = None
    rerun = pipeline.run(DAY)
    assert run_state(rerun) == "success", task_states(rerun)
    chunks = assert_exact(es_client, es_index, s3_client, s3_bucket)
    assert chunk_counts(chunks)["incoming/changing.txt"] == 2
    assert "incoming/doomed.txt" not in chunk_counts(chunks)
