#!/usr/bin/env bash
# The GPU check of `gancli study` (issue 17): 8 settings x 3 seeds on the builtin data in one command, then the
# report, and PRD / Jacobian conditioning of the best cell. Sized to finish in under 8 minutes on one H100/H200.
# Usage: OUT=/some/dir bash benchmarks/study_gpu.sh   (nothing is downloaded: FID uses the builtin-data classifier)
set -euo pipefail
OUT=${OUT:-runs/study-gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 COLUMNS=140
g="python3 -m gancli"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"

cat > "$OUT/study_gpu.toml" <<'TOML'
name = "gpu_sn_vs_san"
recipe = "uncond"
preset = "quick"
seeds = [0, 1, 2]
pairs = "norm"

[base]
steps = 1200
eval_every = 1200
eval_n = 2000
ckpt_every = 600
sample_every = 1200
device = "cuda"

[grid]
norm = ["sn", "san"]
loss = ["hinge", "ns"]
optimizer = [
  {label = "(0.5,0.9) n_dis 1", betas_g = [0.5, 0.9], betas_d = [0.5, 0.9], n_dis = 1},
  {label = "(0.5,0.999) n_dis 2", betas_g = [0.5, 0.999], betas_d = [0.5, 0.999], n_dis = 2},
]
TOML

# The FID reference (builtin:test:32 through the builtin classifier) once, into the statistics cache, so that the
# parallel cells do not all compute it at the same time.
$g eval stats builtin:test:32 --features builtin --device cuda --out "$OUT/reference.npz" 2>&1 | tail -2
start=$(date +%s)
$g study "$OUT/study_gpu.toml" --out "$OUT/study" --jobs 4 2>&1 | tee "$OUT/study.txt"
echo "study wall time: $(( $(date +%s) - start )) s" | tee -a "$OUT/study.txt"

# The self-modulation paper's two diagnostics on the cell with the lowest final FID
best=$(python3 - "$OUT/study" <<'PY'
import csv, json, pathlib, sys
study = pathlib.Path(sys.argv[1])
records = [json.loads(p.read_text()) for p in study.glob("cells/*/cell.json")]
ok = [r for r in records if r["status"] == "ok"]
print(study / "cells" / min(ok, key=lambda r: r["final"])["cell"])
PY
)
echo "best cell: $best" | tee "$OUT/diagnostics.txt"
$g eval jacobian "$best" --n 32 --device cuda 2>&1 | tee -a "$OUT/diagnostics.txt"
$g eval prd --real builtin:test:32 --fake "$best" --n 2000 --features builtin --device cuda \
   --plot "$OUT/prd_best.png" 2>&1 | tail -3 | tee -a "$OUT/diagnostics.txt"
cp "$OUT"/study/report/*.png "$OUT"/study/report/*.csv "$OUT/"
