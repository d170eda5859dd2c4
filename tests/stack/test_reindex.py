"""The reindex DAG on the running stack: the alias moves to the rebuilt index only after it passed validation."""

from __future__ import annotations

import pytest
from stack_support import TOPICS, run_and_wait

pytestmark = pytest.mark.slow


def alias_target(es, alias: str) -> list[str]:
    return sorted(es.indices.get_alias(name=alias))


def test_reindex_swaps_the_alias_only_after_validation(stack, corpus, free_days):
    etags = {f"incoming/{name}": corpus.put(f"incoming/{name}", text) for name, text in list(TOPICS.items())[:4]}
    run_and_wait(stack, "latechunk_ingest", corpus.run_conf(partition_by_date=False), logical_date=next(free_days))
    served = alias_target(corpus.es, corpus.index)
    assert len(served) == 1 and corpus.indexed_etags() == etags

    wrong_probe = "Who studies coral reefs? => incoming/no-such-file.txt"
    failed = run_and_wait(stack, "latechunk_reindex", corpus.run_conf(probes=wrong_probe), expect="failed")
    states = {ti["task_id"]: ti["state"] for ti in stack.task_instances("latechunk_reindex", failed["dag_run_id"])}
    assert (states["validate"], states["swap_alias"]) == ("failed", "upstream_failed")
    assert alias_target(corpus.es, corpus.index) == served, "the alias moved to an index that failed validation"

    run_and_wait(stack, "latechunk_reindex", corpus.run_conf(probes="Who studies coral reefs? => incoming/reef.txt"))
    rebuilt = alias_target(corpus.es, corpus.index)
    assert len(rebuilt) == 1 and rebuilt != served
    assert corpus.indexed_etags() == etags
