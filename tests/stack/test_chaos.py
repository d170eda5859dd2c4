"""Chaos on the real stack: kill -9 a running task's process at seeded random moments spread over the five stages,
and at some points kill -9 the Elasticsearch or MinIO process instead (started again at once, as a service manager
would); let Airflow's retry (or, for `validate`, which never retries, the next run) recover, and check after each
point that the index holds exactly the bucket: every object's documents with all their chunks once, at the current
ETag, and nothing of a deleted object or an older version; no physical index left without the alias.

Between points the corpus changes (one object rewritten, one added, one deleted; a multi-part .jsonl among them), so
every run has work in every stage. Every sixth point, from the second on, kills a server (MinIO and Elasticsearch
in turn, while a stage that uses it runs). The default suite runs LATECHUNK_CHAOS_POINTS=2 points (one task process,
one MinIO); the long mode
(`LATECHUNK_CHAOS_POINTS=50 LATECHUNK_CHAOS_TABLE=chaos.md pytest tests/stack/test_chaos.py`) writes its table.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from stack_support import TOPICS, Corpus, new_corpus, run_and_wait
from support import REPO, assert_exact

pytestmark = pytest.mark.slow

DAG_ID = "latechunk_ingest"
STAGES = ("extract", "annotate", "embed", "index", "validate")
POINTS = int(os.environ.get("LATECHUNK_CHAOS_POINTS", "2"))
SEED = int(os.environ.get("LATECHUNK_CHAOS_SEED", "13"))
# The server processes a point may kill, the stages that talk to each, and the server's pid file and name for
# scripts/servers.sh.
SERVERS = {
    "minio": (("extract", "annotate", "embed", "index"), "var/minio/minio.pid", "s3"),
    "elasticsearch": (("extract", "index", "validate"), "var/elasticsearch/logs/es.pid", "es"),
}
SERVER_EVERY = 6


@dataclass
class KillPoint:
    stage: str
    delay_s: float  # after the stage's task instance is seen running
    target: str = "task"  # "task" (the task process) or a key of SERVERS


def kill_points(count: int, seed: int) -> list[KillPoint]:
    """`count` points, the stages in turn (shuffled), each after a random delay into the task; points 1, 7, 13, ...
    kill MinIO and Elasticsearch in turn, each while a stage that uses it runs."""
    rng = random.Random(seed)
    offset = rng.randrange(len(STAGES))
    stages = [STAGES[(offset + i) % len(STAGES)] for i in range(count)]
    rng.shuffle(stages)
    # Within the first second: with bytecode and preloaded modules a stage's task on a few objects takes 1.5-4 s.
    points = [KillPoint(stage, round(rng.uniform(0.0, 1.0), 2)) for stage in stages]
    for i in range(1, count, SERVER_EVERY):
        server = list(SERVERS)[(i // SERVER_EVERY) % len(SERVERS)]
        points[i] = KillPoint(rng.choice(SERVERS[server][0]), points[i].delay_s, server)
    return points


def kill_server(server: str) -> None:
    """kill -9 the server's process, then start it again the way users do (scripts/servers.sh), as a service manager
    would restart it; returns once it is healthy."""
    _, pidfile, name = SERVERS[server]
    os.kill(int((REPO / pidfile).read_text()), signal.SIGKILL)
    time.sleep(1.0)
    subprocess.run([str(REPO / "scripts" / "servers.sh"), "start", name], check=True, capture_output=True, timeout=300)


def task_process(ti: dict) -> int | None:
    """The pid of a running task instance's task process, if it runs here under its Airflow supervisor."""
    pid = ti.get("pid")
    if not pid:
        return None
    try:
        parent = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1]
        supervisor = Path(f"/proc/{parent}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (FileNotFoundError, IndexError):
        return None
    return pid if f"supervisor: {ti['id']}" in supervisor else None


def kill_when_running(stack, run_id: str, point: KillPoint, timeout: float = 600) -> str:
    """kill -9 the stage's task process `delay_s` after it is seen running; what happened, for the table."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        instances = stack.task_instances(DAG_ID, run_id)
        running = [ti for ti in instances if ti["task_id"] == point.stage and ti["state"] == "running"]
        pids = [pid for pid in map(task_process, running) if pid]
        if pids:
            time.sleep(point.delay_s)
            if point.target != "task":
                kill_server(point.target)
                return "killed"
            try:
                os.kill(pids[0], signal.SIGKILL)
            except ProcessLookupError:
                return "finished first"
            return "killed"
        if stack.dag_run(DAG_ID, run_id)["state"] in ("success", "failed"):
            return "finished first"
        time.sleep(0.2)
    pytest.fail(f"{point.stage} of {run_id} never ran")


def change_corpus(corpus: Corpus, rng: random.Random, step: int, present: dict[str, str]) -> None:
    """Rewrite one object, add one, delete one (`present`: key -> topic text); new .jsonl records every time."""
    records = [f'{{"text": "Record {n} of step {step}. It is about {rng.choice(list(TOPICS))}."}}' for n in range(6)]
    corpus.put("incoming/records.jsonl", "\n".join(records) + "\n")
    name, text = rng.choice(list(TOPICS.items()))
    present[f"incoming/{step}-{name}"] = text
    corpus.put(f"incoming/{step}-{name}", text)
    changed = rng.choice(sorted(present))
    corpus.put(changed, f"{present[changed]} Revised at step {step}.")
    if len(present) > 4:
        deleted = rng.choice(sorted(set(present) - {changed}))
        corpus.delete(deleted)
        del present[deleted]


def assert_no_orphan(corpus: Corpus) -> None:
    physical = set(corpus.es.indices.get(index=f"{corpus.index}-*", expand_wildcards="all"))
    aliased = set(corpus.es.indices.get_alias(name=corpus.index))
    assert physical == aliased, f"physical indices without the alias: {sorted(physical - aliased)}"


def test_kill_9_anywhere_leaves_the_index_exact(stack, s3_client, es_client, minilm, tmp_path):
    rng = random.Random(SEED)
    rows = []
    with new_corpus(s3_client, es_client, minilm, "chaos") as corpus:
        present = {f"incoming/{name}": TOPICS[name] for name in ("reef.txt", "bread.txt", "comet.txt")}
        for key, text in present.items():
            corpus.put(key, text)
        conf = corpus.run_conf(partition_by_date=False, query_retrieval_threshold=0.0, document_query_threshold=0.0)
        for step, point in enumerate(kill_points(POINTS, SEED)):
            change_corpus(corpus, rng, step, present)
            run_id = stack.trigger(DAG_ID, conf)
            outcome = kill_when_running(stack, run_id, point)
            run = stack.wait_for_run(DAG_ID, run_id, timeout=900)
            recovery = "retry" if run["state"] == "success" else "next run"
            if run["state"] != "success":
                run_and_wait(stack, DAG_ID, conf)
            chunks = assert_exact(es_client, corpus.index, s3_client, corpus.bucket)
            assert_no_orphan(corpus)
            target = "task process" if point.target == "task" else point.target
            rows.append((step, target, point.stage, point.delay_s, outcome, recovery, len(present) + 1, len(chunks)))
    columns = ("point", "killed process", "stage", "delay (s)", "kill", "recovered by", "objects", "chunks")
    columns += ("lost", "duplicated", "stale", "orphans")
    table = ["| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
    table += [f"| {' | '.join(map(str, row))} | 0 | 0 | 0 | 0 |" for row in rows]
    Path(os.environ.get("LATECHUNK_CHAOS_TABLE") or tmp_path / "chaos.md").write_text("\n".join(table) + "\n")
    assert sum(row[4] == "killed" for row in rows) >= max(1, POINTS // 2), f"too few kills landed: {rows}"
