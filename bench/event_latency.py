"""Upload-to-searchable latency of event-driven ingestion on the local stack.

    scripts/servers.sh start && scripts/airflow.sh start
    .venv/bin/python bench/event_latency.py --uploads 100 --spread-s 240 --out event-latency.json

It uploads N small text objects to a new folder under the watched prefix (``s3://latechunk-docs/incoming/``, whose
notifications MinIO sends to Kafka), evenly spread over ``--spread-s`` seconds, and triggers nothing: the asset
watcher and the ``latechunk_events`` DAG do the rest. It polls Elasticsearch (no forced refresh: what a search
sees) for each object's current ETag and records, per upload, the seconds from the upload's response to the
first search that finds it. It prints and writes (JSON) ``uploads``, ``found``, ``p50_s``, ``p95_s``, ``max_s``
and ``runs`` (the ``latechunk_events`` runs that started during the benchmark), then deletes its objects (whose
delete events the DAG then processes too).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "scripts")]

BUCKET = "latechunk-docs"
DAG_ID = "latechunk_events"
SENTENCES = (
    "Coral reefs bleach when the water stays too warm for weeks.",
    "Sourdough starters are cultures of wild yeast and lactic bacteria.",
    "A diesel engine ignites its fuel by compression alone.",
    "Comet tails always point away from the sun.",
    "The Sicilian Defence answers the king's pawn with the c-pawn.",
)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=100)
    parser.add_argument("--spread-s", type=float, default=240.0, help="seconds over which the uploads are spread")
    parser.add_argument("--timeout-s", type=float, default=600.0, help="give up this long after the last upload")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    import boto3
    from airflow_client import AirflowClient
    from elasticsearch import Elasticsearch

    env = {**os.environ, **read_env(REPO / "var" / "servers.env")}
    s3 = boto3.client("s3", endpoint_url=env["S3_ENDPOINT_URL"], aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1")  # fmt: skip
    es = Elasticsearch(env["ES_URL"], request_timeout=30)
    airflow = AirflowClient.from_stack()
    index = airflow.request("GET", f"/dags/{DAG_ID}/details")["params"]["index"]["value"]
    folder = f"incoming/bench-events-{uuid.uuid4().hex[:8]}/"
    started = datetime.now(UTC)
    uploaded: dict[str, tuple[str, float]] = {}  # key -> (etag, monotonic time of the upload's response)
    found: dict[str, float] = {}
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            if es.indices.exists(index=index):
                hits = es.search(index=index, query={"prefix": {"key": folder}}, size=10_000,
                                 source=["key", "etag"])["hits"]["hits"]  # fmt: skip
                now = time.monotonic()
                for hit in hits:
                    key, etag = hit["_source"]["key"], hit["_source"]["etag"]
                    if key in uploaded and key not in found and uploaded[key][0] == etag:
                        found[key] = now - uploaded[key][1]
            time.sleep(0.5)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    gap = args.spread_s / max(1, args.uploads - 1)
    print(f"uploading {args.uploads} objects to s3://{BUCKET}/{folder}, one every {gap:.1f} s; index {index}")
    for i in range(args.uploads):
        key = f"{folder}doc-{i:03d}.txt"
        text = f"Document {i}. {SENTENCES[i % len(SENTENCES)]} {SENTENCES[(i + 2) % len(SENTENCES)]}"
        etag = s3.put_object(Bucket=BUCKET, Key=key, Body=text.encode())["ETag"].strip('"')
        uploaded[key] = (etag, time.monotonic())
        time.sleep(gap)
    deadline = time.monotonic() + args.timeout_s
    while len(found) < len(uploaded) and time.monotonic() < deadline:
        time.sleep(1)
    done.set()
    poller.join()
    runs = [run for run in airflow.dag_runs(DAG_ID)
            if run.get("start_date") and datetime.fromisoformat(run["start_date"]) >= started]  # fmt: skip
    delays = list(found.values())
    result = {
        "uploads": len(uploaded),
        "found": len(found),
        "spread_s": args.spread_s,
        "p50_s": round(statistics.median(delays), 1) if delays else None,
        "p95_s": round(percentile(delays, 0.95), 1) if delays else None,
        "max_s": round(max(delays), 1) if delays else None,
        "runs": len(runs),
    }
    print(json.dumps(result))
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for key in uploaded:
        s3.delete_object(Bucket=BUCKET, Key=key)


def read_env(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        if name:
            values[name] = value
    return values


if __name__ == "__main__":
    main()
