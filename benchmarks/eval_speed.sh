#!/usr/bin/env bash
# Issue 3's speed measurement on one CUDA machine: gancli's Inception feature engines against
# torch-fidelity on the same 10k random 32x32 uint8 images in the same process. torch-fidelity runs as
# PyTorch's defaults run it (TF32 convolutions on Ampere and later: the speed baseline) and in IEEE fp32
# (the scores' reference). gancli runs in each precision (fp32 = IEEE, tf32, bf16), each engine, and for
# the fused engine in both activation layouts with profiles (time per step, costliest CUDA kernels).
# It runs in two halves, one device call each (a call may run 10 minutes; cuDNN's exhaustive kernel search
# and the compile engine's compilation take an unmeasured share of that): `a` is the fused engine in each
# precision and both layouts, with profiles; `b` is the eager engine, batch 1000, and the compile engine.
# Every command has its own time limit and writes its JSON line when it ends, so one slow command leaves
# the others' results.
# Usage: OUT=/some/dir bash benchmarks/eval_speed.sh a|b   (random weights of the right shapes: nothing is
# downloaded; the speed and the agreement of scores do not depend on the weights' values).
set -uo pipefail
HALF=${1:-a}
OUT=${OUT:-runs/eval-speed}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 COLUMNS=140
g="python3 -m gancli bench eval --device cuda --random-weights --n 10000 --size 32"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/eval_speed_$HALF.txt"
J="$OUT/eval_speed_$HALF.jsonl"; : > "$J"
if [ "$HALF" = a ]; then
  for p in fp32 tf32 bf16; do
    timeout 150 $g --batch-size 500 --engine fused --precision $p --memory-format all --repeats 3 --profile --json >> "$J"
  done
else
  timeout 120 $g --batch-size 500 --engine eager --precision all --repeats 3 --json >> "$J"
  timeout 80 $g --batch-size 1000 --engine fused --precision tf32 --repeats 2 --json >> "$J"
  timeout 250 $g --batch-size 500 --engine compile --precision all --repeats 2 --json >> "$J"
fi
python3 - "$J" <<'PY' | tee -a "$OUT/eval_speed_$HALF.txt"
import json, sys
for line in open(sys.argv[1]):
    info = json.loads(line)
    print(f"== batch {info['batch_size']}, {info['device']}, PyTorch's default precision "
          f"{info['pytorch_default_precision']}; x: against torch-fidelity as defaults run it, "
          f"(x same precision); d: against torch-fidelity in IEEE fp32")
    for row in info["rows"]:
        name = f"{row['engine']:16s} {row['precision']:5s} {row.get('memory_format', ''):13s}"
        if "error" in row:
            print(f"{name} failed: {row['error']}")
        else:
            same = f"(x{row['speedup_same_precision']:.2f})" if "speedup_same_precision" in row else ""
            print(f"{name} {row['img_per_s']:9,.0f} img/s  x{row.get('speedup', 1):.2f} {same:8s}"
                  f"  dFID {row.get('fid_rel_diff', 0):.1e}  dIS {row.get('is_rel_diff', 0):.1e}")
    for prof in info.get("profiles", []):
        print(f"-- {prof['engine']} {prof['precision']} {prof['memory_format']}: " + ", ".join(
            f"{s['step']} {s['ms']:.1f} ms" for s in prof["steps"]))
        for k in prof.get("kernels", []):
            print(f"   {k['share']:6.1%} {k['ms']:8.2f} ms {k['calls']:4d}x  {k['name']}")
PY
