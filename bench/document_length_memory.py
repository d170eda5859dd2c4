"""Peak memory of embedding one document against its length: pooled window by window (the embed stage) and with
the document's whole token matrix held (what the embed stage did before, what `embed_tokens` still returns).

    PYTHONPATH=include .venv/bin/python bench/document_length_memory.py --tokens 25000 100000 1000000

Each (length, mode) runs in a fresh child process with a 768-dim, 8192-token-window stand-in encoder
(``tests/tiny_models.stand_in_encoder``: an embedding lookup plus its window's mean, so the forward pass costs
little and the pooling is what is measured), 256-token chunks and the default 16,384-token budget. Reported: the
peak resident memory the embedding added (``ru_maxrss`` after minus before, MiB), the peak of NumPy/Python
allocations (tracemalloc, MiB; the forward pass's output lives in torch's allocator, one budget at a time) and the
seconds. The whole-matrix mode runs up to ``--whole-max-tokens`` (a million tokens need 3 GB for the matrix alone).
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "include"), str(REPO / "tests")]

DIM, CHUNK = 768, 256


def measure(n_tokens: int, mode: str, results) -> None:
    import numpy as np
    from latechunk.chunking.spans import AnnotatedDocument, ChunkSpan
    from latechunk.embedding.late_chunking import embed_documents, embed_tokens
    from latechunk.embedding.pooling import pool_spans
    from tiny_models import stand_in_encoder

    encoder = stand_in_encoder(dim=DIM)
    ids = np.random.default_rng(0).integers(0, 1000, n_tokens).tolist()
    starts = range(0, n_tokens, CHUNK)
    doc = AnnotatedDocument(ids, [ChunkSpan(i, s, min(s + CHUNK, n_tokens), 0, 0, "") for i, s in enumerate(starts)])
    encoder.encode_token_batches([ids[:64]])  # torch's first-call allocations, outside the measurement
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()
    started = time.perf_counter()
    if mode == "streamed":
        (vectors,) = embed_documents(encoder, [doc])
    else:
        (matrix,) = embed_tokens(encoder, [ids])
        vectors = pool_spans(matrix, doc.spans)
    seconds = time.perf_counter() - started
    traced = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    added = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before
    results.put((n_tokens, mode, added, traced, seconds, vectors.shape[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, nargs="+", default=[25_000, 100_000, 1_000_000])
    parser.add_argument("--whole-max-tokens", type=int, default=100_000)
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    print(f"{'tokens':>10} {'mode':<13} {'peak RSS added MiB':>19} {'traced peak MiB':>16} {'seconds':>8} "
          f"{'chunks':>7} {'matrix MiB':>11}")  # fmt: skip
    for n_tokens in args.tokens:
        for mode in ("streamed", "whole matrix"):
            if mode == "whole matrix" and n_tokens > args.whole_max_tokens:
                continue
            results = context.Queue()
            child = context.Process(target=measure, args=(n_tokens, mode, results))
            child.start()
            tokens, mode, added, traced, seconds, chunks = results.get()
            child.join()
            print(f"{tokens:>10,} {mode:<13} {added:>19,.0f} {traced:>16,.1f} {seconds:>8.1f} {chunks:>7,} "
                  f"{tokens * DIM * 4 / 2**20:>11,.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
