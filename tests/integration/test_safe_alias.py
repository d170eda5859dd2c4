"""The reindex's alias swap moves the alias only between indices this pipeline built for it: an alias over any other
index (no `_meta.latechunk`, or an index of another alias) is refused before anything is written, and the indices
stay as they were; its own indices are swapped and, when asked, the old one deleted."""

from __future__ import annotations

import pytest
from latechunk.index.elasticsearch import ElasticsearchBackend
from latechunk.index.spec import IndexSpec
from latechunk.pipeline.alias import ForeignIndexError, swap_alias

pytestmark = pytest.mark.integration


def ours(es_client, name: str) -> str:
    ElasticsearchBackend(es_client).ensure_index(IndexSpec(name=name, dims=8, model_id="test/model", replicas=0))
    return name


def state(es_client, alias: str) -> tuple[list[str], list[str]]:
    """The indices the alias serves and every index of the test."""
    return ElasticsearchBackend(es_client).alias_targets(alias), sorted(es_client.indices.get(index=f"{alias}*"))


def test_an_alias_over_a_foreign_index_is_refused_and_nothing_changes(es_client, es_index):
    es_client.indices.create(index=f"{es_index}-theirs", aliases={es_index: {}})
    es_client.index(index=f"{es_index}-theirs", document={"title": "their data"}, refresh=True)
    new = ours(es_client, f"{es_index}-v2")
    before = state(es_client, es_index)

    refused = rf"'{es_index}-theirs' was not built by latechunk.*Nothing was changed"
    with pytest.raises(ForeignIndexError, match=refused):
        swap_alias(es=es_client, alias=es_index, new_index=new, delete_old=True)
    assert state(es_client, es_index) == before == ([f"{es_index}-theirs"], [f"{es_index}-theirs", new])
    assert es_client.count(index=f"{es_index}-theirs")["count"] == 1


def test_an_index_built_for_another_alias_is_neither_detached_nor_served(es_client, es_index):
    other = ours(es_client, f"other-{es_index}-v1")
    try:
        es_client.indices.put_alias(index=other, name=es_index)
        new = ours(es_client, f"{es_index}-v2")
        with pytest.raises(ForeignIndexError, match="was built for another alias"):
            swap_alias(es=es_client, alias=es_index, new_index=new, delete_old=True)
        assert ElasticsearchBackend(es_client).alias_targets(es_index) == [other]
        with pytest.raises(ForeignIndexError, match=rf"'{other}' was built for another alias"):
            swap_alias(es=es_client, alias=f"{es_index}-x", new_index=other)
        assert ElasticsearchBackend(es_client).alias_targets(f"{es_index}-x") == []
    finally:
        es_client.indices.delete(index=other)


def test_its_own_indices_are_swapped_and_the_old_one_deleted(es_client, es_index):
    old, new = ours(es_client, f"{es_index}-v1"), ours(es_client, f"{es_index}-v2")
    es_client.indices.put_alias(index=old, name=es_index)
    swapped = swap_alias(es=es_client, alias=es_index, new_index=new, delete_old=True)
    assert swapped["previous"] == [old]
    assert state(es_client, es_index) == ([new], [new])
