"""An in-memory `SearchBackend` for unit tests: the validation checks and the index specs without a server.

It stores what Elasticsearch would store: each record's source is built by the same bulk actions
(`latechunk.index.actions`) and read back from its JSON, the mapping is `index_body(spec)`'s and existing indices
are compared with `mismatches`, so records, tombstones, stale versions and `object_records` look as they do in the
real index. kNN is exact (every vector scored, Elasticsearch's score for the similarity), so a unit test sees the
neighbours an approximate search should find. What it does not model (refresh delays, bulk retries, refused items,
paging limits) is for the integration tests against the real Elasticsearch, which stay the proof.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
from latechunk.chunking.levels import CHUNK
from latechunk.index.actions import chunk_action, safe_metadata, tombstone_action
from latechunk.index.backend import BulkReport, SearchBackend, SearchHit, Tombstone
from latechunk.index.queries import _Found
from latechunk.index.spec import (
    VECTOR_FIELD,
    IndexMismatchError,
    IndexSpec,
    index_body,
    mismatches,
    spec_from_mapping,
)
from latechunk.sources.documents import EmbeddedChunk

PAGE_SIZE = 1000


class MemoryBackend(SearchBackend):
    def __init__(self) -> None:
        self.mappings: dict[str, dict[str, Any]] = {}  # index -> mappings, as `indices.get_mapping` gives them
        self.records: dict[str, dict[str, dict[str, Any]]] = {}  # index -> _id -> _source
        self.aliases: dict[str, list[str]] = {}

    def _names(self, index: str) -> list[str]:
        """The indices behind a name (an index or an alias); KeyError when there is none, like a 404."""
        names = self.aliases.get(index) or ([index] if index in self.mappings else [])
        if not names:
            raise KeyError(f"no such index: {index!r}")
        return names

    def _write_target(self, index: str) -> str:
        names = self._names(index)
        if len(names) != 1:
            raise ValueError(f"alias {index!r} has {len(names)} indices: no write index")
        return names[0]

    def _sources(self, index: str) -> Iterator[tuple[str, dict[str, Any]]]:
        for name in self._names(index):
            yield from self.records[name].items()

    def create_index(self, spec: IndexSpec) -> None:
        self.mappings[spec.name] = orjson.loads(orjson.dumps(index_body(spec)["mappings"]))
        self.records[spec.name] = {}

    def ensure_index(self, spec: IndexSpec) -> bool:
        if spec.name not in self.mappings and spec.name not in self.aliases:
            self.create_index(spec)
            return True
        problems = self.index_mismatches(spec)
        if problems:
            raise IndexMismatchError(spec.name, problems)
        return False

    def index_mismatches(self, spec: IndexSpec) -> list[str]:
        try:
            names = self._names(spec.name)
        except KeyError:
            return [f"index {spec.name!r} does not exist"]
        return [
            problem if name == spec.name else f"{name}: {problem}"
            for name in names
            for problem in mismatches(spec, self.mappings[name])
        ]

    def describe_index(self, index: str) -> IndexSpec | None:
        name = self._names(index)[0]
        return spec_from_mapping(name, self.mappings[name])

    def upsert_documents(
        self,
        index: str,
        chunks: Iterable[EmbeddedChunk],
        *,
        object_records: Mapping[tuple[str, str], int] | None = None,
        indexed_at: datetime | None = None,
        refresh: bool = True,
        progress: Any = None,
    ) -> BulkReport:
        """Write the chunks, then delete the other versions of every document written; a chunk whose vector has
        another size than the mapping's is refused, as Elasticsearch refuses it."""
        chunks = list(chunks)
        if object_records is None:
            documents = {chunk.doc_id: ((chunk.bucket, chunk.key), chunk.n_chunks) for chunk in chunks}
            object_records = Counter()
            for ref, n_chunks in documents.values():
                object_records[ref] += n_chunks
        target = self._write_target(index)
        dims = self.mappings[target]["properties"][VECTOR_FIELD]["dims"]
        report = BulkReport()
        versions: dict[str, tuple[str, int]] = {}
        for chunk in chunks:
            version = versions.setdefault(chunk.doc_id, (chunk.etag, chunk.n_chunks))
            if version != (chunk.etag, chunk.n_chunks):
                raise ValueError(f"document {chunk.doc_id} comes in two versions in one upsert")
            if np.asarray(chunk.vector).shape != (dims,):
                report.chunks_failed += 1
                report.failed_doc_ids.add(chunk.doc_id)
                reason = f"mapper_parsing_exception: vector of {np.asarray(chunk.vector).size} dims, mapping {dims}"
                report.refused_objects.setdefault((chunk.bucket, chunk.key), reason)
                continue
            action = chunk_action(
                target, chunk, indexed_at or datetime.now(UTC),
                object_records=object_records[chunk.bucket, chunk.key], metadata=safe_metadata(chunk.metadata),
            )  # fmt: skip
            self.records[target][action["_id"]] = orjson.loads(action["_source"])
            if chunk.is_chunk:
                report.chunks_indexed += 1
            else:
                report.level_rows_indexed += 1
            if progress is not None:
                progress(report)
        written = {doc_id: version for doc_id, version in versions.items() if doc_id not in report.failed_doc_ids}
        report.documents_written = len(written)
        report.stale_chunks_deleted = self._delete_where(
            target, lambda s: s["doc_id"] in written and (s["etag"], s["n_chunks"]) != written[s["doc_id"]]
        )
        return report

    def record_tombstones(
        self,
        index: str,
        tombstones: Sequence[Tombstone],
        *,
        model_id: str,
        object_records: Mapping[tuple[str, str], int] | None = None,
        indexed_at: datetime | None = None,
    ) -> int:
        if not tombstones:
            return 0
        target = self._write_target(index)
        if object_records is None:
            object_records = Counter((tombstone.bucket, tombstone.key) for tombstone in tombstones)
        for tombstone in tombstones:
            action = tombstone_action(
                target, tombstone, model_id, indexed_at or datetime.now(UTC),
                object_records=object_records[tombstone.bucket, tombstone.key],
            )  # fmt: skip
            self.records[target][action["_id"]] = orjson.loads(action["_source"])
        current = {tombstone.doc_id: tombstone.etag for tombstone in tombstones}
        self._delete_where(
            target, lambda s: s["doc_id"] in current and (s["etag"], s["n_chunks"]) != (current[s["doc_id"]], 0)
        )
        return len(tombstones)

    def _delete_where(self, index: str, matches) -> int:
        deleted = 0
        for name in self._names(index):
            stale = [record_id for record_id, source in self.records[name].items() if matches(source)]
            for record_id in stale:
                del self.records[name][record_id]
            deleted += len(stale)
        return deleted

    def delete_documents(self, index: str, doc_ids: Sequence[str]) -> int:
        wanted = set(doc_ids)
        return self._delete_where(index, lambda s: s["doc_id"] in wanted)

    def delete_objects(self, index: str, bucket: str, keys: Sequence[str]) -> int:
        wanted = set(keys)
        return self._delete_where(index, lambda s: s["bucket"] == bucket and s["key"] in wanted)

    def delete_superseded(self, index: str, bucket: str, etags_by_key: Mapping[str, str]) -> int:
        return self._delete_where(
            index, lambda s: s["bucket"] == bucket and s["key"] in etags_by_key and s["etag"] != etags_by_key[s["key"]]
        )

    def indexed_etags(
        self,
        index: str,
        *,
        doc_ids: Sequence[str] | None = None,
        keys: Sequence[str] | None = None,
        bucket: str | None = None,
    ) -> dict[str, str | None]:
        """As `IndexQueries.indexed_etags`, with the same completeness rule (`_Found`)."""
        if doc_ids is not None and keys is not None:
            raise ValueError("pass doc_ids or keys, not both")
        by = "doc_id" if doc_ids is not None else "key"
        selected = doc_ids if doc_ids is not None else keys
        wanted = None if selected is None else set(selected)
        groups: Counter[tuple] = Counter()
        for _, source in self._sources(index):
            if (bucket and source["bucket"] != bucket) or (wanted is not None and source[by] not in wanted):
                continue
            if source.get("level", CHUNK) != CHUNK:  # completeness is judged by chunks, as object_records counts
                continue
            object_records = source.get("object_records") if by == "key" else None
            groups[source[by], source["doc_id"], source["etag"], source["n_chunks"], object_records] += 1
        found: dict[str, _Found] = {}
        for (name, _, etag, n_chunks, object_records), count in groups.items():
            found.setdefault(name, _Found()).add(etag, n_chunks, object_records, count)
        return {name: state.complete_etag() for name, state in found.items()}

    def iter_indexed_etags(
        self, index: str, *, bucket: str, prefix: str = "", after: str | None = None, through: str | None = None
    ) -> Iterator[tuple[str, str | None]]:
        """As `IndexQueries.iter_indexed_etags`: keys in UTF-8 byte order, the order of Elasticsearch's keywords."""
        low, high = (None if bound is None else bound.encode("utf-8") for bound in (after, through))
        keys = {
            key
            for key in self.indexed_keys(index, bucket=bucket, prefix=prefix)
            if (low is None or key.encode("utf-8") > low) and (high is None or key.encode("utf-8") <= high)
        }
        etags = self.indexed_etags(index, keys=sorted(keys), bucket=bucket) if keys else {}
        for key in sorted(etags, key=lambda key: key.encode("utf-8")):
            yield key, etags[key]

    def indexed_keys(self, index: str, *, bucket: str | None = None, prefix: str = "") -> set[str]:
        return {
            source["key"]
            for _, source in self._sources(index)
            if (not bucket or source["bucket"] == bucket) and source["key"].startswith(prefix)
        }

    def knn_search(
        self,
        index: str,
        vector: np.ndarray,
        *,
        k: int = 10,
        num_candidates: int = 100,
        filter: Any = None,
        level: str = CHUNK,
    ) -> list[SearchHit]:
        """The exact top k by the mapping's similarity, scored as Elasticsearch scores; tombstones are never hits."""
        if filter is not None:
            raise NotImplementedError("the in-memory backend has no query language: filter is not supported")
        found = self.describe_index(index)
        query = np.asarray(vector, dtype=np.float32)
        if query.shape != (found.dims,):
            raise ValueError(f"the query vector has {query.size} dims, the index {found.dims} (a 400 from the engine)")
        scored = []
        for record_id, source in self._sources(index):
            if VECTOR_FIELD in source and source.get("level", CHUNK) == level:
                score = _score(found.similarity, query, np.asarray(source[VECTOR_FIELD], dtype=np.float32))
                scored.append((score, record_id, source))
        scored.sort(key=lambda item: -item[0])
        return [
            SearchHit(record_id, score, {name: value for name, value in source.items() if name != VECTOR_FIELD})
            for score, record_id, source in scored[:k]
        ]

    def count_vectors(self, index: str) -> int:
        return sum(VECTOR_FIELD in source for _, source in self._sources(index))

    def count_by_doc(self, index: str, doc_ids: Sequence[str] | None = None, level: str = CHUNK) -> dict[str, int]:
        wanted = None if doc_ids is None else set(doc_ids)
        counts = Counter(s["doc_id"] for _, s in self._sources(index)
                         if (wanted is None or s["doc_id"] in wanted) and s.get("level", CHUNK) == level)  # fmt: skip
        return dict(counts)

    def iter_vectors(self, index: str) -> Iterator[tuple[list[str], np.ndarray]]:
        with_vectors = [(record_id, s[VECTOR_FIELD]) for record_id, s in self._sources(index)
                        if VECTOR_FIELD in s and s.get("level", CHUNK) == CHUNK]  # fmt: skip
        for start in range(0, len(with_vectors), PAGE_SIZE):
            page = with_vectors[start : start + PAGE_SIZE]
            yield [record_id for record_id, _ in page], np.array([vector for _, vector in page], np.float32)

    def get_chunks(self, index: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        stored = dict(self._sources(index))
        return {record_id: dict(stored[record_id]) for record_id in ids if record_id in stored}

    def swap_alias(self, alias: str, new_index: str) -> list[str]:
        if alias in self.mappings:
            raise ValueError(f"{alias!r} is an index, not an alias: an alias cannot take its name")
        previous = [name for name in self.aliases.get(alias, []) if name != new_index]
        self.aliases[alias] = [new_index]
        return previous


def _score(similarity: str, query: np.ndarray, stored: np.ndarray) -> float:
    """Elasticsearch's kNN score for the similarity (higher is nearer)."""
    if similarity == "cosine":
        norms = float(np.linalg.norm(query) * np.linalg.norm(stored))
        return (1 + float(query @ stored) / norms) / 2 if norms else 0.5
    if similarity == "dot_product":
        return (1 + float(query @ stored)) / 2
    if similarity == "l2_norm":
        return 1 / (1 + float(((query - stored) ** 2).sum()))
    dot = float(query @ stored)  # max_inner_product
    return 1 / (1 - dot) if dot < 0 else dot + 1
