"""Shared parts of the tests that train the same model on 2 ranks x batch B and on 1 rank x batch
2B (and on single-rank e2e runs): the packed Fashion-MNIST test split, loss curves read from
metrics.jsonl, the tiny model config, and the curve + final-weights comparison of two runs."""
import json
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import st  # noqa: E402

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


def pack_test_split(beit, work):
    """Fashion-MNIST's 10,000 test images as a dataset folder under work; returns its path."""
    data = os.path.join(work, "data")
    subprocess.run([beit, "pack", "--fashion-mnist", FASHION_MNIST, "--split", "test",
                    "--out", data, "--quiet"], check=True, stdout=subprocess.DEVNULL)
    return data


def tiny_model(work, vocab_size):
    """The small Fashion-MNIST default model shrunk to 12x12 inputs, width 24, 2 layers of 2
    heads, MLP 32, vocab_size tokens, as work/model.json; returns its path."""
    model = os.path.join(work, "model.json")
    with open(os.path.join(ROOT, "configs/models/beit_small_fashion_mnist.json")) as f:
        cfg = json.load(f)
    cfg.update(image_size=12, hidden_size=24, num_hidden_layers=2, num_attention_heads=2,
               intermediate_size=32, vocab_size=vocab_size)
    with open(model, "w") as f:
        json.dump(cfg, f)
    return model


def curve(out):
    """step -> loss of the training records in out/metrics.jsonl (evaluation records have no
    loss; a re-done step keeps its last record)."""
    with open(os.path.join(out, "metrics.jsonl")) as f:
        return {int(m["step"]): m["loss"] for m in map(json.loads, f) if "loss" in m}


def rel_curve_diff(a, b, steps):
    """Largest |a - b| / |a| over steps; infinity when a step is missing from either curve."""
    if not all(s in a and s in b for s in steps):
        return float("inf")
    return max(abs(a[s] - b[s]) / abs(a[s]) for s in steps)


def compare(check, work, steps, global_batch, one, two):
    """Runs work/np1 (1 rank x global_batch) and work/np2 (2 ranks x global_batch / 2), curves one
    and two: the same loss at every step (<= 1e-5 relative) and the same final weights
    (<= 1e-4 of each tensor's scale)."""
    d = rel_curve_diff(one, two, range(1, steps + 1))
    check(d <= 1e-5, f"2 ranks x {global_batch // 2} vs 1 rank x {global_batch}: loss curves "
          f"differ by {d:.2e} (<= 1e-5)")
    w1 = st.read(os.path.join(work, "np1", f"checkpoint-{steps}", "model.safetensors"))
    w2 = st.read(os.path.join(work, "np2", f"checkpoint-{steps}", "model.safetensors"))
    worst = max(np.max(np.abs(w1[k] - w2[k])) / max(np.max(np.abs(w1[k])), 1e-6) for k in w1)
    check(worst <= 1e-4, f"final weights agree within {worst:.2e} (<= 1e-4)")
