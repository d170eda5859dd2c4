"""The index settings that differ between one node and a cluster: primary shards and replicas of a new index, and
the refresh interval while the index task writes.

Replicas default to ``auto_expand_replicas: "0-1"``: none on a single node (whose index would otherwise stay yellow
for a replica it can never place), one as soon as a second data node joins, so that a cluster survives the loss of
a node without losing a chunk. A number instead sets ``number_of_replicas`` itself.

During the bulk writes the periodic refresh is paused (``refresh_interval: -1``, Elasticsearch's advice for bulk
loads: fewer, larger segments); each batch's write still ends with an explicit refresh, which the deletes and the
checks after it rely on. The interval is reset to the index's default (1 s) when the writes end, also when they
fail; a task killed meanwhile leaves it paused until its retry (or the next run) resets it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

_AUTO_EXPAND = re.compile(r"\d+-(\d+|all)")


@dataclass(frozen=True)
class IndexSettings:
    """``shards`` and ``replicas`` apply when the index is created; ``bulk_refresh_interval`` to every index task
    ("1s", the default interval, keeps refreshing during the writes)."""

    shards: int = 1
    replicas: str = "0-1"  # a number of replicas, or an auto-expand range "min-max" (max may be "all")
    bulk_refresh_interval: str = "-1"

    def __post_init__(self) -> None:
        if int(self.shards) < 1:
            raise ValueError(f"index_shards must be at least 1, got {self.shards}")
        replica_settings(self.replicas)


def replica_settings(replicas: str | int) -> dict[str, Any]:
    """The index settings for a number of replicas (``"1"``) or an auto-expand range (``"0-1"``, ``"0-all"``)."""
    text = str(replicas).strip()
    if text.isdigit():
        return {"number_of_replicas": int(text)}
    if _AUTO_EXPAND.fullmatch(text):
        return {"auto_expand_replicas": text}
    raise ValueError(f"index_replicas must be a number or a range such as '0-1' or '0-all', got {replicas!r}")


@contextmanager
def bulk_refresh(es, index: str, interval: str) -> Iterator[None]:
    """``refresh_interval`` set to ``interval`` on the index (or the indices behind an alias) while the block
    runs, then reset to the default."""
    es.indices.put_settings(index=index, settings={"index": {"refresh_interval": interval}})
    try:
        yield
    finally:
        es.indices.put_settings(index=index, settings={"index": {"refresh_interval": None}})
        log.info("refresh of %s: %s during the writes, reset to the default", index, interval)
