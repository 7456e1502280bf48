#!/usr/bin/env bash
# Encoder benchmark: the C side and the PyTorch side (tools/beit_ref.py, Debian python3-torch) on
# the same shapes and thread count, in the same run, in float32 and in bf16 mixed precision
# (C: --precision bf16, oneDNN; PyTorch: torch.autocast("cpu", dtype=torch.bfloat16), its best on
# a CPU with bf16). Prints the CPU model, the ISA oneDNN chose, every JSON line and the ratios.
#   bench/run_encoder.sh [small|base-train|base-infer|base-infer8|all]   (default: all)
#   env: THREADS (default: nproc), PRECISIONS (default "fp32 bf16"; bf16 is skipped where the
#        CPU has no bf16 matrix products), ROUNDS (default 1: C then PyTorch once per precision)
# Machines are shared and noisy: each side reports the median step of several iterations; the
# four sides of a case run back to back in the order C fp32, PyTorch fp32, C bf16, PyTorch bf16.
# The machine's speed also drifts over minutes, on both sides: ROUNDS=N alternates the two sides
# N times per precision and prints the median of the N ratios (each measured a pair at a time).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/bench/bench_encoder}
PY=/usr/bin/python3
THREADS=${THREADS:-$(nproc)}
PRECISIONS=${PRECISIONS:-fp32 bf16}
ROUNDS=${ROUNDS:-1}
[ -x "$BIN" ] || { echo "build first: scripts/build.sh" >&2; exit 1; }

echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "threads: $THREADS"
"$(dirname "$BIN")/bench_gemm" --threads "$THREADS" | sed -n 2p

compare() { # name, then the common arguments
  local name=$1; shift
  echo "$name"
  for p in $PRECISIONS; do
    local ratios="" round c t line
    for round in $(seq "$ROUNDS"); do
      if ! c=$("$BIN" --threads "$THREADS" --precision "$p" "$@" 2>/tmp/bench_encoder.err); then
        echo "  $p: C side refused: $(tail -1 /tmp/bench_encoder.err)"
        continue 2
      fi
      t=$(OMP_NUM_THREADS=$THREADS $PY bench/bench_encoder_torch.py --threads "$THREADS" \
          --precision "$p" "$@")
      echo "  c $p:       $c"
      echo "  pytorch $p: $t"
      line=$($PY - "$c" "$t" "$p" <<'PYEOF'
import json, sys
c, t, p = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
peak = "bf16 matmul" if p == "bf16" else "sgemm"
print(f"  {p} ratio: {c['images_per_s'] / t['images_per_s']:.2f}x images/s "
      f"(C {c['images_per_s']:.2f}, PyTorch{' autocast' if p == 'bf16' else ''} "
      f"{t['images_per_s']:.2f}); C at {100 * c['fraction_of_peak']:.0f}% of the {peak} peak "
      f"{c['gemm_peak_gflops']:.0f} GFLOP/s; peak RSS C {c['peak_rss_mb']:.0f} MB vs PyTorch "
      f"{t['peak_rss_mb']:.0f} MB")
PYEOF
)
      echo "$line"
      ratios="$ratios $(echo "$line" | sed -n 's/.* ratio: \([0-9.]*\)x.*/\1/p')"
    done
    if [ "$ROUNDS" -gt 1 ]; then
      $PY -c 'import statistics, sys
r = [float(x) for x in sys.argv[2:]]
each = " ".join("%.2f" % x for x in r)
print(f"  {sys.argv[1]} median ratio over {len(r)} rounds: {statistics.median(r):.2f}x ({each})")' \
        "$p" $ratios
    fi
  done
}

what=${1:-all}
SMALL=configs/models/beit_small_fashion_mnist.json
BASE=configs/models/beit_base_patch16_224.json
if [ "$what" = small ] || [ "$what" = all ]; then
  compare "small config (28x28/4, D192, depth 6, vocab 512), training, batch 64" \
    --config $SMALL --mode train --batch 64 --iters 20 --warmup 3
fi
if [ "$what" = base-train ] || [ "$what" = all ]; then
  compare "BEiT-base/16 224 (vocab 8192), training, batch 8" \
    --config $BASE --mode train --batch 8 --iters 5 --warmup 1
fi
if [ "$what" = base-infer ] || [ "$what" = all ]; then
  compare "BEiT-base/16 224, inference, batch 1" \
    --config $BASE --mode infer --batch 1 --iters 20 --warmup 3
fi
if [ "$what" = base-infer8 ] || [ "$what" = all ]; then
  compare "BEiT-base/16 224, inference, batch 8" \
    --config $BASE --mode infer --batch 8 --iters 5 --warmup 1
fi
