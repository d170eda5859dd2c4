"""Reliability suites: whole DAG runs (dag.test) against the real Elasticsearch and MinIO, with faults injected on
the real servers (scripts/servers.sh stop/start) or on the real network path (`fault_proxy.FaultProxy`)."""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from elasticsearch import Elasticsearch
from fault_proxy import FaultProxy
from support import (  # noqa: F401 (the suites import them from here)
    TINY_ENCODER_VALIDATION,
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


def set_connections(monkeypatch, servers, *, es_url=None, s3_url=None, s3_login=None, s3_password=None, **extra):
    """The pipeline's Airflow connections as environment variables, optionally through proxies or other creds."""
    es = urlsplit(es_url or servers["es_url"])
    s3_extra = {"endpoint_url": s3_url or servers["s3_endpoint_url"], "region_name": "us-east-1"}
    s3_extra.update(extra.pop("s3_extra", {}))
    monkeypatch.setenv(
        "AIRFLOW_CONN_LATECHUNK_S3",
        json.dumps(
            {
                "conn_type": "aws",
                "login": s3_login or servers["aws_access_key_id"],
                "password": s3_password or servers["aws_secret_access_key"],
                "extra": s3_extra,
            }
        ),
    )
    es_conn: dict[str, Any] = {"conn_type": "elasticsearch", "host": es.hostname, "port": es.port, "schema": "http"}
    es_conn.update(extra.pop("es", {}))
    monkeypatch.setenv("AIRFLOW_CONN_LATECHUNK_ES", json.dumps(es_conn))


@pytest.fixture
def connections(servers, monkeypatch):
    """Direct connections to the real servers; call the returned function to route them through proxies."""
    set_connections(monkeypatch, servers)
    return lambda **kwargs: set_connections(monkeypatch, servers, **kwargs)


@dataclass
class Pipeline:
    """The ingest DAG with a test's settings. `run` executes one whole DAG run through dag.test(); task retries
    are off unless asked for (the DAG's own are minutes apart)."""

    conf: dict[str, Any]
    dag_id: str = "latechunk_ingest"
    runs: list[Any] = field(default_factory=list)

    def run(self, logical_date, *, retries: int = 0, retry_delay_s: float = 1, **overrides: Any):
        from airflow.dag_processing.dagbag import DagBag

        dag = DagBag(dag_folder=str(REPO / "dags")).get_dag(self.dag_id)
        for task in dag.tasks:
            task.retries = retries
            task.retry_delay = timedelta(seconds=retry_delay_s)
            task.retry_exponential_backoff = 0
        run = dag.test(logical_date=logical_date, run_conf={**self.conf, **overrides})
        self.runs.append(run)
        return run

    def manifest(self, s3_client, run) -> dict[str, Any]:
        from latechunk.staging.tables import StagingArea

        area = StagingArea(self.conf["staging_bucket"], "runs", self.dag_id, run.run_id)
        return json.loads(s3_client.get_object(Bucket=area.bucket, Key=area.key("manifest.json"))["Body"].read())

    def report(self, s3_client, run) -> dict[str, Any]:
        from latechunk.staging.tables import StagingArea

        area = StagingArea(self.conf["staging_bucket"], "runs", self.dag_id, run.run_id)
        key = area.key("validation-report.json")
        return json.loads(s3_client.get_object(Bucket=area.bucket, Key=key)["Body"].read())


@pytest.fixture
def pipeline(airflow_home, connections, s3_bucket, staging_bucket, es_index, tiny_jina_model) -> Pipeline:
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
        }
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
