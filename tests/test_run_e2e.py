"""e2e: `beit run` against the PyTorch reference, both directions of the model-folder format.

1. Folders written by the Python side (tools/golden_encoder.py, HF names as save_pretrained writes
   them) run through `beit run`: logits and last_hidden_state equal the reference's.
2. A folder written by the C side (tests/test_model_io OUT writes OUT/c_saved) loads into the
   PyTorch reference (tools/beit_ref.py, HF key names) and gives the logits of `beit run`.

usage: /usr/bin/python3 tests/test_run_e2e.py BEIT_BINARY GOLDEN_DIR C_SAVED_DIR WORK_DIR
Exits non-zero on any mismatch (relative error above 1e-4 of the tensor's largest magnitude).
"""
import json
import os
import subprocess
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import beit_ref  # noqa: E402
import st  # noqa: E402

TOL = 1e-4
failures = 0


def check(label, got, want):
    global failures
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        print(f"FAIL {label}: shape {got.shape} vs {want.shape}")
        failures += 1
        return
    rel = np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-6)
    status = "ok" if rel <= TOL else "FAIL"
    failures += status == "FAIL"
    print(f"{status:4} {label}: rel {rel:.2e}")


def beit_run(binary, model_dir, inputs, work, name):
    x = os.path.join(work, name + "-in.safetensors")
    y = os.path.join(work, name + "-out.safetensors")
    st.write(x, inputs)
    # fp32: the comparison is with a float64 reference at 1e-4 (bf16: test_golden_bf16)
    subprocess.run([binary, "run", "--model", model_dir, "--input", x, "--output", y,
                    "--precision", "fp32"], check=True)
    return st.read(y)


def load_ref(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    model = beit_ref.BeitRef(cfg).double()
    weights = st.read(os.path.join(model_dir, "model.safetensors"))
    state = {k: torch.from_numpy(np.asarray(v, np.float64)) for k, v in weights.items()}
    model.load_state_dict(state, strict=False)
    missing = set(model.state_dict()) - set(state)
    assert not missing, f"{model_dir}: reference parameters missing from the folder: {missing}"
    return model


def main():
    binary, golden, c_saved, work = sys.argv[1:5]
    os.makedirs(work, exist_ok=True)
    for case in ("mim_shared", "cls_layer_mean", "cls_abs_cls", "multilabel"):
        d = os.path.join(golden, case)
        inp = st.read(os.path.join(d, "inputs.safetensors"))
        exp = st.read(os.path.join(d, "expected.safetensors"))
        feed = {"pixel_values": inp["pixel_values"]}
        if "bool_masked_pos" in inp:
            feed["bool_masked_pos"] = inp["bool_masked_pos"]
        out = beit_run(binary, d, feed, work, case)
        if case == "mim_shared":  # run gives every patch (HF shape); compare the masked rows
            # the fixture was computed with drop_scales (training); inference has none
            mask = inp["bool_masked_pos"].astype(bool)
            model = load_ref(d)
            with torch.no_grad():
                ref = model(torch.from_numpy(inp["pixel_values"]).double(),
                            torch.from_numpy(mask))
            check(f"{case} logits (masked rows of (B,N,V))", out["logits"][mask],
                  ref["logits"].numpy())
            check(f"{case} last_hidden_state", out["last_hidden_state"], ref["hidden"].numpy())
        else:
            check(f"{case} logits", out["logits"], exp["logits"])
            check(f"{case} last_hidden_state", out["last_hidden_state"], exp["hidden"])
    # a folder written by C, read by the PyTorch reference
    model = load_ref(c_saved)
    cfg = model.config
    rng = np.random.default_rng(0)
    pix = rng.standard_normal((2, cfg["num_channels"], cfg["image_size"], cfg["image_size"]))
    pix = pix.astype(np.float32)
    out = beit_run(binary, c_saved, {"pixel_values": pix}, work, "c_saved")
    with torch.no_grad():
        ref = model(torch.from_numpy(pix).double())
    check("C-written folder in PyTorch: logits", out["logits"], ref["logits"].numpy())
    check("C-written folder in PyTorch: pooler_output", out["pooler_output"],
          ref["pooled"].numpy())
    print(f"run_e2e: {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
