"""Helpers of the stack suite: the CLI against the stack, a test's corpus, and waiting for runs."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
from airflow_client import AirflowClient, stack_env
from elasticsearch import helpers
from support import REPO, empty_bucket

# Addresses the stack gives its workers (scripts/airflow.sh): task instances record them as their hostname.
DEFAULT_WORKER = "127.0.0.1"
GPU_WORKERS = ("127.0.0.2", "127.0.2.2")  # the stack suite runs two gpu workers (see conftest.stack)

TOPICS = {
    "reef.txt": "Sarah Johnson is a marine biologist. She dives near coral reefs to record how they bleach.",
    "bread.txt": "Sourdough bread rises slowly. Its starter is a culture of wild yeast and lactic bacteria.",
    "engine.txt": "A diesel engine ignites fuel by compression. It has no spark plugs at all.",
    "comet.txt": "Comets are balls of ice and dust. Their tails always point away from the sun.",
    "chess.txt": "The Sicilian Defence is a chess opening. Black answers the king's pawn with the c-pawn.",
    "tea.txt": "Green tea leaves are steamed or pan-fired. This stops oxidation and keeps them green.",
}


def airflow_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """The `airflow` CLI against the stack's metadata database, as an operator runs it."""
    env = {**os.environ, **stack_env()}
    env["PATH"] = f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}"
    return subprocess.run(["airflow", *args], env=env, capture_output=True, text=True, timeout=timeout, check=True)


@dataclass
class Corpus:
    """A document bucket, an index and a staging bucket of one test; `conf` is what a run of it is given."""

    s3: Any
    es: Any
    bucket: str
    index: str
    staging_bucket: str
    model: str
    conf: dict[str, Any] = field(default_factory=dict)

    def put(self, key: str, text: str) -> str:
        return self.s3.put_object(Bucket=self.bucket, Key=key, Body=text.encode())["ETag"].strip('"')

    def delete(self, key: str) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=key)

    def run_conf(self, **overrides: Any) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "prefix": "incoming/",
            "index": self.index,
            "model": self.model,
            "staging_bucket": self.staging_bucket,
            "chunking_strategy": "sentences",
            "sentences_per_chunk": 1,
            "validation_sample_size": 20,
            **overrides,
        }

    def chunks(self, index: str | None = None) -> list[dict[str, Any]]:
        index = index or self.index
        self.es.indices.refresh(index=index)
        return [hit["_source"] for hit in helpers.scan(self.es, index=index, query={"query": {"match_all": {}}})]

    def indexed_etags(self, index: str | None = None) -> dict[str, str]:
        """Key -> ETag of what the index holds, asserting every object's chunks carry one ETag, once each."""
        chunks = self.chunks(index)
        ids = [(chunk["doc_id"], chunk["chunk_id"]) for chunk in chunks]
        assert len(ids) == len(set(ids)), "duplicate chunks in the index"
        etags: dict[str, set[str]] = {}
        for chunk in chunks:
            etags.setdefault(chunk["key"], set()).add(chunk["etag"])
            assert chunk["n_chunks"] == sum(1 for other in chunks if other["doc_id"] == chunk["doc_id"])
        assert all(len(found) == 1 for found in etags.values()), f"chunks of two versions: {etags}"
        return {key: found.pop() for key, found in etags.items()}


@contextmanager
def new_corpus(s3, es, model: str, name: str = "stack") -> Iterator[Corpus]:
    """A corpus with its own buckets and index, all removed afterwards."""
    tag = f"{name}-{uuid.uuid4().hex[:10]}"
    corpus = Corpus(s3, es, tag, tag, f"{tag}-staging", model)
    for bucket in (corpus.bucket, corpus.staging_bucket):
        s3.create_bucket(Bucket=bucket)
    try:
        yield corpus
    finally:
        for bucket in (corpus.bucket, corpus.staging_bucket):
            empty_bucket(s3, bucket)
            s3.delete_bucket(Bucket=bucket)
        for index in es.indices.get(index=f"{tag}*", expand_wildcards="all"):
            es.options(ignore_status=404).indices.delete(index=index)


def run_and_wait(stack: AirflowClient, dag_id: str, conf: dict[str, Any], logical_date: datetime | None = None,
                 expect: str = "success") -> dict[str, Any]:
    run_id = stack.trigger(dag_id, conf, logical_date=logical_date)
    run = stack.wait_for_run(dag_id, run_id, timeout=900)
    if run["state"] != expect:
        failed = [ti for ti in stack.task_instances(dag_id, run_id) if ti["state"] == "failed"]
        logs = {ti["task_id"]: stack.task_log(dag_id, run_id, ti["task_id"], ti["try_number"], ti["map_index"])[-3000:]
                for ti in failed}
        pytest.fail(f"{dag_id} run {run_id} ended {run['state']}, expected {expect}:\n{json.dumps(logs, indent=1)}")
    return run


def assert_ran_on_the_right_workers(stack: AirflowClient, dag_id: str, run_id: str) -> None:
    """Every embed task instance went to the gpu queue and was run by a gpu worker; nothing else was. An
    EmptyOperator (batches_done) is marked done by the scheduler and reaches no worker."""
    instances = [ti for ti in stack.task_instances(dag_id, run_id)
                 if ti["state"] == "success" and ti.get("operator") != "EmptyOperator"]  # fmt: skip
    embeds = [ti for ti in instances if ti["task_id"] == "embed"]
    assert embeds, "no embed task instance ran"
    for ti in instances:
        if ti["task_id"] == "embed":
            assert (ti["queue"], ti["pool"]) == ("gpu", "gpu") and ti["hostname"] in GPU_WORKERS, ti
        else:
            assert (ti["queue"], ti["hostname"]) == ("default", DEFAULT_WORKER), ti
