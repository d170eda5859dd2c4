"""Working ahead in threads keeps order, bounds how far it runs ahead, and raises a worker's error in the consumer."""

from __future__ import annotations

import threading
import time

import pytest
from latechunk.staging.prefetch import map_ahead, prefetched


def test_map_ahead_keeps_the_order_of_slow_and_fast_items():
    def slow_for_even(n: int) -> int:
        time.sleep(0.02 if n % 2 == 0 else 0.0)
        return n * n

    assert list(map_ahead(slow_for_even, range(50), workers=4, ahead=8)) == [n * n for n in range(50)]


def test_map_ahead_runs_at_most_ahead_items_before_the_consumer():
    started = []
    lock = threading.Lock()

    def record(n: int) -> int:
        with lock:
            started.append(n)
        return n

    results = map_ahead(record, range(100), workers=4, ahead=5)
    assert next(results) == 0
    time.sleep(0.1)
    assert len(started) <= 5
    assert list(results) == list(range(1, 100))


def test_map_ahead_raises_the_error_where_its_result_would_come():
    def fails_on_three(n: int) -> int:
        if n == 3:
            raise ValueError("object 3 is broken")
        return n

    seen = []
    with pytest.raises(ValueError, match="object 3"):
        for value in map_ahead(fails_on_three, range(10), workers=2, ahead=4):
            seen.append(value)
    assert seen == [0, 1, 2]


def test_prefetched_yields_everything_in_order_and_raises_the_producers_error():
    assert list(prefetched(iter(range(20)))) == list(range(20))

    def breaks() -> list[int]:
        yield 1
        raise RuntimeError("tokenizer crashed")

    got = []
    with pytest.raises(RuntimeError, match="tokenizer crashed"):
        for item in prefetched(breaks()):
            got.append(item)
    assert got == [1]


def test_prefetched_stays_one_item_ahead_and_stops_when_the_consumer_leaves():
    produced = []

    def counting():
        for n in range(1000):
            produced.append(n)
            yield n

    items = prefetched(counting(), depth=1)
    assert next(items) == 0
    time.sleep(0.2)
    assert len(produced) <= 3  # the item handed over, one waiting in the queue, one being put
    items.close()
    time.sleep(0.3)
    stopped_at = len(produced)
    time.sleep(0.2)
    assert len(produced) == stopped_at < 1000


def test_map_ahead_keeps_the_bytes_in_flight_within_the_budget():
    """Items of 10 to 60 units, a budget of 100: what is fetched and not yet consumed never passes it, and an item
    above the budget goes through alone."""
    sizes = [10, 60, 30, 50, 20, 40, 60, 10, 250, 30, 30, 30] * 4
    lock = threading.Lock()
    in_flight, most = [0], [0]

    def fetch(n: int) -> int:
        with lock:
            in_flight[0] += sizes[n]
            most[0] = max(most[0], in_flight[0] if sizes[n] <= 100 else 0)
        return n

    results = []
    for n in map_ahead(fetch, range(len(sizes)), workers=4, ahead=32, cost=lambda n: sizes[n], max_cost_ahead=100):
        time.sleep(0.002)  # a slow consumer: the readers would run ahead if nothing held them
        results.append(n)
        with lock:
            in_flight[0] -= sizes[n]
    assert results == list(range(len(sizes)))
    assert most[0] <= 100, "never more than the budget fetched and not yet consumed"
