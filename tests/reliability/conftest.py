"""Reliability suites: whole DAG runs (dag.test) against the real Elasticsearch and MinIO, with faults injected on
the real servers (scripts/servers.sh stop/start) or on the real network path (`fault_proxy.FaultProxy`)."""

from __future__ import annotations

import contextlib
import logging
import subprocess
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from elasticsearch import Elasticsearch
from fault_proxy import FaultProxy
from support import (  # noqa: F401 (the suites import them from here)
    TINY_ENCODER_VALIDATION,
    Pipeline,
    assert_exact,
    indexed_chunks,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def proxies(servers):
    """Factory of fault proxies in front of the real servers: `proxies("es", rule)` or `proxies("s3", rule)`."""
    made: list[FaultProxy] = []

    def make(which: str, rule=None) -> FaultProxy:
        url = urlsplit(servers["es_url" if which == "es" else "s3_endpoint_url"])
        proxy = FaultProxy(url.hostname, url.port, rule)
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        proxy.close()


@pytest.fixture
def pipeline(airflow_home, connections, s3_bucket, staging_bucket, es_index, tiny_jina_model) -> Pipeline:
    """The ingest DAG with task retries off unless a run asks for them."""
    return Pipeline(
        {
            "bucket": s3_bucket,
            "prefix": "incoming/",
            "partition_by_date": False,
            "index": es_index,
            "model": tiny_jina_model,
            "staging_bucket": staging_bucket,
            "chunking_strategy": "sentences",
            "sentences_per_chunk": 1,
            "window": 64,
            "window_overlap": 16,
            "docs_per_batch": 4,
            "validation_sample_size": 20,
            **TINY_ENCODER_VALIDATION,
        },
        retries=0,
    )


def task_states(run) -> dict[str, tuple[str, int]]:
    """(state, try number) of each task instance of a run, keyed by task id (and map index when mapped)."""
    from airflow import settings
    from airflow.models.taskinstance import TaskInstance

    with settings.Session() as session:
        tis = session.query(TaskInstance).filter_by(dag_id=run.dag_id, run_id=run.run_id).all()
        return {
            (ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"): (str(ti.state), ti.try_number)
            for ti in tis
        }


def run_state(run) -> str:
    return str(run.state).lower().rsplit(".", 1)[-1]


def put(s3_client, bucket: str, documents: dict[str, bytes | str], prefix: str = "incoming/") -> None:
    for name, body in documents.items():
        data = body.encode("utf-8") if isinstance(body, str) else body
        s3_client.put_object(Bucket=bucket, Key=f"{prefix}{name}", Body=data)


def chunk_counts(chunks: list[dict]) -> Counter:
    return Counter(chunk["key"] for chunk in chunks)


def servers_sh(*args: str) -> None:
    subprocess.run([str(REPO / "scripts" / "servers.sh"), *args], check=True, capture_output=True, timeout=300)


def wait_healthy(which: str, servers: dict[str, str], timeout: float = 180) -> None:
    import boto3

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if which == "es":
                client = Elasticsearch(servers["es_url"], request_timeout=5, max_retries=0)
                client.cluster.health(wait_for_status="yellow", timeout="5s")
                client.close()
            else:
                boto3.client(
                    "s3",
                    endpoint_url=servers["s3_endpoint_url"],
                    aws_access_key_id=servers["aws_access_key_id"],
                    aws_secret_access_key=servers["aws_secret_access_key"],
                    region_name="us-east-1",
                ).list_buckets()
            return
        except Exception:
            time.sleep(0.5)
    raise AssertionError(f"{which} did not come back within {timeout} s")


@contextlib.contextmanager
def restarts_server(which: str, servers: dict[str, str]):
    """Whatever happens inside, the shared server `which` ("es" or "s3") is running and healthy afterwards."""
    try:
        yield
    finally:
        servers_sh("start", which)
        wait_healthy(which, servers)


@pytest.fixture
def task_log(caplog):
    """Everything the run logs at INFO and above (the task's own log lines included)."""
    caplog.set_level(logging.INFO)
    return caplog
