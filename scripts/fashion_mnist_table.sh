#!/usr/bin/env bash
# The BEiT claim in miniature: fine-tune the quickstart's MIM-pretrained encoder and the same
# architecture from random init, with the same budget (recipe, steps, seed), on 1%, 10% and 100%
# of Fashion-MNIST's training labels; report test top-1 (all 10,000 test images) as a table.
#
#   scripts/fashion_mnist_table.sh [QUICKSTART_DIR] [OUT]
#     QUICKSTART_DIR  output of scripts/quickstart.sh (default runs/quickstart): data/train,
#                     data/test and pretrain/checkpoint-<step>/
#     OUT             default QUICKSTART_DIR/finetune-table; OUT/table.md is the result
#   env: BEIT (default build/apps/beit), STEPS_1, STEPS_10, STEPS_100 (optimizer steps of 64
#        images per fraction, default 100, 200, 300), EXTRA (more beit finetune options)
#
# Both arms use configs/recipes/finetune_fashion_mnist.json; the random-init arm turns layer-wise
# lr decay off (with random lower layers it would only slow them down), so the baseline gets its
# better recipe. Label subsets are seeded and class-balanced (recipe key data.fraction): both arms
# see the same images. Runs are resumable: a finished cell is not redone.
set -euo pipefail
cd "$(dirname "$0")/.."
QS=${1:-runs/quickstart}
OUT=${2:-$QS/finetune-table}
BEIT=${BEIT:-build/apps/beit}
RECIPE=configs/recipes/finetune_fashion_mnist.json
declare -A STEPS=([0.01]=${STEPS_1:-100} [0.1]=${STEPS_10:-200} [1]=${STEPS_100:-300})
CKPT=$(ls -d "$QS"/pretrain/checkpoint-* 2>/dev/null | sort -t- -k2 -n | tail -1 || true)
if [ -z "$CKPT" ] || [ ! -f "$QS/data/train/index.json" ] || [ ! -f "$QS/data/test/index.json" ]; then
  echo "need $QS/data/{train,test} and $QS/pretrain/checkpoint-*: run scripts/quickstart.sh" >&2
  exit 2
fi
mkdir -p "$OUT"
start=$(date +%s)
top1() { /usr/bin/python3 -c "import json,sys; print('%.2f' % (100 * json.load(open(sys.argv[1]))['top1']))" "$1"; }

for frac in 0.01 0.1 1; do
  for arm in pretrained random; do
    dir="$OUT/$arm-$frac"
    if [ -f "$dir/eval.json" ]; then
      continue
    fi
    init=()
    if [ "$arm" = pretrained ]; then
      init=(--init "$CKPT")
    else
      init=(--set optimizer.layer_decay=1.0)
    fi
    t0=$(date +%s)
    echo "== $arm encoder, $frac of the labels, ${STEPS[$frac]} steps"
    "$BEIT" finetune --config "$RECIPE" --data "$QS/data/train" --eval-data "$QS/data/test" \
      --out "$dir" "${init[@]}" --set data.fraction=$frac \
      --set schedule.max_steps="${STEPS[$frac]}" ${EXTRA:-} > "$dir.log" 2> "$dir.err" \
      || { tail -20 "$dir.err" >&2; exit 1; }
    echo "$(( $(date +%s) - t0 ))" > "$dir/seconds"
    tail -4 "$dir.log"
  done
done

total=$(( $(date +%s) - start ))
{
  echo "| labels used | steps x 64 images | pretrained (BEiT MIM) top-1 % | random init top-1 % |"
  echo "|---|---|---|---|"
  for frac in 0.01 0.1 1; do
    n=$(/usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['num_records'])" \
        "$( [ "$frac" = 1 ] && echo "$QS/data/train" || echo "$OUT/pretrained-$frac/train-fraction-$frac" )/index.json")
    echo "| $(/usr/bin/python3 -c "print('%g%%' % (100 * $frac))") ($n) | ${STEPS[$frac]} | $(top1 "$OUT/pretrained-$frac/eval.json") | $(top1 "$OUT/random-$frac/eval.json") |"
  done
  echo
  secs=0
  for f in "$OUT"/*/seconds; do secs=$(( secs + $(cat "$f") )); done
  echo "Test top-1 on all 10,000 Fashion-MNIST test images. Encoder: $CKPT. Six fine-tunings in"
  echo "${secs} s of fine-tuning and evaluation ($(nproc) cores, OMP_NUM_THREADS=${OMP_NUM_THREADS:-unset})."
} > "$OUT/table.md"
cat "$OUT/table.md"
echo "(this invocation: ${total} s; table in $OUT/table.md)"
