#!/usr/bin/env bash
# The GPU check in one command (under 8 minutes on one H100/H200-class GPU):
#   1. the packed ALiBi path (FlexAttention and segments) against the plain reference on a realistic mix of document
#      windows up to 8,192 tokens, bf16: worst per-token cosine, tokens/s of each path;
#   2. encoder tokens/s, MFU and peak memory at 512 / 2,048 / 8,192 tokens, the project's encoder against plain SDPA
#      with a dense ALiBi bias, measured in the same run;
#   3. when the local stack is up (scripts/servers.sh, scripts/airflow.sh), the pipeline benchmark with
#      jina-embeddings-v2-base's shape (random weights: the device has no hub access) on a synthetic corpus.
# Writes $OUT/packed.json, $OUT/encoder.json, $OUT/pipeline.json (when run) and $OUT/summary.md, then prints the table.
# Usage: bench/gpu_check.sh [OUT_DIR]   (PYTHON=... for another interpreter; GPU_CHECK_DEVICE=cpu for a dry run)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-out/gpu-check}
PY=${PYTHON:-.venv/bin/python}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1

if [[ $DEVICE == cuda ]]; then
    "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "no CUDA device: nothing to check")'
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
    packed=(--tokens 131072 --iters 3 --flex) encoder=(--seq-lens 512,2048,8192) docs=20000
else  # a dry run of the script itself on CPU: tiny sizes, the same steps
    packed=(--layers 1 --window 1024 --tokens 4096 --short 16 --iters 1) encoder=(--seq-lens 256 --layers 1 --iters 1)
    docs=500
fi

echo "== 1/3 packed attention against the plain reference"
timeout 240 "$PY" bench/packed_attention.py --device "$DEVICE" "${packed[@]}" --out "$OUT/packed.json"
echo "== 2/3 encoder throughput, MFU and peak memory against SDPA with a dense ALiBi bias"
timeout 150 "$PY" bench/embed_throughput.py --device "$DEVICE" "${encoder[@]}" --out "$OUT/encoder.json"
echo "== 3/3 pipeline"
if [[ -f var/servers.env ]] && scripts/airflow.sh env >/dev/null 2>&1; then
    timeout 300 "$PY" bench/pipeline_throughput.py --docs "$docs" --hidden 768 --layers 12 --heads 12 \
        --out "$OUT/pipeline.json" || echo "the pipeline benchmark failed or ran out of time (see above)" >&2
else
    echo "skipped: the local stack is not running (scripts/servers.sh start && scripts/airflow.sh start)"
fi

"$PY" - "$OUT" <<'PY'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
packed, encoder = (json.loads((out / name).read_text()) for name in ("packed.json", "encoder.json"))
lines = [f"device: {encoder['device']}, {encoder['dtype']}, torch {encoder['torch']}", "",
         "| packed path | tokens/s | vs plain | worst cosine vs plain |", "|---|---|---|---|"]
lines += [f"| {r['path']} | {r['tokens_per_s']:,} | {r['ratio_vs_plain']:.2f}x | {r['min_cosine_vs_plain']:.6f} |"
          for r in packed["results"]]
lines += ["", "| tokens | batch | project tokens/s | dense-bias tokens/s | ratio | MFU | peak GiB (project / dense) |",
          "|---|---|---|---|---|---|---|"]
lines += [f"| {r['seq_len']:,} | {r['batch']} | {r['project_tokens_per_s']:,} | {r['baseline_tokens_per_s']:,} | "
          f"{r['ratio']:.2f}x | {r['project_mfu']:.1%} | {r['project_peak_gib']} / {r['baseline_peak_gib']} |"
          for r in encoder["results"]]
if (out / "pipeline.json").is_file():
    pipeline = json.loads((out / "pipeline.json").read_text())
    lines += ["", f"pipeline: {pipeline['docs']:,} documents, {pipeline['end_to_end_tokens_per_s']:,.0f} tokens/s end "
              f"to end, bare encoder {pipeline['bare_encoder']['tokens_per_s']:,.0f}, ratio {pipeline['ratio']:.3f}"]
worst = min(r["min_cosine_vs_plain"] for r in packed["results"])
lines += ["", f"packed path equal to the reference (cosine >= 0.999): {'yes' if worst >= 0.999 else 'NO'} ({worst:.6f})"]
(out / "summary.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
sys.exit(0 if worst >= 0.999 else 1)
PY
