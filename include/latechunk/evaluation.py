"""Retrieval-quality evaluation of chunking strategies on a BEIR-format dataset (the late-chunking paper's protocol).

* A document's text is ``title + " " + text``, cut to the model window (``window - 2`` content tokens for BERT-style
  models) unless long late chunking is asked for; chunks are fixed runs of content tokens or sentences, annotated by
  `latechunk.spans.annotate_spans` (first chunk pools [CLS], last pools [SEP] in late chunking).
* ``naive``: every chunk is encoded alone as ``[CLS] chunk [SEP]`` and mean-pooled over all its tokens.
* ``late``: the document is encoded once (`latechunk.late_chunking.embed_tokens`, overlapping windows for long
  documents) and the same spans are pooled (`latechunk.pooling.pool_spans`), exactly what ``embed_documents`` does.
* ``none``: one vector per document, the mean of all token embeddings of the (truncated) document.
* A document scores as its best chunk; nDCG@10 (linear gains) and Recall@100 come from ``ranx``.

One encoder pass over the documents serves ``late`` at every chunk size and ``none``; ``naive`` needs one pass per
chunk size. With a cache directory every (strategy, chunk size) result is stored and reused by later runs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from latechunk.documents import EmbeddedChunk
from latechunk.encoders.base import Encoder
from latechunk.late_chunking import embed_tokens
from latechunk.pooling import l2_normalize, pool_spans
from latechunk.spans import AnnotatedDocument, ChunkingConfig, annotate_spans

STRATEGIES = ("naive", "late", "none")
METRICS = ("ndcg@10", "recall@100")
DOCS_PER_PASS = 256


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


def truncate_text(text: str, tokenizer, max_content_tokens: int) -> str:
    """The longest prefix of ``text`` that holds at most ``max_content_tokens`` content tokens."""
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, truncation=False, verbose=False)[
        "offset_mapping"
    ]
    return text if len(offsets) <= max_content_tokens else text[: offsets[max_content_tokens - 1][1]]


def chunking_configs(chunker: str, chunk_sizes: Sequence[int]) -> dict[int, ChunkingConfig]:
    """Chunk size -> config; the sentence chunker has one setting (one sentence per chunk), keyed 0."""
    if chunker == "sentences":
        return {0: ChunkingConfig(strategy="sentences", sentences_per_chunk=1)}
    if chunker != "fixed":
        raise ValueError(f"chunker must be 'sentences' or 'fixed', got {chunker!r}")
    return {size: ChunkingConfig(strategy="fixed", chunk_size=size) for size in chunk_sizes}


def annotate(encoder: Encoder, text: str, config: ChunkingConfig, long_late: bool) -> AnnotatedDocument:
    """Spans of a document, cut to the model window unless ``long_late``."""
    if not long_late:
        budget = encoder.max_length - encoder.tokenizer.num_special_tokens_to_add()
        while True:  # re-tokenising a cut text can, rarely, add a token at the cut: cut one more then
            doc = annotate_spans(truncate_text(text, encoder.tokenizer, budget), encoder.tokenizer, config)
            if len(doc.input_ids) <= encoder.max_length:
                return doc
            budget -= 1
    return annotate_spans(text, encoder.tokenizer, config)


def embed_corpus(
    encoder: Encoder,
    texts: Sequence[str],
    strategies: Sequence[str],
    configs: dict[int, ChunkingConfig],
    *,
    long_late: bool = False,
    cache_dir: str | Path | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> dict[tuple[str, int], ChunkVectors]:
    """Chunk vectors per (strategy, chunk size); ``none`` is keyed (``"none"``, 0)."""
    unknown = set(strategies) - set(STRATEGIES)
    if unknown:
        raise ValueError(f"unknown strategies {sorted(unknown)}; expected some of {STRATEGIES}")
    keys = [(s, size) for s in STRATEGIES if s in strategies for size in ([0] if s == "none" else configs)]
    labels = {key: _label(key, configs, long_late) for key in keys}
    fingerprint = _fingerprint(encoder, texts)
    results = {key: _load(cache_dir, fingerprint, labels[key]) for key in keys}
    todo = [key for key in keys if results[key] is None]
    parts: dict[tuple[str, int], list[tuple[np.ndarray, np.ndarray]]] = {key: [] for key in todo}
    special_ids = set(encoder.tokenizer.all_special_ids)
    for start in range(0, len(texts) if todo else 0, DOCS_PER_PASS):
        batch = range(start, min(start + DOCS_PER_PASS, len(texts)))
        docs = {
            size: [annotate(encoder, texts[i], config, long_late) for i in batch] for size, config in configs.items()
        }
        whole = next(iter(docs.values()))  # the token ids do not depend on the chunking
        if any(strategy != "naive" for strategy, _ in todo):
            matrices = embed_tokens(encoder, [doc.input_ids for doc in whole])
        for strategy, size in todo:
            if strategy == "late":
                vectors = [pool_spans(m, doc.spans) for m, doc in zip(matrices, docs[size], strict=True)]
                owners = [np.full(len(v), i, dtype=np.int64) for i, v in zip(batch, vectors, strict=True)]
                parts[(strategy, size)].append((np.concatenate(owners), np.concatenate(vectors)))
            elif strategy == "none":
                parts[(strategy, size)].append(
                    (
                        np.asarray(batch, dtype=np.int64),
                        _mean_pool(_none_matrices(encoder, batch, texts, whole, matrices)),
                    )
                )
            else:
                sequences, owners = [], []
                for i, doc in zip(batch, docs[size], strict=True):
                    lo, hi = _content_range(doc, special_ids)
                    for span in doc.spans:
                        chunk = doc.input_ids[max(span.token_start, lo) : min(span.token_end, hi)]
                        # the document's own leading/trailing special tokens: [CLS] chunk [SEP] for BERT
                        sequences.append(doc.input_ids[:lo] + chunk + doc.input_ids[hi:])
                        owners.append(i)
                parts[(strategy, size)].append(
                    (np.asarray(owners, dtype=np.int64), _mean_pool(encoder.encode_token_batches(sequences)))
                )
        log(f"embedded {batch.stop}/{len(texts)} documents")
    for key in todo:
        owners = [o for o, _ in parts[key]]
        vectors = [v for _, v in parts[key]]
        results[key] = ChunkVectors(
            np.concatenate(owners) if owners else np.zeros(0, np.int64),
            np.concatenate(vectors) if vectors else np.zeros((0, encoder.dim), np.float32),
        )
        _save(cache_dir, fingerprint, labels[key], results[key])
    return results


def _none_matrices(
    encoder: Encoder,
    batch: range,
    texts: Sequence[str],
    docs: Sequence[AnnotatedDocument],
    matrices: Sequence[np.ndarray],
) -> list[np.ndarray]:
    """Token embeddings of each document in one pass of the window: the late pass itself where the document fit
    in it, else a pass over the document cut to the window (long late chunking only)."""
    long = [k for k, doc in enumerate(docs) if len(doc.input_ids) > encoder.max_length]
    cut = [annotate(encoder, texts[batch[k]], ChunkingConfig(), False).input_ids for k in long]
    replaced = dict(zip(long, encoder.encode_token_batches(cut), strict=True))
    return [replaced.get(k, m) for k, m in enumerate(matrices)]


def _content_range(doc: AnnotatedDocument, special_ids: set[int]) -> tuple[int, int]:
    start, end = 0, len(doc.input_ids)
    while start < end and doc.input_ids[start] in special_ids:
        start += 1
    while end > start and doc.input_ids[end - 1] in special_ids:
        end -= 1
    return start, end


def _mean_pool(matrices: Sequence[np.ndarray]) -> np.ndarray:
    """Mean of each token matrix, L2-normalised: (n, dim)."""
    return l2_normalize(np.stack([m.mean(axis=0, dtype=np.float32) for m in matrices]))


def _label(key: tuple[str, int], configs: dict[int, ChunkingConfig], long_late: bool) -> str:
    strategy, size = key
    if strategy == "none":
        return "none"
    config = configs[size]
    setting = (
        f"fixed{config.chunk_size}-{config.overlap}"
        if config.strategy == "fixed"
        else f"sentences{config.sentences_per_chunk}"
    )
    return f"{strategy}-{setting}" + ("-long" if long_late else "")


def _fingerprint(encoder: Encoder, texts: Sequence[str]) -> str:
    # The revision (hub commit or content hash of the weights), not the path: the same checkpoint moved elsewhere
    # keeps its cache.
    digest = hashlib.sha256(json.dumps([encoder.revision, encoder.max_length, str(encoder.dtype)]).encode())
    for text in texts:
        digest.update(text.encode() + b"\0")
    return digest.hexdigest()[:16]


def _load(cache_dir: str | Path | None, fingerprint: str, label: str) -> ChunkVectors | None:
    path = Path(cache_dir) / f"{fingerprint}-{label}.npz" if cache_dir else None
    if path is None or not path.is_file():
        return None
    with np.load(path) as data:
        return ChunkVectors(data["doc_index"], data["vectors"])


def _save(cache_dir: str | Path | None, fingerprint: str, label: str, chunks: ChunkVectors) -> None:
    if cache_dir:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        np.savez(Path(cache_dir) / f"{fingerprint}-{label}.npz", doc_index=chunks.doc_index, vectors=chunks.vectors)


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
    from latechunk.index_mapping import IndexSpec

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
