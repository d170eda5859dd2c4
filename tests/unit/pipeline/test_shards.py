"""Planning the extract's key ranges: balanced cuts, every key in exactly one range, fewer ranges for small
prefixes, and a gather that refuses to write a manifest without every range's result."""

from __future__ import annotations

import random

import pytest
from latechunk.pipeline.extract import ExtractSettings
from latechunk.pipeline.shards import Shard, ShardResult, gather_shards, plan_shards, quantiles


class SampledIndex:
    """The one backend call planning makes, over a known set of indexed keys."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = sorted(keys)

    def sample_keys(self, index, *, bucket, prefix, size):
        drawn = random.Random(3).sample(self.keys, min(size, len(self.keys)))
        return sorted(drawn), len(self.keys)


def settings(**changes) -> ExtractSettings:
    return ExtractSettings(bucket="b", prefix="p/", index="i", model="m", chunking={}, **changes)


def owner(shards: list[Shard], key: str) -> list[int]:
    return [shard.number for shard in shards if key in shard.keys]


def test_quantiles_cut_into_about_equal_ascending_parts():
    values = sorted(f"p/{number:05d}" for number in range(1000))
    cuts = quantiles(values, 4)
    assert cuts == sorted(set(cuts)) and len(cuts) == 3
    bounds = zip(["", *cuts], [*cuts, "~"], strict=True)
    sizes = [sum(1 for value in values if low < value <= high) for low, high in bounds]
    assert max(sizes) - min(sizes) <= 1, sizes
    assert quantiles(values[:1], 4) == [] and quantiles(values, 1) == []
    assert quantiles(values[:3], 8) == values[:2], "never more ranges than values"
    assert quantiles(values[:3], 8, starts=True) == values[1:3]


def test_ranges_from_the_index_sample_cover_every_key_once_and_balance_the_work():
    rng = random.Random(5)
    starts = ["a", "B", "é", "中", "\U0001f600"]
    keys = [f"p/{rng.choice(starts)}{rng.random():.6f}" for _ in range(20_000)]
    shards = plan_shards(None, SampledIndex(keys), settings(max_shards=4, objects_per_shard=1000, max_batches=1024))
    assert [shard.number for shard in shards] == [0, 1, 2, 3] and {shard.of for shard in shards} == {4}
    assert all(len(owner(shards, key)) == 1 for key in [*keys, "p/", "p/\U0010ffff", "a", "zzz"])
    counts = [sum(1 for key in keys if key in shard.keys) for shard in shards]
    assert min(counts) > 0.8 * len(keys) / 4, counts
    batches = [range(shard.first_batch, shard.first_batch + shard.max_batches) for shard in shards]
    assert sum(len(numbers) for numbers in batches) <= 1024
    assert len({number for numbers in batches for number in numbers}) == sum(len(numbers) for numbers in batches)


def test_a_small_index_or_one_allowed_range_gives_one_range():
    keys = [f"p/{number}" for number in range(50)]
    assert len(plan_shards(None, SampledIndex(keys), settings(max_shards=4, objects_per_shard=1000))) == 1
    assert len(plan_shards(None, SampledIndex(keys), settings(max_shards=1, objects_per_shard=1))) == 1
    assert len(plan_shards(None, SampledIndex(keys), settings(max_shards=4, objects_per_shard=20))) == 3


def test_event_keys_are_split_by_their_own_quantiles():
    keys = tuple(f"p/{number:03d}" for number in range(9)) + ("elsewhere/x",)
    shards = plan_shards(None, None, settings(keys=keys, max_shards=3, objects_per_shard=3))
    assert len(shards) == 3
    assert [sum(1 for key in keys[:9] if key in shard.keys) for shard in shards] == [3, 3, 3]


def test_the_gather_refuses_results_that_miss_a_range():
    shards = [Shard(number, 3, None, None, 10) for number in range(3)]
    results = [ShardResult(shard) for shard in shards[:2]]
    with pytest.raises(ValueError, match="expected every one of 3"):
        gather_shards(s3=None, area=None, settings=settings(), target=None, results=results)
    assert ShardResult.from_dict(results[0].to_dict()) == results[0]
