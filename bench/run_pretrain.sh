#!/usr/bin/env bash
# Pretraining step benchmark (issue: MIM pretraining): runs `beit pretrain` for a few steps and
# prints the step-time breakdown from metrics.jsonl, the share of the step that is NOT encoder
# forward/backward or tokenizer forward (target < 10%), and the step's images/s next to the
# PyTorch side (encoder training step of bench/bench_encoder_torch.py + tokenizer forward of
# tools/dvae_ref.py bench-encoder, same shapes and threads, run here in the same invocation).
#   bench/run_pretrain.sh [small|base|all]     (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
BEIT=${BEIT:-build/apps/beit}
PY=/usr/bin/python3
THREADS=${THREADS:-$(nproc)}
WORK=${WORK:-/tmp/beit-bench-pretrain}
mkdir -p "$WORK"
export OMP_NUM_THREADS=$THREADS

report() { # name, out dir, torch images/s
  $PY - "$1" "$2/metrics.jsonl" "$3" <<'PYEOF'
import json, sys
name, path, torch_ips = sys.argv[1], sys.argv[2], float(sys.argv[3])
rows = [json.loads(l) for l in open(path)][1:]  # the first step warms up
keys = [k for k in rows[0] if k.startswith("time_")]
t = {k: sum(r[k] for r in rows) / len(rows) for k in keys}
total = sum(t.values())
core = t["time_forward"] + t["time_backward"] + t["time_tokenizer"]
ips = sum(r["images_per_s"] for r in rows) / len(rows)
print(f"{name}: step {total:.3f} s, {ips:.2f} images/s (PyTorch {torch_ips:.2f}: {ips / torch_ips:.2f}x)")
for k in keys:
    print(f"  {k[5:]:20s} {t[k]:8.4f} s  {100 * t[k] / total:5.1f}%")
print(f"  beyond encoder fwd/bwd + tokenizer: {100 * (total - core) / total:.1f}% of the step (target < 10%)")
PYEOF
}

torch_step_ips() { # model config, batch, tokenizer size, tokenizer config json
  local enc tok
  enc=$($PY bench/bench_encoder_torch.py --config "$1" --mode train --batch "$2" \
        --threads "$THREADS" --iters 3 --warmup 1 | $PY -c 'import json,sys; print(json.load(sys.stdin)["median_step_s"])')
  tok=$($PY tools/dvae_ref.py bench-encoder --batch "$2" --size "$3" --threads "$THREADS" --iters 2 \
        | $PY -c 'import json,sys; print(json.load(sys.stdin)["best_s"])')
  $PY -c "print($2 / ($enc + $tok))"
}

what=${1:-all}
if [ "$what" = small ] || [ "$what" = all ]; then
  [ -f "$WORK/fmnist/index.json" ] || $BEIT pack --fashion-mnist /usr/share/datasets/fashion-mnist \
      --split test --out "$WORK/fmnist" >/dev/null
  $PY - "$WORK/tok-small" <<'PYEOF'
import json, sys
sys.path.insert(0, "tools")
import dvae_ref, torch
torch.manual_seed(0)
cfg = dvae_ref.dvae_config(json.load(open("configs/tokenizer/fashion_mnist.json"))["model"])
cfg["decoder"] = False
dvae_ref.write_folder(sys.argv[1], cfg, dvae_ref.Encoder(cfg))
PYEOF
  rm -rf "$WORK/small"
  $BEIT pretrain --config configs/recipes/pretrain_fashion_mnist.json --data "$WORK/fmnist" \
    --tokenizer "$WORK/tok-small" --out "$WORK/small" --set schedule.max_steps=12 \
    --set log.every_steps=1 --set checkpoint.every_steps=0 2>/dev/null >/dev/null
  # PyTorch: the same encoder step; the small tokenizer's forward is measured by the C side only
  enc=$($PY bench/bench_encoder_torch.py --config configs/models/beit_small_fashion_mnist.json \
        --mode train --batch 64 --threads "$THREADS" --iters 5 --warmup 1 --mask-ratio 0.4 \
        | $PY -c 'import json,sys; print(json.load(sys.stdin)["images_per_s"])')
  report "small config, batch 64 (PyTorch side: encoder step only)" "$WORK/small" "$enc"
fi
if [ "$what" = base ] || [ "$what" = all ]; then
  if [ ! -f "$WORK/jpegs/index.json" ]; then
    $PY - "$WORK/jpeg-src" <<'PYEOF'
import os, sys
import numpy as np
from PIL import Image
root = sys.argv[1]
rng = np.random.default_rng(0)
for c in range(2):
    os.makedirs(f"{root}/class{c}", exist_ok=True)
    for i in range(24):
        small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((500, 375), Image.BICUBIC)
        img.save(f"{root}/class{c}/{i}.jpg", quality=90)
PYEOF
    $BEIT pack --folder "$WORK/jpeg-src" --out "$WORK/jpegs" >/dev/null
  fi
  [ -f "$WORK/tok-dalle/model.safetensors" ] || $PY - "$WORK/tok-dalle" <<'PYEOF'
import sys
sys.path.insert(0, "tools")
import dvae_ref, torch
torch.manual_seed(0)
cfg = dvae_ref.dvae_config({"decoder": False})
dvae_ref.write_folder(sys.argv[1], cfg, dvae_ref.Encoder(cfg))
PYEOF
  rm -rf "$WORK/base"
  $BEIT pretrain --config configs/recipes/pretrain_base_in22k.json --data "$WORK/jpegs" \
    --tokenizer "$WORK/tok-dalle" --out "$WORK/base" --set batch.size=8 --set schedule.max_steps=4 \
    --set schedule.warmup_steps=1 --set log.every_steps=1 --set checkpoint.every_steps=0 \
    --set data.num_workers=2 2>/dev/null >/dev/null
  report "BEiT-base/16 224 + DALL-E tokenizer at 112, batch 8" "$WORK/base" \
    "$(torch_step_ips configs/models/beit_base_patch16_224.json 8 112)"
fi
