#!/usr/bin/env bash
# The BEiT claim in miniature: pretrain the small encoder by masked image modeling, then fine-tune
# it and the same architecture from random init with the same budget (recipe, steps, seed) on 1%,
# 10% and 100% of Fashion-MNIST's training labels; report test top-1 (all 10,000 test images) for
# each precision side by side.
#
#   scripts/fashion_mnist_table.sh [QUICKSTART_DIR] [OUT]
#     QUICKSTART_DIR  output of scripts/quickstart.sh (default runs/quickstart): its packed
#                     data/{train,test} and its tokenizer/tokenizer are reused
#     OUT             default QUICKSTART_DIR/table-$BUDGET; OUT/table.md is the result,
#                     OUT/table.png the same as bars (beit plot --table; needs cairo)
#   env:
#     BUDGET          long (default): recipes pretrain_fashion_mnist_long.json and
#                     finetune_fashion_mnist_long.json, fine-tuning steps 200 / 500 / 8000;
#                     short: the quickstart's recipes (pretrain_fashion_mnist.json, 600 steps)
#                     and finetune_fashion_mnist.json, 100 / 200 / 300 steps
#     PRECISIONS      default "bf16 fp32"; each precision pretrains and fine-tunes in that precision
#     FRACTIONS       label fractions, in the order they run (default "0.01 0.1 1")
#     ARMS            default "pretrained random"; ARMS=pretrained for another pretraining seed (the
#                     random-init arm does not depend on the encoder)
#     PRETRAIN_RECIPE, FINETUNE_RECIPE, STEPS_1, STEPS_10, STEPS_100 (optimizer steps of 64 images
#                     per label fraction) override the budget's values
#     ENCODER         fine-tune this pretrained checkpoint instead of pretraining (e.g. the
#                     quickstart's QUICKSTART_DIR/pretrain/checkpoint-600)
#     BEIT            default build/apps/beit; EXTRA, EXTRA_PRETRAIN: more beit options
#
# Layout: OUT/<precision>/pretrain/ (MIM run), OUT/<precision>/<arm>-<fraction>/ (fine-tunings,
# eval.json, seconds), OUT/<precision>/*.log. The random-init arm turns layer-wise lr decay off
# (with random lower layers it would only slow them down), so the baseline gets its better recipe.
# Label subsets are seeded and class-balanced (recipe key data.fraction): both arms and both
# precisions see the same images. Resumable: a finished pretraining or cell is not redone, an
# interrupted one resumes from its last checkpoint (every run passes --resume: beit refuses to
# start afresh in a folder that holds a run).
set -euo pipefail
cd "$(dirname "$0")/.."
QS=${1:-runs/quickstart}
BUDGET=${BUDGET:-long}
OUT=${2:-$QS/table-$BUDGET}
BEIT=${BEIT:-build/apps/beit}
PRECISIONS=${PRECISIONS:-bf16 fp32}
FRACTIONS=${FRACTIONS:-0.01 0.1 1}
ARMS=${ARMS:-pretrained random}
case $BUDGET in
  long)  PRETRAIN_RECIPE=${PRETRAIN_RECIPE:-configs/recipes/pretrain_fashion_mnist_long.json}
         FINETUNE_RECIPE=${FINETUNE_RECIPE:-configs/recipes/finetune_fashion_mnist_long.json}
         declare -A STEPS=([0.01]=${STEPS_1:-200} [0.1]=${STEPS_10:-500} [1]=${STEPS_100:-8000}) ;;
  short) PRETRAIN_RECIPE=${PRETRAIN_RECIPE:-configs/recipes/pretrain_fashion_mnist.json}
         FINETUNE_RECIPE=${FINETUNE_RECIPE:-configs/recipes/finetune_fashion_mnist.json}
         declare -A STEPS=([0.01]=${STEPS_1:-100} [0.1]=${STEPS_10:-200} [1]=${STEPS_100:-300}) ;;
  *)     echo "BUDGET is long or short, not '$BUDGET'" >&2; exit 2 ;;
esac
DATA=$QS/data
TOKENIZER=$QS/tokenizer/tokenizer
if [ ! -f "$DATA/train/index.json" ] || [ ! -f "$DATA/test/index.json" ] ||
   { [ -z "${ENCODER:-}" ] && [ ! -f "$TOKENIZER/model.safetensors" ]; }; then
  echo "need $DATA/{train,test} and $TOKENIZER: run scripts/quickstart.sh" >&2
  exit 2
fi
mkdir -p "$OUT"
start=$(date +%s)

json() { /usr/bin/python3 -c "import json,sys; print(eval(sys.argv[2], {}, json.load(open(sys.argv[1]))))" "$@"; }
top1() { json "$OUT/$1/eval.json" "'%.2f' % (100 * top1)"; }
last_checkpoint() { ls -d "$1"/checkpoint-* 2>/dev/null | sort -t- -k2 -n | tail -1; }

# run NAME DIR COMMAND...: run a step once (DIR/seconds marks it done), log to DIR.log/.err
run() {
  local name=$1 dir=$2; shift 2
  if [ -f "$dir/seconds" ]; then
    return
  fi
  echo "== $name"
  local t0; t0=$(date +%s)
  "$@" > "$dir.log" 2> "$dir.err" || { tail -20 "$dir.err" >&2; exit 1; }
  echo "$(( $(date +%s) - t0 ))" > "$dir/seconds"
  tail -4 "$dir.log"
}

# write_table: OUT/table.md, a column for each precision and arm, once all its cells are done
write_table() {
  done_precs=()
  for prec in $PRECISIONS; do
    local complete=1
    for arm in $ARMS; do for frac in $FRACTIONS; do
      [ -f "$OUT/$prec/$arm-$frac/eval.json" ] || complete=0
    done; done
    [ $complete = 1 ] && done_precs+=("$prec")
  done
  [ ${#done_precs[@]} -gt 0 ] || return 0
  {
    head="| labels used | steps x 64 images |"; rule="|---|---|"
    for prec in "${done_precs[@]}"; do for arm in $ARMS; do
      head+=" ${arm/random/random init} $prec top-1 % |"; rule+="---|"
    done; done
    echo "$head"; echo "$rule"
    for frac in $FRACTIONS; do
      if [ "$frac" = 1 ]; then n=$(json "$DATA/train/index.json" num_records)
      else n=$(json "$OUT/${done_precs[0]}/${ARMS%% *}-$frac/train-fraction-$frac/index.json" num_records); fi
      row="| $(/usr/bin/python3 -c "print('%g%%' % (100 * $frac))") ($n) | ${STEPS[$frac]} |"
      for prec in "${done_precs[@]}"; do for arm in $ARMS; do
        row+=" $(top1 "$prec/$arm-$frac") |"
      done; done
      echo "$row"
    done
    echo
    echo "| precision | MIM pretraining | held-out masked-token accuracy | fine-tunings + evaluations | total |"
    echo "|---|---|---|---|---|"
    for prec in "${done_precs[@]}"; do
      pre=0; mim=-
      if [ -f "$OUT/$prec/pretrain/seconds" ]; then
        pre=$(cat "$OUT/$prec/pretrain/seconds")
        mim=$(sed -n 's/.*masked-token accuracy \([0-9.]*\) over.*/\1/p' "$OUT/$prec/pretrain.log")
      fi
      ft=0
      for f in "$OUT/$prec"/*-*/seconds; do ft=$(( ft + $(cat "$f") )); done
      printf '| %s | %d min %02d s | %s | %d min %02d s | %d min %02d s |\n' "$prec" \
        $((pre / 60)) $((pre % 60)) "$mim" $((ft / 60)) $((ft % 60)) \
        $(((pre + ft) / 60)) $(((pre + ft) % 60))
    done
    echo
    echo "Test top-1 on all 10,000 Fashion-MNIST test images. Budget '$BUDGET': pretraining"
    echo "${ENCODER:-$PRETRAIN_RECIPE}, fine-tuning $FINETUNE_RECIPE; $(nproc) cores,"
    echo "OMP_NUM_THREADS=${OMP_NUM_THREADS:-unset}."
  } > "$OUT/table.md"
  [[ " $ARMS " == *" pretrained "* && " $ARMS " == *" random "* ]] || return 0  # bars are pairs
  "$BEIT" plot --table "$OUT/table.md" -o "$OUT/table.png" > /dev/null ||
    echo "warning: $OUT/table.png not drawn (the table is in $OUT/table.md)" >&2
}

for prec in $PRECISIONS; do
  mkdir -p "$OUT/$prec"
  encoder=${ENCODER:-}
  if [ -z "$encoder" ]; then
    run "$prec: MIM pretraining ($PRETRAIN_RECIPE)" "$OUT/$prec/pretrain" \
      "$BEIT" pretrain --config "$PRETRAIN_RECIPE" --data "$DATA/train" --eval-data "$DATA/test" \
        --tokenizer "$TOKENIZER" --out "$OUT/$prec/pretrain" --precision "$prec" --resume \
        ${EXTRA_PRETRAIN:-}
    encoder=$(last_checkpoint "$OUT/$prec/pretrain")
  fi
  for frac in $FRACTIONS; do
    for arm in $ARMS; do
      init=(--init "$encoder")
      [ "$arm" = random ] && init=(--set optimizer.layer_decay=1.0)
      run "$prec: $arm encoder, $frac of the labels, ${STEPS[$frac]} steps" "$OUT/$prec/$arm-$frac" \
        "$BEIT" finetune --config "$FINETUNE_RECIPE" --data "$DATA/train" --eval-data "$DATA/test" \
          --out "$OUT/$prec/$arm-$frac" "${init[@]}" --precision "$prec" --resume \
          --set data.fraction="$frac" --set schedule.max_steps="${STEPS[$frac]}" ${EXTRA:-}
    done
  done
  write_table
done
cat "$OUT/table.md"
echo "(this invocation: $(( $(date +%s) - start )) s; table in $OUT/table.md$([ -f "$OUT/table.png" ] && echo ", bars in $OUT/table.png"))"
