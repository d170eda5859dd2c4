"""BEIR-format data, best-chunk ranking (in memory or through Elasticsearch) and metrics for the retrieval-quality
evaluation (`latechunk.evaluation.harness` embeds the corpus)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from latechunk.sources.documents import EmbeddedChunk

METRICS = ("ndcg@10", "recall@100")


@dataclass
class BeirData:
    doc_ids: list[str]
    texts: list[str]  # title + " " + text
    queries: dict[str, str]  # only queries that have judgements
    qrels: dict[str, dict[str, int]]


@dataclass
class ChunkVectors:
    """All chunk vectors of one (strategy, chunk size): ``doc_index[i]`` is the document of ``vectors[i]``;
    rows are grouped by document in corpus order."""

    doc_index: np.ndarray  # (n_chunks,) int64
    vectors: np.ndarray  # (n_chunks, dim) float32, L2-normalised


def load_beir(
    directory: str | Path, split: str = "test", max_docs: int | None = None, max_queries: int | None = None
) -> BeirData:
    """Corpus, judged queries and qrels of a BEIR folder. ``max_queries`` keeps the first judged queries;
    ``max_docs`` keeps every document judged for them, then fills up in file order (the rest is dropped)."""
    directory = Path(directory)
    qrels: dict[str, dict[str, int]] = {}
    with open(directory / "qrels" / f"{split}.tsv", encoding="utf-8") as handle:
        next(handle)  # header
        for line in handle:
            if line.strip():
                query_id, doc_id, score = line.rstrip("\n").split("\t")[:3]
                qrels.setdefault(query_id, {})[doc_id] = int(score)
    queries = {}
    for record in _jsonl(directory / "queries.jsonl"):
        if record["_id"] in qrels and (max_queries is None or len(queries) < max_queries):
            queries[record["_id"]] = record["text"]
    corpus = {
        r["_id"]: (r.get("title") or "") + " " + (r.get("text") or "") for r in _jsonl(directory / "corpus.jsonl")
    }
    if max_docs is not None:
        judged = {doc for q in queries for doc in qrels[q] if doc in corpus}
        position = {doc: k for k, doc in enumerate(corpus)}
        keep = set(sorted(judged, key=position.__getitem__)[:max_docs])
        keep |= set([doc for doc in corpus if doc not in keep][: max(0, max_docs - len(keep))])
        corpus = {doc: text for doc, text in corpus.items() if doc in keep}
    qrels = {q: {d: s for d, s in qrels[q].items() if d in corpus} for q in queries}
    queries = {q: text for q, text in queries.items() if qrels[q]}
    return BeirData(list(corpus), list(corpus.values()), queries, {q: qrels[q] for q in queries})


def _jsonl(path: Path) -> Iterable[dict]:
    with open(path, encoding="utf-8") as handle:
        yield from (json.loads(line) for line in handle if line.strip())


def best_chunk_scores(chunks: ChunkVectors, n_docs: int, queries: np.ndarray) -> np.ndarray:
    """(n_queries, n_docs) cosine of each document's best chunk; -inf for a document without chunks."""
    scores = np.full((len(queries), n_docs), -np.inf, dtype=np.float32)
    if len(chunks.doc_index):
        starts = np.flatnonzero(np.r_[True, chunks.doc_index[1:] != chunks.doc_index[:-1]])
        similarities = queries @ chunks.vectors.T  # (n_queries, n_chunks)
        scores[:, chunks.doc_index[starts]] = np.maximum.reduceat(similarities, starts, axis=1)
    return scores


def rank_memory(chunks: ChunkVectors, doc_ids: Sequence[str], queries: np.ndarray, top_k: int = 100) -> list[dict]:
    """Per query the top ``top_k`` documents by best chunk: a list of {doc_id: score}."""
    scores = best_chunk_scores(chunks, len(doc_ids), queries)
    ranking = []
    for row in scores:
        top = np.argsort(-row, kind="stable")[:top_k]
        ranking.append({doc_ids[i]: float(row[i]) for i in top if np.isfinite(row[i])})
    return ranking


def rank_elasticsearch(
    backend,
    index: str,
    chunks: ChunkVectors,
    doc_ids: Sequence[str],
    queries: np.ndarray,
    *,
    model_id: str,
    chunking: dict,
    top_k: int = 100,
) -> list[dict]:
    """The same ranking through a real index: exact (``flat``) kNN over one search document per chunk, the best
    chunk per document kept. Scores are turned back from Elasticsearch's (1 + cos) / 2 into cosines."""
    from latechunk.index.spec import IndexSpec

    spec = IndexSpec(
        name=index, dims=chunks.vectors.shape[1], model_id=model_id, index_options={"type": "flat"}, chunking=chunking
    )
    backend.ensure_index(spec)
    counts = np.bincount(chunks.doc_index, minlength=len(doc_ids))
    chunk_ids = np.arange(len(chunks.doc_index)) - np.repeat(np.cumsum(counts) - counts, counts)
    report = backend.upsert_documents(
        index,
        (
            EmbeddedChunk(
                doc_id=doc_ids[d],
                bucket="beir",
                key=doc_ids[d],
                part="",
                etag="eval",
                chunk_id=int(c),
                n_chunks=int(counts[d]),
                text="",
                char_start=0,
                char_end=0,
                token_start=0,
                token_end=0,
                vector=v,
                model_id=model_id,
            )
            for d, c, v in zip(chunks.doc_index, chunk_ids, chunks.vectors, strict=True)
        ),
    )
    if not report.ok:
        raise RuntimeError(f"indexing failed: {report.errors[:3]}")
    # The top_k-th document's best chunk ranks at most (top_k - 1) * max_chunks + 1: fetch that many chunks.
    k = int(min(10_000, top_k * max(1, counts.max(initial=1))))
    ranking = []
    for vector in queries:
        best: dict[str, float] = {}
        for hit in backend.knn_search(index, vector, k=k, num_candidates=k):
            doc = hit.source["doc_id"]
            best[doc] = max(best.get(doc, -np.inf), 2 * hit.score - 1)
        ranking.append(dict(sorted(best.items(), key=lambda item: -item[1])[:top_k]))
    return ranking


def evaluate_ranking(qrels: dict[str, dict[str, int]], query_ids: Sequence[str], ranking: Sequence[dict]) -> dict:
    """nDCG@10 (linear gains) and Recall@100 with ranx, averaged over the judged queries."""
    from ranx import Qrels, Run, evaluate

    run = {q: (r or {"__no_result__": -1e9}) for q, r in zip(query_ids, ranking, strict=True)}
    scores = evaluate(Qrels({q: qrels[q] for q in query_ids}), Run(run), list(METRICS), make_comparable=True)
    return {metric: float(scores[metric]) for metric in METRICS}
