#!/bin/sh
# End to end through the CLI on Fashion-MNIST's test split: beit pack, beit tokenizer train (a
# tiny config, 12 steps, then --resume with a longer schedule), the tokenizer folder, periodic
# and final held-out evaluation with the PNG grid, encode / recon through files and through a
# dataset (the two paths must agree), and the errors a user meets (an unknown config key, a file
# without the expected tensor, an unknown precision). Precision: the first line names it and the
# checkpoints and metrics record it; where the CPU has bf16 matrix products, the same 12 steps in
# bf16 and in fp32 end within a few % of each other.
# usage: test_tokenizer_e2e.sh BEIT WORKDIR TOOLS_DIR
set -eu
BEIT=$1
W=$2
TOOLS=$3
FM=/usr/share/datasets/fashion-mnist
PY=${BEIT_PYTHON:-/usr/bin/python3}
rm -rf "$W"
mkdir -p "$W"
fail() { echo "FAIL: $*" >&2; exit 1; }

if [ ! -f "$FM/t10k-images-idx3-ubyte.gz" ]; then
  echo "SKIP: $FM missing (apt-get install dataset-fashion-mnist)"
  exit 0
fi
"$BEIT" pack --fashion-mnist "$FM" --split test --out "$W/fm" --quiet

# a tiny one-channel tokenizer with the default's 28 -> 7x7 grid
cat > "$W/tiny.json" <<'JSON'
{
  "model": {"input_channels": 1, "n_hid": 8, "group_count": 2, "n_blk_per_group": 1,
            "vocab_size": 64, "downsample": 4, "n_init": 16, "image_size": 28,
            "decoder": true, "recon_loss": "mse"},
  "data": {"num_workers": 1},
  "optimizer": {"lr": 3e-3},
  "schedule": {"max_steps": 12, "warmup_steps": 2},
  "batch": {"size": 16},
  "relaxation": {"kl_weight": 0.5, "kl_warmup_steps": 4},
  "checkpoint": {"every_steps": 6, "keep_last": 1},
  "log": {"every_steps": 3},
  "eval": {"every_steps": 6, "batches": 2, "grid_images": 8}
}
JSON

# unknown keys are errors that name the key
if "$BEIT" tokenizer train --config "$W/tiny.json" --data "$W/fm" --out "$W/run" \
     --set relaxation.temperature=2 2> "$W/err.txt"; then
  fail "an unknown --set key was accepted"
fi
grep -q "relaxation.temperature" "$W/err.txt" || fail "error does not name the key: $(cat "$W/err.txt")"

# 12 steps, then --resume with a longer schedule runs the 6 steps that are left
"$BEIT" tokenizer train --config "$W/tiny.json" --data "$W/fm" --eval-data "$W/fm" \
  --out "$W/run" > "$W/train1.json" 2> "$W/train1.log"
[ -f "$W/run/checkpoint-12/trainer_state.json" ] || fail "no final checkpoint"
[ -f "$W/run/tokenizer/model.safetensors" ] || fail "no tokenizer folder"
[ -f "$W/run/recon.png" ] || fail "no PNG grid"
[ -f "$W/run/eval.json" ] || fail "no eval.json"
grep -q '"eval_mae"' "$W/run/metrics.jsonl" || fail "no evaluation in metrics.jsonl"
grep -q '"codes_used"' "$W/run/metrics.jsonl" || fail "no codebook metrics"
head -n 1 "$W/train1.log" | grep -q "^precision \(fp32\|bf16\) (requested auto); oneDNN" \
  || fail "the first line does not name the precision: $(head -n 1 "$W/train1.log")"
grep -q '"precision"' "$W/run/checkpoint-12/trainer_state.json" \
  || fail "trainer_state.json does not record the precision"
head -n 1 "$W/run/metrics.jsonl" | grep -q '"precision"' || fail "metrics.jsonl: no precision"
"$BEIT" tokenizer train --config "$W/tiny.json" --data "$W/fm" --out "$W/run" --resume \
  --set schedule.max_steps=18 > "$W/train2.json" 2> "$W/train2.log"
grep -q "resumed from .*checkpoint-12 at step 12" "$W/train2.log" \
  || fail "did not resume: $(cat "$W/train2.log")"
grep -q '"steps": 6,' "$W/train2.json" || fail "resume did not run 6 more steps: $(cat "$W/train2.json")"

# held-out evaluation and the grid
"$BEIT" tokenizer recon --tokenizer "$W/run/tokenizer" --data "$W/fm" --limit 100 \
  --grid "$W/grid.png" > "$W/recon.json"
"$PY" - "$W" <<'PYEOF'
import json, sys
w = sys.argv[1]
r = json.load(open(f"{w}/recon.json"))
assert r["images"] == 100, r
assert 0.0 < r["mae"] < 0.5, r
assert 1 <= r["codes_used"] <= 64, r
assert open(f"{w}/grid.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"
PYEOF

# encode through the dataset and through a file of the same pixels (records 0..4 of the shard,
# decoded here with PIL) must agree; recon gives pixels in [0, 1]
"$BEIT" tokenizer encode --tokenizer "$W/run/tokenizer" --data "$W/fm" --limit 5 \
  --output "$W/tok_ds.safetensors"
"$PY" - "$W" "$TOOLS" <<'PYEOF'
import io, sys
import numpy as np
w, tools = sys.argv[1], sys.argv[2]
sys.path.insert(0, tools)
import st
import h5py
from PIL import Image
with h5py.File(f"{w}/fm/shard-00000.h5", "r") as f:
    data, off = f["images"][...], f["offsets"][...]
imgs = [np.asarray(Image.open(io.BytesIO(data[off[i]:off[i + 1]].tobytes())).convert("L"),
                   dtype=np.float32) / 255.0 for i in range(5)]
st.write(f"{w}/pixels.safetensors", {"pixel_values": np.stack(imgs)[:, None]})
PYEOF
"$BEIT" tokenizer encode --tokenizer "$W/run/tokenizer" --input "$W/pixels.safetensors" \
  --output "$W/tok_file.safetensors"
"$BEIT" tokenizer recon --tokenizer "$W/run/tokenizer" --input "$W/tok_file.safetensors" \
  --output "$W/recon.safetensors"
"$PY" - "$W" "$TOOLS" <<'PYEOF'
import sys
import numpy as np
w, tools = sys.argv[1], sys.argv[2]
sys.path.insert(0, tools)
import st
a = st.read(f"{w}/tok_ds.safetensors")["tokens"]
b = st.read(f"{w}/tok_file.safetensors")["tokens"]
assert a.shape == (5, 7, 7) and b.shape == (5, 7, 7) and a.dtype == np.int32, (a.shape, b.shape)
assert (a == b).all(), (a, b)
r = st.read(f"{w}/recon.safetensors")["pixel_values"]
assert r.shape == (5, 1, 28, 28) and r.min() >= 0.0 and r.max() <= 1.0, (r.shape, r.min(), r.max())
PYEOF

# a file without the expected tensor is an error that names it
if "$BEIT" tokenizer recon --tokenizer "$W/run/tokenizer" --input "$W/pixels.safetensors" \
     --output "$W/x.safetensors" 2> "$W/err2.txt"; then
  fail "recon accepted a file without tokens"
fi
grep -q "'tokens'" "$W/err2.txt" || fail "error does not name the tensor: $(cat "$W/err2.txt")"

# precision: an unknown one is a usage error; encode names the one it ran in
set +e
"$BEIT" tokenizer encode --tokenizer "$W/run/tokenizer" --input "$W/pixels.safetensors" \
  --output "$W/x.safetensors" --precision fp16 2> "$W/err3.txt"
rc=$?
set -e
[ $rc -eq 2 ] || fail "--precision fp16 exited $rc, expected 2"
"$BEIT" tokenizer encode --tokenizer "$W/run/tokenizer" --input "$W/pixels.safetensors" \
  --output "$W/tok_fp32.safetensors" --precision fp32 2> "$W/enc_fp32.log"
head -n 1 "$W/enc_fp32.log" | grep -q "^beit tokenizer encode: precision fp32 (requested fp32)" \
  || fail "encode's first line: $(head -n 1 "$W/enc_fp32.log")"

# bf16 and fp32 training from the same seed: the loss of the last logged windows within 5%
for p in fp32 bf16; do
  if ! "$BEIT" tokenizer train --config "$W/tiny.json" --data "$W/fm" --out "$W/run_$p" \
       --precision $p --set eval.every_steps=0 --set checkpoint.every_steps=0 \
       > /dev/null 2> "$W/train_$p.log"; then
    if [ $p = bf16 ] && grep -q "no bf16 matrix products" "$W/train_$p.log"; then
      echo "test_tokenizer_e2e: bf16 training skipped: $(tail -n 1 "$W/train_$p.log")"
      echo "test_tokenizer_e2e: ok"
      exit 0
    fi
    fail "training in $p: $(tail -n 3 "$W/train_$p.log")"
  fi
done
"$PY" - "$W" <<'PYEOF'
import json, sys
w = sys.argv[1]
def run(p):
    recs = [json.loads(l) for l in open(f"{w}/run_{p}/metrics.jsonl")]
    losses = [r["loss"] for r in recs if "loss" in r]
    state = json.load(open(f"{w}/run_{p}/checkpoint-12/trainer_state.json"))
    assert state["precision"] == p, (p, state.get("precision"))
    assert recs[0]["precision"] == p, recs[0]
    return sum(losses[-2:]) / 2, losses
(a, la), (b, lb) = run("fp32"), run("bf16")
print(f"test_tokenizer_e2e: loss of the last two windows fp32 {a:.5f}, bf16 {b:.5f} "
      f"({100 * abs(b - a) / a:.2f}% apart); fp32 {la}, bf16 {lb}")
assert abs(b - a) <= 0.05 * a, (a, b)
PYEOF
echo "test_tokenizer_e2e: ok"
