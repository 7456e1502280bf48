#!/usr/bin/env bash
# The main job on the embedded default: Fashion-MNIST (Debian dataset-fashion-mnist) packed into
# HDF5 shards, a dVAE tokenizer trained on it, then BEiT masked-image-modeling pretraining of the
# small encoder, with a summary at the end. About 3 minutes on 2 quiet cores (2 min 52 s measured
# in bf16, the build already there), 10 or more on a loaded machine.
#   scripts/quickstart.sh [OUT]      (default OUT: runs/quickstart)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/quickstart}
scripts/setup.sh
scripts/build.sh
BEIT=build/apps/beit
FMNIST=/usr/share/datasets/fashion-mnist
start=$(date +%s)
mkdir -p "$OUT"

echo "== 1/3 pack Fashion-MNIST into HDF5 shards"
for split in train test; do
  if [ ! -f "$OUT/data/$split/index.json" ]; then
    $BEIT pack --fashion-mnist "$FMNIST" --split $split --out "$OUT/data/$split"
  fi
done

echo "== 2/3 train the visual tokenizer (dVAE, 7x7 tokens, vocabulary 512)"
if [ ! -f "$OUT/tokenizer/tokenizer/model.safetensors" ]; then
  $BEIT tokenizer train --config configs/tokenizer/fashion_mnist.json \
    --data "$OUT/data/train" --eval-data "$OUT/data/test" --out "$OUT/tokenizer" --resume
fi

echo "== 3/3 pretrain the small BEiT encoder by masked image modeling"
$BEIT pretrain --config configs/recipes/pretrain_fashion_mnist.json \
  --data "$OUT/data/train" --eval-data "$OUT/data/test" \
  --tokenizer "$OUT/tokenizer/tokenizer" --out "$OUT/pretrain" --resume | tee "$OUT/pretrain-summary.txt"

echo "== done in $(( $(date +%s) - start )) s; outputs under $OUT"
echo "   data/{train,test}/  tokenizer/tokenizer/ (+ tokenizer/recon.png, eval.json)  pretrain/checkpoint-*/  pretrain/metrics.jsonl"
