"""The search index behind a small backend interface, and its Elasticsearch implementation.

Writes are exact and repeatable: chunks are upserted under deterministic ids, then every chunk of a written
document that belongs to another version (other ETag or other chunk count) is deleted, so re-running a write never
duplicates data and a shrunk document leaves no stale chunk behind. The mapping and serialisation live in
`latechunk.index_mapping`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from elasticsearch import BadRequestError, Elasticsearch, NotFoundError, helpers

from latechunk.documents import EmbeddedChunk
from latechunk.index_mapping import (
    VECTOR_FIELD,
    IndexMismatchError,
    IndexSpec,
    chunk_action,
    index_body,
    mismatches,
    spec_from_mapping,
)

MAX_BULK_BYTES = 10 * 1024 * 1024
MAX_REPORTED_ERRORS = 100
# Terms per query and documents per stale-chunk query, both well below Elasticsearch's terms and clause limits.
TERMS_PER_QUERY = 10_000
DOCS_PER_STALE_QUERY = 200
PAGE_SIZE = 1000


@dataclass
class BulkReport:
    chunks_indexed: int = 0
    chunks_failed: int = 0
    documents_written: int = 0
    stale_chunks_deleted: int = 0
    failed_doc_ids: set[str] = field(default_factory=set)
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.chunks_failed == 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "failed_doc_ids": sorted(self.failed_doc_ids), "ok": self.ok}


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
    def delete_documents(self, index: str, doc_ids: Sequence[str]) -> int: ...

    @abstractmethod
    def delete_objects(self, index: str, bucket: str, keys: Sequence[str]) -> int: ...

    @abstractmethod
    def indexed_etags(
        self, index: str, values: Sequence[str] | None = None, *, by: str = "doc_id", bucket: str | None = None
    ) -> dict[str, str | None]: ...

    @abstractmethod
    def knn_search(self, index: str, vector: np.ndarray, **options: Any) -> list[SearchHit]: ...

    @abstractmethod
    def count_by_doc(self, index: str, doc_ids: Sequence[str] | None = None) -> dict[str, int]: ...

    @abstractmethod
    def iter_vectors(self, index: str) -> Iterator[tuple[list[str], np.ndarray]]: ...

    @abstractmethod
    def swap_alias(self, alias: str, new_index: str) -> list[str]: ...


class ElasticsearchBackend(SearchBackend):
    def __init__(self, client: Elasticsearch, *, max_retries: int = 5, max_bulk_bytes: int = MAX_BULK_BYTES):
        self.client = client
        self.max_retries = max_retries
        self.max_bulk_bytes = max_bulk_bytes

    def ensure_index(self, spec: IndexSpec) -> bool:
        if self._mappings(spec.name) is None:
            try:
                self.client.indices.create(index=spec.name, **index_body(spec))
                return True
            except BadRequestError as error:  # created concurrently by another task: check it like any other
                if error.error != "resource_already_exists_exception":
                    raise
        problems = self.index_mismatches(spec)
        if problems:
            raise IndexMismatchError(spec.name, problems)
        return False

    def index_mismatches(self, spec: IndexSpec) -> list[str]:
        """Differences between `spec` and the index, or every index behind the alias `spec.name`."""
        mappings = self._mappings(spec.name)
        if mappings is None:
            return [f"index {spec.name!r} does not exist"]
        return [
            problem if name == spec.name else f"{name}: {problem}"
            for name, body in mappings.items()
            for problem in mismatches(spec, body["mappings"])
        ]

    def describe_index(self, index: str) -> IndexSpec | None:
        name, body = next(iter(self.client.indices.get_mapping(index=index).items()))
        return spec_from_mapping(name, body["mappings"])

    def _mappings(self, index: str) -> dict[str, Any] | None:
        try:
            return dict(self.client.indices.get_mapping(index=index))
        except NotFoundError:
            return None

    def upsert_documents(
        self,
        index: str,
        chunks: Iterable[EmbeddedChunk],
        *,
        indexed_at: datetime | None = None,
        refresh: bool = True,
        progress: Callable[[BulkReport], None] | None = None,
    ) -> BulkReport:
        """Index chunks in bulk, then delete the other-version chunks of every document written without error.

        Documents with a failed chunk keep whatever they had (their stale chunks too) and are listed in the
        report's `failed_doc_ids`, so the caller fails the task and a retry completes them. `progress` is
        called with the running report after every chunk.
        """
        indexed_at = indexed_at or datetime.now(UTC)
        report = BulkReport()
        versions: dict[str, tuple[str, int]] = {}

        def actions() -> Iterator[dict[str, Any]]:
            for chunk in chunks:
                version = versions.setdefault(chunk.doc_id, (chunk.etag, chunk.n_chunks))
                if version != (chunk.etag, chunk.n_chunks):
                    raise ValueError(f"document {chunk.doc_id} comes in two versions in one upsert")
                yield chunk_action(index, chunk, indexed_at)

        results = helpers.streaming_bulk(
            self.client,
            actions(),
            chunk_size=100_000,  # requests are bounded by max_chunk_bytes instead
            max_chunk_bytes=self.max_bulk_bytes,
            raise_on_error=False,
            max_retries=self.max_retries,
            initial_backoff=1,
            max_backoff=30,
        )
        for ok, item in results:
            result = next(iter(item.values()))
            if ok:
                report.chunks_indexed += 1
            else:
                report.chunks_failed += 1
                report.failed_doc_ids.add(result["_id"].rsplit(":", 1)[0])
                if len(report.errors) < MAX_REPORTED_ERRORS:
                    report.errors.append(
                        {"id": result["_id"], "status": result.get("status"), "error": result.get("error")}
                    )
            if progress is not None:
                progress(report)
        written = {doc_id: version for doc_id, version in versions.items() if doc_id not in report.failed_doc_ids}
        report.documents_written = len(written)
        report.stale_chunks_deleted = self._delete_other_versions(index, written)
        if refresh:
            self.client.indices.refresh(index=index)
        return report

    def _delete_other_versions(self, index: str, versions: dict[str, tuple[str, int]]) -> int:
        if not versions:
            return 0
        # The stale chunks are found by search: make this upsert's own writes (and any earlier unrefreshed
        # ones) visible first, or a chunk written moments ago could survive as stale.
        self.client.indices.refresh(index=index)
        items = list(versions.items())
        deleted = 0
        for start in range(0, len(items), DOCS_PER_STALE_QUERY):
            clauses = [
                {
                    "bool": {
                        "filter": [{"term": {"doc_id": doc_id}}],
                        "must_not": [
                            {"bool": {"filter": [{"term": {"etag": etag}}, {"term": {"n_chunks": n_chunks}}]}}
                        ],
                    }
                }
                for doc_id, (etag, n_chunks) in items[start : start + DOCS_PER_STALE_QUERY]
            ]
            deleted += self._delete_matching(index, {"bool": {"should": clauses, "minimum_should_match": 1}})
        return deleted

    def delete_documents(self, index: str, doc_ids: Sequence[str]) -> int:
        return self._delete_terms(index, "doc_id", doc_ids)

    def delete_objects(self, index: str, bucket: str, keys: Sequence[str]) -> int:
        """Delete every chunk of the given objects (all their parts); for objects removed from the bucket."""
        return self._delete_terms(index, "key", keys, [{"term": {"bucket": bucket}}])

    def _delete_terms(self, index: str, name: str, values: Sequence[str], filters: list | None = None) -> int:
        values = list(values)
        if values:
            self.client.indices.refresh(index=index)
        deleted = 0
        for batch in _batches(values, TERMS_PER_QUERY):
            deleted += self._delete_matching(index, {"bool": {"filter": [{"terms": {name: batch}}, *(filters or [])]}})
        return deleted

    def _delete_matching(self, index: str, query: dict[str, Any]) -> int:
        """Delete every chunk matching `query`: ids read from a point in time, then deleted by bulk.

        Not `_delete_by_query`, which lives in Elasticsearch's reindex module: distributions without it (the
        integ-test one, some managed offerings) then work alike. A chunk already gone (404) is not an error.
        """
        actions = (
            {"_op_type": "delete", "_index": hit["_index"], "_id": hit["_id"]}
            for hits in self._scan(index, query, source=False)
            for hit in hits
        )
        deleted = 0
        failures = []
        for ok, item in helpers.streaming_bulk(
            self.client, actions, chunk_size=PAGE_SIZE, raise_on_error=False, max_retries=self.max_retries
        ):
            if ok:
                deleted += 1
            elif item["delete"].get("status") != 404:
                failures.append(item["delete"])
        if failures:
            raise RuntimeError(f"{len(failures)} chunk deletes failed on {index!r}: {failures[:5]}")
        if deleted:
            self.client.indices.refresh(index=index)
        return deleted

    def _scan(self, index: str, query: dict[str, Any], source: Any) -> Iterator[list[dict[str, Any]]]:
        """Pages of hits matching `query`, all from one point-in-time view (no 10,000-hit limit)."""
        pit_id = self.client.open_point_in_time(index=index, keep_alive="2m")["id"]
        try:
            search_after = None
            while True:
                response = self.client.search(
                    pit={"id": pit_id, "keep_alive": "2m"},
                    query=query,
                    size=PAGE_SIZE,
                    sort=["_shard_doc"],
                    search_after=search_after,
                    source=source,
                    track_total_hits=False,
                )
                pit_id = response.get("pit_id", pit_id)
                hits = response["hits"]["hits"]
                if not hits:
                    return
                yield hits
                search_after = hits[-1]["sort"]
        finally:
            self.client.close_point_in_time(id=pit_id)

    def indexed_etags(
        self, index: str, values: Sequence[str] | None = None, *, by: str = "doc_id", bucket: str | None = None
    ) -> dict[str, str | None]:
        """ETag of each indexed document (`by="doc_id"`) or object (`by="key"`), to skip unchanged objects.

        `values` restricts the answer to those doc ids or keys; without it, the whole index (or `bucket`). An
        entry is None when the index holds an incomplete or mixed version (fewer chunks than `n_chunks`, several
        ETags): reprocess it. Pages through a composite aggregation, so it is not limited to 10,000 results.
        """
        if by not in ("doc_id", "key"):
            raise ValueError(f"by must be 'doc_id' or 'key', got {by!r}")
        fields = ["key", "doc_id", "etag", "n_chunks"] if by == "key" else ["doc_id", "etag", "n_chunks"]
        filters = [{"term": {"bucket": bucket}}] if bucket else []
        etags: dict[str, str | None] = {}
        for batch in _batches(list(values), TERMS_PER_QUERY) if values is not None else [None]:
            batch_filters = [*filters, {"terms": {by: batch}}] if batch is not None else filters
            for found, count in self._composite(index, fields, {"bool": {"filter": batch_filters}}):
                name, etag = found[by], found["etag"]
                complete = count == found["n_chunks"] and etags.get(name, etag) == etag
                etags[name] = etag if complete else None
        return etags

    def count_by_doc(self, index: str, doc_ids: Sequence[str] | None = None) -> dict[str, int]:
        counts: dict[str, int] = {}
        for batch in _batches(list(doc_ids), TERMS_PER_QUERY) if doc_ids is not None else [None]:
            query = {"terms": {"doc_id": batch}} if batch is not None else {"match_all": {}}
            for found, count in self._composite(index, ["doc_id"], query):
                counts[found["doc_id"]] = count
        return counts

    def _composite(self, index: str, fields: list[str], query: dict[str, Any]) -> Iterator[tuple[dict, int]]:
        """(bucket key, document count) of every combination of `fields`, page by page."""
        composite: dict[str, Any] = {"size": PAGE_SIZE, "sources": [{f: {"terms": {"field": f}}} for f in fields]}
        while True:
            response = self.client.search(index=index, size=0, query=query, aggs={"pages": {"composite": composite}})
            page = response["aggregations"]["pages"]
            for bucket in page["buckets"]:
                yield bucket["key"], bucket["doc_count"]
            if not page["buckets"] or "after_key" not in page:
                return
            composite = {**composite, "after": page["after_key"]}

    def knn_search(
        self, index: str, vector: np.ndarray, *, k: int = 10, num_candidates: int = 100, filter: Any = None
    ) -> list[SearchHit]:
        """Top-level `knn`; `filter` (an Elasticsearch query) applies during the search, not after it."""
        knn: dict[str, Any] = {
            "field": VECTOR_FIELD,
            "query_vector": np.asarray(vector, dtype=np.float32).tolist(),
            "k": k,
            "num_candidates": max(num_candidates, k),
        }
        if filter is not None:
            knn["filter"] = filter
        response = self.client.search(index=index, knn=knn, size=k, source={"excludes": [VECTOR_FIELD]})
        return [SearchHit(hit["_id"], hit["_score"], hit["_source"]) for hit in response["hits"]["hits"]]

    def iter_vectors(self, index: str) -> Iterator[tuple[list[str], np.ndarray]]:
        """Every chunk id and vector of the index, page by page, from one point-in-time view."""
        for hits in self._scan(index, {"match_all": {}}, source=[VECTOR_FIELD]):
            vectors = np.array([hit["_source"][VECTOR_FIELD] for hit in hits], dtype=np.float32)
            yield [hit["_id"] for hit in hits], vectors

    def alias_targets(self, alias: str) -> list[str]:
        try:
            return sorted(self.client.indices.get_alias(name=alias))
        except NotFoundError:
            return []

    def swap_alias(self, alias: str, new_index: str) -> list[str]:
        """Point `alias` at `new_index` alone, in one atomic `update_aliases`; returns the indices it left."""
        targets = self.alias_targets(alias)
        if not targets and self.client.indices.exists(index=alias):
            raise ValueError(f"{alias!r} is an index, not an alias: an alias cannot take its name")
        previous = [name for name in targets if name != new_index]
        actions: list[dict[str, Any]] = [{"remove": {"index": old, "alias": alias}} for old in previous]
        actions.append({"add": {"index": new_index, "alias": alias}})
        self.client.indices.update_aliases(actions=actions)
        return previous


def _batches(values: list[str], size: int) -> list[list[str]]:
    return [values[start : start + size] for start in range(0, len(values), size)]
