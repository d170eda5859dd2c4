"""Checks that query the index with the run's own model: sampled chunks' texts, documents' titles or first
sentences, and user probes. Vectors from another model, random vectors and a collapsed encoder all fail them,
while the index-only checks (self-retrieval, recall) pass such an index.

Each check reports ``chance``: the share of its queries that would find their document in the top k if the
ranking were random. An index with so few documents that chance alone reaches the threshold cannot be judged this
way: the check is then skipped and says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from latechunk.chunking.segmentation import first_sentence
from latechunk.index.backend import SearchBackend, SearchHit
from latechunk.sources.documents import EmbeddedChunk
from latechunk.validation.geometry import IndexVectors, same_text
from latechunk.validation.report import MAX_LISTED, Check, Thresholds

QueryEncoder = Callable[[list[str]], np.ndarray]
NO_ENCODER = "no query encoder: nothing can tell whether the vectors mean what the run's model means"


@dataclass(frozen=True)
class Probe:
    query: str
    expected_keys: tuple[str, ...]


@dataclass(frozen=True)
class _Query:
    text: str
    doc_id: str
    key: str
    title: str = ""


def check_query_retrieval(
    backend: SearchBackend,
    index: str,
    sample: list[EmbeddedChunk],
    query_encoder: QueryEncoder | None,
    vectors: IndexVectors | None,
    thresholds: Thresholds,
    num_candidates: int,
) -> Check:
    queries = [_Query(chunk.text, chunk.doc_id, chunk.key) for chunk in sample]
    return _check_queries(
        "query_retrieval", backend, index, queries, query_encoder, vectors, thresholds.query_retrieval,
        thresholds.query_k, num_candidates,
    )  # fmt: skip


def check_document_queries(
    backend: SearchBackend,
    index: str,
    sample: list[EmbeddedChunk],
    pool: Sequence[EmbeddedChunk],
    query_encoder: QueryEncoder | None,
    vectors: IndexVectors | None,
    thresholds: Thresholds,
    num_candidates: int,
) -> Check:
    """One query per sampled document: its title when it has one, else the first sentence of its first chunk
    (when that chunk is at hand)."""
    first_chunks = {chunk.doc_id: chunk for chunk in pool if chunk.chunk_id == 0}
    queries: dict[str, _Query] = {}
    for chunk in sample:
        title = chunk.metadata.get("title")
        if isinstance(title, str) and title.strip():
            queries[chunk.doc_id] = _Query(title.strip(), chunk.doc_id, chunk.key, title=title.strip())
        elif chunk.doc_id in first_chunks:
            queries[chunk.doc_id] = _Query(first_sentence(first_chunks[chunk.doc_id].text), chunk.doc_id, chunk.key)
    return _check_queries(
        "document_query", backend, index, list(queries.values()), query_encoder, vectors,
        thresholds.document_query, thresholds.query_k, num_candidates,
    )  # fmt: skip


def _check_queries(
    name: str,
    backend: SearchBackend,
    index: str,
    queries: list[_Query],
    query_encoder: QueryEncoder | None,
    vectors: IndexVectors | None,
    threshold: float,
    k: int,
    num_candidates: int,
) -> Check:
    if not queries:
        return Check(name, None, threshold, True, {"reason": "nothing to query"}, skipped=True)
    if query_encoder is None:
        return Check(name, None, threshold, False, {"reason": NO_ENCODER})
    encoded = np.asarray(query_encoder([query.text for query in queries]), dtype=np.float32)
    misses, duplicates = [], 0
    for query, vector in zip(queries, encoded, strict=True):
        found = backend.knn_search(index, vector, k=k, num_candidates=num_candidates)
        if any(hit.source.get("doc_id") == query.doc_id for hit in found):
            continue
        if any(_same_content(query, hit) for hit in found):
            duplicates += 1
            continue
        top_keys = [hit.source.get("key") for hit in found]
        misses.append({"query": query.text[:200], "key": query.key, "top_keys": top_keys})
    rate = 1 - len(misses) / len(queries)
    chance = _chance(backend, index, queries, k, vectors)
    details = {
        "queries": len(queries), "k": k, "duplicates": duplicates, "chance": chance, "misses": misses[:MAX_LISTED],
    }  # fmt: skip
    if chance is not None and chance >= threshold:
        details["reason"] = f"the index is too small to judge: random hits would reach {chance:.2f}"
        return Check(name, rate, threshold, True, details, skipped=True)
    return Check(name, rate, threshold, rate >= threshold, details)


def _same_content(query: _Query, hit: SearchHit) -> bool:
    """A hit from another document with the query's content: the same chunk text, the same title, or a chunk
    holding the same first sentence."""
    text = hit.source.get("text", "")
    if query.title:
        return str((hit.source.get("metadata") or {}).get("title", "")).strip() == query.title
    return same_text(query.text, text) or " ".join(query.text.split()) in " ".join(text.split())


def _chance(
    backend: SearchBackend, index: str, queries: list[_Query], k: int, vectors: IndexVectors | None
) -> float | None:
    """Mean probability that k random chunks of the index include one of the query's document."""
    if vectors is None:
        return None
    total = len(vectors.ids)
    counts = backend.count_by_doc(index, sorted({query.doc_id for query in queries}))
    chances = []
    for query in queries:
        own = counts.get(query.doc_id, 0)
        miss = 1.0
        for drawn in range(min(k, total)):
            miss *= max(total - own - drawn, 0) / (total - drawn)
        chances.append(1 - miss)
    return round(float(np.mean(chances)), 4)


def check_probes(
    backend: SearchBackend,
    index: str,
    probes: list[Probe | dict[str, Any]],
    query_encoder: QueryEncoder | None,
    k: int,
    num_candidates: int,
    threshold: float,
) -> Check:
    probes = [p if isinstance(p, Probe) else Probe(p["query"], tuple(p["expected_keys"])) for p in probes]
    if not probes:
        return Check("probes", None, threshold, True, {"reason": "no probes"}, skipped=True)
    if query_encoder is None:
        return Check("probes", None, threshold, False, {"reason": "probes given but no query encoder"})
    vectors = np.asarray(query_encoder([probe.query for probe in probes]), dtype=np.float32)
    misses = []
    for probe, vector in zip(probes, vectors, strict=True):
        found = backend.knn_search(index, vector, k=k, num_candidates=num_candidates)
        keys = [hit.source.get("key") for hit in found]
        # An expected key names an object, or one document of a multi-document object as "key#part".
        refs = set(keys) | {f"{hit.source.get('key')}#{hit.source.get('part')}" for hit in found}
        if not refs & set(probe.expected_keys):
            misses.append({"query": probe.query, "expected": list(probe.expected_keys), "top_keys": keys[:3]})
    rate = 1 - len(misses) / len(probes)
    return Check("probes", rate, threshold, rate >= threshold, {"misses": misses[:MAX_LISTED]})
