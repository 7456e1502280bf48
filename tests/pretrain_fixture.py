"""Shared setup of the pretraining e2e tests: a packed Fashion-MNIST test split, a random tiny
tokenizer (tools/dvae_ref.py, 3x3 tokens of 64) and a tiny BEiT config (12x12 inputs, patch 4)
derived from the small default, all under a work folder."""
import json
import os
import subprocess
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import dvae_ref  # noqa: E402

RECIPE = os.path.join(ROOT, "configs/recipes/pretrain_fashion_mnist.json")


def make(beit, work):
    """Returns (dataset folder, tokenizer folder, model config path)."""
    data = os.path.join(work, "data")
    subprocess.run([beit, "pack", "--fashion-mnist", "/usr/share/datasets/fashion-mnist",
                    "--split", "test", "--out", data], check=True, stdout=subprocess.DEVNULL)
    torch.manual_seed(0)
    tcfg = dvae_ref.dvae_config({"n_hid": 8, "group_count": 2, "n_blk_per_group": 1,
                                 "vocab_size": 64, "downsample": 4, "n_init": 8,
                                 "image_size": 12, "decoder": False})
    tok = os.path.join(work, "tokenizer")
    dvae_ref.write_folder(tok, tcfg, dvae_ref.Encoder(tcfg))
    model = os.path.join(work, "model.json")
    with open(os.path.join(ROOT, "configs/models/beit_small_fashion_mnist.json")) as f:
        cfg = json.load(f)
    cfg.update(image_size=12, hidden_size=24, num_hidden_layers=2, num_attention_heads=2,
               intermediate_size=32, vocab_size=64)
    with open(model, "w") as f:
        json.dump(cfg, f)
    return data, tok, model


def curve(out):
    """step -> loss from out/metrics.jsonl (a re-done step keeps its last record)."""
    per_step = {}
    with open(os.path.join(out, "metrics.jsonl")) as f:
        for line in f:
            m = json.loads(line)
            per_step[int(m["step"])] = m["loss"]
    return per_step
