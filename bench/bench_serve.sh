#!/usr/bin/env bash
# Serving benchmark: BEiT-base/16 at 224 (and the small Fashion-MNIST model) through `beit serve`
# on loopback, next to the C offline forward and PyTorch eager (tools/beit_ref.py) with the same
# threads on the same images, in the same run.
#   bench/bench_serve.sh [base|small|all]        (default: all)
# Environment: BUILD (default build), THREADS (default nproc), LAT_SECONDS (15), LOAD_SECONDS
# (30), CONNECTIONS (16 base / 64 small), BATCH (8), ITERS (7), WORK (model folders, cached),
# IMAGE_DIR (folder of PNGs to send, default WORK/images: 16 photos-sized 640x480 / 480x640 PNGs),
# PRECISION (bf16 or fp32, default bf16 where the CPU has bf16 matrix products: the server, predict
# and the C offline forward run --precision PRECISION, PyTorch runs under torch.autocast in bf16).
# Reports: server single-image latency (wrk, 1 connection, p50/p99), server images/s under
# concurrent load with request batching (wrk, many connections, p50/p99), C offline batch-1 and
# batched forward, PyTorch batch-1 and batched forward, predict-vs-PyTorch agreement, and two
# ratios: PyTorch batch-1 latency / server p50 latency (how much sooner a client gets its answer
# than from a PyTorch forward alone) and server images/s under load / C offline batched images/s
# (what HTTP, decoding and queueing cost; target >= 0.8).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BEIT=$BUILD/apps/beit
CBENCH=$BUILD/bench/bench_serve
PY=/usr/bin/python3
THREADS=${THREADS:-$(nproc --all)}
BATCH=${BATCH:-8}
WORK=${WORK:-$BUILD/bench/serve_models}
LAT_SECONDS=${LAT_SECONDS:-15}
LOAD_SECONDS=${LOAD_SECONDS:-30}
ITERS=${ITERS:-7}
[ -x "$BEIT" ] && [ -x "$CBENCH" ] || { echo "build first: cmake --build $BUILD" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk not found (apt-get install wrk)" >&2; exit 1; }
[ -f "$WORK/base/model.safetensors" ] || $PY bench/bench_serve_model.py --out "$WORK"
export OMP_NUM_THREADS=$THREADS
IMAGES_DIR=${IMAGE_DIR:-$WORK/images}
if [ -z "${PRECISION:-}" ]; then
  PRECISION=fp32
  "$BEIT" info configs/models/beit_small_fashion_mnist.json | grep -q "bf16 available" && PRECISION=bf16
fi
mapfile -t IMAGES < <(ls "$IMAGES_DIR"/*.png)

bench() { # name connections
  local name=$1 conn=$2 model=$WORK/$1 c t p lat load
  echo "== $name ($(nproc --all) cores, $THREADS threads, $PRECISION, load average $(cut -d' ' -f1-3 /proc/loadavg))"
  c=$("$CBENCH" --model "$model" --batch "$BATCH" --iters "$ITERS" --batch-iters 2 \
        --precision "$PRECISION" "${IMAGES[@]}")
  t=$($PY bench/bench_serve_torch.py --model "$model" --images "$IMAGES_DIR" --threads "$THREADS" \
        --batch "$BATCH" --iters "$ITERS" --batch-iters 2 --precision "$PRECISION")
  p=$("$BEIT" predict --model "$model" --with-input --quiet --batch "$BATCH" \
        --precision "$PRECISION" "$IMAGES_DIR")
  lat=$($PY tests/test_serve_load.py "$BEIT" "$WORK" --model "$model" --connections 1 \
          --wrk-threads 1 --images 1 --image-file "${IMAGES[0]}" --seconds "$LAT_SECONDS" --json \
          --serve-arg=--precision="$PRECISION")
  load=$($PY tests/test_serve_load.py "$BEIT" "$WORK" --model "$model" --connections "$conn" \
          --wrk-threads 2 --images 1 $(printf -- '--image-file %s ' "${IMAGES[@]}") \
          --seconds "$LOAD_SECONDS" --json --serve-arg=--max-batch="$BATCH" \
          --serve-arg=--precision="$PRECISION")
  $PY - "$c" "$t" "$p" "$lat" "$load" <<'PYEOF'
import json, os, sys
c, t = json.loads(sys.argv[1]), json.loads(sys.argv[2])
pred = {os.path.basename(json.loads(l)["input"]): json.loads(l)["probs"] for l in sys.argv[3].splitlines()}
lat, load = json.loads(sys.argv[4]), json.loads(sys.argv[5])
diff = max(abs(a - b) for n, ps in t["probs"].items() for a, b in zip(pred[n], ps))
print(f"  agreement: beit predict vs PyTorch probabilities, max |diff| {diff:.2e} over {len(pred)} images")
print(f"  C offline:  batch-1 forward {c['batch1_latency_ms']:.1f} ms; batch {c['batch']} "
      f"{c['batch_images_per_s']:.2f} images/s; decode+preprocess {c['preprocess_ms_per_image']:.2f} ms/image")
print(f"  PyTorch:    batch-1 forward {t['batch1_latency_ms']:.1f} ms; batch {t['batch']} "
      f"{t['batch_images_per_s']:.2f} images/s (torch {t['torch']}, eager, {t['threads']} threads, "
      f"{t.get('precision', 'fp32')})")
print(f"  server, 1 connection:  {lat['requests_per_s']:.2f} requests/s, p50 {lat['p50_ms']:.1f} ms, "
      f"p99 {lat['p99_ms']:.1f} ms, {lat['failed']} failed; its forwards took "
      f"{1000 / lat['forward_images_per_s']:.1f} ms each (offline {c['batch1_latency_ms']:.1f} ms)")
print(f"  server, {load['connections']} connections: {load['requests_per_s']:.2f} requests/s = "
      f"{load['images_per_s']:.2f} images/s, p50 {load['p50_ms']:.1f} ms, p99 {load['p99_ms']:.1f} ms, "
      f"{load['failed']} failed of {load['requests']}; mean batch {load['mean_batch']}")
print(f"  inside the server during the load window: forwards ran at {load['forward_images_per_s']:.2f} "
      f"images/s; served/forward = {load['serving_efficiency']:.2f} (queueing and HTTP overhead only, "
      f"immune to load drift between runs)")
print(f"  ratios: PyTorch batch-1 forward / server p50 latency = "
      f"{t['batch1_latency_ms'] / lat['p50_ms']:.2f}x; "
      f"server images/s under load / C offline batched = {load['images_per_s'] / c['batch_images_per_s']:.2f} "
      f"(target >= 0.8); vs PyTorch batched = {load['images_per_s'] / t['batch_images_per_s']:.2f}x")
print("  json: " + json.dumps({"c": {k: v for k, v in c.items()}, "pytorch": {k: v for k, v in t.items() if k != "probs"},
                               "latency": lat, "load": load, "agreement_max_abs_diff": diff}))
PYEOF
}

what=${1:-all}
if [ "$what" = small ] || [ "$what" = all ]; then bench small "${CONNECTIONS:-64}"; fi
if [ "$what" = base ] || [ "$what" = all ]; then bench base "${CONNECTIONS:-16}"; fi
