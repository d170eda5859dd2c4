"""The read side of `latechunk.index.elasticsearch.ElasticsearchBackend`: what the index holds (per object, per
document), kNN search and a scan of every vector.

Chunks only, by default: the rows of other levels (sections, documents: `latechunk.chunking.levels`) are left out
of the completeness of objects (judged by their chunks, as `object_records` counts them), of the counts, of kNN
search unless asked for, and of the vector scan.

Everything that reads many documents pages (composite aggregations, point in time + search_after), so nothing is
capped at 10,000 hits.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from elasticsearch import Elasticsearch

from latechunk.index.backend import SearchHit
from latechunk.index.spec import VECTOR_FIELD, chunk_level_filter, level_filter

# Terms per `terms` query, well below Elasticsearch's terms limit.
TERMS_PER_QUERY = 10_000
PAGE_SIZE = 1000


@dataclass
class _Found:
    """What the index holds of one object (or document): its versions and whether each document is whole."""

    etags: set[str] = field(default_factory=set)
    totals: set[int | None] = field(default_factory=set)  # `object_records` of its records (None: not recorded)
    records: int = 0
    documents_whole: bool = True

    def add(self, etag: str, n_chunks: int, object_records: int | None, count: int) -> None:
        self.etags.add(etag)
        self.totals.add(object_records)
        self.records += count
        self.documents_whole &= count == (n_chunks or 1)  # a tombstone is one record standing for no chunk

    def complete_etag(self) -> str | None:
        """The ETag when this is exactly one whole version, else None. Records that predate `object_records` are
        judged per document only (the only check they were written for)."""
        if len(self.etags) != 1 or not self.documents_whole or len(self.totals) != 1:
            return None
        (total,) = self.totals
        if total is not None and total != self.records:
            return None
        return next(iter(self.etags))


class IndexQueries:
    client: Elasticsearch

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
        entry is None when the index holds an incomplete or mixed version, to reprocess: a document with fewer
        chunks than its `n_chunks`, several ETags, or (by key) fewer or more records than the object's
        `object_records` (a write interrupted between its documents). A tombstone (a version with no chunk) is
        complete. Pages through a composite aggregation, so it is not limited to 10,000 results.
        """
        if doc_ids is not None and keys is not None:
            raise ValueError("pass doc_ids or keys, not both")
        by = "doc_id" if doc_ids is not None else "key"
        wanted = doc_ids if doc_ids is not None else keys
        fields = ["doc_id", "etag", "n_chunks"]
        if by == "key":
            fields = ["key", *fields, "object_records"]
        found: dict[str, _Found] = {}
        for query in self._selections(by, wanted, bucket, [chunk_level_filter()]):
            for values, count in self._composite(index, fields, query, optional=("object_records",)):
                found.setdefault(values[by], _Found()).add(
                    values["etag"], values["n_chunks"], values.get("object_records"), count
                )
        return {name: state.complete_etag() for name, state in found.items()}

    def indexed_keys(self, index: str, *, bucket: str | None = None, prefix: str = "") -> set[str]:
        """Keys of every object with a chunk in the index (under `bucket` and `prefix`): to find deleted ones."""
        (query,) = self._selections("key", None, bucket, [{"prefix": {"key": prefix}}] if prefix else [])
        return {found["key"] for found, _ in self._composite(index, ["key"], query)}

    def iter_indexed_etags(
        self, index: str, *, bucket: str, prefix: str = "", after: str | None = None, through: str | None = None
    ) -> Iterator[tuple[str, str | None]]:
        """(key, ETag) of every object under `prefix` with ``after < key <= through``, in ascending key order (the
        UTF-8 byte order of the bucket's listing), as `indexed_etags` judges them: None for an incomplete or mixed
        version. Streams: one object's records at a time, whatever the index holds."""
        extra: list[dict[str, Any]] = [chunk_level_filter(), *([{"prefix": {"key": prefix}}] if prefix else [])]
        bounds = {**({"gt": after} if after is not None else {}), **({"lte": through} if through is not None else {})}
        if bounds:
            extra.append({"range": {"key": bounds}})
        (query,) = self._selections("key", None, bucket, extra)
        fields = ["key", "doc_id", "etag", "n_chunks", "object_records"]
        key, found = None, _Found()
        for values, count in self._composite(index, fields, query, optional=("object_records",)):
            if values["key"] != key:
                if key is not None:
                    yield key, found.complete_etag()
                key, found = values["key"], _Found()
            found.add(values["etag"], values["n_chunks"], values.get("object_records"), count)
        if key is not None:
            yield key, found.complete_etag()

    def sample_keys(self, index: str, *, bucket: str, prefix: str = "", size: int) -> tuple[list[str], int]:
        """Up to ``size`` chunks' keys drawn at random (seeded, so the same index gives the same draw) from the
        objects under ``prefix``, sorted and distinct, and the approximate number of those objects: where to split
        the key space into ranges of about equal work (an object weighs as many chunks as it has)."""
        extra: list[dict[str, Any]] = [chunk_level_filter(), *([{"prefix": {"key": prefix}}] if prefix else [])]
        (query,) = self._selections("key", None, bucket, extra)
        drawn = {"function_score": {"query": query, "random_score": {"seed": 17, "field": "_seq_no"},
                                    "boost_mode": "replace"}}  # fmt: skip
        response = self.client.search(
            index=index, size=size, query=drawn, source=["key"],
            aggs={"objects": {"cardinality": {"field": "key", "precision_threshold": 3000}}},
        )  # fmt: skip
        keys = sorted({hit["_source"]["key"] for hit in response["hits"]["hits"]})
        return keys, int(response["aggregations"]["objects"]["value"])

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

    def count_by_doc(self, index: str, doc_ids: Sequence[str] | None = None, level: str = "chunk") -> dict[str, int]:
        """Rows of each document at ``level`` (its chunks, and its tombstone, by default)."""
        counts: dict[str, int] = {}
        for query in self._selections("doc_id", doc_ids, None, [level_filter(level)]):
            for found, count in self._composite(index, ["doc_id"], query):
                counts[found["doc_id"]] = count
        return counts

    def _composite(
        self, index: str, fields: list[str], query: dict[str, Any], optional: Sequence[str] = ()
    ) -> Iterator[tuple[dict, int]]:
        """(bucket key, document count) of every combination of `fields`, page by page; documents without an
        `optional` field come in a bucket where it is None."""
        sources = [{f: {"terms": {"field": f, "missing_bucket": f in optional}}} for f in fields]
        composite: dict[str, Any] = {"size": PAGE_SIZE, "sources": sources}
        while True:
            response = self.client.search(index=index, size=0, query=query, aggs={"pages": {"composite": composite}})
            page = response["aggregations"]["pages"]
            for bucket in page["buckets"]:
                yield bucket["key"], bucket["doc_count"]
            if not page["buckets"] or "after_key" not in page:
                return
            composite = {**composite, "after": page["after_key"]}

    def knn_search(
        self,
        index: str,
        vector: np.ndarray,
        *,
        k: int = 10,
        num_candidates: int = 100,
        filter: Any = None,
        level: str = "chunk",
    ) -> list[SearchHit]:
        """Top-level `knn` over the rows of ``level`` (chunks by default, in any index); `filter` (an Elasticsearch
        query) applies during the search, not after it."""
        knn: dict[str, Any] = {
            "field": VECTOR_FIELD,
            "query_vector": np.asarray(vector, dtype=np.float32).tolist(),
            "k": k,
            "num_candidates": max(num_candidates, k),
            "filter": [level_filter(level), *([] if filter is None else [filter])],
        }
        response = self.client.search(index=index, knn=knn, size=k, source={"excludes": [VECTOR_FIELD]})
        return [SearchHit(hit["_id"], hit["_score"], hit["_source"]) for hit in response["hits"]["hits"]]

    def count_vectors(self, index: str) -> int:
        return int(self.client.count(index=index, query={"exists": {"field": VECTOR_FIELD}})["count"])

    def get_chunks(self, index: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for batch in _batches(ids):
            response = self.client.mget(index=index, ids=batch, realtime=True)
            found.update({doc["_id"]: doc["_source"] for doc in response["docs"] if doc.get("found")})
        return found

    def iter_vectors(self, index: str) -> Iterator[tuple[list[str], np.ndarray]]:
        """Every chunk id and vector of the index (tombstones and other levels aside), page by page, from one
        point-in-time view."""
        pit_id = self.client.open_point_in_time(index=index, keep_alive="2m")["id"]
        try:
            search_after = None
            while True:
                response = self.client.search(
                    pit={"id": pit_id, "keep_alive": "2m"},
                    size=PAGE_SIZE,
                    sort=["_shard_doc"],
                    search_after=search_after,
                    query={"bool": {"filter": [{"exists": {"field": VECTOR_FIELD}}, chunk_level_filter()]}},
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


def _batches(values: Sequence[str]) -> list[list[str]]:
    values = list(values)
    return [values[start : start + TERMS_PER_QUERY] for start in range(0, len(values), TERMS_PER_QUERY)]
