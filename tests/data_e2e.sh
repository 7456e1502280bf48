#!/usr/bin/env bash
# e2e: `beit pack` on the installed Fashion-MNIST (both splits, 70,000 images), `--check`, an
# h5py/PIL read of the shards against the idx files, and the CLI's exit codes.
# usage: data_e2e.sh BEIT PYTHON SOURCE_DIR
set -euo pipefail
beit=$1 py=$2 src=$3
fm=/usr/share/datasets/fashion-mnist
work=$(mktemp -d data_e2e_XXXXXX)
trap 'rm -rf "$work"' EXIT
for split in train test; do
  start=$(date +%s%N)
  "$beit" pack --fashion-mnist "$fm" --split "$split" --out "$work/fm-$split" --shard-mb 16 --quiet
  end=$(date +%s%N)
  echo "pack fashion-mnist $split: $(( (end - start) / 1000000 )) ms"
  "$beit" pack --check "$work/fm-$split" | tee "$work/check.txt"
  grep -q " 0 do not decode" "$work/check.txt"
  "$py" "$src/tests/data_h5py_check.py" "$work/fm-$split" "$fm" "$split"
done
grep -q '"num_records":	60000' "$work/fm-train/index.json"
# --config / --set: the config's keys, overridden by --set and then by the long options.
printf '{"source": "fashion-mnist", "input": "%s", "output": "%s/cfg", "split": "test", "shard_mb": 100}\n' \
  "$fm" "$work" > "$work/pack.json"
"$beit" pack --config "$work/pack.json" --set shard_mb=3 --quiet
grep -q '"num_records":	10000' "$work/cfg/index.json"
[ "$(grep -c '"file"' "$work/cfg/index.json")" -eq 2 ] || { echo "--set shard_mb=3 ignored"; exit 1; }
# Exit codes: 2 for usage errors, 1 for runtime errors (with the file named).
set +e
"$beit" pack --out "$work/x" 2>/dev/null; [ $? -eq 2 ] || { echo "no source: want exit 2"; exit 1; }
"$beit" pack --fashion-mnist "$fm" --split valid --out "$work/x" 2>/dev/null
[ $? -eq 2 ] || { echo "bad split: want exit 2"; exit 1; }
"$beit" pack --fashion-mnist "$fm" --out "$work/fm-train" 2>/dev/null
[ $? -eq 2 ] || { echo "existing output: want exit 2"; exit 1; }
msg=$("$beit" pack --folder "$work/nonexistent" --out "$work/y" 2>&1); rc=$?
[ $rc -eq 1 ] && grep -q nonexistent <<<"$msg" || { echo "missing input: want exit 1 naming it: $msg"; exit 1; }
"$beit" pack --config "$work/pack.json" --set no_such_key=1 2>"$work/err.txt"
[ $? -ne 0 ] && grep -q no_such_key "$work/err.txt" || { echo "unknown --set key accepted"; exit 1; }
set -e
echo "data_e2e: all checks passed"
