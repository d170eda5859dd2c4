"""What changed between the bucket and the index, found by merging two key-sorted streams in constant memory.

The bucket's listing comes in key order: S3 (and MinIO) list keys in ascending order of their UTF-8 bytes. The
index's keys come in the same order: a composite aggregation on a keyword field sorts by the term's UTF-8 bytes.
Python compares strings by code point, and UTF-8 preserves code-point order, so all three agree. (UTF-16, the order
of Java and JavaScript strings, does not: U+FFFD sorts before U+1F600 by code point but after it by UTF-16 code
unit.) A stream that is not strictly ascending would make the merge report wrong deletions, so it raises instead.

Key ranges split the key space into shards that mapped tasks reconcile side by side: ``(after, through]``, the
lower bound exclusive as S3's ``StartAfter`` is, the upper inclusive, so consecutive ranges cover every key once.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from latechunk.sources.documents import SourceObject

Item = TypeVar("Item")


class Status(enum.StrEnum):
    NEW = "new"  # listed, not in the index
    CHANGED = "changed"  # listed with another ETag than the index holds (or the index holds an incomplete version)
    UNCHANGED = "unchanged"
    DELETED = "deleted"  # in the index, no longer listed


class KeysOutOfOrder(Exception):
    """A key stream was not strictly ascending, so the merge cannot tell a missing key from a late one."""


@dataclass(frozen=True)
class Change:
    status: Status
    key: str
    listed: SourceObject | None  # None for DELETED
    indexed_etag: str | None  # None for NEW, and for an incomplete version in the index


@dataclass(frozen=True)
class KeyRange:
    """Keys ``k`` with ``after < k <= through``; a None bound is open."""

    after: str | None = None
    through: str | None = None

    def __contains__(self, key: str) -> bool:
        return (self.after is None or key > self.after) and (self.through is None or key <= self.through)


ALL_KEYS = KeyRange()


def key_ranges(boundaries: Sequence[str]) -> list[KeyRange]:
    """``len(boundaries) + 1`` ranges that cover every key exactly once: up to the first boundary, between each
    two, and after the last."""
    if any(left >= right for left, right in zip(boundaries, boundaries[1:], strict=False)):
        raise ValueError("range boundaries must be strictly ascending")
    bounds: list[str | None] = [None, *boundaries, None]
    return [KeyRange(after, through) for after, through in zip(bounds, bounds[1:], strict=False)]


def reconcile(listed: Iterable[SourceObject], indexed: Iterable[tuple[str, str | None]]) -> Iterator[Change]:
    """Each key of either stream once, in key order, with what became of it. ``indexed`` yields (key, ETag of the
    complete version the index holds, or None for an incomplete one), as
    `latechunk.index.queries.IndexQueries.iter_indexed_etags` does. Both streams are consumed lazily."""
    objects = _ascending(listed, lambda obj: obj.key, "the bucket listing")
    entries = _ascending(indexed, lambda entry: entry[0], "the index's keys")
    obj, entry = next(objects, None), next(entries, None)
    while obj is not None or entry is not None:
        if entry is None or (obj is not None and obj.key < entry[0]):
            yield Change(Status.NEW, obj.key, obj, None)
            obj = next(objects, None)
        elif obj is None or entry[0] < obj.key:
            yield Change(Status.DELETED, entry[0], None, entry[1])
            entry = next(entries, None)
        else:
            status = Status.UNCHANGED if entry[1] == obj.etag else Status.CHANGED
            yield Change(status, obj.key, obj, entry[1])
            obj, entry = next(objects, None), next(entries, None)


def _ascending(items: Iterable[Item], key_of, what: str) -> Iterator[Item]:
    previous: str | None = None
    for item in items:
        key = key_of(item)
        if previous is not None and key <= previous:
            raise KeysOutOfOrder(f"{what} is not in ascending key order: {key!r} came after {previous!r}")
        previous = key
        yield item
