"""Work ahead of the consumer in background threads: the embed stage reads the next piece of its staged batch while
it encodes the current one (Parquet releases the GIL, torch too while it computes); extract fetches the next objects
while it parses the current one."""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")
_DONE = object()


def prefetched(items: Iterable[T], depth: int = 1) -> Iterator[T]:
    """Yield ``items`` in order, producing up to ``depth`` items ahead in a daemon thread; an exception in the
    producer is raised here, where the item would have come. Closing the generator early stops the producer."""
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if not _put(ready, (item, None), stop):
                    return
            _put(ready, (_DONE, None), stop)
        except BaseException as error:  # handed to the consumer, raised there
            _put(ready, (_DONE, error), stop)

    worker = threading.Thread(target=produce, name="latechunk-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item, error = ready.get()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        worker.join(timeout=60)


def _put(ready: queue.Queue, entry: tuple, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            ready.put(entry, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def map_ahead(
    function: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int = 8,
    ahead: int = 32,
    cost: Callable[[T], int] | None = None,
    max_cost_ahead: int | None = None,
) -> Iterator[R]:
    """``function(item)`` for every item, yielded in order, computed by ``workers`` threads at most ``ahead`` items
    ahead of the consumer (so that results never pile up). An exception is raised where its result would come.

    With ``cost`` (e.g. an object's size, known before it is fetched) the items submitted and not yet consumed also
    stay within ``max_cost_ahead`` together: a new item waits until the consumer has taken enough, except when
    nothing is pending (an item costlier than the whole budget still goes through, alone)."""
    costs: deque[int] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="latechunk-reader") as pool:
        pending: deque[Future[R]] = deque()
        try:
            for item in items:
                item_cost = cost(item) if cost is not None else 0
                while pending and (
                    len(pending) >= ahead or (max_cost_ahead is not None and sum(costs) + item_cost > max_cost_ahead)
                ):
                    costs.popleft()
                    yield pending.popleft().result()
                pending.append(pool.submit(function, item))
                costs.append(item_cost)
            while pending:
                costs.popleft()
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
