"""Checks on the vectors themselves: the index serves what was written (self-retrieval, approximate-vs-exact
recall) and the vectors did not collapse (spread, no vector shared by different texts).

Exact neighbours are computed client-side in numpy over every vector of the index, fetched through a point in
time, up to `MAX_EXACT_VECTORS`: that holds at most 2 x 20,000 x dims x 4 bytes (123 MB at 768 dims) whatever the
run's size. The vectors are counted first, so a larger index is never loaded: up to `MAX_STREAMED_VECTORS` the
recall check streams them once, keeping each sampled query's k best exact scores (a page of vectors and
queries x k scores held); the spread is then measured over the sample's own pairs and duplicates recognised by
text alone. Past that the recall check is skipped (and says so): the pass would take longer than validation should.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from latechunk.index.backend import SearchBackend, SearchHit
from latechunk.sources.documents import EmbeddedChunk
from latechunk.validation.report import MAX_LISTED, SCORE_TIE, Check

# Cosine at or above which two vectors count as the same vector.
SAME_VECTOR_COSINE = 1 - 1e-6
# Indices of up to this many vectors are loaded whole for the geometry checks; up to MAX_STREAMED_VECTORS, the
# recall check streams them once (a page at a time) instead; larger ones skip it.
MAX_EXACT_VECTORS = 20_000
MAX_STREAMED_VECTORS = 2_000_000


@dataclass(frozen=True)
class IndexVectors:
    """Every vector of the index (rows of ``matrix``, L2-normalised copy in ``unit``) by chunk id."""

    ids: list[str]
    matrix: np.ndarray
    unit: np.ndarray
    similarity: str
    row: dict[str, int]

    def unit_vector(self, chunk_id: str) -> np.ndarray | None:
        row = self.row.get(chunk_id)
        return None if row is None else self.unit[row]


def load_index_vectors(backend: SearchBackend, index: str, max_vectors: int) -> IndexVectors | None:
    """The index's vectors, or None when it holds more than ``max_vectors`` (counted before any is fetched)."""
    if backend.count_vectors(index) > max_vectors:
        return None
    ids: list[str] = []
    batches = []
    for batch_ids, vectors in backend.iter_vectors(index):
        ids.extend(batch_ids)
        batches.append(vectors)
        if len(ids) > max_vectors:
            return None
    found = backend.describe_index(index)
    similarity = found.similarity if found is not None else "cosine"
    matrix = np.concatenate(batches) if batches else np.zeros((0, 1), np.float32)
    return IndexVectors(ids, matrix, _unit(matrix), similarity, {chunk_id: row for row, chunk_id in enumerate(ids)})


def same_text(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


def check_self_retrieval(
    sample: list[EmbeddedChunk], hits: list[list[SearchHit]], vectors: IndexVectors | None, threshold: float
) -> Check:
    """Found: the chunk is the top hit (within score ties), or the top hit has the chunk's text or vector."""
    if not sample:
        return Check("self_retrieval", None, threshold, True, {"reason": "nothing sampled"}, skipped=True)
    misses, duplicates = [], 0
    for chunk, found in zip(sample, hits, strict=True):
        top = found[0] if found else None
        own = next((hit for hit in found if hit.id == chunk.es_id), None)
        if own is not None and own.score >= top.score - SCORE_TIE:
            continue
        if top is not None and _is_duplicate(chunk, top, vectors):
            duplicates += 1
            continue
        rank = next((rank for rank, hit in enumerate(found, 1) if hit.id == chunk.es_id), None)
        misses.append({"id": chunk.es_id, "key": chunk.key, "rank": rank, "top": top.id if top else None})
    rate = 1 - len(misses) / len(sample)
    details = {"sampled": len(sample), "duplicates": duplicates, "misses": misses[:MAX_LISTED]}
    return Check("self_retrieval", rate, threshold, rate >= threshold, details)


def _is_duplicate(chunk: EmbeddedChunk, hit: SearchHit, vectors: IndexVectors | None) -> bool:
    if same_text(chunk.text, hit.source.get("text", "")):
        return True
    hit_vector = vectors.unit_vector(hit.id) if vectors is not None else None
    return hit_vector is not None and float(hit_vector @ _unit(chunk.vector)) >= SAME_VECTOR_COSINE


@dataclass(frozen=True)
class StreamedScores:
    """What the recall check needs of an index too large to load, from one pass over its vectors: each sampled
    query's k-th best exact score and the exact scores of its approximate hits."""

    kth_best: np.ndarray  # (queries,)
    hit_scores: list[dict[str, float]]
    vectors: int
    similarity: str


def stream_exact_scores(
    backend: SearchBackend, index: str, sample: list[EmbeddedChunk], hits: list[list[SearchHit]], k: int
) -> StreamedScores:
    """One pass over the index's vectors, a page at a time, keeping each query's k best exact scores: it holds a
    page and (queries x k) scores, whatever the size of the index."""
    found = backend.describe_index(index)
    similarity = found.similarity if found is not None else "cosine"
    queries = np.stack([chunk.vector for chunk in sample]).astype(np.float32)
    best = np.full((len(sample), 0), -np.inf, np.float32)
    wanted: dict[str, list[int]] = {}
    for row, query_hits in enumerate(hits):
        for hit in query_hits[:k]:
            wanted.setdefault(hit.id, []).append(row)
    hit_scores: list[dict[str, float]] = [{} for _ in sample]
    total = 0
    for ids, page in backend.iter_vectors(index):
        scores = _similarities(queries, IndexVectors(ids, page, _unit(page), similarity, {}))
        best = -np.sort(-np.concatenate([best, scores], axis=1), axis=1)[:, :k]
        for column, chunk_id in enumerate(ids):
            for row in wanted.get(chunk_id, ()):
                hit_scores[row][chunk_id] = float(scores[row, column])
        total += len(ids)
    kth_best = best[:, -1] if total else np.full(len(sample), np.inf, np.float32)
    return StreamedScores(kth_best, hit_scores, total, similarity)


def check_recall(
    sample: list[EmbeddedChunk],
    hits: list[list[SearchHit]],
    vectors: IndexVectors | None,
    k: int,
    threshold: float,
    max_vectors: int,
    streamed: StreamedScores | None = None,
) -> Check:
    """Tie-aware recall@k of the approximate hits against the exact neighbours, over the loaded ``vectors``, else
    from the ``streamed`` pass over an index too large to load (skipped when there is neither)."""
    name = f"knn_recall@{k}"
    if not sample:
        return Check(name, None, threshold, True, {"reason": "nothing sampled"}, skipped=True)
    if vectors is None and streamed is None:
        reason = f"index has more than {max_vectors} vectors: exact search skipped"
        return Check(name, None, threshold, True, {"reason": reason}, skipped=True)
    total = len(vectors.ids) if vectors is not None else streamed.vectors
    if not total:
        return Check(name, 0.0, threshold, False, {"reason": "the index holds no vectors"})
    depth = min(k, total)
    if vectors is not None:
        scores = _similarities(np.stack([chunk.vector for chunk in sample]).astype(np.float32), vectors)
        kth_best = [np.partition(query_scores, -depth)[-depth] for query_scores in scores]
        hit_scores = [{hit.id: query_scores[vectors.row[hit.id]] for hit in query_hits[:depth] if hit.id in vectors.row}
                      for query_scores, query_hits in zip(scores, hits, strict=True)]  # fmt: skip
    else:
        kth_best, hit_scores = streamed.kth_best, streamed.hit_scores
    recalls = []
    for best, found, query_hits in zip(kth_best, hit_scores, hits, strict=True):
        # Tie-aware: an approximate hit counts when its exact score reaches the k-th exact score.
        exact = [found[hit.id] for hit in query_hits[:depth] if hit.id in found]
        recalls.append(sum(score >= best - SCORE_TIE for score in exact) / depth)
    recall = float(np.mean(recalls))
    details = {
        "queries": len(sample), "vectors": total,
        "similarity": vectors.similarity if vectors is not None else streamed.similarity,
        "min": float(min(recalls)), "exact": "loaded" if vectors is not None else "streamed",
    }  # fmt: skip
    return Check(name, recall, threshold, recall >= threshold, details)


def _similarities(queries: np.ndarray, vectors: IndexVectors) -> np.ndarray:
    """Scores that order neighbours as Elasticsearch's similarity does (higher is nearer)."""
    if vectors.similarity == "cosine":
        return _unit(queries) @ vectors.unit.T
    matrix = vectors.matrix
    if vectors.similarity == "l2_norm":
        squared = (queries**2).sum(1)[:, None] - 2 * queries @ matrix.T + (matrix**2).sum(1)[None, :]
        return -np.sqrt(np.maximum(squared, 0))
    return queries @ matrix.T


def check_spread(sample: list[EmbeddedChunk], vectors: IndexVectors | None, max_mean_cosine: float) -> Check:
    """Mean cosine between each sampled vector and the index's vectors of *other* documents (the sample's own
    cross-document pairs when the index is too large to load): near 1 when the vectors collapsed onto one direction
    (a broken encoder, a constant plus noise). Chunks of one document are left out on purpose: late-chunked
    vectors of one document share its context and are legitimately close."""
    if not sample:
        return Check("vector_spread", None, max_mean_cosine, True, {"reason": "nothing sampled"}, skipped=True)
    unit = _unit(np.stack([chunk.vector for chunk in sample]).astype(np.float32))
    if vectors is not None:
        documents = np.array([chunk_id.rsplit(":", 1)[0] for chunk_id in vectors.ids])
        other = documents[None, :] != np.array([chunk.doc_id for chunk in sample])[:, None]  # (sample, index)
        cosines = (unit @ vectors.unit.T)[other]
    else:
        cosines = np.array([float(unit[i] @ unit[j]) for i, j in _pairs(sample, across_documents=True)])
    if not cosines.size:
        reason = "the index holds one document: nothing to compare across documents"
        return Check("vector_spread", None, max_mean_cosine, True, {"reason": reason}, skipped=True)
    mean = float(cosines.mean())
    details = {"pairs": int(cosines.size), "max": float(cosines.max()), "min": float(cosines.min())}
    return Check("vector_spread", mean, max_mean_cosine, mean < max_mean_cosine, details)


def _pairs(sample: Sequence[EmbeddedChunk], *, across_documents: bool) -> list[tuple[int, int]]:
    return [
        (i, j)
        for i in range(len(sample))
        for j in range(i + 1, len(sample))
        if not across_documents or sample[i].doc_id != sample[j].doc_id
    ]


def check_duplicate_vectors(
    sample: list[EmbeddedChunk], hits: list[list[SearchHit]], vectors: IndexVectors | None
) -> Check:
    """Pairs of different texts with the same vector, among the sampled chunks and each one's kNN hits."""
    found: dict[frozenset[str], dict[str, str]] = {}
    unit = _unit(np.stack([chunk.vector for chunk in sample]).astype(np.float32)) if sample else None
    for i, j in _pairs(sample, across_documents=False):
        if float(unit[i] @ unit[j]) >= SAME_VECTOR_COSINE and not same_text(sample[i].text, sample[j].text):
            found[frozenset((sample[i].es_id, sample[j].es_id))] = {"a": sample[i].text, "b": sample[j].text}
    for row, (chunk, chunk_hits) in enumerate(zip(sample, hits, strict=True)):
        for hit in chunk_hits:
            hit_vector = vectors.unit_vector(hit.id) if vectors is not None else None
            if hit.id == chunk.es_id or hit_vector is None or same_text(chunk.text, hit.source.get("text", "")):
                continue
            if float(hit_vector @ unit[row]) >= SAME_VECTOR_COSINE:
                found[frozenset((chunk.es_id, hit.id))] = {"a": chunk.text, "b": hit.source.get("text", "")}
    examples = [{"ids": sorted(ids), **texts} for ids, texts in list(found.items())[:MAX_LISTED]]
    return Check("duplicate_vectors", len(found), 0, not found, {"examples": examples})


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms == 0, 1, norms)
