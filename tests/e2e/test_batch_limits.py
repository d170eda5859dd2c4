"""Staged batches through whole DAG runs: sized by the token budget, and never more than Airflow maps.

Airflow refuses to map more task instances than ``[core] max_map_length`` (the execution API fails the extract
task that returns the list), so a run whose documents need more batches must grow them instead.

The large run (`test_large_run`) is skipped unless LATECHUNK_LARGE_RUN_DOCS is set: it ingests that many one-line
documents, from JSONL objects of 10,000 lines, and prints the wall time of each stage:

    LATECHUNK_LARGE_RUN_DOCS=200000 .venv/bin/python -m pytest tests/e2e/test_batch_limits.py -k large -s
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta

import pytest
from latechunk.staging import tables as staging
from latechunk.staging.batch_plan import estimate_tokens
from support import REPO, assert_exact

DAY = datetime(2026, 4, 6, tzinfo=UTC)
RUN_OF_DAY = DAY + timedelta(days=1)
PREFIX = f"incoming/{DAY:%Y-%m-%d}/"
WORDS = "the coral reefs research ocean temperatures affect marine biologist diving near berlin city".split()


def sentences(n: int, offset: int = 0) -> str:
    """``n`` distinct sentences of the tiny encoder's vocabulary (its words and digits)."""
    return " ".join(f"Report {offset + i} is about {WORDS[(offset + i) % len(WORDS)]} research." for i in range(n))


def run_dag(conf: dict):
    """One ingest run through dag.test()."""
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(REPO / "dags")).get_dag("latechunk_ingest")
    return dag.test(logical_date=RUN_OF_DAY, run_conf=conf)


def task_instances(run) -> list:
    from airflow import settings
    from airflow.models.taskinstance import TaskInstance

    with settings.Session() as session:
        return session.query(TaskInstance).filter_by(dag_id=run.dag_id, run_id=run.run_id).all()


def manifest(s3_client, conf: dict, run) -> dict:
    area = staging.StagingArea(conf["staging_bucket"], "runs", run.dag_id, run.run_id)
    return staging.read_json(s3_client, area.uri(area.key("manifest.json")))


def assert_succeeded(run) -> None:
    assert str(run.state).lower().endswith("success"), f"DAG run ended {run.state}"


def put_mixed_documents(s3_client, bucket: str) -> int:
    """Documents of 1 to 40 sentences (one of them far over any small budget), some as JSONL lines."""
    count = 0
    for i, n in enumerate([1, 3, 40, 2, 5, 1, 8]):
        s3_client.put_object(Bucket=bucket, Key=f"{PREFIX}doc-{i}.txt", Body=sentences(n, 100 * i).encode())
        count += 1
    lines = [json.dumps({"text": sentences(n, 1000 + 10 * j)}) for j, n in enumerate([2, 1, 4, 1, 3])]
    s3_client.put_object(Bucket=bucket, Key=f"{PREFIX}records.jsonl", Body="\n".join(lines).encode())
    return count + len(lines)


def test_mapped_batches_respect_the_token_budget(ingest, s3_client, s3_bucket, es_client, es_index):
    documents = put_mixed_documents(s3_client, s3_bucket)
    budget = 40  # about 160 characters: two or three of the sentences above
    conf = {**ingest.conf, "docs_per_batch": 100, "batch_token_budget": budget}
    run = run_dag(conf)
    assert_succeeded(run)

    batches = manifest(s3_client, conf, run)["batches"]
    staged = [staging.read_documents(s3_client, uri) for uri in batches]
    assert sum(len(batch) for batch in staged) == documents
    for batch in staged:
        tokens = sum(estimate_tokens(document.text) for document in batch)
        assert tokens <= budget or len(batch) == 1, f"{len(batch)} documents, {tokens} estimated tokens"
    assert any(len(batch) == 1 and estimate_tokens(batch[0].text) > budget for batch in staged), (
        "the 40-sentence document is over the budget, alone in its batch"
    )
    assert len(batches) >= 6, "a small budget gives many batches"
    embeds = [ti for ti in task_instances(run) if ti.task_id == "embed"]
    assert sorted(ti.map_index for ti in embeds) == list(range(len(batches)))
    assert_exact(es_client, es_index, s3_client, s3_bucket)


def test_a_run_needing_more_batches_than_max_map_length_grows_them(
    ingest, s3_client, s3_bucket, es_client, es_index, monkeypatch
):
    documents = put_mixed_documents(s3_client, s3_bucket)
    monkeypatch.setenv("AIRFLOW__CORE__MAX_MAP_LENGTH", "3")
    conf = {**ingest.conf, "docs_per_batch": 1, "batch_token_budget": 40}  # 12 mapped tasks without the ceiling
    run = run_dag(conf)
    assert_succeeded(run)

    plan = manifest(s3_client, conf, run)
    assert plan["batching"]["max_batches"] == 3
    assert len(plan["batches"]) <= 3
    sizes = [batch["documents"] for batch in plan["batching"]["batches"]]
    assert sum(sizes) == documents and max(sizes) > 1, "batches grew past docs_per_batch=1"
    for name in ("annotate", "embed"):
        mapped = sorted(ti.map_index for ti in task_instances(run) if ti.task_id == name)
        assert mapped == list(range(len(plan["batches"])))
    assert_exact(es_client, es_index, s3_client, s3_bucket)


@pytest.mark.skipif("LATECHUNK_LARGE_RUN_DOCS" not in os.environ, reason="set LATECHUNK_LARGE_RUN_DOCS to run it")
def test_large_run(ingest, s3_client, s3_bucket, es_client, es_index, monkeypatch):
    total = int(os.environ["LATECHUNK_LARGE_RUN_DOCS"])
    per_object = 10_000
    started = time.monotonic()
    for number, first in enumerate(range(0, total, per_object)):
        lines = (json.dumps({"text": sentences(1, i)}) for i in range(first, min(first + per_object, total)))
        s3_client.put_object(Bucket=s3_bucket, Key=f"{PREFIX}part-{number:04d}.jsonl", Body="\n".join(lines).encode())
    upload_s = time.monotonic() - started
    # The DAG's default of 64 documents per batch would need total/64 mapped tasks (3,125 for 200,000 documents);
    # a ceiling of 16 keeps a run on two cores short, and the batches grow to fit under it.
    max_map_length = int(os.environ.get("LATECHUNK_LARGE_RUN_MAX_MAP_LENGTH", "16"))
    monkeypatch.setenv("AIRFLOW__CORE__MAX_MAP_LENGTH", str(max_map_length))
    conf = {
        **ingest.conf,
        "docs_per_batch": 64,
        "max_parts_per_object": per_object,
        "validation_sample_size": 10,
        # 32-dim random vectors of near-identical one-sentence texts: rank-1 self retrieval and HNSW recall say
        # nothing about the pipeline here; the index is checked by counting instead, and the values printed.
        "self_retrieval_threshold": 0.0,
        "recall_threshold": 0.0,
    }
    started = time.monotonic()
    run = run_dag(conf)
    run_s = time.monotonic() - started
    assert_succeeded(run)

    es_client.indices.refresh(index=es_index)
    first_chunks = es_client.count(index=es_index, query={"term": {"chunk_id": 0}})["count"]
    chunks = es_client.count(index=es_index)["count"]
    plan = manifest(s3_client, conf, run)
    print(f"\n{total:,} documents in {len(plan['batches'])} batches (max_map_length {max_map_length}); "
          f"upload {upload_s:.0f} s, DAG run {run_s:.0f} s; {chunks:,} chunks indexed")  # fmt: skip
    for task_id in ("extract", "annotate", "embed", "index", "validate"):
        tis = [ti for ti in task_instances(run) if ti.task_id == task_id]
        wall = (max(ti.end_date for ti in tis) - min(ti.start_date for ti in tis)).total_seconds()
        print(f"  {task_id:<9} {len(tis):>3} task(s), {wall:7.1f} s wall, {sum(ti.duration for ti in tis):7.1f} s")
    assert first_chunks == total, "every document is indexed"
    assert len(plan["batches"]) <= max_map_length
