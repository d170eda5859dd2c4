"""How the ingest DAG scales with the number of objects: wall time and every task's peak memory (issue #25).

    scripts/servers.sh start && scripts/airflow.sh start
    .venv/bin/python bench/scale.py --objects 100000 --out scale-100k.json

It puts N tiny text objects (one short sentence each, all distinct, spread over --folders folders) under
``s3://latechunk-scale/scale-<N>/`` of the local MinIO, then triggers three ``latechunk_ingest`` runs through the
REST API, each into the same new index: (a) the first load, (b) a run that finds nothing changed, (c) a run after
--changed objects were rewritten and --deleted removed. Per run it reads every task instance's duration and the
summary its operator returned (which carries the task process's peak resident memory), and checks that the index
then holds exactly the objects of the bucket, each at its current ETag: a wrong result fails the bench.

The upload runs on a thread pool and is skipped for the objects the prefix already holds with the right content,
so a rerun puts back only what the last delta changed and measures the runs alone. ``--keep`` keeps the index, and
``--reuse TAG`` later runs only (b) and (c) on it (a 1M first load takes about an hour and a half on 2 cores). The
encoder is the tests' tiny random jina-v2 (hidden 32, 2 layers); batches keep the default ``docs_per_batch``
(10,000), so more objects make more batches, not bigger ones. Validation runs in full with its retrieval
thresholds off (a random encoder's vectors carry no meaning). It prints a table per run, with how long each batch's
embed waited after its annotate, and the JSON (``objects``, ``first_load_s``, ``nochange_s``, ``delta_s``,
``max_task_peak_rss_mb`` and the per-task detail), written to ``--out``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "scripts"), str(REPO / "tests"), str(REPO / "include")]

DAG_ID = "latechunk_ingest"
BUCKET = "latechunk-scale"
STAGING_BUCKET = "latechunk-scale-staging"
UPLOAD_THREADS = 32
# Validation in full, its retrieval thresholds off: the random encoder's vectors carry no meaning.
RANDOM_MODEL_VALIDATION = {
    "query_retrieval_threshold": 0.0, "document_query_threshold": 0.0, "max_mean_cosine": 1.0,
    "self_retrieval_threshold": 0.0, "recall_threshold": 0.0,
}


def object_key(prefix: str, number: int, folders: int) -> str:
    return f"{prefix}f{number % folders:02d}/doc-{number:07d}.txt"


def document_text(number: int, revision: int = 0) -> str:
    """One short sentence, distinct for each number and revision: the number and eight words of the tiny model's
    vocabulary picked by it."""
    from tiny_models import WORDS

    rng = random.Random(number * 7919 + revision)
    words = " ".join(rng.choice(WORDS) for _ in range(8))
    return f"Document {number} revision {revision} says {words}."


def etag_of(text: str) -> str:
    """The ETag S3 gives a single-part upload: the MD5 of its body."""
    return hashlib.md5(text.encode()).hexdigest()


def plan_delta(keys: list[str], changed: int, deleted: int) -> tuple[list[str], list[str]]:
    """`changed` keys to rewrite and `deleted` others to remove, spread evenly over the sorted keys."""
    if changed + deleted > len(keys):
        raise ValueError(f"cannot change {changed} and delete {deleted} of {len(keys)} objects")
    ordered = sorted(keys)
    touched = [ordered[round(i * len(ordered) / (changed + deleted))] for i in range(changed + deleted)]
    return touched[deleted:], touched[:deleted]


def task_figures(instances: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per task id (whatever tasks the run had), from its task instances, each with ``task_id``, ``duration_s``
    and ``summary`` (the operator's summary, or None): how many ran (map indexes), the longest and the summed
    duration, and the highest ``peak_rss_mb`` among them (None when no summary had one)."""
    figures: dict[str, dict[str, Any]] = {}
    for instance in instances:
        row = figures.setdefault(instance["task_id"], {"tasks": 0, "max_s": 0.0, "task_s": 0.0, "peak_rss_mb": None})
        row["tasks"] += 1
        row["max_s"] = round(max(row["max_s"], instance["duration_s"]), 1)
        row["task_s"] = round(row["task_s"] + instance["duration_s"], 1)
        peak = (instance.get("summary") or {}).get("peak_rss_mb")
        if peak is not None:
            row["peak_rss_mb"] = peak if row["peak_rss_mb"] is None else max(row["peak_rss_mb"], peak)
    return figures


def embed_waits(instances: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """How long each batch's embed waited after its annotate ended (task instances as the REST API gives them):
    the batches, the median and the longest wait. None when the run embedded nothing."""
    ends = {ti["map_index"]: ti["end_date"] for ti in instances if ti["task_id"] == "annotate" and ti["end_date"]}
    waits = sorted(
        max(0.0, seconds_between(ends[ti["map_index"]], ti["start_date"]))
        for ti in instances
        if ti["task_id"] == "embed" and ti["start_date"] and ti["map_index"] in ends
    )
    if not waits:
        return None
    return {"batches": len(waits), "median_s": round(waits[len(waits) // 2], 1), "max_s": round(waits[-1], 1)}


def seconds_between(start: str | None, end: str | None) -> float:
    if not start or not end:
        return 0.0
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def max_peak(*runs: dict[str, dict[str, Any]]) -> float | None:
    """The highest peak memory of any task of the runs' `task_figures`."""
    peaks = [row["peak_rss_mb"] for tasks in runs for row in tasks.values() if row["peak_rss_mb"] is not None]
    return max(peaks) if peaks else None


def sync_objects(s3, prefix: str, expected: dict[str, str], texts: dict[str, str]) -> dict[str, int]:
    """Make the prefix hold exactly `expected` (key -> ETag): put what is missing or different, delete the rest."""
    held = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        held.update({obj["Key"]: obj["ETag"].strip('"') for obj in page.get("Contents", [])})
    to_put = [key for key, etag in expected.items() if held.get(key) != etag]
    extra = sorted(set(held) - set(expected))
    put_many(s3, {key: texts[key] for key in to_put})
    delete_many(s3, extra)
    return {"put": len(to_put), "deleted": len(extra)}


def put_many(s3, texts: dict[str, str]) -> None:
    def put(item: tuple[str, str]) -> None:
        s3.put_object(Bucket=BUCKET, Key=item[0], Body=item[1].encode())

    with ThreadPoolExecutor(max_workers=UPLOAD_THREADS) as pool:
        list(pool.map(put, texts.items()))


def delete_many(s3, keys: list[str]) -> None:
    for start in range(0, len(keys), 1000):  # the most one request may delete
        s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": key} for key in keys[start : start + 1000]]})


def run_figures(stack, run_id: str) -> dict[str, Any]:
    """Wall time (run start to end) and `task_figures` of a finished run, with extract's counts."""
    run = stack.dag_run(DAG_ID, run_id)
    instances = []
    task_instances = stack.task_instances(DAG_ID, run_id)
    for ti in task_instances:
        if ti["state"] != "success" or ti.get("operator") == "EmptyOperator":
            continue
        instances.append({
            "task_id": ti["task_id"], "duration_s": seconds_between(ti["start_date"], ti["end_date"]),
            "summary": task_summary(stack, run_id, ti),
        })  # fmt: skip
    extract = next((i["summary"] for i in instances if i["task_id"] == "extract" and i["summary"]), {})
    counts = ("objects_under_prefix", "objects_changed", "objects_unchanged", "keys_to_delete", "batches_staged",
              "objects_quarantined")  # fmt: skip
    return {
        "run_id": run_id,
        "wall_s": round(seconds_between(run["start_date"], run["end_date"]), 1),
        "extract": {name: extract.get(name) for name in counts},
        "tasks": task_figures(instances),
        "embed_wait": embed_waits(task_instances),
    }


def task_summary(stack, run_id: str, ti: dict[str, Any]) -> dict[str, Any] | None:
    """The operator's summary: its return value when that is one (has ``peak_rss_mb``), else its ``summary``
    XCom (extract returns the batch paths)."""
    from airflow_client import AirflowError

    for key in ("return_value", "summary"):
        try:
            value = stack.xcom(DAG_ID, run_id, ti["task_id"], key, ti["map_index"])
        except AirflowError as error:
            if error.status_code == 404:
                continue
            raise
        if isinstance(value, dict) and "peak_rss_mb" in value:
            return value
    return None


def index_problem(es, index: str, prefix: str, expected: dict[str, str]) -> str | None:
    """What is wrong with the index, or None when it holds exactly the expected objects, each whole and at its
    expected ETag."""
    from latechunk.index.elasticsearch import ElasticsearchBackend

    es.indices.refresh(index=index)
    held = dict(ElasticsearchBackend(es).iter_indexed_etags(index, bucket=BUCKET, prefix=prefix))
    if held != expected:
        missing = sorted(set(expected) - set(held))
        extra = sorted(set(held) - set(expected))
        wrong = sorted(key for key in set(held) & set(expected) if held[key] != expected[key])
        return (
            f"index {index} is wrong: {len(missing)} objects missing {missing[:3]}, {len(extra)} extra {extra[:3]}, "
            f"{len(wrong)} at another ETag or incomplete {wrong[:3]}"
        )
    return None


def print_run(name: str, figures: dict[str, Any]) -> None:
    print(f"\n{name}: {figures['wall_s']:.1f}s (run {figures['run_id']}); extract: {figures['extract']}")
    print(f"{'task':<14} {'tasks':>5} {'max s':>8} {'task s':>8} {'peak MB':>8}")
    for task, row in figures["tasks"].items():
        peak = f"{row['peak_rss_mb']:.0f}" if row["peak_rss_mb"] is not None else "n/a"
        print(f"{task:<14} {row['tasks']:>5} {row['max_s']:>8.1f} {row['task_s']:>8.1f} {peak:>8}")
    if figures["embed_wait"]:
        wait = figures["embed_wait"]
        print(f"a batch's embed started {wait['median_s']:.1f}s after its annotate ended (median of "
              f"{wait['batches']}; longest {wait['max_s']:.1f}s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--folders", type=int, default=8, help="folders the objects are spread over")
    parser.add_argument("--changed", type=int, default=1000, help="objects rewritten before run (c)")
    parser.add_argument("--deleted", type=int, default=100, help="objects deleted before run (c)")
    parser.add_argument("--timeout", type=float, default=7200, help="seconds each run may take")
    parser.add_argument(
        "--param", action="append", default=[], metavar="NAME=JSON",
        help="another DAG param for the runs, e.g. docs_per_batch=20000 (repeatable)",
    )
    parser.add_argument("--out", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the index and the staged files afterwards")
    parser.add_argument(
        "--reuse", metavar="TAG",
        help="skip the first load: run (b) and (c) on the index an earlier --keep run loaded (its tag, printed as "
        "latechunk-<TAG>); a run first catches the index up when it does not match the bucket",
    )
    parser.add_argument(
        "--upload-only", action="store_true",
        help="only make the prefix hold the N objects, then stop (a 1M upload takes most of an hour on 2 cores)",
    )
    args = parser.parse_args()

    import boto3
    from airflow_client import AirflowClient
    from botocore.config import Config
    from elasticsearch import Elasticsearch
    from tiny_models import save_tiny_jina

    servers = dict(
        line.removeprefix("export ").split("=", 1)
        for line in (REPO / "var" / "servers.env").read_text().splitlines() if line.startswith("export ")
    )
    s3 = boto3.client(
        "s3", endpoint_url=servers["S3_ENDPOINT_URL"], aws_access_key_id=servers["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=servers["AWS_SECRET_ACCESS_KEY"], region_name=servers["AWS_DEFAULT_REGION"],
        config=Config(max_pool_connections=UPLOAD_THREADS, retries={"max_attempts": 10, "mode": "standard"}),
    )
    es = Elasticsearch(servers["ES_URL"], request_timeout=120)
    model = REPO / "var" / "bench" / "random-jina-h32-l2"
    save_tiny_jina(model)
    existing = {bucket["Name"] for bucket in s3.list_buckets()["Buckets"]}
    for bucket in {BUCKET, STAGING_BUCKET} - existing:
        s3.create_bucket(Bucket=bucket)

    prefix = f"scale-{args.objects}/"
    texts = {object_key(prefix, n, args.folders): document_text(n) for n in range(args.objects)}
    expected = {key: etag_of(text) for key, text in texts.items()}
    changed, deleted = plan_delta(list(expected), args.changed, args.deleted)
    started = time.perf_counter()
    synced = sync_objects(s3, prefix, expected, texts)
    upload_s = time.perf_counter() - started
    print(f"s3://{BUCKET}/{prefix}: {synced['put']:,} objects put, {synced['deleted']:,} deleted in {upload_s:.0f}s"
          + (f" ({synced['put'] / upload_s:,.0f} PUT/s, the listing included)" if synced["put"] else ""), flush=True)
    if args.upload_only:
        return
    stack = AirflowClient.from_stack()
    stack.set_paused(DAG_ID, False)

    tag = args.reuse or f"scale-{args.objects}-{uuid.uuid4().hex[:8]}"
    print(f"runs write the index latechunk-{tag}", flush=True)
    conf = {
        "bucket": BUCKET, "prefix": prefix, "partition_by_date": False, "index": f"latechunk-{tag}",
        "model": str(model), "staging_bucket": STAGING_BUCKET, "staging_prefix": tag, **RANDOM_MODEL_VALIDATION,
        **{name: json.loads(value) for name, _, value in (item.partition("=") for item in args.param)},
    }

    def measured_run(name: str) -> dict[str, Any]:
        run_id = stack.trigger(DAG_ID, conf)
        run = stack.wait_for_run(DAG_ID, run_id, timeout=args.timeout, poll=5)
        if run["state"] != "success":
            raise SystemExit(f"{name}: run {run_id} ended {run['state']}")
        problem = index_problem(es, conf["index"], prefix, expected)
        if problem:
            raise SystemExit(f"{name}: {problem}")
        figures = run_figures(stack, run_id)
        print_run(name, figures)
        return figures

    first = None
    try:
        if not args.reuse:
            first = measured_run("first load")
        elif problem := index_problem(es, conf["index"], prefix, expected):
            print(f"{problem}; a run catches it up first", flush=True)
            measured_run("catch up")
        nochange = measured_run("nothing changed")
        revised = {key: document_text(int(key[-11:-4]), revision=1) for key in changed}
        put_many(s3, revised)
        delete_many(s3, deleted)
        expected.update({key: etag_of(text) for key, text in revised.items()})
        for key in deleted:
            del expected[key]
        delta = measured_run(f"{len(changed):,} changed, {len(deleted):,} deleted")
    finally:
        if not args.keep:
            for index in es.indices.get(index=f"{conf['index']}*", expand_wildcards="all"):
                es.options(ignore_status=404).indices.delete(index=index)
            staged = s3.get_paginator("list_objects_v2").paginate(Bucket=STAGING_BUCKET, Prefix=f"{tag}/")
            for page in staged:
                keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
                if keys:
                    s3.delete_objects(Bucket=STAGING_BUCKET, Delete={"Objects": keys, "Quiet": True})

    result = {
        "objects": args.objects,
        "first_load_s": first["wall_s"] if first else None,
        "nochange_s": nochange["wall_s"],
        "delta_s": delta["wall_s"],
        "max_task_peak_rss_mb": max_peak(*(run["tasks"] for run in (first, nochange, delta) if run)),
        "changed": len(changed),
        "deleted": len(deleted),
        "upload": {**synced, "seconds": round(upload_s, 1)},
        "params": args.param,
        "runs": {"first_load": first, "nochange": nochange, "delta": delta},
    }
    print(json.dumps({name: result[name] for name in list(result)[:5]}))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
