"""Shared setup of the pretraining e2e tests: a packed Fashion-MNIST test split, a random tiny
tokenizer (tools/dvae_ref.py, 3x3 tokens of 64) and a tiny BEiT config (12x12 inputs, patch 4)
derived from the small default, all under a work folder; or, with small=True, a random tokenizer
of 7x7 tokens of 512 for the small default itself."""
import json
import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import dvae_ref  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rank_equivalence  # noqa: E402

RECIPE = os.path.join(ROOT, "configs/recipes/pretrain_fashion_mnist.json")


SMALL_MODEL = os.path.join(ROOT, "configs/models/beit_small_fashion_mnist.json")


def make(beit, work, small=False):
    """Returns (dataset folder, tokenizer folder, model config path). small: the small
    Fashion-MNIST default model itself (28x28, 7x7 tokens of 512) instead of the tiny one."""
    data = rank_equivalence.pack_test_split(beit, work)
    torch.manual_seed(0)
    tcfg = dvae_ref.dvae_config({"n_hid": 8, "group_count": 2, "n_blk_per_group": 1,
                                 "vocab_size": 512 if small else 64, "downsample": 4,
                                 "n_init": 8, "image_size": 28 if small else 12,
                                 "decoder": False})
    tok = os.path.join(work, "tokenizer")
    dvae_ref.write_folder(tok, tcfg, dvae_ref.Encoder(tcfg))
    if small:
        return data, tok, SMALL_MODEL
    model = os.path.join(work, "model.json")
    with open(SMALL_MODEL) as f:
        cfg = json.load(f)
    cfg.update(image_size=12, hidden_size=24, num_hidden_layers=2, num_attention_heads=2,
               intermediate_size=32, vocab_size=64)
    with open(model, "w") as f:
        json.dump(cfg, f)
    return data, tok, model


curve = rank_equivalence.curve  # step -> loss of out/metrics.jsonl
