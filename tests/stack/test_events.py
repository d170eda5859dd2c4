"""Event-driven ingestion on the running stack: MinIO notifies Kafka, the asset watcher in the triggerer turns each
message into an asset event, and ``latechunk_events`` runs on them, with nobody triggering anything. Duplicate,
reordered, foreign and malformed messages are injected on the topic beside MinIO's own; the index must end exact.
Then the broker is stopped while files are uploaded: the events are lost, and the daily DAG picks the files up."""

from __future__ import annotations

import copy
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from airflow_client import stack_env
from elasticsearch import helpers
from stack_support import TOPICS, run_and_wait
from support import REPO, run_objects

pytestmark = pytest.mark.slow

DAG_ID = "latechunk_events"
BUCKET = "latechunk-docs"  # the bucket whose notifications scripts/servers.sh sends to Kafka (under incoming/)
# A bound for liveness only: runs take a minute or two on a busy 2-core machine.
SETTLE_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def kafka(stack) -> Iterator[dict[str, str]]:
    """The broker and topic the stack's watcher consumes (its ``latechunk_kafka`` connection)."""
    env = stack_env()
    connection = json.loads(env["AIRFLOW_CONN_LATECHUNK_KAFKA"])
    yield {"bootstrap": connection["extra"]["bootstrap.servers"], "topic": env["LATECHUNK_KAFKA_TOPIC"]}


@pytest.fixture(scope="module")
def event_index(stack) -> str:
    """The index the event DAG writes by default (its params' default, from LATECHUNK_INDEX)."""
    return stack.request("GET", f"/dags/{DAG_ID}/details")["params"]["index"]["value"]


@pytest.fixture
def folder(s3_client) -> Iterator[str]:
    """A folder of its own under the watched prefix, emptied afterwards (the delete events take its chunks out of
    the index; deleting them here would race with the event runs)."""
    prefix = f"incoming/events-test-{uuid.uuid4().hex[:10]}/"
    yield prefix
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for item in page.get("Contents", []):
            s3_client.delete_object(Bucket=BUCKET, Key=item["Key"])


def indexed(es, index: str, prefix: str) -> dict[str, set[str]]:
    """Key -> the ETags its chunks carry, for the keys under ``prefix``."""
    if not es.indices.exists(index=index):
        return {}
    es.indices.refresh(index=index)
    found: dict[str, set[str]] = {}
    for hit in helpers.scan(es, index=index, query={"query": {"prefix": {"key": prefix}}}, _source=["key", "etag"]):
        found.setdefault(hit["_source"]["key"], set()).add(hit["_source"]["etag"])
    return found


def wait_until_indexed(es, index: str, prefix: str, expected: dict[str, str]) -> float:
    """Seconds until the index holds exactly ``expected`` (key -> ETag) under ``prefix``."""
    start = time.monotonic()
    want = {key: {etag} for key, etag in expected.items()}
    while (now := indexed(es, index, prefix)) != want:
        assert time.monotonic() - start < SETTLE_TIMEOUT_S, f"index never became exact: {now} != {want}"
        time.sleep(2)
    return time.monotonic() - start


def produce(kafka: dict[str, str], messages: list[bytes]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": kafka["bootstrap"]})
    for message in messages:
        producer.produce(kafka["topic"], message)
    assert producer.flush(30) == 0


def record(kind: str, key: str, etag: str | None = None) -> dict[str, Any]:
    """An S3 event record as MinIO sends it (key URL-encoded, ``+`` for a space)."""
    from urllib.parse import quote_plus

    obj = {"key": quote_plus(key), "sequencer": "18EE1DB44A1EB735"}
    if etag:
        obj["eTag"] = etag
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"eventVersion": "2.0", "eventSource": "minio:s3", "eventTime": now,
            "eventName": f"s3:{kind}", "s3": {"bucket": {"name": BUCKET}, "object": obj}}  # fmt: skip


def asset_runs(stack, since: set[str]) -> list[dict[str, Any]]:
    return [run for run in stack.dag_runs(DAG_ID) if run["dag_run_id"] not in since]


def rejected_by_reason(stack, runs: list[dict[str, Any]]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for run in runs:
        summary = stack.xcom(DAG_ID, run["dag_run_id"], "extract", key="summary")
        for reason, count in summary["events"]["rejected"].items():
            totals[reason] = totals.get(reason, 0) + count
    return totals


def touched(stack, s3, run: dict[str, Any], prefix: str) -> bool:
    """Whether the run's manifest has an object under ``prefix`` to write or delete."""
    manifest_uri = stack.xcom(DAG_ID, run["dag_run_id"], "extract", key="summary")["manifest"]
    bucket, _, key = manifest_uri.removeprefix("s3://").partition("/")
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    return any(name.startswith(prefix) for name in [*run_objects(s3, manifest), *manifest["deleted_keys"]])


def wait_for_runs(stack, since: set[str], rejected: set[str]) -> list[dict[str, Any]]:
    """The event runs since ``since``, once none is busy and they have counted messages of each ``rejected``
    reason (the injected ones come last on the topic)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        runs = asset_runs(stack, since)
        if not any(run["state"] in ("queued", "running") for run in runs):
            if rejected <= set(rejected_by_reason(stack, runs)):
                return runs
        assert time.monotonic() < deadline, f"event runs did not finish and count {rejected}: {runs}"
        time.sleep(3)


def test_uploads_overwrites_and_deletes_reach_the_index_exactly_through_events(
    stack, kafka, s3_client, es_client, event_index, folder
):
    before = {run["dag_run_id"] for run in stack.dag_runs(DAG_ID)}
    spaced, accented, plus, short_lived = (f"{folder}notes/a b.txt", f"{folder}été/naïve ß.txt",
                                          f"{folder}c+d.txt", f"{folder}gone.txt")  # fmt: skip

    def put(key: str, text: str) -> str:
        return s3_client.put_object(Bucket=BUCKET, Key=key, Body=text.encode())["ETag"].strip('"')

    first_etag = put(spaced, TOPICS["reef.txt"])
    etags = {accented: put(accented, TOPICS["bread.txt"]), plus: put(plus, TOPICS["engine.txt"])}
    put(short_lived, TOPICS["comet.txt"])
    etags[spaced] = put(spaced, TOPICS["chess.txt"])  # overwritten
    s3_client.delete_object(Bucket=BUCKET, Key=short_lived)
    # At-least-once, out of order: the first upload of `spaced` again, a put of the deleted object after its
    # delete, a delete of an object that exists, a whole notification twice; and what is not an object event.
    stale_put = {"Records": [record("ObjectCreated:Put", spaced, first_etag),
                             record("ObjectCreated:Put", short_lived, "0" * 32)]}  # fmt: skip
    stale_delete = {"Records": [record("ObjectRemoved:Delete", accented)]}
    outside = {"Records": [record("ObjectCreated:Put", "elsewhere/x.txt", "1" * 32)]}
    unknown = {"Records": [record("ObjectAccessed:Get", plus)]}
    produce(kafka, [json.dumps(stale_put).encode(), json.dumps(stale_delete).encode(), b"not json {",
                    json.dumps(outside).encode(), json.dumps(copy.deepcopy(stale_delete)).encode(),
                    json.dumps(unknown).encode()])  # fmt: skip

    wait_until_indexed(es_client, event_index, folder, etags)
    runs = wait_for_runs(stack, before, rejected={"not_json", "unknown_type", "outside_prefix"})
    assert {run["run_type"] for run in runs} == {"asset_triggered"}, "no manual trigger"
    # The runs that wrote or deleted this folder's objects all succeeded (validation included); runs of other
    # traffic on the shared stack are not this test's business.
    ours = [run for run in runs if touched(stack, s3_client, run, folder)]
    assert ours and all(run["state"] == "success" for run in ours), ours
    assert indexed(es_client, event_index, folder) == {key: {etag} for key, etag in etags.items()}
    taken = sum(stack.xcom(DAG_ID, run["dag_run_id"], "extract", key="summary")["events"]["events"] for run in runs)
    assert taken >= 10, "MinIO's six events under the folder and the four injected ones in scope"
    assert len(runs) < taken, "events are batched, not one run each"


def test_files_uploaded_while_the_broker_is_down_are_caught_by_the_daily_run(
    stack, kafka, s3_client, es_client, event_index, folder
):
    servers = str(REPO / "scripts" / "servers.sh")
    subprocess.run([servers, "stop", "kafka"], check=True)
    try:
        etags = {f"{folder}outage/{name}": s3_client.put_object(Bucket=BUCKET, Key=f"{folder}outage/{name}",
                                                                 Body=text.encode())["ETag"].strip('"')
                 for name, text in list(TOPICS.items())[:3]}  # fmt: skip
    finally:
        subprocess.run([servers, "start", "kafka"], check=True)
    assert indexed(es_client, event_index, folder) == {}, "no event could announce them"

    # The daily DAG's reconciliation, scoped to the test's folder: it lists and ingests what the events missed.
    conf = {"prefix": folder, "partition_by_date": False, "index": event_index}
    run_and_wait(stack, "latechunk_ingest", conf)
    assert indexed(es_client, event_index, folder) == {key: {etag} for key, etag in etags.items()}

    # The watcher is back with the broker: a new upload is ingested by events again.
    later = f"{folder}after-outage.txt"
    etags[later] = s3_client.put_object(Bucket=BUCKET, Key=later, Body=TOPICS["tea.txt"].encode())["ETag"].strip('"')
    wait_until_indexed(es_client, event_index, folder, etags)


def test_the_ui_lists_the_asset_with_its_watcher(stack):
    """What the UI's asset page shows (it reads the same API): the watched asset, its Kafka watcher, and the event
    DAG scheduled on it."""
    (asset,) = stack.request("GET", "/assets", params={"name_pattern": "latechunk_object_events"})["assets"]
    assert [watcher["name"] for watcher in asset["watchers"]] == ["latechunk_kafka_watcher"]
    assert [dag["dag_id"] for dag in asset["scheduled_dags"]] == [DAG_ID]
