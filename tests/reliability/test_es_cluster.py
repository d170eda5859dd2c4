"""A 3-node Elasticsearch cluster (`scripts/servers.sh start es-cluster`, beside the single node) loses a node to
`kill -9` while the index task writes, then while validate reads; the task run again, as Airflow's retry runs it,
leaves the index exact: every chunk once, nothing else, the vectors written.

The cluster starts once for the module (about a minute on a small machine) and stops after it."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest
from elasticsearch import Elasticsearch
from embedded_chunks import MODEL_ID, corpus
from latechunk.index.elasticsearch import ElasticsearchBackend
from latechunk.index.settings import IndexSettings
from latechunk.index.spec import IndexSpec
from latechunk.validation.run import validate_index

pytestmark = pytest.mark.slow  # about 2.5 minutes, most of it the cluster's start

REPO = Path(__file__).resolve().parents[2]
SERVERS = str(REPO / "scripts" / "servers.sh")
HTTP_BASE = int(os.environ.get("LATECHUNK_ES_CLUSTER_HTTP_BASE", "9200"))
NODES = [f"http://127.0.0.1:{HTTP_BASE + node}" for node in (1, 2, 3)]


@pytest.fixture(scope="module")
def cluster():
    subprocess.run([SERVERS, "start", "es-cluster"], check=True, timeout=400)
    client = Elasticsearch(NODES, request_timeout=60, max_retries=5, retry_on_timeout=True)
    client.cluster.health(wait_for_nodes=3, wait_for_status="green", timeout="60s")
    yield client
    client.close()
    subprocess.run([SERVERS, "stop", "es-cluster"], check=False, timeout=300)


def kill_node(node: int) -> None:
    """`kill -9` of one node, by the pid file the script keeps."""
    pidfile = REPO / "var" / "es-cluster" / f"node-{node}" / "logs" / "es.pid"
    os.kill(int(pidfile.read_text()), signal.SIGKILL)


def node_of_a_primary(client: Elasticsearch, index: str, spare: str) -> int:
    """A node (not ``spare``, which the test keeps) that holds a primary shard of the index."""
    shards = client.cat.shards(index=index, format="json")
    names = {row["node"] for row in shards if row["prirep"] == "p" and row["node"] != spare}
    return int(sorted(names)[0].removeprefix("node-"))


def as_a_task_with_one_retry(task):
    """Run ``task`` as Airflow would with retries=1: again, the same way, when it raises or reports a failure."""
    try:
        result = task()
        if getattr(result, "ok", True) and getattr(result, "passed", True):
            return result, 0
    except Exception:  # noqa: BLE001 (any failure of the try fails the task, and Airflow retries it)
        pass
    return task(), 1


def assert_exact(client: Elasticsearch, index: str, chunks) -> None:
    client.indices.refresh(index=index)
    assert client.count(index=index)["count"] == len(chunks), "every chunk once, nothing else"
    stored = ElasticsearchBackend(client).get_chunks(index, [chunk.es_id for chunk in chunks])
    assert set(stored) == {chunk.es_id for chunk in chunks}
    for chunk in chunks:
        np.testing.assert_array_equal(np.asarray(stored[chunk.es_id]["vector"], np.float32), chunk.vector)
        assert stored[chunk.es_id]["text"] == chunk.text


def test_a_node_killed_during_index_and_validate_leaves_the_index_exact_after_a_retry(cluster):
    backend = ElasticsearchBackend(cluster)
    # The default replicas, "0-1", give each shard a copy on another node as soon as there are two.
    name = f"test-cluster-{uuid.uuid4().hex[:8]}"
    spec = IndexSpec(name=name, dims=768, model_id=MODEL_ID, shards=2, replicas=IndexSettings().replicas)
    chunks = corpus(documents=300)
    try:
        backend.ensure_index(spec)
        health = cluster.cluster.health(index=spec.name, wait_for_status="green", timeout="60s")
        assert health["active_shards"] == 4, "two primaries, each with a replica"
        victim = node_of_a_primary(cluster, spec.name, spare="node-1")
        killed = []

        def kill_midway(report) -> None:
            if report.chunks_indexed == len(chunks) // 3 and not killed:
                kill_node(victim)
                killed.append(victim)

        report, _ = as_a_task_with_one_retry(
            lambda: backend.upsert_documents(spec.name, chunks, progress=kill_midway)
        )
        assert killed == [victim], "the node died in the middle of the bulk"
        assert report.ok, report.to_dict()
        assert_exact(cluster, spec.name, chunks)

        # The killed node comes back; another one dies while validate reads.
        subprocess.run([SERVERS, "start", "es-cluster"], check=True, timeout=400)
        cluster.cluster.health(index=spec.name, wait_for_nodes=3, wait_for_status="green", timeout="120s")
        reader = node_of_a_primary(cluster, spec.name, spare="node-1")

        class DyingBackend(ElasticsearchBackend):
            def count_by_doc(self, index, doc_ids=None):
                if not killed[1:]:
                    kill_node(reader)
                    killed.append(reader)
                return super().count_by_doc(index, doc_ids)

        validated, _ = as_a_task_with_one_retry(
            lambda: validate_index(DyingBackend(cluster), spec.name, chunks, spec=spec, query_encoder=None)
        )
        assert killed == [victim, reader]
        assert validated.passed, validated.summary()
        assert validated.check("chunk_counts").details["mismatches"] == []
        assert_exact(cluster, spec.name, chunks)
    finally:
        cluster.options(ignore_status=404).indices.delete(index=spec.name)
