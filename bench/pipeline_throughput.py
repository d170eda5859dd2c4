"""End-to-end throughput of the ingest DAG on the local stack, against the bare encoder on the same documents.

    scripts/servers.sh start && scripts/airflow.sh start
    .venv/bin/python bench/pipeline_throughput.py --docs 20000 --out pipeline.json

It writes N generated documents (a log-normal length mix: median 150 words, a long tail up to 6,000) to a new
bucket of the local MinIO, triggers ``latechunk_ingest`` through the REST API (Celery workers, the ``gpu`` queue for
embed, exactly as users run it), waits, and reads every task instance's times and XCom summary: per stage the wall
time, the work time (the stage's own progress clock), the fixed cost per task (task duration minus work: process
start, imports, model load, staging reads) and the peak memory of a task. Before the run it times the bare encoder
in this process on the same documents (tokenized beforehand, sorted by length over the whole corpus, same token
budget); it prints the ratio of end-to-end tokens/s to the bare encoder's tokens/s.

The encoder is a random jina-v2 checkpoint built on the fly (by default the tests' tiny 2-layer one, hidden 32):
on CPU it stands in for a fast model, so the ratio shows what the pipeline costs around the encoder, as a GPU
would make it. ``--hidden 768 --layers 12 --heads 12`` gives jina-embeddings-v2-base's shape (random weights, for
a GPU worker with no hub access); ``--model`` runs a real checkpoint.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "scripts"), str(REPO / "tests")]

STAGES = ("extract", "annotate", "embed", "index", "validate")
# Validation runs in full (its time counts) but its retrieval thresholds are off: a random encoder's vectors carry
# no meaning, and the tiny one's 32 dimensions crowd 100k chunks of a 100-word vocabulary so closely (mean cosine
# about 0.9) that approximate kNN cannot separate them (measured: self-retrieval 0.66, recall@10 0.52).
RANDOM_MODEL_VALIDATION = {
    "query_retrieval_threshold": 0.0, "document_query_threshold": 0.0, "max_mean_cosine": 1.0,
    "self_retrieval_threshold": 0.0, "recall_threshold": 0.0,
}


def generate_documents(count: int, seed: int) -> list[str]:
    """Documents of log-normal length (median 150 words, capped at 6,000), sentences of 8 to 20 words."""
    from tiny_models import WORDS

    rng = random.Random(seed)
    documents = []
    for _ in range(count):
        words = min(6000, max(3, int(rng.lognormvariate(math.log(150), 1.0))))
        sentences, left = [], words
        while left > 0:
            length = min(left, rng.randint(8, 20))
            sentences.append(" ".join(rng.choice(WORDS) for _ in range(length)).capitalize() + ".")
            left -= length
        documents.append(" ".join(sentences))
    return documents


def upload(s3, bucket: str, documents: list[str]) -> None:
    def put(item: tuple[int, str]) -> None:
        s3.put_object(Bucket=bucket, Key=f"incoming/doc-{item[0]:06d}.txt", Body=item[1].encode())

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(put, enumerate(documents)))


def seconds_between(start: str | None, end: str | None) -> float:
    if not start or not end:
        return 0.0
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def stage_figures(stack, run_id: str) -> dict[str, dict[str, Any]]:
    """Per stage: tasks, wall seconds (first start to last end), summed task and work seconds, fixed cost per task,
    and the highest peak memory of its tasks."""
    instances = [ti for ti in stack.task_instances("latechunk_ingest", run_id) if ti["task_id"] in STAGES]
    figures = {}
    for stage in STAGES:
        tasks = [ti for ti in instances if ti["task_id"] == stage and ti["state"] == "success"]
        if not tasks:
            continue
        key = "summary" if stage == "extract" else "return_value"
        summaries = [stack.xcom("latechunk_ingest", run_id, stage, key, ti["map_index"]) for ti in tasks]
        durations = [seconds_between(ti["start_date"], ti["end_date"]) for ti in tasks]
        work = [float(summary.get("seconds") or 0.0) for summary in summaries]
        rss = [summary.get("peak_rss_mb") for summary in summaries if summary.get("peak_rss_mb")]
        figures[stage] = {
            "tasks": len(tasks),
            "wall_s": round(seconds_between(min(t["start_date"] for t in tasks), max(t["end_date"] for t in tasks)), 1),
            "task_s": round(sum(durations), 1),
            "work_s": round(sum(work), 1),
            "fixed_s_per_task": round((sum(durations) - sum(work)) / len(tasks), 1),
            "peak_rss_mb": max(rss) if rss else None,
        }
    return figures


def busy_cpu_seconds() -> float | None:
    """CPU time the whole host has spent busy (all cores, every process: the stack's servers too), from
    /proc/stat; None where there is none."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(value) for value in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def cpu_use(busy_before: float | None, seconds: float) -> dict[str, float] | None:
    """Busy CPU-seconds of the host since ``busy_before`` and the share of all cores they took over ``seconds``."""
    busy_after = busy_cpu_seconds()
    if busy_before is None or busy_after is None:
        return None
    busy = busy_after - busy_before
    return {"busy_cpu_s": round(busy, 1), "utilisation": round(busy / (seconds * os.cpu_count()), 3)}


def _processes() -> dict[int, tuple[int, str, float]]:
    """pid -> (parent pid, command name, CPU-seconds of the process and of its children it has reaped)."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        found[int(entry.name)] = (int(fields[1]), name, sum(int(value) for value in fields[11:15]) / ticks)
    return found


def stack_roots() -> dict[str, list[int]]:
    """The stack's processes by part: each part's top processes (their descendants count with them)."""
    def pids(*files: Path) -> list[int]:
        return [int(file.read_text().split()[0]) for file in files if file.exists()]

    run = REPO / "var" / "airflow-stack" / "run"
    processes = _processes()
    postgres = [pid for pid, (parent, name, _) in processes.items()
                if name == "postgres" and processes.get(parent, (0, ""))[1] != "postgres"]  # fmt: skip
    return {
        "elasticsearch": pids(REPO / "var" / "elasticsearch" / "logs" / "es.pid"),
        "minio": pids(REPO / "var" / "minio" / "minio.pid"),
        "airflow workers (the tasks)": pids(run / "worker-default.pid", run / "worker-gpu.pid"),
        "airflow services": pids(*(run / f"{name}.pid" for name in ("api-server", "scheduler", "dag-processor",
                                                                   "triggerer"))),  # fmt: skip
        "postgres and redis": postgres + pids(run / "redis.pid"),
    }


def stack_cpu_seconds(roots: dict[str, list[int]]) -> dict[str, float]:
    """CPU-seconds so far of each part's process trees (living processes plus the children they have reaped)."""
    processes = _processes()
    children: dict[int, list[int]] = {}
    for pid, (parent, _, _) in processes.items():
        children.setdefault(parent, []).append(pid)
    totals = {}
    for part, tops in roots.items():
        seen, todo = set(), list(tops)
        while todo:
            pid = todo.pop()
            if pid in processes and pid not in seen:
                seen.add(pid)
                todo.extend(children.get(pid, []))
        totals[part] = sum(processes[pid][2] for pid in seen)
    return totals


def bare_encoder(model: str, documents: list[str], token_budget: int, device: str | None) -> dict[str, float]:
    """The encoder alone: every document's tokens (one window each, or its windows), longest first over the whole
    corpus, under the same token budget; outputs dropped as they come."""
    from latechunk.embedding.encoders import load_encoder
    from latechunk.embedding.late_chunking import default_overlap, plan_windows

    encoder = load_encoder(model, device=device)
    ids = encoder.tokenizer(documents, add_special_tokens=True, truncation=False)["input_ids"]
    window = encoder.max_length
    sequences = [
        doc[w.start : w.end] for doc in ids for w in plan_windows(len(doc), window, default_overlap(window))
    ]
    sequences.sort(key=len, reverse=True)
    busy_before = busy_cpu_seconds()
    started = time.perf_counter()
    group: list[list[int]] = []  # about 64 forward passes at a time, so that outputs never pile up
    group_tokens = 0
    for sequence in sequences:
        group.append(sequence)
        group_tokens += len(sequence)
        if group_tokens >= 64 * token_budget or sequence is sequences[-1]:
            encoder.encode_token_batches(group, token_budget=token_budget)
            group, group_tokens = [], 0
    seconds = time.perf_counter() - started
    tokens = sum(len(doc) for doc in ids)
    return {
        "tokens": tokens, "seconds": round(seconds, 1), "tokens_per_s": round(tokens / seconds, 1),
        "cpu": cpu_use(busy_before, seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", help="checkpoint (hub id or path) instead of the tiny random jina-v2")
    parser.add_argument("--hidden", type=int, default=32, help="width of the random jina-v2")
    parser.add_argument("--layers", type=int, default=2, help="layers of the random jina-v2")
    parser.add_argument("--heads", type=int, default=4, help="attention heads of the random jina-v2")
    parser.add_argument("--token-budget", type=int, default=16384)
    parser.add_argument("--device", default=None, help="for the bare encoder; the DAG's embed uses its own")
    parser.add_argument("--timeout", type=float, default=7200)
    parser.add_argument(
        "--param", action="append", default=[], metavar="NAME=JSON",
        help="another DAG param for the run, e.g. docs_per_batch=64 (repeatable)",
    )
    parser.add_argument("--out", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the bucket, staging and index afterwards")
    args = parser.parse_args()

    import boto3
    from airflow_client import AirflowClient
    from elasticsearch import Elasticsearch
    from support import empty_bucket

    servers = dict(
        line.removeprefix("export ").split("=", 1)
        for line in (REPO / "var" / "servers.env").read_text().splitlines() if line.startswith("export ")
    )
    s3 = boto3.client(
        "s3", endpoint_url=servers["S3_ENDPOINT_URL"], aws_access_key_id=servers["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=servers["AWS_SECRET_ACCESS_KEY"], region_name=servers["AWS_DEFAULT_REGION"],
    )
    es = Elasticsearch(servers["ES_URL"])
    stack = AirflowClient.from_stack()
    stack.set_paused("latechunk_ingest", False)

    model = args.model
    if not model:
        from tiny_models import save_tiny_jina

        directory = REPO / "var" / "bench" / f"random-jina-h{args.hidden}-l{args.layers}"
        intermediate = 48 if args.hidden == 32 else 4 * args.hidden  # the tests' tiny one, else jina-v2's ratio
        save_tiny_jina(directory, hidden=args.hidden, layers=args.layers, heads=args.heads, intermediate=intermediate)
        model = str(directory)

    tag = f"bench-{uuid.uuid4().hex[:8]}"
    documents = generate_documents(args.docs, args.seed)
    for bucket in (tag, f"{tag}-staging"):
        s3.create_bucket(Bucket=bucket)
    try:
        started = time.perf_counter()
        upload(s3, tag, documents)
        print(f"uploaded {len(documents):,} documents in {time.perf_counter() - started:.0f}s", flush=True)
        # The bare encoder first, on an idle machine: after the run, Elasticsearch is still merging segments.
        bare = bare_encoder(model, documents, args.token_budget, args.device)
        print(f"bare encoder: {bare['seconds']:.0f}s; now the DAG run", flush=True)
        conf = {
            "bucket": tag, "prefix": "incoming/", "partition_by_date": False, "index": tag, "model": model,
            "staging_bucket": f"{tag}-staging", "token_budget": args.token_budget, **RANDOM_MODEL_VALIDATION,
            **{name: json.loads(value) for name, _, value in (item.partition("=") for item in args.param)},
        }
        roots = stack_roots()
        parts_before = stack_cpu_seconds(roots)
        busy_before = busy_cpu_seconds()
        triggered = time.perf_counter()
        run_id = stack.trigger("latechunk_ingest", conf)
        run = stack.wait_for_run("latechunk_ingest", run_id, timeout=args.timeout, poll=5)
        trigger_to_end = time.perf_counter() - triggered
        run_cpu = cpu_use(busy_before, trigger_to_end)
        parts_after = stack_cpu_seconds(roots)
        if run_cpu:
            run_cpu["by_part"] = {part: round(parts_after[part] - parts_before[part], 1) for part in roots}
        if run["state"] != "success":
            raise SystemExit(f"run {run_id} ended {run['state']}")
        stages = stage_figures(stack, run_id)
        run_seconds = seconds_between(run["start_date"], run["end_date"])
        es.indices.refresh(index=tag)
        chunks = es.count(index=tag)["count"]
        print(f"DAG run {run_id}: {run_seconds:.0f}s, {chunks:,} chunks", flush=True)
    finally:
        if not args.keep:
            for bucket in (tag, f"{tag}-staging"):
                empty_bucket(s3, bucket)
                s3.delete_bucket(Bucket=bucket)
            for index in es.indices.get(index=f"{tag}*", expand_wildcards="all"):
                es.options(ignore_status=404).indices.delete(index=index)

    end_to_end = bare["tokens"] / run_seconds
    figures = {
        "docs": args.docs,
        "params": args.param,
        "tokens": bare["tokens"],
        "chunks": chunks,
        "model": model,
        "run_seconds": round(run_seconds, 1),
        "trigger_to_end_seconds": round(trigger_to_end, 1),
        "end_to_end_tokens_per_s": round(end_to_end, 1),
        "bare_encoder": bare,
        "run_cpu": run_cpu,
        "ratio": round(end_to_end / bare["tokens_per_s"], 3),
        "stages": stages,
    }
    print(f"\n{args.docs:,} documents, {bare['tokens']:,} tokens, {chunks:,} chunks")
    print(f"{'stage':<9} {'tasks':>5} {'wall s':>8} {'task s':>8} {'work s':>8} {'fixed s/task':>12} {'peak MB':>8}")
    for stage, row in stages.items():
        peak = f"{row['peak_rss_mb']:.0f}" if row["peak_rss_mb"] else "n/a"
        print(
            f"{stage:<9} {row['tasks']:>5} {row['wall_s']:>8.1f} {row['task_s']:>8.1f} {row['work_s']:>8.1f} "
            f"{row['fixed_s_per_task']:>12.1f} {peak:>8}"
        )
    print(f"end to end (run start to end): {run_seconds:.1f}s, {end_to_end:,.0f} tokens/s")
    print(f"bare encoder: {bare['seconds']:.1f}s, {bare['tokens_per_s']:,.0f} tokens/s")
    if run_cpu and bare["cpu"]:
        print(
            f"host CPU busy: bare encoder {bare['cpu']['busy_cpu_s']:.0f} CPU-s ({bare['cpu']['utilisation']:.0%} of "
            f"{os.cpu_count()} cores), DAG run {run_cpu['busy_cpu_s']:.0f} CPU-s ({run_cpu['utilisation']:.0%})"
        )
        print("  of which " + ", ".join(f"{part} {seconds:.0f}" for part, seconds in run_cpu["by_part"].items()))
    print(f"ratio end-to-end / bare encoder: {figures['ratio']:.3f}")
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
