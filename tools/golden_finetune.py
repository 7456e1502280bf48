"""Golden fixtures for fine-tuning: /usr/bin/python3 tools/golden_finetune.py --out DIR.

One folder per case under DIR; the C test (tests/test_finetune_golden.c) transfers the source
checkpoint into a classifier with its own code, compares every transferred tensor, then runs the
same AdamW steps and compares losses, first-step gradients and final weights:

  mim_to_cls       BeitForMaskedImageModeling source (shared RPB, mask token, lm_head, absolute
                   positions) at 20 px -> classifier at 24 px: the shared table copied into every
                   layer and resized (unilm geometric q, not-a-knot cubic), positions resized
                   bicubically, MIM head and mask token dropped, mean pooling + new pooler
                   LayerNorm and head; layer decay 0.75, label smoothing 0.1, drop path scales.
  timm_multilabel  timm-named classifier source (fused qkv, gamma_k, fc_norm, a 3-class head) ->
                   4-label multi-label classifier (head replaced), sigmoid BCE, layer decay 0.65.
  mixup_soft       the mim_to_cls source at its own size, Mixup with lam 0.7 (batch mixed with
                   itself reversed) and smoothing 0.1 folded into soft targets, soft-target CE.

Files: src/ (config.json + model.safetensors), head.safetensors (the new classifier both sides
use), inputs.safetensors (pixel_values, drop_scales (L,2,B), labels), expected.safetensors
(transferred.<name>, grad.<name> of step 0 (gradient of the batch-mean loss, before clipping),
train.loss (S), train.final.<name>), train.json (hyper-parameters, lr scale per tensor).

The reference transfer is written here independently of the C code: the spline is solved as
piecewise cubic coefficients (interpolation, C1, C2, not-a-knot C3 rows) rather than second
derivatives, and checked against scipy's interp2d (unilm's own call) when scipy < 1.14 is
installed. Everything in float64 from float32-representable values, one thread.
"""
import argparse
import json
import math
import os
import shutil
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import beit_ref  # noqa: E402
import convert_checkpoint  # noqa: E402
import st  # noqa: E402

SEED = 7301
BATCH = 3
STEPS = 3

BASE = {
    "model_type": "beit", "image_size": 20, "patch_size": 4, "num_channels": 3,
    "hidden_size": 24, "num_hidden_layers": 2, "num_attention_heads": 3,
    "intermediate_size": 40, "hidden_act": "gelu", "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0, "initializer_range": 0.02, "layer_norm_eps": 1e-6,
    "layer_scale_init_value": 0.1, "drop_path_rate": 0.1, "vocab_size": 37,
}

CASES = {
    "mim_to_cls": dict(src="mim", image_size=24, labels=5, multilabel=False, layer_decay=0.75,
                       smoothing=0.1, mixup_lam=None, clip=1.0),
    "timm_multilabel": dict(src="timm", image_size=20, labels=4, multilabel=True,
                            layer_decay=0.65, smoothing=0.0, mixup_lam=None, clip=0.0),
    "mixup_soft": dict(src="mim", image_size=20, labels=5, multilabel=False, layer_decay=0.75,
                       smoothing=0.1, mixup_lam=0.7, clip=0.0),
}
TRAIN = {"lr": 2e-3, "min_lr": 1e-5, "weight_decay": 0.05, "beta1": 0.9, "beta2": 0.999,
         "eps": 1e-8}


# ------------------------------------------------------------------------------------------------
# reference transfer (spec 5, loading steps 1-6)

def geometric_q(src, dst):
    """unilm: bisection on [1.01, 1.5] while the interval exceeds 1e-6; q is the last midpoint."""
    left, right = 1.01, 1.5
    q = None
    while right - left > 1e-6:
        q = (left + right) / 2.0
        gp = (1.0 - q ** (src // 2)) / (1.0 - q)
        if gp > dst // 2:
            right = q
        else:
            left = q
    return q


def not_a_knot_weights(x, t):
    """(len(t), len(x)) weights of the not-a-knot cubic interpolant through knots x, evaluated at
    t clamped to [x0, x_{m-1}]; solved as 4 coefficients per interval."""
    x = np.asarray(x, dtype=np.float64)
    m = len(x)
    n = m - 1
    w = np.zeros((len(t), m))
    for i in range(m):
        y = np.zeros(m)
        y[i] = 1.0
        a = np.zeros((4 * n, 4 * n))
        b = np.zeros(4 * n)
        r = 0
        for k in range(n):  # s_k(u) = c0 + c1 u + c2 u^2 + c3 u^3, u = x - x_k
            h = x[k + 1] - x[k]
            a[r, 4 * k] = 1.0
            b[r] = y[k]
            r += 1
            a[r, 4 * k:4 * k + 4] = [1.0, h, h * h, h ** 3]
            b[r] = y[k + 1]
            r += 1
        for k in range(n - 1):  # first and second derivative continuous at x_{k+1}
            h = x[k + 1] - x[k]
            a[r, 4 * k:4 * k + 4] = [0.0, 1.0, 2 * h, 3 * h * h]
            a[r, 4 * (k + 1) + 1] = -1.0
            r += 1
            a[r, 4 * k:4 * k + 4] = [0.0, 0.0, 2.0, 6 * h]
            a[r, 4 * (k + 1) + 2] = -2.0
            r += 1
        a[r, 3] = 1.0  # not-a-knot: third derivative continuous at x_1 and x_{m-2}
        a[r, 7] = -1.0
        r += 1
        a[r, 4 * (n - 2) + 3] = 1.0
        a[r, 4 * (n - 1) + 3] = -1.0
        c = np.linalg.solve(a, b)
        for j, tj in enumerate(t):
            tj = min(max(tj, x[0]), x[-1])
            k = min(max(np.searchsorted(x, tj, side="right") - 1, 0), n - 1)
            u = tj - x[k]
            w[j, i] = c[4 * k] + c[4 * k + 1] * u + c[4 * k + 2] * u * u + c[4 * k + 3] * u ** 3
    return w


def rpb_resize(table, dst_rows):
    """unilm geometric resize of a (R, nH) relative position bias table."""
    src = int(round(math.sqrt(table.shape[0] - 3)))
    dst = int(round(math.sqrt(dst_rows - 3)))
    if src == dst:
        return table.copy()
    q = geometric_q(src, dst)
    dis, cur = [], 1.0
    for i in range(src // 2):
        dis.append(cur)
        cur += q ** (i + 1)
    x = [-d for d in reversed(dis)] + [0.0] + dis
    t = np.arange(-(dst // 2), dst // 2 + 0.1, 1.0)
    w = not_a_knot_weights(x, t)
    out = np.zeros((dst * dst + 3, table.shape[1]))
    for h in range(table.shape[1]):
        z = table[:src * src, h].astype(np.float64).reshape(src, src)  # [height, width]
        out[:dst * dst, h] = (w @ z @ w.T).reshape(-1)
    out[dst * dst:] = table[src * src:]
    try:  # unilm's own call, where scipy still has interp2d
        import warnings
        from scipy import interpolate
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for h in range(table.shape[1]):
                f = interpolate.interp2d(x, x, table[:src * src, h].reshape(src, src), kind="cubic")
                ref = f(t, t).reshape(-1)
                assert np.abs(ref - out[:dst * dst, h]).max() < 1e-6, "spline differs from interp2d"
    except (ImportError, AttributeError, NotImplementedError):
        pass
    return out.astype(np.float32)


def pos_resize(pos, dst_grid):
    n = pos.shape[1] - 1
    g = int(round(math.sqrt(n)))
    grid = torch.from_numpy(pos[:, 1:].astype(np.float64)).reshape(1, g, g, -1).permute(0, 3, 1, 2)
    out = F.interpolate(grid, size=(dst_grid, dst_grid), mode="bicubic", align_corners=False)
    out = out.permute(0, 2, 3, 1).reshape(1, dst_grid * dst_grid, -1).numpy()
    return np.concatenate([pos[:, :1], out], axis=1).astype(np.float32)


def transfer(src_w, dst_model, dst_cfg):
    """Expected destination tensors (everything except the new head and pooler LayerNorm)."""
    out = {}
    shared = src_w.get("beit.encoder.relative_position_bias.relative_position_bias_table")
    grid = dst_cfg["image_size"] // dst_cfg["patch_size"]
    for name, p in dst_model.state_dict().items():
        shape = tuple(p.shape)
        if name.startswith("classifier.") or (name.startswith("beit.pooler.") and
                                               name not in src_w):
            continue  # new head; the pooler LayerNorm (fc_norm) is kept when the source has one
        if name.endswith("relative_position_bias_table"):
            v = src_w.get(name, shared)
            out[name] = rpb_resize(v, shape[0])
        elif name.endswith("position_embeddings") and src_w[name].shape != shape:
            out[name] = pos_resize(src_w[name], grid)
        else:
            assert src_w[name].shape == shape, name
            out[name] = src_w[name]
    return out


# ------------------------------------------------------------------------------------------------

def layer_id(name, num_layers):
    if name.startswith("beit.embeddings."):
        return 0
    if name.startswith("beit.encoder.layer."):
        return int(name.split(".")[3]) + 1
    return num_layers + 1


def source(kind, rng, out_dir):
    """Write the source checkpoint; returns its HF-named weights."""
    os.makedirs(out_dir, exist_ok=True)
    cfg = dict(BASE)
    if kind == "mim":
        cfg.update(architectures=["BeitForMaskedImageModeling"], use_mask_token=True,
                   use_absolute_position_embeddings=True, use_relative_position_bias=False,
                   use_shared_relative_position_bias=True, use_mean_pooling=True)
    else:
        cfg.update(architectures=["BeitForImageClassification"], use_mask_token=False,
                   use_absolute_position_embeddings=False, use_relative_position_bias=True,
                   use_shared_relative_position_bias=False, use_mean_pooling=True,
                   id2label={str(i): f"L{i}" for i in range(3)},
                   label2id={f"L{i}": i for i in range(3)})
    model = beit_ref.BeitRef(cfg, dtype=torch.float64)
    w = beit_ref.random_weights(model, rng)
    if kind == "mim":
        with open(os.path.join(out_dir, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
        st.write(os.path.join(out_dir, "model.safetensors"), w)
    else:  # timm names, a timm hub config
        st.write(os.path.join(out_dir, "model.safetensors"), convert_checkpoint.hf_to_unilm(w))
        with open(os.path.join(out_dir, "config.json"), "w") as f:
            json.dump({"architecture": "beit_base_patch16_224", "num_classes": 3,
                       "pretrained_cfg": {"input_size": [3, 20, 20]}}, f, indent=2)
    return w


def run_case(name, spec, out_dir, seed):
    rng = np.random.default_rng(seed)
    shutil.rmtree(out_dir, ignore_errors=True)
    src_w = source(spec["src"], rng, os.path.join(out_dir, "src"))
    cfg = dict(BASE)
    n = spec["labels"]
    cfg.update(architectures=["BeitForImageClassification"], use_mask_token=False,
               use_absolute_position_embeddings=spec["src"] == "mim",
               use_relative_position_bias=True, use_shared_relative_position_bias=False,
               use_mean_pooling=True, image_size=spec["image_size"],
               problem_type="multi_label_classification" if spec["multilabel"]
               else "single_label_classification",
               id2label={str(i): f"LABEL_{i}" for i in range(n)},
               label2id={f"LABEL_{i}": i for i in range(n)})
    model = beit_ref.BeitRef(cfg, dtype=torch.float64)
    expected = {}
    moved = transfer(src_w, model, cfg)
    for k, v in moved.items():
        expected["transferred." + k] = v
    d = cfg["hidden_size"]
    head = {"classifier.weight": (0.05 * rng.standard_normal((n, d))).astype(np.float32),
            "classifier.bias": (0.05 * rng.standard_normal(n)).astype(np.float32)}
    state = dict(moved)
    state.update(head)
    state.setdefault("beit.pooler.layernorm.weight", np.ones(d, dtype=np.float32))
    state.setdefault("beit.pooler.layernorm.bias", np.zeros(d, dtype=np.float32))
    model.load_state_dict({k: torch.from_numpy(v).double() for k, v in state.items()}, strict=True)

    s = spec["image_size"]
    layers = cfg["num_hidden_layers"]
    pix = rng.uniform(-1, 1, (BATCH, 3, s, s)).astype(np.float32)
    drop = np.array([[[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]],
                     [[1.25, 0.0, 1.25], [0.0, 1.25, 1.25]]], dtype=np.float32)[:layers]
    inputs = {"pixel_values": pix, "drop_scales": drop}
    x = torch.from_numpy(pix).double()
    if spec["multilabel"]:
        lab = (rng.uniform(size=(BATCH, n)) < 0.5).astype(np.float32)
        lab[0] = 0.0
        inputs["labels"] = lab
    else:
        inputs["labels"] = rng.integers(0, n, BATCH).astype(np.int64)
    soft = None
    if spec["mixup_lam"] is not None:  # timm Mixup mode "batch": pair b with B-1-b
        lam = spec["mixup_lam"]
        x = lam * x + (1 - lam) * x.flip(0)
        off = spec["smoothing"] / n
        on = 1 - spec["smoothing"] + off
        y = torch.full((BATCH, n), off, dtype=torch.float64)
        y[torch.arange(BATCH), torch.from_numpy(inputs["labels"])] = on
        soft = lam * y + (1 - lam) * y.flip(0)

    def loss_fn():
        ds = torch.from_numpy(drop).double()
        if soft is not None:
            logits = model(x, drop_scales=ds)["logits"]
            return -(soft * F.log_softmax(logits, -1)).sum(-1).mean()
        lab_t = torch.from_numpy(np.array(inputs["labels"]))
        if lab_t.dtype == torch.float32:
            lab_t = lab_t.double()
        return model(x, drop_scales=ds, labels=lab_t, label_smoothing=spec["smoothing"])["loss"]

    groups, scales = [], {}
    for pname, p in model.named_parameters():
        scale = spec["layer_decay"] ** (layers + 1 - layer_id(pname, layers))
        scales[pname] = scale
        wd = 0.0 if beit_ref.is_no_decay(pname, p) else TRAIN["weight_decay"]
        groups.append({"params": [p], "weight_decay": wd, "lr_scale": scale})
    opt = torch.optim.AdamW(groups, lr=TRAIN["lr"], betas=(TRAIN["beta1"], TRAIN["beta2"]),
                            eps=TRAIN["eps"])
    sched = beit_ref.cosine_schedule(TRAIN["lr"], TRAIN["min_lr"], STEPS, 0)
    losses = []
    for step in range(STEPS):
        for g in opt.param_groups:
            g["lr"] = sched[step] * g["lr_scale"]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn()
        losses.append(loss.item())
        loss.backward()
        if step == 0:
            for pname, p in model.named_parameters():
                expected["grad." + pname] = p.grad.detach().numpy().astype(np.float32)
        if spec["clip"] > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), spec["clip"])
        opt.step()
    expected["train.loss"] = np.array(losses, dtype=np.float32)
    for pname, p in model.named_parameters():
        expected["train.final." + pname] = p.detach().numpy().astype(np.float32)
    st.write(os.path.join(out_dir, "head.safetensors"), head)
    st.write(os.path.join(out_dir, "inputs.safetensors"), inputs)
    st.write(os.path.join(out_dir, "expected.safetensors"), expected)
    train = dict(TRAIN, steps=STEPS, image_size=s, num_labels=n, multilabel=spec["multilabel"],
                 layer_decay=spec["layer_decay"], label_smoothing=spec["smoothing"],
                 mixup_lam=spec["mixup_lam"] if spec["mixup_lam"] is not None else 0.0,
                 clip_grad=spec["clip"], lr_per_step=sched, lr_scale=scales,
                 source="src" if spec["src"] == "mim" else "src (timm names)")
    with open(os.path.join(out_dir, "train.json"), "w") as f:
        json.dump(train, f, indent=2)
    return losses


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    for i, (name, spec) in enumerate(CASES.items()):
        losses = run_case(name, spec, os.path.join(args.out, name), SEED + 100 * i)
        print(f"{name}: loss " + " ".join(f"{v:.6f}" for v in losses))
    return 0


if __name__ == "__main__":
    sys.exit(main())
