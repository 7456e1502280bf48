#!/usr/bin/env bash
# Data-parallel pretraining benchmark (issue: MPI): the same pretraining steps as
# bench/run_pretrain.sh run as 2 ranks x 1 thread and as 1 rank x 2 threads on this machine;
# prints step time, time inside MPI for gradient averaging per step, how much of it was exposed
# (not hidden behind backward) and that as a share of the step (target < 5% on 2 ranks).
#   bench/run_mpi_pretrain.sh [small|base|tokenizer|all]   (run bench/run_pretrain.sh once first:
#   it prepares the datasets and tokenizers under $WORK). `tokenizer`: dVAE tokenizer training
#   (configs/tokenizer/fashion_mnist.json, global batch 64) the same two ways, its gradients
#   reduced after the backward (no overlap: the exposed time is all of it).
set -euo pipefail
cd "$(dirname "$0")/.."
BEIT=${BEIT:-build/apps/beit}
PY=/usr/bin/python3
WORK=${WORK:-/tmp/beit-bench-pretrain}
MPI="mpirun --allow-run-as-root --oversubscribe --bind-to none"  # default binding pins 1 rank to 1 core

summary() { # label, metrics.jsonl
  $PY - "$1" "$2" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[2])][1:]  # skip the warm-up step
n = len(rows)
step = sum(sum(v for k, v in r.items() if k.startswith("time_")) for r in rows) / n
mpi = sum(r["allreduce_in_mpi_s"] for r in rows) / n
exposed = sum(r["time_allreduce_exposed"] for r in rows) / n
ips = sum(r["images_per_s"] for r in rows) / n
print(f"  {sys.argv[1]:24s} step {step:7.3f} s  {ips:7.2f} img/s  allreduce in MPI {mpi:.4f} s, "
      f"exposed {exposed:.4f} s = {100 * exposed / step:.2f}% of the step")
PYEOF
}

run() { # name, recipe, tokenizer, data, batch (global), steps
  local name=$1 recipe=$2 tok=$3 data=$4 global=$5 steps=$6
  echo "$name (global batch $global)"
  for layout in "2 1" "1 2"; do
    set -- $layout
    local out="$WORK/mpi-$name-np$1"
    rm -rf "$out"
    $MPI -np "$1" -x OMP_NUM_THREADS="$2" $BEIT pretrain --config "$recipe" --data "$data" \
      --tokenizer "$tok" --out "$out" --set batch.size=$((global / $1)) \
      --set schedule.max_steps="$steps" --set schedule.warmup_steps=1 --set log.every_steps=1 \
      --set checkpoint.every_steps=0 --set data.num_workers=1 >/dev/null 2>&1
    summary "$1 rank(s) x $2 thread(s)" "$out/metrics.jsonl"
  done
}

# tokenizer training: step time from the log windows, all MPI time is exposed
tokenizer() {
  echo "tokenizer training, Fashion-MNIST config (global batch 64)"
  for layout in "2 1" "1 2"; do
    set -- $layout
    local out="$WORK/mpi-tokenizer-np$1"
    rm -rf "$out"
    $MPI -np "$1" -x OMP_NUM_THREADS="$2" $BEIT tokenizer train \
      --config configs/tokenizer/fashion_mnist.json --data "$WORK/fmnist" --out "$out" \
      --set batch.size=$((64 / $1)) --set schedule.max_steps=120 --set log.every_steps=20 \
      --set checkpoint.every_steps=0 --set data.num_workers=1 >/dev/null 2>&1
    $PY - "$1 rank(s) x $2 thread(s)" "$out/metrics.jsonl" <<'PYEOF'
import json, sys
rows = [r for r in map(json.loads, open(sys.argv[2])) if "loss" in r][1:]  # skip the first window
step = sum(64 / r["images_per_s"] for r in rows) / len(rows)
mpi = sum(r["allreduce_in_mpi_s"] for r in rows) / len(rows)
print(f"  {sys.argv[1]:24s} step {step:7.4f} s  {64 / step:7.1f} img/s  allreduce in MPI {mpi:.4f} s "
      f"= {100 * mpi / step:.2f}% of the step (all exposed)")
PYEOF
  done
}

what=${1:-all}
if [ "$what" = small ] || [ "$what" = all ]; then
  run small configs/recipes/pretrain_fashion_mnist.json "$WORK/tok-small" "$WORK/fmnist" 64 12
fi
if [ "$what" = base ] || [ "$what" = all ]; then
  run base configs/recipes/pretrain_base_in22k.json "$WORK/tok-dalle" "$WORK/jpegs" 8 4
fi
if [ "$what" = tokenizer ] || [ "$what" = all ]; then
  tokenizer
fi
