"""Overlapping runs on the running stack: a manual ingest run, a backfill day and a reindex of the same index run at
once while the bucket changes under them, and the index ends exact (latechunk.pipeline.overlap, catch_up; the
one-slot pool latechunk_index_writes). Only the REST API and the CLI."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from datetime import datetime, timedelta

import pytest
from stack_support import TOPICS, airflow_cli, run_and_wait

pytestmark = pytest.mark.slow

INGEST, REINDEX = "latechunk_ingest", "latechunk_reindex"


def folder(day: datetime) -> str:
    return f"incoming/{day:%Y-%m-%d}/"


def bucket_etags(corpus) -> dict[str, str]:
    pages = corpus.s3.get_paginator("list_objects_v2").paginate(Bucket=corpus.bucket, Prefix="incoming/")
    return {item["Key"]: item["ETag"].strip('"') for page in pages for item in page.get("Contents", [])}


def task(stack, dag_id: str, run_id: str, task_id: str) -> dict:
    (found,) = [ti for ti in stack.task_instances(dag_id, run_id) if ti["task_id"] == task_id]
    return found


def wait_for_extracts(stack, runs: list[tuple[str, str]], timeout: float = 600) -> None:
    """Until the extract task of every run succeeded: they have all staged what they listed."""
    deadline = time.monotonic() + timeout
    while True:
        states = [task(stack, dag_id, run_id, "extract")["state"] for dag_id, run_id in runs]
        assert "failed" not in states and "upstream_failed" not in states, states
        if all(state == "success" for state in states):
            return
        assert time.monotonic() < deadline, f"extracts still {states}"
        time.sleep(1)


@contextmanager
def embeds_held(stack):
    """The gpu pool at no slot while inside: every run stops before its embed (after its extract), so none writes
    before the test changed the bucket, however fast the others get there; the slots come back on the way out."""
    slots = stack.pool("gpu")["slots"]
    stack.set_pool_slots("gpu", 0)
    try:
        yield
    finally:
        stack.set_pool_slots("gpu", slots)


def backfill_run(stack, day: datetime, conf: dict) -> str:
    """Start a backfill of one day with `airflow backfill create` (not waited for): its run reads ``day``'s folder
    (see test_schedule); its run id."""
    airflow_cli("backfill", "create", "--dag-id", INGEST, "--from-date", day.date().isoformat(),
                "--to-date", day.date().isoformat(), "--dag-run-conf", json.dumps(conf))  # fmt: skip
    deadline = time.monotonic() + 120
    while not (runs := stack.dag_runs(INGEST, logical_date_gte=day.isoformat(), logical_date_lte=day.isoformat())):
        assert time.monotonic() < deadline, "the backfill created no run"
        time.sleep(2)
    return runs[0]["dag_run_id"]


def test_overlapping_runs_never_lose_duplicate_or_resurrect_an_object(stack, corpus, free_days):
    day, other_day, empty_day, after_empty = (next(free_days) for _ in range(4))
    assert after_empty == empty_day + timedelta(days=1), "the last run's logical date, kept for it"
    names = list(TOPICS)
    texts = dict(TOPICS)
    for name in names[:3]:
        corpus.put(f"{folder(day)}{name}", texts[name])
    for name in names[3:]:
        corpus.put(f"{folder(other_day)}{name}", texts[name])
    run_and_wait(stack, INGEST, corpus.run_conf(partition_by_date=False), logical_date=next(free_days))
    assert corpus.indexed_etags() == bucket_etags(corpus)
    served = sorted(corpus.es.indices.get_alias(name=corpus.index))

    # Before the runs list the bucket: changes they all stage (the backfill only those of its day, and deletions).
    a, b, c = (f"{folder(day)}{name}" for name in names[:3])
    d, e = (f"{folder(other_day)}{name}" for name in names[3:5])
    new_in_day, new_elsewhere = f"{folder(day)}new.txt", f"{folder(other_day)}new.txt"
    corpus.put(a, texts[names[0]] + " It was revised once.")
    corpus.put(d, texts[names[3]] + " It was revised once.")
    corpus.delete(b)
    corpus.delete(e)
    corpus.put(new_in_day, "A new file arrived in the backfilled day. It has two sentences.")
    corpus.put(new_elsewhere, "A new file arrived in another folder. It has two sentences.")

    with embeds_held(stack):
        manual = stack.trigger(INGEST, corpus.run_conf(partition_by_date=False), logical_date=next(free_days))
        backfill = backfill_run(stack, day, corpus.run_conf(lookback_days=0))
        reindex = stack.trigger(REINDEX, corpus.run_conf())
        runs = [(INGEST, manual), (INGEST, backfill), (REINDEX, reindex)]
        wait_for_extracts(stack, runs)

        # After every run staged its versions, before they write: each change races with what the runs staged.
        corpus.put(a, texts[names[0]] + " It was revised twice, after the runs had read it.")  # staged by all three
        corpus.delete(d)  # staged as changed by the manual run and the reindex
        corpus.put(b, texts[names[1]] + " It came back after the runs had found it deleted.")  # deleted by both
        corpus.put(new_in_day, "The new file was rewritten. Now it has three sentences. Here is the third.")
        corpus.put(c, texts[names[2]] + " Unchanged for the ingest runs, rewritten before the reindex wrote it.")
        changed_at = time.time()

    for dag_id, run_id in runs:
        run = stack.wait_for_run(dag_id, run_id, timeout=1800)
        assert run["state"] == "success", (dag_id, run_id, run["state"])
        started = datetime.fromisoformat(task(stack, dag_id, run_id, "index")["start_date"]).timestamp()
        assert started > changed_at, f"{dag_id} {run_id} wrote before the bucket changed: the race was not run"
    assert sorted(corpus.es.indices.get_alias(name=corpus.index)) != served, "the reindex swapped the alias"
    held = corpus.indexed_etags()  # one version of each object, each chunk once
    assert d not in held, "deleted after the runs had staged it: not resurrected"

    # A run of a day with no folder reads only what the overlapping runs left pending; then the index is exact.
    run_and_wait(stack, INGEST, corpus.run_conf(lookback_days=0), logical_date=after_empty)
    assert corpus.indexed_etags() == bucket_etags(corpus)
