"""Worker faults: the index task's process is SIGKILLed in the middle of its bulk writes (after the real node applied
a bulk whose answer never reached the process), then the task runs again as Airflow's retry would. The index must
end exact: every chunk once, nothing of the old versions, nothing of deleted objects.

The stages run for real: extract/annotate/embed in-process on the real servers with the tiny encoder, the index
task as `LateChunkIndexOperator.execute` in a separate Python process (what a worker runs), its Elasticsearch
traffic through a loopback proxy that holds the answer of the second bulk request until the process is dead."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid

import pytest
from conftest import assert_exact, chunk_counts, put
from latechunk.index.elasticsearch import ElasticsearchBackend
from latechunk.pipeline.annotate import annotate
from latechunk.pipeline.embed import embed
from latechunk.pipeline.extract import ExtractSettings, extract
from latechunk.pipeline.index import index as index_stage
from latechunk.staging.tables import StagingArea

pytestmark = pytest.mark.integration

CHUNKING = {"strategy": "sentences", "sentences_per_chunk": 1}
V1 = {f"doc-{i}.txt": " ".join(f"Sentence {j} of document {i} about reefs." for j in range(6)) for i in range(6)}
V2 = {
    **{f"doc-{i}.txt": " ".join(f"New sentence {j} of document {i}." for j in range(2 + i % 3)) for i in range(5)},
}  # doc-5.txt is deleted; every other document changes and shrinks (stale chunk ids 2..5 must go)

TASK = """
import json, sys
from latechunk_operators import LateChunkIndexOperator
args = json.loads(sys.argv[1])
op = LateChunkIndexOperator(task_id="index", manifest_path=args["manifest"], index_name=args["index"],
                            staging_bucket=args["staging_bucket"])
print(json.dumps(op.execute({})))
"""


def stage(s3_client, es_client, bucket, staging_bucket, index, model) -> str:
    """Run extract, annotate and embed for real; returns the run manifest's URI."""
    area = StagingArea(staging_bucket, "runs", "latechunk_ingest", f"manual__{uuid.uuid4().hex[:8]}")
    settings = ExtractSettings(
        bucket=bucket, prefix="incoming/", index=index, model=model, chunking=CHUNKING, docs_per_batch=2
    )
    summary = extract(s3=s3_client, es=es_client, area=area, settings=settings)
    for batch in summary["batches"]:
        annotate(s3=s3_client, area=area, batch_path=batch, model=model, chunking=CHUNKING)
        embed(s3=s3_client, area=area, batch_path=batch, model=model, window=64, window_overlap=16)
    return summary["manifest"]


def index_task(manifest: str, index: str, staging_bucket: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)}
    args = json.dumps({"manifest": manifest, "index": index, "staging_bucket": staging_bucket})
    return subprocess.Popen([sys.executable, "-c", TASK, args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_index_task_killed_mid_bulk_and_retried_leaves_an_exact_index(
    connections, proxies, s3_client, s3_bucket, staging_bucket, es_client, es_index, tiny_jina_model
):
    put(s3_client, s3_bucket, V1)
    manifest = stage(s3_client, es_client, s3_bucket, staging_bucket, es_index, tiny_jina_model)
    index_stage(s3=s3_client, es=es_client, manifest_path=manifest, index_name=es_index)
    assert sum(chunk_counts(assert_exact(es_client, es_index, s3_client, s3_bucket)).values()) == 36

    put(s3_client, s3_bucket, V2)
    s3_client.delete_object(Bucket=s3_bucket, Key="incoming/doc-5.txt")
    manifest = stage(s3_client, es_client, s3_bucket, staging_bucket, es_index, tiny_jina_model)

    applied, release = threading.Event(), threading.Event()
    bulks = {"n": 0}

    def hold_second_bulk_answer(request):
        if request.is_bulk:
            bulks["n"] += 1
            if bulks["n"] == 2:  # the node has applied this bulk; its answer never reaches the task
                applied.set()
                release.wait(timeout=120)

    proxy = proxies("es")
    proxy.on_forwarded = hold_second_bulk_answer
    connections(es_url=proxy.url)
    task = index_task(manifest, es_index, staging_bucket)
    try:
        assert applied.wait(timeout=120), "the task never sent its second bulk: " + task.stderr.read().decode()[-2000:]
        task.send_signal(signal.SIGKILL)
        assert task.wait(timeout=30) == -signal.SIGKILL
    finally:
        release.set()
        if task.poll() is None:
            task.kill()

    # Killed half-way: some documents are new, some old, some mixed, the deleted object is still there. Nothing
    # claims to be current when it is not: the next extract would reprocess every object not exactly indexed.
    es_client.indices.refresh(index=es_index)
    current = {item["Key"]: item["ETag"].strip('"') for item in s3_client.list_objects_v2(Bucket=s3_bucket)["Contents"]}
    indexed = ElasticsearchBackend(es_client).indexed_etags(es_index, bucket=s3_bucket)
    assert "incoming/doc-5.txt" in indexed, "the kill came before the deleted object's chunks were removed"
    assert any(indexed.get(key) != etag for key, etag in current.items()), "the kill came before the end"
    chunks = {}
    for chunk in es_client.search(index=es_index, size=1000, source_excludes=["vector"])["hits"]["hits"]:
        chunks.setdefault(chunk["_source"]["key"], []).append(chunk["_source"])
    for key, etag in indexed.items():
        if etag is not None and etag == current.get(key):
            assert len(chunks[key]) == chunks[key][0]["n_chunks"] and {c["etag"] for c in chunks[key]} == {etag}

    # The retry: the same task again, now with the node answering. Exact, no duplicate, no stale chunk.
    proxy.on_forwarded = None
    retry = index_task(manifest, es_index, staging_bucket)
    out, err = retry.communicate(timeout=180)
    assert retry.returncode == 0, err.decode()[-3000:]
    summary = json.loads(out.decode().strip().splitlines()[-1])
    assert summary["failed_documents"] == 0 and summary["removed_object_chunks_deleted"] == 6
    final = assert_exact(es_client, es_index, s3_client, s3_bucket)
    assert chunk_counts(final) == {f"incoming/{name}": text.count(".") for name, text in V2.items()}
