"""The index settings on a real node: an auto-expanding replica range leaves a single node green, and the refresh
paused for the writes is reset after them, also when they fail."""

from __future__ import annotations

import pytest
from latechunk.index.elasticsearch import ElasticsearchBackend
from latechunk.index.settings import bulk_refresh
from latechunk.index.spec import IndexSpec


def refresh_interval(es_client, index: str) -> str | None:
    settings = es_client.indices.get_settings(index=index)
    return next(iter(settings.values()))["settings"]["index"].get("refresh_interval")


def test_auto_expanded_replicas_keep_one_node_green_and_the_refresh_comes_back(es_client, es_index):
    spec = IndexSpec(name=es_index, dims=8, model_id="test/random-encoder", replicas="0-1")
    ElasticsearchBackend(es_client).ensure_index(spec)
    health = es_client.cluster.health(index=es_index, wait_for_status="green", timeout="30s")
    assert health["status"] == "green" and not health["timed_out"], "no replica waits for a second node"
    with bulk_refresh(es_client, es_index, "-1"):
        assert refresh_interval(es_client, es_index) == "-1"
    assert refresh_interval(es_client, es_index) is None, "back to the default"
    with pytest.raises(RuntimeError), bulk_refresh(es_client, es_index, "30s"):
        raise RuntimeError("the writes failed")
    assert refresh_interval(es_client, es_index) is None
