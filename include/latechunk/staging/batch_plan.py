"""How extract cuts the documents it stages into batches: sized by their tokens, never more batches than Airflow
will map.

Each staged batch becomes one mapped annotate and one mapped embed task. A batch should be large enough that the
fixed cost of a task (process start, torch import, model load: 5-10 s) is a small share of its time, and small
enough that a retry repeats little and progress is visible. Airflow refuses to map more than ``[core]
max_map_length`` (default 1024) task instances, so the number of batches has a hard ceiling: past it the run fails
after extract.

Tokens are only counted when annotate tokenizes; extract estimates them from the text's length, one token per
``CHARS_PER_TOKEN`` characters (about what BPE and WordPiece vocabularies give on English prose: less for code,
numbers or other scripts, whose batches then hold more real tokens than estimated).

The planner streams: documents come in one object at a time and leave in batches as soon as a batch is full, so
it holds at most one object's documents and one batch. Since the run's totals are unknown while it streams, it
estimates what is still to come from the listed sizes of the objects not read yet, scaled by the tokens and
documents per byte of the objects read so far. When the configured limits would need more batches than are left,
each batch gets ``ceil(estimated work left / batches left)``. The last batch left takes everything that remains, so
the ceiling holds even when the estimate is wrong; that batch is then larger than planned.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

CHARS_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    """Estimated tokens of a text: one per ``CHARS_PER_TOKEN`` characters, rounded up; at least 1, so that every
    document counts against the budget."""
    return max(1, -(-len(text) // CHARS_PER_TOKEN))


@dataclass(frozen=True)
class Batch(Generic[T]):
    """One cut batch: its items, their estimated tokens, and the limits in force when it was cut."""

    items: list[T]
    tokens: int
    token_limit: int
    docs_limit: int | None

    def describe(self) -> dict[str, int | None]:
        return {
            "documents": len(self.items),
            "tokens": self.tokens,
            "token_limit": self.token_limit,
            "docs_limit": self.docs_limit,
        }


@dataclass
class BatchPlanner(Generic[T]):
    """Cuts a stream of (item, estimated tokens) into batches of at most ``token_budget`` tokens and
    ``docs_per_batch`` items (``None``: no count limit), and at most ``max_batches`` batches in all.

    ``unread_bytes`` is the listed size of all the objects the run will read; `add` each object's items with the
    object's size as they are read, write the batches it returns, then write those of `finish`. An item larger than
    the budget gets a batch of its own. Items keep their order.
    """

    token_budget: int
    max_batches: int
    unread_bytes: int
    docs_per_batch: int | None = None
    batches: int = 0
    read_bytes: int = 0
    read_tokens: int = 0
    read_docs: int = 0
    cut: list[dict[str, int | None]] = field(default_factory=list, repr=False)
    _pending: list[tuple[T, int]] = field(default_factory=list, repr=False)
    _pending_tokens: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        if self.token_budget < 1:
            raise ValueError(f"batch_token_budget must be >= 1, got {self.token_budget}")
        if self.max_batches < 1:
            raise ValueError(f"max_batches must be >= 1, got {self.max_batches}")
        if self.docs_per_batch is not None and self.docs_per_batch < 1:
            raise ValueError(f"docs_per_batch must be >= 1, got {self.docs_per_batch}")

    def add(self, size_bytes: int, items: Iterable[tuple[T, int]]) -> list[Batch[T]]:
        """Take the items of one object of ``size_bytes`` listed bytes; returns the batches that are now full."""
        self.unread_bytes = max(self.unread_bytes - size_bytes, 0)
        self.read_bytes += size_bytes
        for item, tokens in items:
            self._pending.append((item, tokens))
            self._pending_tokens += tokens
            self.read_tokens += tokens
            self.read_docs += 1
        return self._cut(final=False)

    def forget(self, size_bytes: int) -> None:
        """An object that gave no items (quarantined, gone): its bytes leave the estimate of the work left without
        counting in the tokens and documents per byte, which describe the objects that do give documents."""
        self.unread_bytes = max(self.unread_bytes - size_bytes, 0)

    def finish(self) -> list[Batch[T]]:
        """The batches of what is left once every object has been read."""
        self.unread_bytes = 0
        return self._cut(final=True)

    def limits(self) -> tuple[int, int | None]:
        """Tokens and items per batch now: the configured ones, raised so that the estimated work left fits in
        the batches left."""
        left = max(self.max_batches - self.batches, 1)
        tokens_per_byte = self.read_tokens / self.read_bytes if self.read_bytes else 1 / CHARS_PER_TOKEN
        docs_per_byte = self.read_docs / self.read_bytes if self.read_bytes else 0.0
        tokens_left = self._pending_tokens + self.unread_bytes * tokens_per_byte
        docs_left = len(self._pending) + self.unread_bytes * docs_per_byte
        budget = max(self.token_budget, _ceil(tokens_left / left))
        if self.docs_per_batch is None:
            return budget, None
        return budget, max(self.docs_per_batch, _ceil(docs_left / left))

    def summary(self) -> dict[str, object]:
        """The settings, the estimated tokens and each batch's size and limits, for the run's manifest."""
        return {
            "batch_token_budget": self.token_budget,
            "docs_per_batch": self.docs_per_batch,
            "max_batches": self.max_batches,
            "chars_per_token": CHARS_PER_TOKEN,
            "estimated_tokens": self.read_tokens,
            "batches": self.cut,
        }

    def log_summary(self) -> None:
        largest = max((batch["tokens"] for batch in self.cut), default=0)
        log.info("%d batches (at most %d), the largest %s estimated tokens", self.batches, self.max_batches,
                 f"{largest:,}")  # fmt: skip
        token_limit = max((batch["token_limit"] for batch in self.cut), default=0)
        docs_limit = max((batch["docs_limit"] or 0 for batch in self.cut), default=0)
        grown = []
        if token_limit > self.token_budget:
            grown.append(f"{token_limit:,} estimated tokens (batch_token_budget {self.token_budget:,})")
        if self.docs_per_batch is not None and docs_limit > self.docs_per_batch:
            grown.append(f"{docs_limit:,} documents (docs_per_batch {self.docs_per_batch:,})")
        if grown:
            log.warning(
                "batches grown to up to %s so that there are no more than max_batches=%d (Airflow's [core] "
                "max_map_length)", " and ".join(grown), self.max_batches,
            )  # fmt: skip

    def _cut(self, *, final: bool) -> list[Batch[T]]:
        cut: list[Batch[T]] = []
        while self._pending:
            budget, docs_limit = self.limits()
            fits = self._pending_tokens <= budget and (docs_limit is None or len(self._pending) <= docs_limit)
            if fits and not final:
                break  # not full yet: more items may join it (checked in O(1): `add` runs once per object)
            take = tokens = 0
            for _, cost in self._pending:
                if take and ((docs_limit is not None and take >= docs_limit) or tokens + cost > budget):
                    break
                take += 1
                tokens += cost
            cut.append(Batch([item for item, _ in self._pending[:take]], tokens, budget, docs_limit))
            self.cut.append(cut[-1].describe())
            del self._pending[:take]
            self._pending_tokens -= tokens
            self.batches += 1
        return cut


def _ceil(value: float) -> int:
    return int(-(-value // 1))
