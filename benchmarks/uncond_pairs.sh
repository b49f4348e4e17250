#!/usr/bin/env bash
# Paired uncond runs at full width on one CUDA machine (issue 12): --gen-norm bn vs sbn and --norm sn vs san,
# same seed and steps, builtin data at 32 px, builtin-classifier FD every 500 steps (5k generated vs the
# builtin test split). Four runs at once; about 6 minutes on an H100-class GPU.
# Usage: OUT=/some/dir STEPS=3000 bash benchmarks/uncond_pairs.sh
set -uo pipefail
OUT=${OUT:-runs/uncond-pairs}
STEPS=${STEPS:-3000}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 COLUMNS=140
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/device.txt"
COMMON="--device cuda --arch resnet --width 1 --batch-size 64 --steps $STEPS --seed 0 --eval-every 500 \
  --eval-n 5000 --sample-every $STEPS --ckpt-every $STEPS --log-every 100"
for pair in "bn san" "sbn san" "bn sn" "sbn sn"; do
  set -- $pair
  timeout 450 python3 -m gancli train uncond $COMMON --gen-norm "$1" --norm "$2" --out "$OUT/$1-$2" \
    > "$OUT/$1-$2.log" 2>&1 &
done
wait
# FD over steps, one line per run
for run in bn-san sbn-san bn-sn sbn-sn; do
  python3 - "$OUT/$run/metrics.jsonl" "$run" <<'PY' | tee -a "$OUT/fd_over_steps.txt"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"eval/fid"' in l]
print(sys.argv[2], " ".join(f"{r['step']}:{r['eval/fid']:.2f}" for r in rows))
PY
done
