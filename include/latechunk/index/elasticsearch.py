"""The Elasticsearch implementation of the search backend (`SearchBackend`, defined with the mapping in
`latechunk.index.spec`).

Writes are exact and repeatable: chunks are upserted under deterministic ids, then every chunk of a written
document that belongs to another version (other ETag or other chunk count) is deleted, so re-running a write never
duplicates data and a shrunk document leaves no stale chunk behind. Every record carries the size of its whole
object (`object_records`), so an object whose writing was interrupted reads back as incomplete (see
`latechunk.index.queries`, the read side).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from elasticsearch import BadRequestError, Elasticsearch, NotFoundError

from latechunk.index.actions import (
    chunk_action,
    other_version_clause,
    safe_metadata,
    superseded_clause,
    tombstone_action,
)
from latechunk.index.backend import BulkReport, SearchBackend, SearchHit, Tombstone
from latechunk.index.bulk import (
    BULK_CONCURRENCY,
    MAX_BULK_ACTIONS,
    MAX_BULK_BYTES,
    concurrent_bulk,
    delete_hits,
    is_transient_item,
)
from latechunk.index.queries import PAGE_SIZE, IndexQueries
from latechunk.index.spec import ADDED_FIELDS, IndexMismatchError, IndexSpec, index_body, mismatches, spec_from_mapping
from latechunk.sources.documents import EmbeddedChunk

__all__ = ["ElasticsearchBackend", "SearchBackend", "SearchHit"]

MAX_REPORTED_ERRORS = 100
# Clauses per stale-chunk query, well below Elasticsearch's clause limit.
CLAUSES_PER_QUERY = 200

ObjectRef = tuple[str, str]  # (bucket, key)


class ElasticsearchBackend(IndexQueries, SearchBackend):
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
        """Create the index if absent (True); else check it against `spec` and add the fields that came after
        it was created (`ADDED_FIELDS`, an additive mapping change) to every index behind the name."""
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
        for name, body in (self._mappings(spec.name) or {}).items():
            missing = {field: kind for field, kind in ADDED_FIELDS.items()
                       if field not in body["mappings"].get("properties", {})}  # fmt: skip
            if missing:
                self.client.indices.put_mapping(index=name, properties=missing)
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
        object_records: Mapping[ObjectRef, int] | None = None,
        indexed_at: datetime | None = None,
        refresh: bool = True,
        progress: Callable[[BulkReport], None] | None = None,
    ) -> BulkReport:
        """Index chunks in bulk (`latechunk.index.bulk`: a few requests in flight, 429s and transient transport
        errors retried with backoff), then delete the other-version chunks of every document written without error.

        `object_records`: the number of records of each chunk's whole object, (bucket, key) -> records, when its
        documents are written in several calls (the index task's batches); by default the chunks given are every
        document of their objects. Documents with a failed chunk keep whatever they had (their stale chunks too)
        and are listed in the report's `failed_doc_ids`; the objects the engine refused are in `refused_objects`
        with the reason, and items that failed for the cluster's sake are counted as `transient_failures`.
        `progress` is called with the running report after every chunk.
        """
        indexed_at = indexed_at or datetime.now(UTC)
        report = BulkReport()
        if object_records is None:
            chunks = list(chunks)
            object_records = _records_by_object(chunks)
        versions: dict[str, tuple[str, int]] = {}
        objects: dict[str, ObjectRef] = {}
        level_rows: set[str] = set()  # ids of the section and document rows among the chunks

        def actions() -> Iterator[dict[str, Any]]:
            for chunk in chunks:
                if not chunk.is_chunk:
                    level_rows.add(chunk.es_id)
                version = versions.setdefault(chunk.doc_id, (chunk.etag, chunk.n_chunks))
                if version != (chunk.etag, chunk.n_chunks):
                    raise ValueError(f"document {chunk.doc_id} comes in two versions in one upsert")
                objects[chunk.doc_id] = (chunk.bucket, chunk.key)
                try:
                    yield chunk_action(
                        index, chunk, indexed_at, object_records=object_records[chunk.bucket, chunk.key],
                        metadata=safe_metadata(chunk.metadata),
                    )  # fmt: skip
                except orjson.JSONEncodeError as error:
                    failure = {"type": "serialisation_error", "reason": str(error)}
                    self._count_failure(report, objects, chunk.es_id, 400, failure)

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
            if ok and result["_id"] in level_rows:
                report.level_rows_indexed += 1
            elif ok:
                report.chunks_indexed += 1
            else:
                self._count_failure(report, objects, result["_id"], result.get("status"), result.get("error"))
            if progress is not None:
                progress(report)
        written = {doc_id: version for doc_id, version in versions.items() if doc_id not in report.failed_doc_ids}
        report.documents_written = len(written)
        report.stale_chunks_deleted = self._delete_other_versions(index, written)
        if refresh:
            self.client.indices.refresh(index=index)
        return report

    @staticmethod
    def _count_failure(
        report: BulkReport, objects: Mapping[str, ObjectRef], es_id: str, status: int | None, error: Any
    ) -> None:
        doc_id = es_id.rsplit(":", 1)[0]
        report.chunks_failed += 1
        report.failed_doc_ids.add(doc_id)
        if is_transient_item(status):
            report.transient_failures += 1
        else:
            reason = f"{error.get('type')}: {error.get('reason')}" if isinstance(error, dict) else str(error)
            report.refused_objects.setdefault(objects[doc_id], reason)
        if len(report.errors) < MAX_REPORTED_ERRORS:
            report.errors.append({"id": es_id, "status": status, "error": error})

    def record_tombstones(
        self,
        index: str,
        tombstones: Sequence[Tombstone],
        *,
        model_id: str,
        object_records: Mapping[ObjectRef, int] | None = None,
        indexed_at: datetime | None = None,
    ) -> int:
        """Record documents that produced no chunk (see `latechunk.index.spec`), replacing whatever chunks an
        earlier version of them left; returns how many were recorded. `object_records` as for `upsert_documents`
        (by default the tombstones are every document of their objects)."""
        if not tombstones:
            return 0
        indexed_at = indexed_at or datetime.now(UTC)
        if object_records is None:
            object_records = Counter((tombstone.bucket, tombstone.key) for tombstone in tombstones)
        actions = (
            tombstone_action(
                index, tombstone, model_id, indexed_at, object_records=object_records[tombstone.bucket, tombstone.key]
            )
            for tombstone in tombstones
        )
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


def _records_by_object(chunks: Iterable[EmbeddedChunk]) -> dict[ObjectRef, int]:
    """Records of each object when `chunks` hold every document of their objects: each document's `n_chunks`."""
    documents = {chunk.doc_id: ((chunk.bucket, chunk.key), chunk.n_chunks) for chunk in chunks}
    records: Counter[ObjectRef] = Counter()
    for ref, n_chunks in documents.values():
        records[ref] += n_chunks
    return dict(records)
