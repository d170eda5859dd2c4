"""Running the pipeline DAGs for real: dag.test() against the metadata DB, the local servers and a tiny encoder."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from support import empty_bucket

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tiny_jina_model(tmp_path_factory) -> str:
    from tiny_models import save_tiny_jina

    directory = tmp_path_factory.mktemp("tiny_jina_e2e")
    save_tiny_jina(directory)
    return str(directory)


@pytest.fixture
def connections(servers, monkeypatch) -> None:
    """The pipeline's two Airflow connections, through environment variables as users would set them."""
    host, port = servers["es_url"].removeprefix("http://").split(":")
    monkeypatch.setenv(
        "AIRFLOW_CONN_LATECHUNK_S3",
        json.dumps(
            {
                "conn_type": "aws",
                "login": servers["aws_access_key_id"],
                "password": servers["aws_secret_access_key"],
                "extra": {"endpoint_url": servers["s3_endpoint_url"], "region_name": "us-east-1"},
            }
        ),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_LATECHUNK_ES",
        json.dumps({"conn_type": "elasticsearch", "host": host, "port": int(port), "schema": "http"}),
    )


@pytest.fixture
def staging_bucket(s3_client) -> str:
    name = f"staging-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    yield name
    empty_bucket(s3_client, name)
    s3_client.delete_bucket(Bucket=name)


@dataclass
class Pipeline:
    """One DAG with the run settings of a test; `run` executes a whole DAG run through dag.test()."""

    dag_id: str
    conf: dict[str, Any]

    def run(self, logical_date: datetime, **overrides: Any):
        from airflow.dag_processing.dagbag import DagBag

        dag = DagBag(dag_folder=str(REPO / "dags")).get_dag(self.dag_id)
        return dag.test(logical_date=logical_date, run_conf={**self.conf, **overrides})


@pytest.fixture
def ingest(airflow_home, connections, s3_bucket, staging_bucket, es_index, tiny_jina_model) -> Pipeline:
    return Pipeline(
        "latechunk_ingest",
        {
            "bucket": s3_bucket,
            "prefix": "incoming/",
            "index": es_index,
            "model": tiny_jina_model,
            "staging_bucket": staging_bucket,
            "chunking_strategy": "sentences",
            "sentences_per_chunk": 1,
            "window": 64,
            "window_overlap": 16,
            "docs_per_batch": 3,
            "validation_sample_size": 20,
        },
    )
