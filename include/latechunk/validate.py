"""Validation of an indexed run: counts, mapping, self-retrieval, approximate-vs-exact kNN recall, user probes.

`validate_index` never raises on a failed check: it returns a report, and the caller (the validate operator)
decides to fail, e.g. with `report.raise_for_failure()`.

Exact neighbours are computed client-side in numpy over every vector of the index, fetched through a point in
time. That suits validation-size indices; above `max_exact_vectors` the recall check is skipped (and says so).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from latechunk.documents import EmbeddedChunk
from latechunk.index import SearchBackend, SearchHit
from latechunk.index_mapping import IndexSpec

MAX_LISTED = 20
# Scores closer than this count as ties: identical chunks (same text in two documents) score the same.
SCORE_TIE = 1e-5


@dataclass
class Check:
    name: str
    value: float | None
    threshold: float | None
    passed: bool
    details: dict[str, Any] = field(default_factory=dict)
    skipped: bool = False


@dataclass
class ValidationReport:
    index: str
    checks: list[Check]

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def check(self, name: str) -> Check:
        return next(check for check in self.checks if check.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "passed": self.passed, "checks": [asdict(check) for check in self.checks]}

    def summary(self) -> str:
        lines = [f"validation of {self.index!r}: {'passed' if self.passed else 'FAILED'}"]
        for check in self.checks:
            status = "skipped" if check.skipped else ("ok" if check.passed else "FAILED")
            lines.append(f"  {check.name}: {status} (value={check.value}, threshold={check.threshold})")
        return "\n".join(lines)

    def raise_for_failure(self) -> None:
        if not self.passed:
            raise ValidationError(self)


class ValidationError(Exception):
    def __init__(self, report: ValidationReport):
        super().__init__(report.summary())
        self.report = report


@dataclass(frozen=True)
class Probe:
    query: str
    expected_keys: tuple[str, ...]


def validate_index(
    backend: SearchBackend,
    index: str,
    staged_chunks: Sequence[EmbeddedChunk],
    *,
    sample_size: int = 50,
    self_rank_threshold: float = 0.95,
    recall_threshold: float = 0.9,
    probes: Iterable[Probe | dict[str, Any]] | None = None,
    query_encoder: Callable[[list[str]], np.ndarray] | None = None,
    probe_threshold: float = 1.0,
    spec: IndexSpec | None = None,
    k: int = 10,
    num_candidates: int = 100,
    max_exact_vectors: int = 200_000,
    seed: int = 0,
    sample_pool: Sequence[EmbeddedChunk] | None = None,
) -> ValidationReport:
    """Check the index against the chunks staged (and indexed) by this run; see the module docstring.

    The kNN checks sample from ``sample_pool`` when given (e.g. chunks read back from the index when this run
    staged nothing), else from the staged chunks; the count and mapping checks always use the staged chunks.
    """
    pool = staged_chunks if sample_pool is None else sample_pool
    rng = np.random.default_rng(seed)
    sample_at = rng.choice(len(pool), size=min(sample_size, len(pool)), replace=False)
    sample = [pool[int(i)] for i in sorted(sample_at)]
    hits = [backend.knn_search(index, chunk.vector, k=k, num_candidates=num_candidates) for chunk in sample]
    checks = [
        _check_counts(backend, index, staged_chunks),
        _check_mapping(backend, index, staged_chunks, spec),
        _check_self_retrieval(sample, hits, self_rank_threshold),
        _check_recall(backend, index, sample, hits, k, recall_threshold, max_exact_vectors),
    ]
    if probes is not None:
        checks.append(_check_probes(backend, index, list(probes), query_encoder, k, num_candidates, probe_threshold))
    return ValidationReport(index, checks)


def _check_counts(backend: SearchBackend, index: str, staged: Sequence[EmbeddedChunk]) -> Check:
    staged_counts = Counter(chunk.doc_id for chunk in staged)
    declared = {chunk.doc_id: (chunk.key, chunk.n_chunks) for chunk in staged}
    indexed = backend.count_by_doc(index, list(staged_counts))
    wrong = []
    for doc_id, count in staged_counts.items():
        key, n_chunks = declared[doc_id]
        found = indexed.get(doc_id, 0)
        if not count == n_chunks == found:
            wrong.append({"doc_id": doc_id, "key": key, "staged": count, "n_chunks": n_chunks, "indexed": found})
    details = {"documents": len(staged_counts), "chunks": len(staged), "mismatches": wrong[:MAX_LISTED]}
    return Check("chunk_counts", len(wrong), 0, not wrong, details)


def _check_mapping(
    backend: SearchBackend, index: str, staged: Sequence[EmbeddedChunk], spec: IndexSpec | None
) -> Check:
    problems = list(backend.index_mismatches(spec)) if spec is not None else []
    found = backend.describe_index(index)
    if found is None:
        problems.append("the index was not created by latechunk")
    else:
        staged_dims = {int(chunk.vector.shape[-1]) for chunk in staged} - {found.dims}
        staged_models = {chunk.model_id for chunk in staged} - {found.model_id}
        if staged_dims:
            problems.append(f"staged vectors have {sorted(staged_dims)} dims, the index {found.dims}")
        if staged_models:
            problems.append(f"staged chunks come from {sorted(staged_models)}, the index is for {found.model_id!r}")
    return Check("mapping", len(problems), 0, not problems, {"problems": problems})


def _check_self_retrieval(sample: list[EmbeddedChunk], hits: list[list[SearchHit]], threshold: float) -> Check:
    if not sample:
        return Check("self_retrieval", None, threshold, True, {"reason": "nothing staged"}, skipped=True)
    misses = []
    for chunk, found in zip(sample, hits, strict=True):
        top = found[0].score if found else None
        own = next((hit for hit in found if hit.id == chunk.es_id), None)
        if own is None or own.score < top - SCORE_TIE:
            rank = next((rank for rank, hit in enumerate(found, 1) if hit.id == chunk.es_id), None)
            misses.append({"id": chunk.es_id, "key": chunk.key, "rank": rank, "top": found[0].id if found else None})
    rate = 1 - len(misses) / len(sample)
    details = {"sampled": len(sample), "misses": misses[:MAX_LISTED]}
    return Check("self_retrieval", rate, threshold, rate >= threshold, details)


def _check_recall(
    backend: SearchBackend,
    index: str,
    sample: list[EmbeddedChunk],
    hits: list[list[SearchHit]],
    k: int,
    threshold: float,
    max_vectors: int,
) -> Check:
    name = f"knn_recall@{k}"
    if not sample:
        return Check(name, None, threshold, True, {"reason": "nothing staged"}, skipped=True)
    ids: list[str] = []
    batches = []
    for batch_ids, vectors in backend.iter_vectors(index):
        ids.extend(batch_ids)
        batches.append(vectors)
        if len(ids) > max_vectors:
            reason = f"index has more than {max_vectors} vectors: exact search skipped"
            return Check(name, None, threshold, True, {"reason": reason}, skipped=True)
    found = backend.describe_index(index)
    similarity = found.similarity if found is not None else "cosine"
    matrix = np.concatenate(batches)
    queries = np.stack([chunk.vector for chunk in sample]).astype(np.float32)
    scores = _similarities(queries, matrix, similarity)
    position = {chunk_id: row for row, chunk_id in enumerate(ids)}
    depth = min(k, len(ids))
    recalls = []
    for query_scores, query_hits in zip(scores, hits, strict=True):
        kth_best = np.partition(query_scores, -depth)[-depth]
        # Tie-aware: an approximate hit counts when its exact score reaches the k-th exact score.
        exact = [query_scores[position[hit.id]] for hit in query_hits[:depth] if hit.id in position]
        recalls.append(sum(score >= kth_best - SCORE_TIE for score in exact) / depth)
    recall = float(np.mean(recalls))
    details = {"queries": len(sample), "vectors": len(ids), "similarity": similarity, "min": float(min(recalls))}
    return Check(name, recall, threshold, recall >= threshold, details)


def _similarities(queries: np.ndarray, matrix: np.ndarray, similarity: str) -> np.ndarray:
    """Scores that order neighbours as Elasticsearch's similarity does (higher is nearer)."""
    if similarity == "cosine":
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        matrix = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    if similarity == "l2_norm":
        squared = (queries**2).sum(1)[:, None] - 2 * queries @ matrix.T + (matrix**2).sum(1)[None, :]
        return -np.sqrt(np.maximum(squared, 0))
    return queries @ matrix.T


def _check_probes(
    backend: SearchBackend,
    index: str,
    probes: list[Probe | dict[str, Any]],
    query_encoder: Callable[[list[str]], np.ndarray] | None,
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
