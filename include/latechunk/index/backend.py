"""What the pipeline needs from a vector search engine (`SearchBackend`) and the results it gets back.

`latechunk.index.elasticsearch` implements it for Elasticsearch. The unit tests implement it in memory
(`tests/memory_backend.py`: the same records and mapping checks, exact kNN), so that the validation checks and the
index specs are tested without a server; the integration tests prove them against the real Elasticsearch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from latechunk.index.spec import IndexSpec
from latechunk.sources.documents import EmbeddedChunk


@dataclass
class BulkReport:
    chunks_indexed: int = 0
    level_rows_indexed: int = 0  # section and document rows (`latechunk.chunking.levels`), not in chunks_indexed
    chunks_failed: int = 0
    documents_written: int = 0
    stale_chunks_deleted: int = 0
    failed_doc_ids: set[str] = field(default_factory=set)
    errors: list[dict[str, Any]] = field(default_factory=list)
    # Objects ((bucket, key)) with a chunk the engine refused (a 4xx item): the first refusal, "type: reason".
    refused_objects: dict[tuple[str, str], str] = field(default_factory=dict)
    # Items that failed for the cluster's sake (429 after every retry, 5xx): a retry of the write may pass.
    transient_failures: int = 0

    @property
    def ok(self) -> bool:
        return self.chunks_failed == 0

    def to_dict(self) -> dict[str, Any]:
        refused = {f"{bucket}/{key}": reason for (bucket, key), reason in sorted(self.refused_objects.items())}
        failed = sorted(self.failed_doc_ids)
        return {**asdict(self), "failed_doc_ids": failed, "refused_objects": refused, "ok": self.ok}


@dataclass(frozen=True)
class SearchHit:
    id: str
    score: float
    source: dict[str, Any]


class SearchBackend(ABC):
    """What the pipeline needs from a vector search engine; `index` may be an index or an alias name."""

    @abstractmethod
    def ensure_index(self, spec: IndexSpec) -> bool:
        """Create the index if absent (returns True); raise `IndexMismatchError` if it exists but differs."""

    @abstractmethod
    def index_mismatches(self, spec: IndexSpec) -> list[str]: ...

    @abstractmethod
    def describe_index(self, index: str) -> IndexSpec | None: ...

    @abstractmethod
    def upsert_documents(self, index: str, chunks: Iterable[EmbeddedChunk], **options: Any) -> BulkReport: ...

    @abstractmethod
    def record_tombstones(self, index: str, tombstones: Sequence[Tombstone], **options: Any) -> int: ...

    @abstractmethod
    def delete_documents(self, index: str, doc_ids: Sequence[str]) -> int: ...

    @abstractmethod
    def delete_objects(self, index: str, bucket: str, keys: Sequence[str]) -> int: ...

    @abstractmethod
    def delete_superseded(self, index: str, bucket: str, etags_by_key: Mapping[str, str]) -> int: ...

    @abstractmethod
    def indexed_etags(self, index: str, **selection: Any) -> dict[str, str | None]: ...

    @abstractmethod
    def iter_indexed_etags(
        self, index: str, *, bucket: str, prefix: str = "", after: str | None = None, through: str | None = None
    ) -> Iterator[tuple[str, str | None]]:
        """(key, ETag or None) of the objects under `prefix` in a key range, in ascending key order."""

    @abstractmethod
    def indexed_keys(self, index: str, *, bucket: str | None = None, prefix: str = "") -> set[str]: ...

    @abstractmethod
    def knn_search(self, index: str, vector: np.ndarray, **options: Any) -> list[SearchHit]: ...

    @abstractmethod
    def count_by_doc(self, index: str, doc_ids: Sequence[str] | None = None, level: str = "chunk") -> dict[str, int]:
        """Rows of each document at ``level`` (`latechunk.chunking.levels`): its chunks (or tombstone) by default."""

    @abstractmethod
    def count_vectors(self, index: str) -> int:
        """Chunks with a vector (tombstones have none)."""

    @abstractmethod
    def iter_vectors(self, index: str) -> Iterator[tuple[list[str], np.ndarray]]: ...

    @abstractmethod
    def get_chunks(self, index: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The stored source (vector included) of each chunk id the index holds; absent ids are left out."""

    @abstractmethod
    def swap_alias(self, alias: str, new_index: str) -> list[str]: ...


@dataclass(frozen=True)
class Tombstone:
    """A document (version) that produced no chunk, recorded so that unchanged objects are not read again."""

    doc_id: str
    bucket: str
    key: str
    part: str
    etag: str
    reason: str
