"""Encoder throughput for the jina-embeddings-v2-base shape (random weights): the project's native encoder
against a baseline measured in the same run, plus the padding that length-aware batching leaves on a realistic
mix of document lengths.

Baseline: plain PyTorch, separate query/key/value projections, a dense ALiBi + padding bias of shape
(batch, heads, seq, seq) materialised on every forward, ``scaled_dot_product_attention``; same weights.

    python bench/embed_throughput.py --device cuda --seq-lens 512,2048,8192 --out bench.json
    python bench/embed_throughput.py --device cpu --seq-lens 128,256 --layers 2 --iters 2   # quick CPU check
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time

import numpy as np
import torch
import torch.nn.functional as F
from latechunk.embedding.batching import padding_fraction, plan_batches
from latechunk.embedding.encoders.jina_bert import JinaBertConfig, JinaBertModel, alibi_bias
from latechunk.embedding.late_chunking import plan_windows
from torch import nn

# Dense bf16 tensor-core peaks (no sparsity), FLOP/s.
NOMINAL_PEAKS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


class BaselineLayer(nn.Module):
    def __init__(self, config: JinaBertConfig) -> None:
        super().__init__()
        h, i = config.hidden_size, config.intermediate_size
        self.heads, self.head_dim, self.intermediate = config.num_attention_heads, h // config.num_attention_heads, i
        self.query, self.key, self.value, self.dense = (nn.Linear(h, h) for _ in range(4))
        self.norm1, self.norm2 = nn.LayerNorm(h, eps=config.layer_norm_eps), nn.LayerNorm(h, eps=config.layer_norm_eps)
        self.gated, self.wo = nn.Linear(h, 2 * i, bias=False), nn.Linear(i, h)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, s, h = x.shape

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, s, self.heads, self.head_dim).transpose(1, 2)

        context = F.scaled_dot_product_attention(heads(self.query(x)), heads(self.key(x)), heads(self.value(x)), bias)
        x = self.norm1(x + self.dense(context.transpose(1, 2).reshape(b, s, h)))
        gated = self.gated(x)
        return self.norm2(x + self.wo(F.gelu(gated[..., : self.intermediate]) * gated[..., self.intermediate :]))


class BaselineModel(nn.Module):
    def __init__(self, project: JinaBertModel) -> None:
        super().__init__()
        self.config = project.config
        self.embeddings = project.embeddings
        self.layers = nn.ModuleList(BaselineLayer(project.config) for _ in project.layers)
        h = project.config.hidden_size
        for mine, theirs in zip(self.layers, project.layers, strict=True):
            for k, name in enumerate(("query", "key", "value")):
                getattr(mine, name).weight.data = theirs.attention.qkv.weight.data[k * h : (k + 1) * h].clone()
                getattr(mine, name).bias.data = theirs.attention.qkv.bias.data[k * h : (k + 1) * h].clone()
            mine.dense.load_state_dict(theirs.attention.dense.state_dict())
            mine.norm1.load_state_dict(theirs.attention.LayerNorm.state_dict())
            mine.gated.load_state_dict(theirs.mlp.gated_layers.state_dict())
            mine.wo.load_state_dict(theirs.mlp.wo.state_dict())
            mine.norm2.load_state_dict(theirs.mlp.layernorm.state_dict())

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        x = self.embeddings(input_ids)
        b, s = input_ids.shape
        bias = alibi_bias(self.config.num_attention_heads, s, x.device, x.dtype).expand(b, -1, -1, -1).clone()
        bias.masked_fill_(attention_mask[:, None, None, :] == 0, torch.finfo(x.dtype).min)
        for layer in self.layers:
            x = layer(x, bias)
        return x


def flops_per_token(config: JinaBertConfig, seq_len: int) -> float:
    h, i, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    return 2 * layers * (4 * h * h + 3 * h * i) + layers * 4 * seq_len * h


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def tokens_per_second(
    model: nn.Module, batch: int, seq_len: int, device: torch.device, iters: int, warmup: int
) -> tuple[float, int | None]:
    """Tokens/s of full (batch, seq_len) forward passes, and on CUDA the most memory they allocated (bytes)."""
    ids = torch.randint(5, model.config.vocab_size, (batch, seq_len), device=device)
    mask = torch.ones_like(ids)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with torch.inference_mode():
        for _ in range(warmup):
            model(ids, mask)
        synchronize(device)
        start = time.perf_counter()
        for _ in range(iters):
            model(ids, mask)
        synchronize(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return batch * seq_len * iters / seconds, peak


def measured_matmul_peak(device: torch.device, dtype: torch.dtype) -> float:
    n = 4096 if device.type == "cuda" else 2048
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    synchronize(device)
    reps = 20 if device.type == "cuda" else 5
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    synchronize(device)
    return 2 * n**3 * reps / (time.perf_counter() - start)


def peak_flops(device: torch.device, dtype: torch.dtype, override_tflops: float | None) -> tuple[float, str]:
    if override_tflops:
        return override_tflops * 1e12, "given"
    if device.type == "cuda" and dtype == torch.bfloat16:
        name = torch.cuda.get_device_name(device)
        for key, value in NOMINAL_PEAKS.items():
            if key in name:
                return value, f"nominal dense bf16 for {name}"
    return measured_matmul_peak(device, dtype), "measured matmul in this run"


def realistic_padding(window: int, overlap: int, token_budget: int, pad_multiple: int, seed: int = 0) -> dict:
    """Document lengths drawn log-normally (median ~1.2k tokens, long tail past 8k), cut into windows."""
    rng = np.random.default_rng(seed)
    doc_lengths = np.clip(rng.lognormal(mean=math.log(1200), sigma=1.0, size=2000), 16, 65536).astype(int)
    lengths = [w.end - w.start for n in doc_lengths for w in plan_windows(int(n), window, overlap)]
    packed = plan_batches(lengths, token_budget, pad_to_multiple_of=pad_multiple)
    per_batch = max(1, token_budget // window)
    arrival = [list(range(i, min(i + per_batch, len(lengths)))) for i in range(0, len(lengths), per_batch)]
    return {
        "documents": len(doc_lengths),
        "windows": len(lengths),
        "median_doc_tokens": int(np.median(doc_lengths)),
        "padding_fraction_length_sorted": round(padding_fraction(lengths, packed, pad_multiple), 4),
        "padding_fraction_arrival_order": round(padding_fraction(lengths, arrival, pad_multiple), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seq-lens", default="512,2048,8192")
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--token-budget", type=int, default=None, help="tokens per forward (default 16384 cuda)")
    parser.add_argument("--iters", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    iters = args.iters or (10 if device.type == "cuda" else 2)
    warmup = args.warmup if args.warmup is not None else (3 if device.type == "cuda" else 1)
    budget = args.token_budget or (16384 if device.type == "cuda" else 2048)
    config = JinaBertConfig(
        vocab_size=30528, hidden_size=768, num_hidden_layers=args.layers, num_attention_heads=12,
        intermediate_size=3072, max_position_embeddings=8192,
    )
    torch.manual_seed(0)
    project = JinaBertModel(config).to(device=device, dtype=dtype).eval()
    baseline = BaselineModel(project).to(device=device, dtype=dtype).eval()
    peak, peak_source = peak_flops(device, dtype, args.peak_tflops)

    with torch.inference_mode():
        probe = torch.randint(5, config.vocab_size, (2, 64), device=device)
        probe_mask = torch.ones_like(probe)
        agreement = (project(probe, probe_mask) - baseline(probe, probe_mask)).abs().max().item()

    results = []
    for seq_len in (int(s) for s in args.seq_lens.split(",")):
        batch = max(1, budget // seq_len)
        mine, mine_peak = tokens_per_second(project, batch, seq_len, device, iters, warmup)
        base, base_peak = tokens_per_second(baseline, batch, seq_len, device, iters, warmup)
        flops = flops_per_token(config, seq_len)
        results.append({
            "seq_len": seq_len, "batch": batch,
            "project_tokens_per_s": round(mine), "baseline_tokens_per_s": round(base),
            "ratio": round(mine / base, 3),
            "project_mfu": round(mine * flops / peak, 4), "baseline_mfu": round(base * flops / peak, 4),
            "gflop_per_token": round(flops / 1e9, 4),
            "project_peak_gib": round(mine_peak / 2**30, 2) if mine_peak else None,
            "baseline_peak_gib": round(base_peak / 2**30, 2) if base_peak else None,
        })
        print(json.dumps(results[-1]), flush=True)

    report = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "dtype": str(dtype), "layers": args.layers, "torch": torch.__version__,
        "threads": torch.get_num_threads(), "iters": iters,
        "peak_tflops": round(peak / 1e12, 2), "peak_source": peak_source,
        "project_vs_baseline_max_abs_diff": agreement,
        "results": results,
        "padding_on_length_mix": realistic_padding(8192, 256, 16384, 8),
    }
    print(json.dumps(report["padding_on_length_mix"]))
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(report, handle, indent=2)


if __name__ == "__main__":
    main()
