"""More than one worker per queue: the stack suite runs two gpu workers, and a run's mapped embed tasks spread
over both (scripts/airflow.sh with LATECHUNK_GPU_WORKERS=2; the gpu pool gets a slot per worker); the extract is
mapped over key ranges on the default queue."""

from __future__ import annotations

from stack_support import GPU_WORKERS, TOPICS, assert_ran_on_the_right_workers, new_corpus, run_and_wait


def test_mapped_embed_tasks_spread_over_two_gpu_workers_and_extract_over_key_ranges(
    stack, s3_client, es_client, minilm
):
    pool = stack.pool("gpu")
    assert pool["slots"] >= len(GPU_WORKERS), pool
    with new_corpus(s3_client, es_client, minilm, "workers") as corpus:
        names = list(TOPICS)[:4]
        etags = {f"incoming/{name}": corpus.put(f"incoming/{name}", TOPICS[name]) for name in names}
        run = run_and_wait(stack, "latechunk_ingest",
                           corpus.run_conf(partition_by_date=False, docs_per_batch=1, extract_shards=4,
                                           objects_per_shard=1))  # fmt: skip
        assert run["state"] == "success"
        instances = stack.task_instances("latechunk_ingest", run["dag_run_id"])
        embeds = [ti for ti in instances if ti["task_id"] == "embed"]
        ranges = sorted(ti["map_index"] for ti in instances if ti["task_id"] == "extract_shard")
        assert ranges == [0, 1, 2, 3], "one extract_shard task per planned key range (one object each)"
        assert len(embeds) == len(names), "one mapped embed task per document (docs_per_batch=1)"
        assert {ti["hostname"] for ti in embeds} == set(GPU_WORKERS), [ti["hostname"] for ti in embeds]
        assert_ran_on_the_right_workers(stack, "latechunk_ingest", run["dag_run_id"])
        assert corpus.indexed_etags() == etags
