"""Small helpers shared by the test suites."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from elasticsearch import Elasticsearch, helpers

REPO = Path(__file__).resolve().parents[1]

# The tiny random encoders' vectors carry no meaning (a text cannot find its document by them) and sit close
# together, so DAG runs with them turn the model-grounded validation checks off and the tests check the index
# exactly instead; tests/integration/test_validate_model.py covers those checks with a real model.
TINY_ENCODER_VALIDATION = {"query_retrieval_threshold": 0.0, "document_query_threshold": 0.0, "max_mean_cosine": 1.0}


def empty_bucket(s3_client, bucket: str) -> None:
    """Delete every object of a bucket, page by page."""
    paginator = s3_client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket):
        keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
        if keys:
            s3_client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})


@dataclass
class Pipeline:
    """One DAG with the run settings of a test. `run` executes one whole DAG run through dag.test(); `retries`, when
    set (here or per run), replaces every task's retries (the DAG's own are minutes apart). `manifest` and `report`
    read what a run staged."""

    conf: dict[str, Any]
    dag_id: str = "latechunk_ingest"
    retries: int | None = None
    runs: list[Any] = field(default_factory=list)

    def run(self, logical_date: datetime, *, retries: int | None = None, retry_delay_s: float = 1, **overrides: Any):
        from airflow.dag_processing.dagbag import DagBag

        dag = DagBag(dag_folder=str(REPO / "dags")).get_dag(self.dag_id)
        retries = self.retries if retries is None else retries
        if retries is not None:
            for task in dag.tasks:
                task.retries = retries
                task.retry_delay = timedelta(seconds=retry_delay_s)
                task.retry_exponential_backoff = 0
        run = dag.test(logical_date=logical_date, run_conf={**self.conf, **overrides})
        self.runs.append(run)
        return run

    def manifest(self, s3_client, run) -> dict[str, Any]:
        return self._staged_json(s3_client, run, "manifest.json")

    def report(self, s3_client, run) -> dict[str, Any]:
        return self._staged_json(s3_client, run, "validation-report.json")

    def _staged_json(self, s3_client, run, name: str) -> dict[str, Any]:
        from latechunk.staging.tables import StagingArea

        area = StagingArea(self.conf["staging_bucket"], "runs", self.dag_id, run.run_id)
        return json.loads(s3_client.get_object(Bucket=area.bucket, Key=area.key(name))["Body"].read())


@contextmanager
def recorded_s3_calls(s3_client) -> Iterator[list[str]]:
    """The names of the HEAD and LIST requests the client sends inside the block (its handlers go with it: the
    tests' client lives for the session)."""
    calls: list[str] = []

    def record(model, **_) -> None:
        calls.append(model.name)

    events = [f"before-call.s3.{operation}" for operation in ("HeadObject", "ListObjectsV2")]
    for event in events:
        s3_client.meta.events.register(event, record)
    try:
        yield calls
    finally:
        for event in events:
            s3_client.meta.events.unregister(event, record)


def run_objects(s3_client, manifest: dict[str, Any]) -> dict[str, str]:
    """key -> ETag of every object a run's extract read to write (its staged and its unstaged ones), from the
    manifest's JSON object, through the parts the index task writes (`latechunk.pipeline.run_parts`)."""
    from latechunk.pipeline.manifest import RunManifest
    from latechunk.pipeline.run_parts import run_parts

    return {key: etag for part in run_parts(s3_client, RunManifest.from_dict(manifest))
            for key, etag in part.changed.items()}  # fmt: skip


def indexed_chunks(es_client: Elasticsearch, index: str) -> list[dict[str, Any]]:
    es_client.indices.refresh(index=index)
    return [
        {**hit["_source"], "_id": hit["_id"]}
        for hit in helpers.scan(es_client, index=index, query={"query": {"match_all": {}}}, _source_excludes=["vector"])
    ]


def assert_exact(es_client, index: str, s3_client, bucket: str, *, expect_missing: set[str] = frozenset()) -> list:
    """The index holds exactly the current version of every usable document of the bucket: each chunk once,
    ids 0..n-1, the object's current ETag, the exact text slice; nothing of a deleted object or an old version.

    `expect_missing`: keys that are in the bucket but legitimately not indexed (quarantined, deferred)."""
    from latechunk.sources.documents import SourceObject, load_documents

    chunks = indexed_chunks(es_client, index)
    assert len({chunk["_id"] for chunk in chunks}) == len(chunks)
    current: dict[str, tuple[str, str]] = {}  # doc_id -> (etag, text)
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            if item["Key"] in expect_missing:
                continue
            obj = SourceObject(bucket, item["Key"], item["ETag"].strip('"'), item["Size"], item["LastModified"])
            body = s3_client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            documents, _ = load_documents(obj, body)
            current.update({doc.doc_id: (doc.etag, doc.text) for doc in documents})
    by_doc: dict[str, list[dict]] = {}
    for chunk in chunks:
        by_doc.setdefault(chunk["doc_id"], []).append(chunk)
    assert set(by_doc) == set(current), (
        f"indexed documents differ from the bucket: extra {set(by_doc) - set(current)}, "
        f"missing {set(current) - set(by_doc)}"
    )
    for doc_id, doc_chunks in by_doc.items():
        etag, text = current[doc_id]
        ids = sorted(chunk["chunk_id"] for chunk in doc_chunks)
        assert ids == list(range(len(ids))), f"{doc_id}: chunk ids {ids}"
        assert {chunk["n_chunks"] for chunk in doc_chunks} == {len(ids)}, f"{doc_id}: stale or missing chunks"
        assert {chunk["etag"] for chunk in doc_chunks} == {etag}, f"{doc_id}: a chunk of another version"
        for chunk in doc_chunks:
            assert text[chunk["char_start"] : chunk["char_end"]] == chunk["text"]
    return chunks
