"""Golden fixtures for the C encoder test: /usr/bin/python3 tools/golden_encoder.py --out DIR.

Writes one folder per case under DIR (mim_shared, cls_layer_mean, cls_abs_cls, multilabel), each:
  config.json          HF BeitConfig field names (+ architectures, id2label/label2id, problem_type)
  model.safetensors    random weights, HF names, F32
  inputs.safetensors   pixel_values (B,C,H,W) F32; drop_scales (L,2,B) F32; labels
                       (MIM: I64 (M,) in gather order, multiclass: I64 (B,), multi-label: F32 (B,C));
                       MIM only: bool_masked_pos (B,N) U8
  expected.safetensors logits, loss (1,), hidden (B,T,D), grad.<name> for every parameter,
                       train.loss (S,), train.grad_norm (S,) (pre-clip), train.lr (S,),
                       train.final.<name> for every parameter after S AdamW steps
  train.json           the hyper-parameters of that run (and the no-decay parameter names)
  autocast.safetensors what PyTorch's CPU mixed precision gives for the first step: the same
                       float32 weights and inputs, forward and loss under
                       torch.autocast("cpu", dtype=torch.bfloat16), backward outside it; logits,
                       loss (1,), hidden, grad.<name> as in expected.safetensors, all stored F32.
                       The yardstick of the C bf16 path (tests/test_golden_bf16.c).

Everything is computed in float64 from float32-representable weights and inputs (the fixture
stores float32), with a fixed seed, on one thread. Weights are drawn at a larger scale than any
init (matrices N(0, 0.2), LN weights 1 +- 0.2, biases 0.1, RPB tables 0.5, lambda 0.5 +- 0.2) so
that every path changes the result. The training run per step s: lr of every group = cosine
schedule[s] (unilm, warmup from 0), forward on the same inputs (same drop_scales), record loss,
backward, clip_grad_norm_ (record the pre-clip norm; torch scales by max/(norm+1e-6) capped at 1),
torch.optim.AdamW step with groups decay / no-decay (tools/beit_ref.is_no_decay).
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import beit_ref  # noqa: E402
import st  # noqa: E402

SEED = 20240611
BATCH = 3

BASE = {
    "model_type": "beit",
    "image_size": 20,
    "patch_size": 4,
    "num_channels": 3,
    "hidden_size": 24,
    "num_hidden_layers": 2,
    "num_attention_heads": 3,
    "intermediate_size": 40,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-6,
    "drop_path_rate": 0.1,
    "vocab_size": 37,
    "torch_dtype": "float32",
}

TRAIN = {"steps": 10, "lr": 1e-3, "min_lr": 1e-5, "warmup_steps": 3, "weight_decay": 0.05,
         "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}
# Max grad norm per case, picked from the printed pre-clip norms so that clipping really triggers,
# and in mim_shared and multilabel only on the first steps (both code paths of the clip are used).
CLIP_GRAD = {"mim_shared": 2.5, "cls_layer_mean": 1.0, "cls_abs_cls": 1.0, "multilabel": 0.7}

CASES = {
    "mim_shared": dict(
        architectures=["BeitForMaskedImageModeling"], use_mask_token=True,
        use_absolute_position_embeddings=False, use_relative_position_bias=False,
        use_shared_relative_position_bias=True, use_mean_pooling=True,
        layer_scale_init_value=0.1),
    "cls_layer_mean": dict(
        architectures=["BeitForImageClassification"], use_mask_token=False,
        use_absolute_position_embeddings=False, use_relative_position_bias=True,
        use_shared_relative_position_bias=False, use_mean_pooling=True,
        layer_scale_init_value=0.1, problem_type="single_label_classification", num_labels=5),
    "cls_abs_cls": dict(
        architectures=["BeitForImageClassification"], use_mask_token=False,
        use_absolute_position_embeddings=True, use_relative_position_bias=False,
        use_shared_relative_position_bias=False, use_mean_pooling=False,
        layer_scale_init_value=0.0, problem_type="single_label_classification", num_labels=7),
    "multilabel": dict(
        architectures=["BeitForImageClassification"], use_mask_token=False,
        use_absolute_position_embeddings=False, use_relative_position_bias=True,
        use_shared_relative_position_bias=True, use_mean_pooling=True,
        layer_scale_init_value=0.1, problem_type="multi_label_classification", num_labels=4),
}
LABEL_SMOOTHING = {"mim_shared": 0.0, "cls_layer_mean": 0.1, "cls_abs_cls": 0.0, "multilabel": 0.0}
MASK_COUNTS = [7, 3, 12]  # per sample of the MIM batch; N = 25
# (L, 2, B): [layer][attention/MLP branch][sample]; 0 = dropped, 1.25 = kept at keep prob 0.8
MIM_DROP_SCALES = [[[1.25, 0.0, 1.25], [1.25, 1.25, 0.0]],
                   [[0.0, 1.25, 1.25], [1.25, 0.0, 1.25]]]


def make_config(case):
    return beit_ref.case_config(BASE, CASES[case])


def make_inputs(case, cfg, rng):
    grid = cfg["image_size"] // cfg["patch_size"]
    n = grid * grid
    layers = cfg["num_hidden_layers"]
    pix = rng.uniform(-1.0, 1.0, (BATCH, cfg["num_channels"], cfg["image_size"],
                                  cfg["image_size"])).astype(np.float32)
    inputs = {"pixel_values": pix}
    if case == "mim_shared":
        mask = np.zeros((BATCH, n), dtype=np.uint8)
        for b, count in enumerate(MASK_COUNTS):
            mask[b, rng.permutation(n)[:count]] = 1
        inputs["bool_masked_pos"] = mask
        inputs["labels"] = rng.integers(0, cfg["vocab_size"], int(mask.sum())).astype(np.int64)
        inputs["drop_scales"] = np.array(MIM_DROP_SCALES, dtype=np.float32)
    else:
        c = len(cfg["id2label"])
        if cfg["problem_type"] == "multi_label_classification":
            lab = (rng.uniform(size=(BATCH, c)) < 0.5).astype(np.float32)
            lab[0, :] = 0.0  # one all-negative sample, one with every label on
            lab[1, :] = 1.0
            inputs["labels"] = lab
        else:
            inputs["labels"] = rng.integers(0, c, BATCH).astype(np.int64)
        inputs["drop_scales"] = np.ones((layers, 2, BATCH), dtype=np.float32)
    return inputs


def to_torch64(inputs):
    t = {}
    for k, v in inputs.items():
        x = torch.from_numpy(np.array(v))
        if x.dtype == torch.float32:
            x = x.double()
        t[k] = x
    if "bool_masked_pos" in t:
        t["bool_masked_pos"] = t["bool_masked_pos"].bool()
    return t


def forward(model, t, label_smoothing):
    return model(t["pixel_values"], bool_masked_pos=t.get("bool_masked_pos"),
                 drop_scales=t["drop_scales"], labels=t["labels"], label_smoothing=label_smoothing)


def naive_forward(cfg, w, inputs):
    """A second, loop-level float64 numpy forward written straight from the spec text (patch
    vectors in (c, ky, kx) order, index matrix by its definition, per-head attention). Used only to
    cross-check beit_ref before any fixture is written. Returns (hidden, logits)."""
    import math
    p, d, nh = cfg["patch_size"], cfg["hidden_size"], cfg["num_attention_heads"]
    dh, eps = d // nh, cfg["layer_norm_eps"]
    g = cfg["image_size"] // p
    n, t = g * g, g * g + 1
    r = (2 * g - 1) ** 2 + 3
    w = {k: v.astype(np.float64) for k, v in w.items()}
    pix = inputs["pixel_values"].astype(np.float64)
    bsz = pix.shape[0]
    scales = inputs["drop_scales"].astype(np.float64)
    mask = inputs.get("bool_masked_pos")

    def ln(x, name):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * w[name + ".weight"] + w[name + ".bias"]

    def lin(x, name, bias=True):
        y = x @ w[name + ".weight"].T
        return y + w[name + ".bias"] if bias else y

    idx = np.zeros((t, t), dtype=np.int64)
    for i in range(t):
        for j in range(t):
            if i == 0 and j == 0:
                idx[i, j] = r - 1
            elif i == 0:
                idx[i, j] = r - 3
            elif j == 0:
                idx[i, j] = r - 2
            else:
                hi, wi = divmod(i - 1, g)
                hj, wj = divmod(j - 1, g)
                idx[i, j] = (hi - hj + g - 1) * (2 * g - 1) + (wi - wj + g - 1)

    def bias_of(table):
        return np.stack([table[idx, h] for h in range(nh)])  # (nH, T, T)

    conv_w = w["beit.embeddings.patch_embeddings.projection.weight"].reshape(d, -1)
    x = np.zeros((bsz, t, d))
    for b in range(bsz):
        x[b, 0] = w["beit.embeddings.cls_token"][0, 0]
        for pi in range(n):
            hh, ww = divmod(pi, g)
            patch = pix[b, :, hh * p:(hh + 1) * p, ww * p:(ww + 1) * p].reshape(-1)
            e = conv_w @ patch + w["beit.embeddings.patch_embeddings.projection.bias"]
            if mask is not None and mask[b, pi]:
                e = w["beit.embeddings.mask_token"][0, 0]
            x[b, pi + 1] = e
    if cfg["use_absolute_position_embeddings"]:
        x = x + w["beit.embeddings.position_embeddings"]
    shared = None
    if cfg["use_shared_relative_position_bias"]:
        shared = bias_of(w["beit.encoder.relative_position_bias.relative_position_bias_table"])
    gelu = np.vectorize(lambda v: 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))))
    for li in range(cfg["num_hidden_layers"]):
        pre = f"beit.encoder.layer.{li}."
        att = pre + "attention.attention."
        h = ln(x, pre + "layernorm_before")
        q = lin(h, att + "query") * dh ** -0.5
        k = lin(h, att + "key", bias=False)
        v = lin(h, att + "value")
        o = np.zeros_like(x)
        for b in range(bsz):
            for hd in range(nh):
                sl = slice(hd * dh, (hd + 1) * dh)
                s = q[b, :, sl] @ k[b, :, sl].T
                if cfg["use_relative_position_bias"]:
                    s = s + bias_of(w[att + "relative_position_bias.relative_position_bias_table"])[hd]
                if shared is not None:
                    s = s + shared[hd]
                s = np.exp(s - s.max(-1, keepdims=True))
                s = s / s.sum(-1, keepdims=True)
                o[b, :, sl] = s @ v[b, :, sl]
        a = lin(o, pre + "attention.output.dense")
        if cfg["layer_scale_init_value"] > 0:
            a = a * w[pre + "lambda_1"]
        x = x + scales[li, 0][:, None, None] * a
        m = lin(gelu(lin(ln(x, pre + "layernorm_after"), pre + "intermediate.dense")),
                pre + "output.dense")
        if cfg["layer_scale_init_value"] > 0:
            m = m * w[pre + "lambda_2"]
        x = x + scales[li, 1][:, None, None] * m
    if not cfg["use_mean_pooling"]:
        x = ln(x, "beit.layernorm")
    if cfg["architectures"][0] == "BeitForMaskedImageModeling":
        y = ln(x, "layernorm")
        rows = [y[b, 1 + pi] for b in range(bsz) for pi in range(n) if mask[b, pi]]
        return x, lin(np.array(rows), "lm_head")
    if cfg["use_mean_pooling"]:
        pooled = ln(x[:, 1:].mean(1), "beit.pooler.layernorm")
    else:
        pooled = x[:, 0]
    return x, lin(pooled, "classifier")


def f32(x):
    return x.detach().cpu().numpy().astype(np.float32)


def autocast_step(cfg, weights, inputs, label_smoothing):
    """First step of the float32 model under torch.autocast("cpu", bfloat16), backward outside the
    context (PyTorch's recipe); the tensors of expected.safetensors that exist at that point.
    Autocast puts conv2d, linear and matmul in bf16 (bf16 operands AND bf16 outputs), LayerNorm
    and the losses in float32; other ops follow their inputs (GELU gets fc1's bf16 output; softmax
    is float32 only where a float32 position bias was added). Draws no random numbers."""
    model = beit_ref.BeitRef(cfg, dtype=torch.float32)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=True)
    t = {k: torch.from_numpy(np.array(v)) for k, v in inputs.items()}
    if "bool_masked_pos" in t:
        t["bool_masked_pos"] = t["bool_masked_pos"].bool()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = forward(model, t, label_smoothing)
    # autocast must have engaged: the head is a linear, so its output is bf16
    assert out["logits"].dtype == torch.bfloat16, f"autocast gave {out['logits'].dtype} logits"
    out["loss"].backward()
    got = {"logits": f32(out["logits"].float()), "loss": f32(out["loss"].float().reshape(1)),
           "hidden": f32(out["hidden"].float())}
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.dtype == torch.float32, f"{name}: no float32 grad"
        got["grad." + name] = f32(p.grad)
    return got


def run_case(case, out_dir, seed):
    rng = np.random.default_rng(seed)
    cfg = make_config(case)
    model = beit_ref.BeitRef(cfg, dtype=torch.float64)
    weights = beit_ref.random_weights(model, rng)
    model.load_state_dict({k: torch.from_numpy(v).double() for k, v in weights.items()}, strict=True)
    inputs = make_inputs(case, cfg, rng)
    t = to_torch64(inputs)
    ls = LABEL_SMOOTHING[case]
    names = [n for n, _ in model.named_parameters()]
    assert names == list(weights.keys()), "parameters and state_dict disagree"

    expected = {}
    out = forward(model, t, ls)
    out["loss"].backward()
    hidden_np, logits_np = naive_forward(cfg, weights, inputs)
    for what, ref, got in (("hidden", hidden_np, out["hidden"]), ("logits", logits_np, out["logits"])):
        err = np.abs(ref - got.detach().numpy()).max() / max(1.0, np.abs(ref).max())
        assert err < 1e-10, f"{case}: beit_ref {what} disagrees with the naive forward ({err:.3g})"
    expected["logits"] = f32(out["logits"])
    expected["loss"] = f32(out["loss"].reshape(1))
    expected["hidden"] = f32(out["hidden"])
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().max() > 0, f"{case}: {name} gets no gradient"
        expected["grad." + name] = f32(p.grad)
    model.zero_grad(set_to_none=True)
    autocast = autocast_step(cfg, weights, inputs, ls)

    hp = dict(TRAIN, clip_grad=CLIP_GRAD[case])
    groups = beit_ref.param_groups(model, hp["weight_decay"])
    opt = torch.optim.AdamW([{"params": g["params"], "weight_decay": g["weight_decay"]}
                             for g in groups], lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]),
                            eps=hp["eps"])
    sched = beit_ref.cosine_schedule(hp["lr"], hp["min_lr"], hp["steps"], hp["warmup_steps"])
    losses, norms = [], []
    for s in range(hp["steps"]):
        for g in opt.param_groups:
            g["lr"] = sched[s]
        opt.zero_grad(set_to_none=True)
        loss = forward(model, t, ls)["loss"]
        losses.append(loss.item())
        loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), hp["clip_grad"])))
        opt.step()
    expected["train.loss"] = np.array(losses, dtype=np.float32)
    expected["train.grad_norm"] = np.array(norms, dtype=np.float32)
    expected["train.lr"] = np.array(sched, dtype=np.float32)
    for name, p in model.named_parameters():
        expected["train.final." + name] = f32(p)

    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    st.write(os.path.join(out_dir, "model.safetensors"), weights)
    st.write(os.path.join(out_dir, "inputs.safetensors"), inputs)
    st.write(os.path.join(out_dir, "expected.safetensors"), expected)
    st.write(os.path.join(out_dir, "autocast.safetensors"), autocast)
    train = dict(hp)
    clipped = [n > hp["clip_grad"] for n in norms]
    assert any(clipped), f"{case}: clipping never triggers"
    train["clipped_steps"] = [i for i, c in enumerate(clipped) if c]
    train.update({
        "label_smoothing": ls,
        "schedule": "unilm cosine: linspace(0, lr, warmup_steps) inclusive, then "
                    "min_lr + 0.5 (lr - min_lr)(1 + cos(pi i / (steps - warmup_steps)))",
        "lr_per_step": sched,
        "clip": "torch clip_grad_norm_: global L2 norm over all grads; grads *= "
                "min(1, clip_grad / (norm + 1e-6)); train.grad_norm is the pre-clip norm",
        "optimizer": "torch.optim.AdamW (decoupled: p *= 1 - lr wd before the Adam update)",
        "no_decay_rule": "1-D, or name ends with .bias, or beit.embeddings.cls_token / "
                         "beit.embeddings.position_embeddings",
        "no_decay_params": groups[1]["names"],
        "decay_params": groups[0]["names"],
        "seed": seed,
        "dtype": "float64 compute, float32 storage",
    })
    with open(os.path.join(out_dir, "train.json"), "w") as f:
        json.dump(train, f, indent=2)
        f.write("\n")
    return losses, norms


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="output folder (one sub-folder per case)")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    args = ap.parse_args()
    torch.set_num_threads(1)  # tiny shapes; one thread keeps the reductions reproducible
    t0 = time.time()
    for case in args.cases:
        seed = args.seed + 1000 * list(CASES).index(case)  # a case's data never depends on --cases
        losses, norms = run_case(case, os.path.join(args.out, case), seed)
        print(f"{case}: loss {losses[0]:.6f} -> {losses[-1]:.6f}; pre-clip grad norms "
              + " ".join(f"{n:.3f}" for n in norms))
    print(f"wrote {len(args.cases)} cases to {args.out} in {time.time() - t0:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
