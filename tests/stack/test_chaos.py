"""Chaos on the real stack: kill -9 a running task's process at seeded random moments spread over the five stages,
let Airflow's retry (or, for `validate`, which never retries, the next run) recover, and check after each point that
the index holds exactly the bucket: every object's documents with all their chunks once, at the current ETag, and
nothing of a deleted object or an older version; no physical index left without the alias.

Between points the corpus changes (one object rewritten, one added, one deleted; a multi-part .jsonl among them), so
every run has work in every stage. The default suite runs LATECHUNK_CHAOS_POINTS=2 points; the long mode
(`LATECHUNK_CHAOS_POINTS=50 LATECHUNK_CHAOS_TABLE=chaos.md pytest tests/stack/test_chaos.py`) writes its table.
"""

from __future__ import annotations

import os
import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from stack_support import TOPICS, Corpus, new_corpus, run_and_wait
from support import assert_exact

pytestmark = [pytest.mark.stack, pytest.mark.slow]

DAG_ID = "latechunk_ingest"
STAGES = ("extract", "annotate", "embed", "index", "validate")
POINTS = int(os.environ.get("LATECHUNK_CHAOS_POINTS", "2"))
SEED = int(os.environ.get("LATECHUNK_CHAOS_SEED", "13"))


@dataclass
class KillPoint:
    stage: str
    delay_s: float  # after the stage's task instance is seen running


def kill_points(count: int, seed: int) -> list[KillPoint]:
    """`count` points, the stages in turn (shuffled), each after a random delay into the task."""
    rng = random.Random(seed)
    offset = rng.randrange(len(STAGES))
    stages = [STAGES[(offset + i) % len(STAGES)] for i in range(count)]
    rng.shuffle(stages)
    return [KillPoint(stage, round(rng.uniform(0.0, 2.5), 2)) for stage in stages]


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
            rows.append((step, point.stage, point.delay_s, outcome, recovery, len(present) + 1, len(chunks)))
    columns = ("point", "stage", "delay (s)", "kill", "recovered by", "objects", "chunks")
    columns += ("lost", "duplicated", "stale", "orphans")
    table = ["| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
    table += [f"| {' | '.join(map(str, row))} | 0 | 0 | 0 | 0 |" for row in rows]
    Path(os.environ.get("LATECHUNK_CHAOS_TABLE") or tmp_path / "chaos.md").write_text("\n".join(table) + "\n")
    assert sum(row[3] == "killed" for row in rows) >= max(1, POINTS // 2), f"too few kills landed: {rows}"
