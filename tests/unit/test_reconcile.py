"""The streaming merge of the bucket listing and the index's keys, against a brute-force diff of the two sets."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from latechunk.sources.documents import SourceObject
from latechunk.sources.reconcile import KeyRange, KeysOutOfOrder, Status, key_ranges, reconcile

# Letters that differ only in case, accents, CJK, a character just below the surrogates' range in UTF-16 terms
# (U+FFFD) and one above it (U+1F600): the two sort one way by code point / UTF-8 byte and the other by UTF-16.
ALPHABET = ["a", "A", "b", "é", "É", "z", "/", " ", "-", "中", "文", "\ufffd", "\U0001f600", "0", "9", "+"]
WHEN = datetime(2026, 12, 1, tzinfo=UTC)


def random_keys(rng: random.Random, n: int) -> set[str]:
    return {"docs/" + "".join(rng.choices(ALPHABET, k=rng.randint(1, 6))) for _ in range(n)}


def listed_objects(keys_and_etags: dict[str, str]) -> list[SourceObject]:
    """As S3 lists them: ascending UTF-8 bytes."""
    ordered = sorted(keys_and_etags, key=lambda key: key.encode())
    return [SourceObject("bucket", key, keys_and_etags[key], 1, WHEN) for key in ordered]


def brute_force(bucket: dict[str, str], index: dict[str, str | None]) -> dict[str, Status]:
    statuses = {}
    for key in bucket.keys() | index.keys():
        if key not in index:
            statuses[key] = Status.NEW
        elif key not in bucket:
            statuses[key] = Status.DELETED
        else:
            statuses[key] = Status.UNCHANGED if index[key] == bucket[key] else Status.CHANGED
    return statuses


def random_state(seed: int) -> tuple[dict[str, str], dict[str, str | None]]:
    rng = random.Random(seed)
    keys = sorted(random_keys(rng, rng.randint(0, 300)))
    bucket, index = {}, {}
    for key in keys:
        place = rng.random()
        if place < 0.8:
            bucket[key] = rng.choice(["e1", "e2"])
        if place > 0.2:
            index[key] = rng.choice(["e1", "e2", None])
    return bucket, index


def test_the_test_keys_sort_differently_as_utf16_so_the_order_matters():
    keys = random_keys(random.Random(0), 500)
    by_utf8 = sorted(keys, key=lambda key: key.encode())
    assert by_utf8 == sorted(keys)  # code point order is UTF-8 byte order
    assert by_utf8 != sorted(keys, key=lambda key: key.encode("utf-16-be"))


@pytest.mark.parametrize("seed", range(40))
def test_the_merge_finds_what_a_brute_force_diff_finds(seed):
    bucket, index = random_state(seed)
    indexed = sorted(index.items(), key=lambda item: item[0].encode())
    changes = list(reconcile(listed_objects(bucket), indexed))
    assert {change.key: change.status for change in changes} == brute_force(bucket, index)
    assert [change.key for change in changes] == sorted(bucket.keys() | index.keys())  # each key once, in order
    for change in changes:
        assert (change.listed is None) == (change.status is Status.DELETED)
        assert change.indexed_etag == index.get(change.key)


def test_a_case_only_difference_is_two_objects():
    bucket = {"docs/Report.pdf": "e1"}
    index = {"docs/report.pdf": "e1"}
    changes = {c.key: c.status for c in reconcile(listed_objects(bucket), list(index.items()))}
    assert changes == {"docs/Report.pdf": Status.NEW, "docs/report.pdf": Status.DELETED}


def test_an_incomplete_version_in_the_index_is_changed_even_with_the_same_etag():
    (change,) = reconcile(listed_objects({"docs/a": "e1"}), [("docs/a", None)])
    assert change.status is Status.CHANGED


@pytest.mark.parametrize("which", ["listed", "indexed"])
def test_a_stream_out_of_order_raises_rather_than_reporting_wrong_deletions(which):
    keys = ["docs/b", "docs/a"] if which == "listed" else ["docs/a", "docs/b"]
    listed = [SourceObject("bucket", key, "e", 1, WHEN) for key in keys]
    indexed = [(key, "e") for key in (["docs/a", "docs/b"] if which == "listed" else ["docs/b", "docs/a"])]
    with pytest.raises(KeysOutOfOrder, match="not in ascending key order"):
        list(reconcile(listed, indexed))


def test_utf16_order_is_refused():
    keys = ["docs/\U0001f600", "docs/\ufffd"]  # ascending in UTF-16, descending in UTF-8
    assert keys == sorted(keys, key=lambda key: key.encode("utf-16-be"))
    with pytest.raises(KeysOutOfOrder):
        list(reconcile([SourceObject("bucket", key, "e", 1, WHEN) for key in keys], []))


@pytest.mark.parametrize("seed", range(20))
def test_key_ranges_cover_every_key_exactly_once_and_shards_add_up_to_the_whole(seed):
    rng = random.Random(seed)
    bucket, index = random_state(seed + 100)
    everything = sorted(bucket.keys() | index.keys())
    candidates = sorted(random_keys(rng, 8) | set(rng.sample(everything, min(3, len(everything)))))
    ranges = key_ranges(candidates)
    assert len(ranges) == len(candidates) + 1
    for key in everything + candidates:
        assert sum(key in shard for shard in ranges) == 1, key
    whole = {c.key: c.status for c in reconcile(listed_objects(bucket), sorted(index.items()))}
    sharded: dict[str, Status] = {}
    for shard in ranges:
        part_bucket = {k: v for k, v in bucket.items() if k in shard}
        part_index = sorted((k, v) for k, v in index.items() if k in shard)
        for change in reconcile(listed_objects(part_bucket), part_index):
            assert change.key not in sharded
            sharded[change.key] = change.status
    assert sharded == whole


def test_range_bounds_are_exclusive_below_and_inclusive_above():
    shard = KeyRange(after="docs/b", through="docs/d")
    assert ["docs/b" in shard, "docs/c" in shard, "docs/d" in shard, "docs/e" in shard] == [False, True, True, False]
    with pytest.raises(ValueError, match="strictly ascending"):
        key_ranges(["docs/b", "docs/b"])
