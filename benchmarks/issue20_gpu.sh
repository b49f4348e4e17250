#!/usr/bin/env bash
# Issue 20's GPU measurement in one device call (under 8 minutes): training steps of uncond (full SNDCGAN,
# batch 64) and sr (batch 32, 128 px crops) for SAN vs SN (with SN also on SAN's cyclic padding), eager vs
# --compile reduce-overhead (CUDA graphs), fp32 vs bf16, all as ratios to eager fp32 SAN in the same command;
# then Inception feature extraction in every precision and engine against torch-fidelity.
# Every command has its own time limit and writes its JSON when it ends, so one slow command leaves the others'.
# Usage: OUT=/some/dir bash benchmarks/issue20_gpu.sh
#   torch-fidelity is not on the device image: put its wheel in .whl/ first and carry it:
#   pip download torch-fidelity --no-deps -d .whl   (then run with carry [".whl"])
#   SMOKE=1 DEVICE=cpu runs the same commands at toy sizes (a check of the script, not a measurement).
set -uo pipefail
OUT=${OUT:-runs/issue20-gpu}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 COLUMNS=150
g="python3 -m gancli"
ls .whl/*.whl >/dev/null 2>&1 && pip install --quiet --no-deps --no-index .whl/*.whl
{ nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no GPU"; } | tee "$OUT/bench.txt"
if [ "${SMOKE:-0}" = 1 ]; then
  U="--iters 2 --warmup 2 --rounds 2 --set width=0.125 --set batch_size=4 --set resolution=16"
  S="--iters 2 --warmup 2 --rounds 2 --set batch_size=2 --set hr_size=32 --set n_blocks=1"
  E="--n 40 --batch-size 20 --repeats 1"
  CB="--set compile_backend=aot_eager"
else
  U="--iters 300 --warmup 20 --rounds 5 --set width=1 --set batch_size=64"
  S="--iters 40 --warmup 6 --rounds 4 --set batch_size=32 --set hr_size=128"
  E="--n 10000 --batch-size 500 --repeats 2"
  CB=""
fi
COMPILED="compile=reduce-overhead"
timeout 200 $g bench train uncond --device "$DEVICE" $U $CB --json \
  --variant norm=sn --variant norm=sn,critic_padding=circular --variant precision=bf16 \
  --variant $COMPILED --variant norm=sn,$COMPILED --variant $COMPILED,precision=bf16 > "$OUT/train_uncond.json"
timeout 130 $g bench train sr --device "$DEVICE" $S $CB --set perceptual=none --set pretrain_steps=0 --json \
  --variant norm=sn --variant norm=sn,critic_padding=circular --variant precision=bf16 \
  --variant $COMPILED --variant norm=sn,$COMPILED > "$OUT/train_sr.json"
timeout 140 $g bench eval --device "$DEVICE" --random-weights --size 32 $E --precision all --engine all \
  --json > "$OUT/eval.json"
python3 - "$OUT" <<'PY' | tee -a "$OUT/bench.txt"
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
for name in ("train_uncond", "train_sr"):
    try:
        rows = json.loads((out / f"{name}.json").read_text())
    except (OSError, ValueError) as exc:
        print(f"== {name}: no result ({exc.__class__.__name__})"); continue
    print(f"== bench {name.replace('_', ' ')} (ratios: it/s over eager fp32 SAN, median of rounds)")
    by = {r["variant"]: r for r in rows}
    for r in rows:
        print(f"{r['variant']:42s} {r['it_s']:8.2f} it/s {r['img_s']:8.0f} img/s  x{r['ratio']:.3f}"
              f"  peak {r['peak_mib'] or 0:8.0f} MiB")
    for sn, san in (("norm=sn", "baseline"), ("norm=sn,critic_padding=circular", "baseline"),
                    ("norm=sn,compile=reduce-overhead", "compile=reduce-overhead")):
        if sn in by and san in by:
            print(f"   SAN step time / SN step time ({san} vs {sn}): {by[sn]['it_s'] / by[san]['it_s']:.3f}")
try:
    info = json.loads((out / "eval.json").read_text())
    print(f"== bench eval (PyTorch's default precision {info['pytorch_default_precision']})")
    for r in info["rows"]:
        print(r["engine"], r["precision"], r.get("memory_format", ""), r.get("error") or
              f"{r['img_per_s']:,.0f} img/s x{r.get('speedup', 1):.2f} dFID {r.get('fid_rel_diff', 0):.1e}")
except (OSError, ValueError, KeyError) as exc:
    print(f"== bench eval: no result ({exc.__class__.__name__})")
PY
