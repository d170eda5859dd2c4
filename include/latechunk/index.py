"""The Elasticsearch implementation of the search backend (`SearchBackend`, defined with the mapping in
`latechunk.index_mapping`).

Writes are exact and repeatable: chunks are upserted under deterministic ids, then every chunk of a written
document that belongs to another version (other ETag or other chunk count) is deleted, so re-running a write never
duplicates data and a shrunk document leaves no stale chunk behind. Everything that reads many documents pages
(composite aggregations, point in time + search_after), so nothing is capped at 10,000 hits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from elasticsearch import BadRequestError, Elasticsearch, NotFoundError

from latechunk.documents import EmbeddedChunk
from latechunk.index_actions import chunk_action, other_version_clause, superseded_clause, tombstone_action
from latechunk.index_bulk import BULK_CONCURRENCY, MAX_BULK_ACTIONS, MAX_BULK_BYTES, concurrent_bulk, delete_hits
from latechunk.index_mapping import (
    VECTOR_FIELD,
    BulkReport,
    IndexMismatchError,
    IndexSpec,
    SearchBackend,
    SearchHit,
    Tombstone,
    index_body,
    mismatches,
    spec_from_mapping,
)

MAX_REPORTED_ERRORS = 100
# Terms per `terms` query and clauses per stale-chunk query, well below Elasticsearch's terms and clause limits.
TERMS_PER_QUERY = 10_000
CLAUSES_PER_QUERY = 200
PAGE_SIZE = 1000


class ElasticsearchBackend(SearchBackend):
    def __init__(
        self,
        client: Elasticsearch,
        *,
        max_retries: int = 5,
        max_bulk_bytes: int = MAX_BULK_BYTES,
        max_bulk_actions: int = MAX_BULK_ACTIONS,
        bulk_concurrency: int = BULK_CONCURRENCY,
    ):
        self.client = client
        self.max_retries = max_retries
        self.max_bulk_bytes = max_bulk_bytes
        self.max_bulk_actions = max_bulk_actions
        self.bulk_concurrency = bulk_concurrency

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
        """Index chunks in bulk (`latechunk.index_bulk`: a few requests in flight, 429s and transient transport
        errors retried with backoff), then delete the other-version chunks of every document written without error.

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

        results = concurrent_bulk(
            self.client,
            actions(),
            concurrency=self.bulk_concurrency,
            max_actions=self.max_bulk_actions,
            max_bytes=self.max_bulk_bytes,
            max_retries=self.max_retries,
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

    def record_tombstones(
        self, index: str, tombstones: Sequence[Tombstone], *, model_id: str, indexed_at: datetime | None = None
    ) -> int:
        """Record documents that produced no chunk (see `latechunk.index_mapping`), replacing whatever chunks an
        earlier version of them left; returns how many were recorded."""
        if not tombstones:
            return 0
        indexed_at = indexed_at or datetime.now(UTC)
        actions = (tombstone_action(index, tombstone, model_id, indexed_at) for tombstone in tombstones)
        failed = [item for ok, item in concurrent_bulk(self.client, actions, max_retries=self.max_retries) if not ok]
        if failed:
            raise RuntimeError(f"{len(failed)} tombstones could not be written to {index!r}: {failed[:3]}")
        self._delete_other_versions(index, {tombstone.doc_id: (tombstone.etag, 0) for tombstone in tombstones})
        self.client.indices.refresh(index=index)
        return len(tombstones)

    def _delete_other_versions(self, index: str, versions: dict[str, tuple[str, int]]) -> int:
        clauses = [other_version_clause(doc_id, etag, n) for doc_id, (etag, n) in versions.items()]
        return self._delete_any(index, clauses)

    def delete_superseded(self, index: str, bucket: str, etags_by_key: Mapping[str, str]) -> int:
        """Delete the chunks of these objects whose ETag is not the given current one.

        Catches what per-document upserts cannot: parts that an object no longer has (a `.jsonl` that lost
        lines) and objects that changed into something unusable (quarantined, so nothing new was written).
        """
        clauses = [superseded_clause(bucket, key, etag) for key, etag in etags_by_key.items()]
        return self._delete_any(index, clauses)

    def _delete_any(self, index: str, clauses: list[dict[str, Any]]) -> int:
        if not clauses:
            return 0
        # Found by search: make recent writes (this upsert's own included) visible first, or a chunk written
        # moments ago could survive as stale.
        self.client.indices.refresh(index=index)
        deleted = 0
        for start in range(0, len(clauses), CLAUSES_PER_QUERY):
            query = {"bool": {"should": clauses[start : start + CLAUSES_PER_QUERY], "minimum_should_match": 1}}
            deleted += self._delete_matching(index, query)
        return deleted

    def delete_documents(self, index: str, doc_ids: Sequence[str]) -> int:
        return self._delete_terms(index, "doc_id", doc_ids)

    def delete_objects(self, index: str, bucket: str, keys: Sequence[str]) -> int:
        """Delete every chunk of the given objects (all their parts); for objects removed from the bucket."""
        return self._delete_terms(index, "key", keys, bucket)

    def _delete_terms(self, index: str, name: str, values: Sequence[str], bucket: str | None = None) -> int:
        if not values:
            return 0
        self.client.indices.refresh(index=index)
        return sum(self._delete_matching(index, query) for query in self._selections(name, values, bucket))

    def _delete_matching(self, index: str, query: dict[str, Any]) -> int:
        """Delete every chunk matching `query`: a page of ids by search, deleted by bulk, until a page is short.

        Not `_delete_by_query`, which lives in Elasticsearch's reindex module: distributions without it (the
        integ-test one, some managed offerings) work alike. Each round refreshes, so deleted chunks leave the
        next page. Usually there is nothing to delete and this is one search. A chunk already gone is no error.
        """
        deleted = 0
        while True:
            response = self.client.search(
                index=index, query=query, size=PAGE_SIZE, source=False, track_total_hits=False
            )
            hits = response["hits"]["hits"]
            if hits:
                deleted += self._delete_hits(index, hits)
            if len(hits) < PAGE_SIZE:
                return deleted

    def _delete_hits(self, index: str, hits: list[dict[str, Any]]) -> int:
        deleted = delete_hits(self.client, index, hits, max_retries=self.max_retries)
        self.client.indices.refresh(index=index)
        return deleted

    def indexed_etags(
        self,
        index: str,
        *,
        doc_ids: Sequence[str] | None = None,
        keys: Sequence[str] | None = None,
        bucket: str | None = None,
    ) -> dict[str, str | None]:
        """ETag of each indexed document (given `doc_ids`) or else object (by key), to skip unchanged objects.

        `doc_ids` or `keys` restrict the answer; with neither, every object of the index (or of `bucket`). An
        entry is None when the index holds an incomplete or mixed version (fewer chunks than `n_chunks`, several
        ETags): reprocess it. A tombstone (a version with no chunk) is complete. Pages through a composite
        aggregation, so it is not limited to 10,000 results.
        """
        if doc_ids is not None and keys is not None:
            raise ValueError("pass doc_ids or keys, not both")
        by = "doc_id" if doc_ids is not None else "key"
        wanted = doc_ids if doc_ids is not None else keys
        fields = ["key", "doc_id", "etag", "n_chunks"] if by == "key" else ["doc_id", "etag", "n_chunks"]
        etags: dict[str, str | None] = {}
        for query in self._selections(by, wanted, bucket):
            for found, count in self._composite(index, fields, query):
                name, etag = found[by], found["etag"]
                expected = found["n_chunks"] or 1  # a tombstone is one document standing for no chunk
                complete = count == expected and etags.get(name, etag) == etag
                etags[name] = etag if complete else None
        return etags

    def indexed_keys(self, index: str, *, bucket: str | None = None, prefix: str = "") -> set[str]:
        """Keys of every object with a chunk in the index (under `bucket` and `prefix`): to find deleted ones."""
        (query,) = self._selections("key", None, bucket, [{"prefix": {"key": prefix}}] if prefix else [])
        return {found["key"] for found, _ in self._composite(index, ["key"], query)}

    @staticmethod
    def _selections(
        name: str, values: Sequence[str] | None, bucket: str | None, extra: list | None = None
    ) -> list[dict[str, Any]]:
        """Filter queries for `values` of field `name` (in batches below the terms limit), or for everything."""
        filters = [{"term": {"bucket": bucket}}] if bucket else []
        filters += extra or []
        if values is None:
            return [{"bool": {"filter": filters}}]
        return [{"bool": {"filter": [*filters, {"terms": {name: batch}}]}} for batch in _batches(values)]

    def count_by_doc(self, index: str, doc_ids: Sequence[str] | None = None) -> dict[str, int]:
        counts: dict[str, int] = {}
        for query in self._selections("doc_id", doc_ids, None):
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
        pit_id = self.client.open_point_in_time(index=index, keep_alive="2m")["id"]
        try:
            search_after = None
            while True:
                response = self.client.search(
                    pit={"id": pit_id, "keep_alive": "2m"},
                    size=PAGE_SIZE,
                    sort=["_shard_doc"],
                    search_after=search_after,
                    query={"exists": {"field": VECTOR_FIELD}},  # tombstones have none
                    source=[VECTOR_FIELD],
                    track_total_hits=False,
                )
                pit_id = response.get("pit_id", pit_id)
                hits = response["hits"]["hits"]
                if not hits:
                    return
                yield [hit["_id"] for hit in hits], np.array([hit["_source"][VECTOR_FIELD] for hit in hits], np.float32)
                search_after = hits[-1]["sort"]
        finally:
            self.client.close_point_in_time(id=pit_id)

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


def _batches(values: Sequence[str]) -> list[list[str]]:
    values = list(values)
    return [values[start : start + TERMS_PER_QUERY] for start in range(0, len(values), TERMS_PER_QUERY)]
