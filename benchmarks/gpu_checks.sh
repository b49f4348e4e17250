#!/usr/bin/env bash
# The GPU measurements reported in the issues' closing notes, in one command on one CUDA machine.
# Usage: OUT=/some/dir bash benchmarks/gpu_checks.sh   (nothing is downloaded: Inception and VGG
# weights are unavailable offline, so the eval bench uses random weights of the right shapes and the
# SR runs use --perceptual none).
set -uo pipefail
OUT=${OUT:-runs/gpu-checks}
RUNS=${RUNS:-/tmp/gancli-gpu-runs}
mkdir -p "$OUT" "$RUNS"
export PYTHONUNBUFFERED=1 COLUMNS=140
g="python3 -m gancli"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/bench.txt"

# 1. Training throughput: SAN vs SN vs none, fp32 vs bf16 (issue 2), full SNDCGAN, batch 64
$g bench train uncond --device cuda --iters 200 --warmup 30 --set width=1 --set batch_size=64 \
   --variant precision=bf16 --variant norm=sn --variant norm=none --variant memory_format=contiguous \
   2>&1 | tee -a "$OUT/bench.txt"
# 2. SR critic+generator throughput at the paper's batch 32 and 128 px crops (issue 4)
$g bench train sr --device cuda --iters 40 --warmup 10 --set batch_size=32 --set hr_size=128 \
   --set perceptual=none --set pretrain_steps=0 --variant norm=sn --variant precision=bf16 \
   --variant memory_format=contiguous 2>&1 | tee -a "$OUT/bench.txt"
# 3. Feature extraction vs torch-fidelity on the same 10k 32x32 images (issue 3), with per-step profiles
OUT="$OUT" bash "$(dirname "$0")/eval_speed.sh" a  # its half b (eager, batch 1000, compile) needs a device call of its own

# 4. Short real SR runs on the builtin photos: one L1 pretraining, then SAN and SN from it (issue 4)
SR="--device cuda --hr-size 128 --batch-size 16 --perceptual none --lambda-content 1 --lambda-adv 0.01 \
    --log-every 100 --sample-every 1000 --ckpt-every 1000 --eval-every 1000 --eval-images 20"
$g train sr --preset pretrain $SR --steps 1500 --out "$RUNS/sr-l1" > "$RUNS/sr-l1.log" 2>&1
for norm in san sn; do
  $g train sr $SR --norm $norm --steps 2000 --pretrain-steps 0 --init-from "$RUNS/sr-l1" \
     --out "$RUNS/sr-$norm" > "$RUNS/sr-$norm.log" 2>&1 &
done
# 5. Short uncond runs (full SNDCGAN, builtin data, builtin-classifier FID) with SAN and SN
for norm in san sn; do
  $g train uncond --device cuda --norm $norm --steps 3000 --width 1 --batch-size 64 --eval-every 1000 \
     --eval-n 5000 --sample-every 1000 --ckpt-every 1000 --out "$RUNS/uncond-$norm" > "$RUNS/uncond-$norm.log" 2>&1 &
done
wait
# what comes back: the bench tables, the runs' last lines and evaluations, a few grids, everything else packed
for run in sr-l1 sr-san sr-sn uncond-san uncond-sn; do
  echo "== $run"; tail -n 12 "$RUNS/$run.log"; grep '"eval/' "$RUNS/$run/metrics.jsonl" | cut -c1-400
done > "$OUT/runs_summary.txt" 2>&1
for run in sr-san uncond-san; do  # the device returns at most 8 files: the rest is in runs.tar.gz
  last=$(ls "$RUNS/$run/samples" 2>/dev/null | tail -n 1); [ -n "$last" ] && cp "$RUNS/$run/samples/$last" "$OUT/$run-$last"
done
tar czf "$OUT/runs.tar.gz" -C "$RUNS" --exclude checkpoints . 2>/dev/null
cat "$OUT/runs_summary.txt"
