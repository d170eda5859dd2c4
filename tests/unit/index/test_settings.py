"""Index settings for a node and a cluster: replicas as a number or an auto-expand range, refused otherwise."""

from __future__ import annotations

import pytest
from latechunk.index.settings import IndexSettings, replica_settings
from latechunk.index.spec import IndexSpec, index_body
from latechunk.settings import from_rendered


def test_replicas_are_a_number_or_a_range_that_follows_the_nodes():
    assert replica_settings("1") == {"number_of_replicas": 1}
    assert replica_settings(0) == {"number_of_replicas": 0}
    assert replica_settings("0-1") == {"auto_expand_replicas": "0-1"}
    assert replica_settings(" 0-all ") == {"auto_expand_replicas": "0-all"}
    for wrong in ("one", "1-", "-1", "0-1-2", ""):
        with pytest.raises(ValueError, match="index_replicas"):
            replica_settings(wrong)


def test_a_new_index_gets_the_shards_and_replicas_of_the_settings():
    settings = index_body(IndexSpec(name="i", dims=8, model_id="m", shards=3, replicas="0-1"))["settings"]
    assert settings == {"number_of_shards": 3, "auto_expand_replicas": "0-1"}
    assert "number_of_replicas" not in index_body(IndexSpec(name="i", dims=8, model_id="m"))["settings"]


def test_settings_from_the_rendered_params_are_cast_and_checked():
    assert from_rendered(IndexSettings, {"shards": "2", "replicas": "1"}) == IndexSettings(2, "1", "-1")
    assert from_rendered(IndexSettings, {"shards": None, "bulk_refresh_interval": ""}) == IndexSettings()
    with pytest.raises(ValueError, match="index_shards"):
        from_rendered(IndexSettings, {"shards": 0})
    with pytest.raises(ValueError, match="index_replicas"):
        from_rendered(IndexSettings, {"replicas": "many"})
