#!/usr/bin/env bash
# GPU smoke check of training: synthetic data, the negatives' MLM, then the small ITC and ViLEM
# recipes for a few hundred bf16 steps each; prints samples/s and peak CUDA memory per recipe.
#
#   bash benchmarks/gpu_check.sh [STEPS] [OUT]        (defaults: 300, runs/gpu-check)
#   bash benchmarks/gpu_check.sh paper [STEPS]        (the paper recipe, see below; default 20)
#
# Env: PYTHON (default .venv/bin/python), BATCH (per-GPU batch, default 128), WORKERS (default 4),
# LM_STEPS (masked-LM steps, default 600),
# ALLOW_CPU=1 to dry-run the script on a machine without CUDA (fp32, tiny step counts advised).
#
# paper mode (benchmarks/perf/paper_recipe.py): ViT-B/16 at 224 px + BERT-base, fusion at 6,
# momentum encoders and queue, bf16, batch 256 (BATCH overrides), random init, generated data;
# ITC-only and ViLEM, eager and torch.compile (COMPILE=both|off|on); prints samples/s, model
# FLOPs per sample, MFU against the GPU's dense bf16 peak, peak memory, the ViLEM/ITC ratio, and
# writes runs/gpu-check/paper.json. TINY=1: the same code at toy size on the CPU (a smoke test).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}

if [[ "${1:-}" == paper ]]; then
  args=(--compile "${COMPILE:-both}")
  [[ -n "${2:-}" ]] && args+=(--steps "$2")
  [[ -n "${BATCH:-}" ]] && args+=(--batch "$BATCH")
  [[ "${TINY:-0}" == 1 ]] && args+=(--tiny)
  mkdir -p runs/gpu-check
  exec "$PY" benchmarks/perf/paper_recipe.py "${args[@]}" --json runs/gpu-check/paper.json
fi
STEPS=${1:-300}
OUT=${2:-runs/gpu-check}
BATCH=${BATCH:-128}
WORKERS=${WORKERS:-4}
LM_STEPS=${LM_STEPS:-600}
AMP=bf16

if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  if [[ "${ALLOW_CPU:-0}" != 1 ]]; then
    echo "gpu_check: CUDA is not available (set ALLOW_CPU=1 for a CPU dry run)" >&2
    exit 1
  fi
  AMP=fp32
fi
"$PY" -c "import torch; print('torch', torch.__version__, '| device:',
  torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')"

mkdir -p "$OUT"
echo "== synthetic data -> $OUT/data"
"$PY" -m vilem data synthetic --root "$OUT/data"
echo "== negatives' masked LM -> $OUT/mlm"
"$PY" -m vilem train-lm --dataset synthetic --root "$OUT/data" --out "$OUT/mlm" --steps "$LM_STEPS" --quiet

for recipe in small-itc small-vilem; do
  echo "== $recipe: $STEPS steps, batch $BATCH, $AMP"
  rm -rf "$OUT/$recipe"
  "$PY" -m vilem train --config "$recipe" --out "$OUT/$recipe" --quiet \
    data.root="$OUT/data" mlm_path="$OUT/mlm" amp="$AMP" \
    optim.steps="$STEPS" optim.batch_size="$BATCH" optim.warmup_steps=$((STEPS / 10)) \
    num_workers="$WORKERS" log_every=10 val_every=0 save_every=0
done

echo "== summary (steady state: log windows after the first 20% of steps)"
"$PY" - "$OUT" "$STEPS" <<'PY'
import json, sys
from pathlib import Path

out, steps = Path(sys.argv[1]), int(sys.argv[2])
for recipe in ("small-itc", "small-vilem"):
    records = [json.loads(line) for line in (out / recipe / "log.jsonl").read_text().splitlines()]
    train = [r for r in records if "samples_per_s" in r]
    steady = [r for r in train if r["step"] > steps // 5] or train
    rate = sum(r["samples_per_s"] for r in steady) / len(steady)
    memory = max((r.get("peak_mem_gib") or 0.0) for r in train)
    val = next((r for r in reversed(records) if "val/rsum" in r), {})
    print(
        f"{recipe:12s} {rate:9.1f} samples/s   peak CUDA memory {memory:6.2f} GiB   "
        f"loss {train[0]['loss']:.3f} -> {train[-1]['loss']:.3f}   val rsum {val.get('val/rsum', float('nan')):.1f}"
    )
PY
