#!/usr/bin/env bash
# Encoder benchmark: the C side and the PyTorch side (tools/beit_ref.py, Debian python3-torch) on
# the same shapes and thread count, in the same run; prints both JSON lines and the ratios.
#   bench/run_encoder.sh [small|base-train|base-infer|all]   (default: all)
# Machines are shared and noisy: each side reports the median step of several iterations.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/bench/bench_encoder}
PY=/usr/bin/python3
THREADS=${THREADS:-$(nproc)}
[ -x "$BIN" ] || { echo "build first: scripts/build.sh" >&2; exit 1; }

compare() { # name, then the common arguments
  local name=$1; shift
  local c t
  c=$("$BIN" --threads "$THREADS" "$@")
  t=$(OMP_NUM_THREADS=$THREADS $PY bench/bench_encoder_torch.py --threads "$THREADS" "$@")
  echo "$name"
  echo "  c:       $c"
  echo "  pytorch: $t"
  $PY - "$c" "$t" <<'PYEOF'
import json, sys
c, t = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"  ratio: {c['images_per_s'] / t['images_per_s']:.2f}x images/s "
      f"(C {c['images_per_s']:.2f}, PyTorch {t['images_per_s']:.2f}); "
      f"C at {100 * c['fraction_of_peak']:.0f}% of sgemm peak {c['sgemm_peak_gflops']:.0f} GFLOP/s; "
      f"peak RSS C {c['peak_rss_mb']:.0f} MB vs PyTorch {t['peak_rss_mb']:.0f} MB")
PYEOF
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
