"""Bulk writes for the index: byte-bounded requests, a few in flight at once, every item's result reported.

Throughput: one bulk request to a one-shard index is applied by one write thread, so a single stream of
requests leaves the node's other cores idle; two requests in flight roughly double the indexing rate of a small
node (see bench/index_throughput.py). Results come back per item, in request order, whatever the concurrency.

Faults: items rejected with 429 are retried with exponential backoff (`helpers.streaming_bulk`); a request that
fails as a whole on a transport error (connection refused or reset, timeout, 502/503/504: a node restarting) is
sent again with backoff, which is safe because every action has a fixed `_id` and a fixed body. When the retries
run out the error propagates and the task fails; its retry writes everything again, idempotently. Items that still
fail with 429 or a 5xx (`is_transient_item`) are the cluster's fault too; any other failed item (a 4xx: the engine
refused that document) is the document's.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from elasticsearch import ApiError, ConnectionError, ConnectionTimeout, helpers

log = logging.getLogger(__name__)

# Bodies of about 5 MB (some 500 chunks of 768 dims) index faster on a small node than 10 MB ones, and two of
# them in flight keep its write threads busy.
MAX_BULK_BYTES = 5 * 1024 * 1024
MAX_BULK_ACTIONS = 500
BULK_CONCURRENCY = 2
TRANSIENT_STATUSES = (502, 503, 504)
_ACTION_OVERHEAD = 64  # bytes of the action line around `_index` and `_id`

BulkResult = tuple[bool, dict[str, Any]]


def is_transient_item(status: int | None) -> bool:
    """Whether a failed bulk item failed for the cluster's sake (throttled, unavailable), not for its content."""
    return status is None or status == 429 or status >= 500


def bulk_requests(actions: Iterable[dict[str, Any]], max_actions: int, max_bytes: int) -> Iterator[list[dict]]:
    """Group actions (with `_source` already serialised to bytes) into requests under both limits."""
    request: list[dict[str, Any]] = []
    size = 0
    for action in actions:
        action_size = len(action.get("_source", b"")) + len(action["_id"]) + len(action["_index"]) + _ACTION_OVERHEAD
        if request and (len(request) >= max_actions or size + action_size > max_bytes):
            yield request
            request, size = [], 0
        request.append(action)
        size += action_size
    if request:
        yield request


def send_request(
    client: Any,
    request: list[dict[str, Any]],
    *,
    max_retries: int,
    initial_backoff: float = 1.0,
    max_backoff: float = 30.0,
) -> list[BulkResult]:
    """One bulk request's per-item results; 429s and transient transport errors retried with backoff."""
    for attempt in range(max_retries + 1):
        try:
            return list(
                helpers.streaming_bulk(
                    client,
                    request,
                    chunk_size=len(request),
                    max_chunk_bytes=2**31,  # already bounded by `bulk_requests`
                    raise_on_error=False,
                    max_retries=max_retries,
                    initial_backoff=initial_backoff,
                    max_backoff=max_backoff,
                )
            )
        except (ConnectionError, ConnectionTimeout, ApiError) as error:
            transient = not isinstance(error, ApiError) or error.status_code in TRANSIENT_STATUSES
            if not transient or attempt == max_retries:
                raise
            delay = min(max_backoff, initial_backoff * 2**attempt)
            log.warning(
                "bulk request of %d actions failed (%s: %s); retry %d/%d in %.0f s",
                len(request),
                type(error).__name__,
                error,
                attempt + 1,
                max_retries,
                delay,
            )
            time.sleep(delay)
    raise AssertionError("unreachable")


def concurrent_bulk(
    client: Any,
    actions: Iterable[dict[str, Any]],
    *,
    concurrency: int = BULK_CONCURRENCY,
    max_actions: int = MAX_BULK_ACTIONS,
    max_bytes: int = MAX_BULK_BYTES,
    max_retries: int = 5,
    initial_backoff: float = 1.0,
    max_backoff: float = 30.0,
) -> Iterator[BulkResult]:
    """(ok, item) for every action, like `helpers.streaming_bulk`, with up to `concurrency` requests in flight.

    `actions` is consumed lazily in the calling thread (an exception it raises stops the writes); at most
    `concurrency` + 1 requests are held in memory.
    """
    requests = bulk_requests(actions, max_actions, max_bytes)
    options = {"max_retries": max_retries, "initial_backoff": initial_backoff, "max_backoff": max_backoff}
    if concurrency <= 1:
        for request in requests:
            yield from send_request(client, request, **options)
        return
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="latechunk-bulk") as pool:
        pending: deque[Future[list[BulkResult]]] = deque()
        try:
            for request in requests:
                pending.append(pool.submit(send_request, client, request, **options))
                if len(pending) >= concurrency:
                    yield from pending.popleft().result()
            while pending:
                yield from pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def delete_hits(client: Any, index: str, hits: list[dict[str, Any]], *, max_retries: int) -> int:
    """Delete search hits by `_id` in one bulk; returns how many were deleted. A chunk already gone is no error."""
    actions = ({"_op_type": "delete", "_index": hit["_index"], "_id": hit["_id"]} for hit in hits)
    deleted = 0
    failures = []
    for ok, item in helpers.streaming_bulk(client, actions, raise_on_error=False, max_retries=max_retries):
        if ok:
            deleted += 1
        elif item["delete"].get("status") != 404:
            failures.append(item["delete"])
    if failures:
        raise RuntimeError(f"{len(failures)} chunk deletes failed on {index!r}: {failures[:5]}")
    return deleted
