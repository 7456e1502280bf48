"""e2e: `beit export` round trips through the PyTorch reference, and exports load back.

1. A MIM pretraining checkpoint (shared RPB, mask token, lm_head; random weights, HF names) is
   exported as an HF BeitModel folder: the reference loads it strictly; its hidden states equal
   the source model's encoder output (the shared table copied into every layer changes nothing),
   and `beit run` on the export gives the reference's hidden states and pooled output.
2. A classifier exported --with-head: the reference's logits of the export equal the source's
   and `beit run`'s; id2label is kept.
3. --format timm: timm names (fused qkv, gamma, fc_norm, head) and a timm config; converted back
   by tools/convert_checkpoint.py, the reference gives the same logits.
4. A bad request fails with a message: --with-head on an encoder-only checkpoint (exit 2/1).

usage: /usr/bin/python3 tests/test_export_e2e.py BEIT_BINARY WORK_DIR
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
import convert_checkpoint  # noqa: E402
import st  # noqa: E402
from checks import check, fresh_dir, summary  # noqa: E402

TOL = 1e-4


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(1.0, np.abs(b).max()))


BASE = {"model_type": "beit", "image_size": 16, "patch_size": 4, "num_channels": 3,
        "hidden_size": 24, "num_hidden_layers": 2, "num_attention_heads": 3,
        "intermediate_size": 40, "hidden_act": "gelu", "layer_norm_eps": 1e-6,
        "layer_scale_init_value": 0.1, "drop_path_rate": 0.0, "vocab_size": 29,
        "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}


def make_source(path, cfg, seed):
    torch.manual_seed(seed)
    model = beit_ref.BeitRef(cfg, dtype=torch.float64)
    w = {}
    for name, p in model.state_dict().items():
        scale = 0.5 if name.endswith("relative_position_bias_table") else 0.2
        v = scale * torch.randn(p.shape, dtype=torch.float64)
        if "layernorm" in name and name.endswith("weight"):
            v = 1.0 + v
        w[name] = v.float().numpy()
    model.load_state_dict({k: torch.from_numpy(v).double() for k, v in w.items()})
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(cfg, f)
    st.write(os.path.join(path, "model.safetensors"), w)
    return model


def load_ref(folder):
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    model = beit_ref.BeitRef(cfg, dtype=torch.float64)
    w = st.read(os.path.join(folder, "model.safetensors"))
    model.load_state_dict({k: torch.from_numpy(np.array(v)).double() for k, v in w.items()},
                          strict=True)
    return model, cfg


def beit_run(beit, model_dir, pixels, work):
    x = os.path.join(work, "x.safetensors")
    y = os.path.join(work, "y.safetensors")
    st.write(x, {"pixel_values": pixels})
    subprocess.run([beit, "run", "--model", model_dir, "--input", x, "--output", y,
                    "--precision", "fp32"], check=True,  # against the float64 reference
                   stdout=subprocess.DEVNULL)
    return st.read(y)


def main():
    beit, work = sys.argv[1], sys.argv[2]
    fresh_dir(work)
    torch.set_num_threads(1)
    pixels = np.random.default_rng(0).uniform(-1, 1, (2, 3, 16, 16)).astype(np.float32)
    x = torch.from_numpy(pixels).double()

    # 1. MIM checkpoint -> BeitModel
    mim_cfg = dict(BASE, architectures=["BeitForMaskedImageModeling"], use_mask_token=True,
                   use_shared_relative_position_bias=True, use_relative_position_bias=False,
                   use_absolute_position_embeddings=False, use_mean_pooling=True)
    src = os.path.join(work, "mim")
    mim = make_source(src, mim_cfg, 1)
    enc = os.path.join(work, "encoder")
    subprocess.run([beit, "export", "--from", src, "--out", enc, "--quiet"], check=True,
                   stdout=subprocess.DEVNULL)
    ref, cfg = load_ref(enc)  # strict: exactly the tensors of an HF BeitModel
    check(cfg["architectures"] == ["BeitModel"] and cfg["use_relative_position_bias"]
          and not cfg["use_shared_relative_position_bias"] and not cfg["use_mask_token"],
          "export config: BeitModel, per-layer relative position bias, no mask token")
    check(os.path.exists(os.path.join(enc, "preprocessor_config.json")),
          "export writes preprocessor_config.json")
    with torch.no_grad():
        h_src = mim.beit(x)[0]
        out = ref(x)
    e = rel(out["hidden"], h_src)
    check(e < 1e-12, f"exported encoder == source encoder in PyTorch (rel {e:.1e})")
    got = beit_run(beit, enc, pixels, work)
    e1 = rel(got["last_hidden_state"], out["hidden"])
    e2 = rel(got["pooler_output"], out["pooled"])
    check(e1 < TOL and e2 < TOL,
          f"beit run on the export == PyTorch reference (hidden {e1:.1e}, pooled {e2:.1e})")

    # 2. classifier -> export --with-head
    cls_cfg = dict(BASE, architectures=["BeitForImageClassification"], use_mask_token=False,
                   use_shared_relative_position_bias=False, use_relative_position_bias=True,
                   use_absolute_position_embeddings=True, use_mean_pooling=True,
                   problem_type="single_label_classification",
                   id2label={"0": "cat", "1": "dog", "2": "fridge"},
                   label2id={"cat": 0, "dog": 1, "fridge": 2})
    src2 = os.path.join(work, "cls")
    cls = make_source(src2, cls_cfg, 2)
    exp2 = os.path.join(work, "cls-export")
    subprocess.run([beit, "export", "--from", src2, "--out", exp2, "--with-head", "--quiet"],
                   check=True, stdout=subprocess.DEVNULL)
    ref2, cfg2 = load_ref(exp2)
    check(cfg2["id2label"] == cls_cfg["id2label"], "id2label kept")
    with torch.no_grad():
        want = cls(x)["logits"]
        got_ref = ref2(x)["logits"]
    e = rel(got_ref, want)
    check(e < 1e-12, f"exported classifier logits == source logits in PyTorch (rel {e:.1e})")
    got = beit_run(beit, exp2, pixels, work)
    e = rel(got["logits"], want)
    check(e < TOL, f"beit run logits of the export == PyTorch reference (rel {e:.1e})")

    # 3. timm format, back through the converter
    exp3 = os.path.join(work, "cls-timm")
    subprocess.run([beit, "export", "--from", src2, "--out", exp3, "--with-head", "--format",
                    "timm", "--quiet"], check=True, stdout=subprocess.DEVNULL)
    names = set(st.read(os.path.join(exp3, "model.safetensors")))
    check({"blocks.0.attn.qkv.weight", "blocks.1.gamma_2", "fc_norm.weight", "head.weight",
           "pos_embed", "blocks.0.attn.relative_position_bias_table"} <= names,
          "timm export has timm names")
    with open(os.path.join(exp3, "config.json")) as f:
        tcfg = json.load(f)
    check(tcfg["num_classes"] == 3 and tcfg["model_args"]["embed_dim"] == 24,
          "timm config: num_classes and model_args")
    back = os.path.join(work, "cls-timm-hf")
    subprocess.run([sys.executable, os.path.join(ROOT, "tools/convert_checkpoint.py"),
                    os.path.join(exp3, "model.safetensors"), back, "--image-size", "16"],
                   check=True, stdout=subprocess.DEVNULL)
    ref3, _ = load_ref(back)
    with torch.no_grad():
        e = rel(ref3(x)["logits"], want)
    check(e < 1e-12, f"timm export -> convert_checkpoint -> PyTorch logits == source (rel {e:.1e})")

    # 4. a classifier requested from an encoder-only checkpoint
    r = subprocess.run([beit, "export", "--from", enc, "--out", os.path.join(work, "bad"),
                        "--with-head"], capture_output=True, text=True)
    check(r.returncode != 0 and "no classifier" in r.stderr,
          "--with-head on an encoder is refused with a message")
    return summary("test_export_e2e")


if __name__ == "__main__":
    sys.exit(main())
