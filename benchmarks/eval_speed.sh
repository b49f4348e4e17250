#!/usr/bin/env bash
# Issue 3's speed measurement on one CUDA machine: gancli's Inception feature engines against
# torch-fidelity on the same 10k random 32x32 uint8 images in the same process, with each engine's
# profile (time per step, and its costliest CUDA kernels), under PyTorch's default cuDNN TF32
# convolutions and in true fp32 (TF32 off).
# Usage: OUT=/some/dir bash benchmarks/eval_speed.sh   (random weights of the right shapes: nothing is
# downloaded; the speed and the agreement of scores do not depend on the weights' values).
set -uo pipefail
OUT=${OUT:-runs/eval-speed}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 COLUMNS=140
g="python3 -m gancli bench eval --device cuda --random-weights --n 10000 --size 32"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/eval_speed.txt"
J="$OUT/eval_speed.jsonl"; : > "$J"
$g --batch-size 500 --engine all --precision all --repeats 3 --profile --json >> "$J"
$g --batch-size 500 --engine all --precision fp32 --repeats 3 --no-tf32 --json >> "$J"
$g --batch-size 1000 --engine fused --precision fp32 --repeats 3 --json >> "$J"
python3 - "$J" <<'PY' | tee -a "$OUT/eval_speed.txt"
import json, sys
for line in open(sys.argv[1]):
    info = json.loads(line)
    print(f"== batch {info['batch_size']}, TF32 {'on' if info['tf32'] else 'off'}, {info['device']}")
    for row in info["rows"]:
        if "error" in row:
            print(f"{row['engine']:22s} {row['precision']:5s} failed: {row['error']}")
        else:
            print(f"{row['engine']:22s} {row['precision']:5s} {row['img_per_s']:9,.0f} img/s  x{row.get('speedup', 1):.2f}"
                  f"  |dFID|/FID {row.get('fid_rel_diff', 0):.1e}  |dIS|/IS {row.get('is_rel_diff', 0):.1e}")
    for prof in info.get("profiles", []):
        print(f"-- {prof['engine']} {prof['precision']}: " + ", ".join(
            f"{s['step']} {s['ms']:.1f} ms" for s in prof["steps"]))
        for k in prof.get("kernels", []):
            print(f"   {k['share']:6.1%} {k['ms']:8.2f} ms {k['calls']:4d}x  {k['name']}")
PY
