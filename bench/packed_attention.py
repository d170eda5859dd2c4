"""Packed against plain attention for jina-embeddings-v2 (random weights), measured in the same run.

Both paths go through ``JinaBertEncoder.encode_token_batches`` with the same weights and token budget:

* plain: padded batches of similar lengths (``plan_batches``), a dense (batch, heads, seq, seq) ALiBi bias;
* packed/segments: whole sequences packed under the budget, per-sequence SDPA with a strided ALiBi view;
* packed/flex: the same packs through compiled FlexAttention (``--flex``; on CPU the first call compiles C++,
  reported separately and excluded from the timed passes).

Sequences are windows of documents with log-normal lengths (median ``--median`` tokens) cut like
``embed_tokens`` does, plus the short probe-like sequences given by ``--short``. Ratios are tokens/s of a path
over tokens/s of the plain path (best of ``--iters`` passes each, the passes of all paths interleaved);
``min_cosine`` compares every token embedding with the plain path's.

    python bench/packed_attention.py --device cpu --layers 2 --window 2048 --tokens 16384
    python bench/packed_attention.py --device cuda --flex --tokens 262144
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time

import numpy as np
import torch
from latechunk.embedding.batching import padding_fraction
from latechunk.embedding.encoders.jina_bert import JinaBertConfig, JinaBertEncoder, JinaBertModel
from latechunk.embedding.encoders.jina_packed import BACKENDS
from latechunk.embedding.late_chunking import default_overlap, plan_windows


def sequence_lengths(tokens: int, window: int, median: int, short: int, seed: int) -> list[int]:
    """Window lengths of log-normal documents until ``tokens`` are drawn, plus ``short`` sequences of 8-64."""
    rng = np.random.default_rng(seed)
    lengths: list[int] = []
    while sum(lengths) < tokens:
        n = int(np.clip(rng.lognormal(math.log(median), 1.0), 16, 8 * window))
        lengths += [w.end - w.start for w in plan_windows(n, window, default_overlap(window))]
    return lengths + rng.integers(8, 65, size=short).tolist()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def one_pass(encoder: JinaBertEncoder, sequences: list[list[int]], budget: int) -> tuple[float, list]:
    """Seconds of one pass over all sequences, and its outputs."""
    synchronize(encoder.device)
    start = time.perf_counter()
    outputs = encoder.encode_token_batches(sequences, token_budget=budget)
    synchronize(encoder.device)
    return time.perf_counter() - start, outputs


def min_cosine(outputs: list[np.ndarray], reference: list[np.ndarray]) -> float:
    got, want = np.concatenate(outputs), np.concatenate(reference)
    return float(((got * want).sum(-1) / (np.linalg.norm(got, axis=-1) * np.linalg.norm(want, axis=-1))).min())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--window", type=int, default=8192)
    parser.add_argument("--tokens", type=int, default=65536, help="document tokens to draw (before --short)")
    parser.add_argument("--median", type=int, default=1200, help="median document length in tokens")
    parser.add_argument("--short", type=int, default=64, help="extra short sequences (8-64 tokens)")
    parser.add_argument("--token-budget", type=int, default=16384)
    parser.add_argument("--iters", type=int, default=2)
    parser.add_argument("--flex", action="store_true", help="also run packed attention through FlexAttention")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    config = JinaBertConfig(
        vocab_size=30528, hidden_size=768, num_hidden_layers=args.layers, num_attention_heads=12,
        intermediate_size=3072, max_position_embeddings=8192,
    )  # fmt: skip
    torch.manual_seed(0)
    model = JinaBertModel(config).to(device=device, dtype=dtype).eval()
    lengths = sequence_lengths(args.tokens, args.window, args.median, args.short, seed=0)
    rng = np.random.default_rng(1)
    sequences = [rng.integers(5, config.vocab_size, size=n).tolist() for n in lengths]
    common = dict(tokenizer=None, max_length=args.window, model_id="random", revision="-", device=device, dtype=dtype)

    def encoder(attention: str) -> JinaBertEncoder:
        return JinaBertEncoder(model, attention=attention, **common)

    plain = encoder("plain")
    batches = plain.plan_batches(lengths, args.token_budget)
    report = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "dtype": str(dtype), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "layers": args.layers, "window": args.window, "token_budget": args.token_budget, "iters": args.iters,
        "sequences": len(lengths), "tokens": sum(lengths), "longest": max(lengths),
        "plain_batches": len(batches),
        "plain_padding_fraction": round(padding_fraction(lengths, batches, plain.pad_to_multiple_of), 4),
        "packs": len(encoder("packed").plan_batches(lengths, args.token_budget)),
    }  # fmt: skip
    print(json.dumps(report), flush=True)

    paths = {"plain": plain}
    for backend in BACKENDS if args.flex else ("segments",):
        paths[f"packed/{backend}"] = JinaBertEncoder(model, attention="packed", backend=backend, **common)
    first_call = {}
    for name, encoder in paths.items():  # warm-up; FlexAttention compiles here
        start = time.perf_counter()
        encoder.encode_token_batches(sequences[:2], token_budget=args.token_budget)
        first_call[name] = time.perf_counter() - start
    best = dict.fromkeys(paths, math.inf)
    outputs = {}
    for _ in range(args.iters):  # interleaved, so that load from other jobs hits every path alike
        for name, encoder in paths.items():
            seconds, outputs[name] = one_pass(encoder, sequences, args.token_budget)
            best[name] = min(best[name], seconds)
    results = []
    for name in paths:
        results.append({
            "path": name, "seconds": round(best[name], 3), "tokens_per_s": round(sum(lengths) / best[name]),
            "ratio_vs_plain": round(best["plain"] / best[name], 3), "first_call_seconds": round(first_call[name], 1),
            "min_cosine_vs_plain": round(min_cosine(outputs[name], outputs["plain"]), 6),
        })  # fmt: skip
        print(json.dumps(results[-1]), flush=True)
    if args.out:
        with open(args.out, "w") as handle:
            json.dump({**report, "results": results}, handle, indent=2)


if __name__ == "__main__":
    main()
