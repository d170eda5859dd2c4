"""Shared fixtures: a temporary AIRFLOW_HOME, the real local servers, and per-test indices and buckets.

The servers are the project's own (scripts/servers.sh): a real Elasticsearch and a real MinIO on loopback.
With ES_URL (and/or S3_ENDPOINT_URL) set in the environment, the suite uses those instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
from support import empty_bucket

REPO = Path(__file__).resolve().parents[1]

# Airflow reads its configuration when first imported: point it at a throwaway home before any test imports it.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="latechunk-airflow-home-"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(_AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
)


def _read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            values[name] = value
    return values


@pytest.fixture(scope="session")
def servers() -> dict[str, str]:
    """Endpoints and credentials of the real servers; starts the local ones once per session when needed."""
    need_es = "ES_URL" not in os.environ
    need_s3 = "S3_ENDPOINT_URL" not in os.environ
    if need_es or need_s3:
        which = "all" if need_es and need_s3 else ("es" if need_es else "s3")
        subprocess.run([str(REPO / "scripts" / "servers.sh"), "start", which], check=True)
        local = _read_env_file(REPO / "var" / "servers.env")
        for name, value in local.items():
            if name == "ES_URL" and not need_es:
                continue
            if name != "ES_URL" and not need_s3:
                continue
            os.environ[name] = value
    return {
        "es_url": os.environ["ES_URL"],
        "s3_endpoint_url": os.environ["S3_ENDPOINT_URL"],
        "aws_access_key_id": os.environ["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": os.environ["AWS_SECRET_ACCESS_KEY"],
    }


@pytest.fixture(scope="session")
def es_client(servers):
    from elasticsearch import Elasticsearch

    client = Elasticsearch(servers["es_url"], request_timeout=60)
    client.cluster.health(wait_for_status="yellow", timeout="30s")
    yield client
    client.close()


@pytest.fixture
def es_index(es_client) -> str:
    """A fresh index name for one test; the index and any alias pointing at it are removed afterwards."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    # Tests may derive more indices from the name (e.g. name-v2 behind an alias); remove them all by exact name.
    created = es_client.indices.get(index=f"{name}*", expand_wildcards="all")
    for index in created:
        es_client.options(ignore_status=404).indices.delete(index=index)


@pytest.fixture(scope="session")
def s3_client(servers):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=servers["s3_endpoint_url"],
        aws_access_key_id=servers["aws_access_key_id"],
        aws_secret_access_key=servers["aws_secret_access_key"],
        region_name="us-east-1",
    )


@pytest.fixture
def s3_bucket(s3_client) -> str:
    """A fresh bucket for one test, emptied and removed afterwards."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    yield name
    empty_bucket(s3_client, name)
    s3_client.delete_bucket(Bucket=name)


@pytest.fixture(scope="session")
def airflow_home() -> Path:
    """The temporary AIRFLOW_HOME with a migrated SQLite metadata database."""
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, env=os.environ.copy())
    return _AIRFLOW_HOME


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
