"""PyTorch reference of the DALL-E dVAE family and its training loss (dall_e, DALL-E paper).

Written from the spec, not from the dall_e package (which is not installed here). It is the
oracle of the C tokenizer's golden and parity tests and the PyTorch side of its benchmark:

  Encoder / Decoder   DALL-E's module tree, so state_dict() names are DALL-E's
                      (blocks.input.w, blocks.group_1.block_1.res_path.conv_1.w, ...), generalised
                      by a config dict with the keys of configs/tokenizer/*.json (see dvae_config).
  dvae_loss           Gumbel-softmax relaxation with externally supplied noise, logit-Laplace or
                      MSE reconstruction, KL(q || uniform), all divided by the pixel count (spec 9.4).

Shapes are NCHW. Encoder input: images already mapped to (0.1, 0.9) by 0.8x + 0.1.

Commands (python3 tools/dvae_ref.py CMD ...):
  golden OUT_DIR     write a small model, inputs, noise, loss and every gradient for
                     tests/test_tokenizer_golden.c (config.json + model.safetensors + golden.safetensors)
  bench-encoder --batch B --size S --threads T [--iters N] [--precision fp32|bf16]
                     images/s of the full DALL-E encoder forward (the benchmark's PyTorch side)
  bench-train CONFIG --batch B --threads T [--iters N] [--precision fp32|bf16]
                     images/s of one dVAE training step of a tokenizer config
  --precision bf16 is PyTorch's CPU mixed precision: the forward (and the loss) under
  torch.autocast("cpu", dtype=torch.bfloat16), convolutions in bf16 through oneDNN, weights,
  gradients and AdamW in float32; the backward runs outside autocast (it follows the forward).
"""
import argparse
import json
import math
import os
import sys
import time
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402  (tools/st.py: safetensors without the package)

# The defaults of every config key, DALL-E's encoder+decoder shape (spec 9.2, 9.3).
DALLE_CONFIG = {
    "input_channels": 3,
    "n_hid": 256,
    "group_count": 4,
    "n_blk_per_group": 2,
    "vocab_size": 8192,
    "downsample": 8,
    "n_init": 128,
    "image_size": 112,
    "decoder": True,
    "recon_loss": "logit_laplace",
}


def dvae_config(cfg=None):
    out = dict(DALLE_CONFIG)
    for k, v in (cfg or {}).items():
        if k in out:
            out[k] = v
    return out


def n_pools(cfg):
    return int(round(math.log2(cfg["downsample"])))


class Conv2d(nn.Module):
    """DALL-E's conv: params w (n_out, n_in, k, k), b (n_out); stride 1, 'same' padding."""

    def __init__(self, n_in, n_out, kw):
        super().__init__()
        assert kw % 2 == 1
        self.kw = kw
        self.w = nn.Parameter(torch.randn(n_out, n_in, kw, kw) / math.sqrt(n_in * kw * kw))
        self.b = nn.Parameter(torch.zeros(n_out))

    def forward(self, x):
        return F.conv2d(x, self.w, self.b, padding=(self.kw - 1) // 2)


class ResBlock(nn.Module):
    """DALL-E's residual block: identity (or a 1x1 conv) plus post_gain times four ReLU-conv
    pairs at a quarter of the width; the first and last kernel sizes are the encoder's or the
    decoder's."""

    def __init__(self, n_in, n_out, n_layers, k_first, k_last):
        super().__init__()
        h = n_out // 4
        self.post_gain = 1.0 / (n_layers ** 2)
        self.id_path = Conv2d(n_in, n_out, 1) if n_in != n_out else nn.Identity()
        self.res_path = nn.Sequential(OrderedDict([
            ("relu_1", nn.ReLU()), ("conv_1", Conv2d(n_in, h, k_first)),
            ("relu_2", nn.ReLU()), ("conv_2", Conv2d(h, h, 3)),
            ("relu_3", nn.ReLU()), ("conv_3", Conv2d(h, h, 3)),
            ("relu_4", nn.ReLU()), ("conv_4", Conv2d(h, n_out, k_last))]))

    def forward(self, x):
        return self.id_path(x) + self.post_gain * self.res_path(x)


class EncoderBlock(ResBlock):
    def __init__(self, n_in, n_out, n_layers):
        super().__init__(n_in, n_out, n_layers, 3, 1)


class DecoderBlock(ResBlock):
    def __init__(self, n_in, n_out, n_layers):
        super().__init__(n_in, n_out, n_layers, 1, 3)


def dvae_stack(cfg, first, widths, block, resample, out_ch):
    """The modules of an encoder or decoder, DALL-E's names: the input conv `first`, a group of
    n_blk_per_group blocks per entry of widths (its width), each of the first n_pools(cfg) groups
    ending in resample() (name, module), then ReLU and a 1x1 conv to out_ch."""
    n_layers = cfg["group_count"] * cfg["n_blk_per_group"]
    blocks = [("input", first)]
    width = first.w.shape[0]
    for g, out in enumerate(widths, 1):
        items = [(f"block_{i}", block(width if i == 1 else out, out, n_layers))
                 for i in range(1, cfg["n_blk_per_group"] + 1)]
        if g <= n_pools(cfg):
            items.append(resample())
        blocks.append((f"group_{g}", nn.Sequential(OrderedDict(items))))
        width = out
    blocks.append(("output", nn.Sequential(OrderedDict([
        ("relu", nn.ReLU()), ("conv", Conv2d(width, out_ch, 1))]))))
    return nn.Sequential(OrderedDict(blocks))


class Encoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        cfg = dvae_config(cfg)
        G, nh = cfg["group_count"], cfg["n_hid"]
        self.blocks = dvae_stack(cfg, Conv2d(cfg["input_channels"], nh, 7),
                                 [nh * 2 ** (g - 1) for g in range(1, G + 1)], EncoderBlock,
                                 lambda: ("pool", nn.MaxPool2d(kernel_size=2)), cfg["vocab_size"])

    def forward(self, x):
        return self.blocks(x)


class Decoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        cfg = dvae_config(cfg)
        G, nh = cfg["group_count"], cfg["n_hid"]
        out_ch = cfg["input_channels"] * (2 if cfg["recon_loss"] == "logit_laplace" else 1)
        self.blocks = dvae_stack(cfg, Conv2d(cfg["vocab_size"], cfg["n_init"], 1),
                                 [nh * 2 ** (G - g) for g in range(1, G + 1)], DecoderBlock,
                                 lambda: ("upsample", nn.Upsample(scale_factor=2, mode="nearest")),
                                 out_ch)

    def forward(self, x):
        return self.blocks(x)


def dvae_loss(enc, dec, x, gumbel, tau, kl_weight, recon_loss):
    """The relaxed ELB divided by the pixel count (spec 9.4), averaged over the batch.

    x: (B, C, H, W) in (0, 1) (mapped pixels); gumbel: (B, V, h, w) Gumbel(0, 1) noise.
    Returns (loss, recon, kl, logits, xhat): recon is the per-pixel reconstruction term, kl the
    per-position KL(q || uniform); loss = recon + kl_weight * kl * positions / pixels."""
    B, C, H, W = x.shape
    logits = enc(x)
    V, h, w = logits.shape[1:]
    soft = torch.softmax((logits + gumbel) / tau, dim=1)
    out = dec(soft)
    mu = out[:, :C]
    if recon_loss == "logit_laplace":
        lnb = out[:, C:2 * C]
        logit_x = torch.log(x) - torch.log1p(-x)
        nll = lnb + math.log(2.0) + torch.log(x) + torch.log1p(-x) + (logit_x - mu).abs() * torch.exp(-lnb)
        recon = nll.mean()
    else:
        recon = ((torch.sigmoid(mu) - x) ** 2).mean()
    logq = torch.log_softmax(logits, dim=1)
    kl = (logq.exp() * (logq + math.log(V))).sum(dim=1).mean()
    loss = recon + kl_weight * kl * (h * w) / (C * H * W)
    return loss, recon, kl, logits, torch.sigmoid(mu)


# ---------------------------------------------------------------- fixtures

def write_folder(out_dir, cfg, enc, dec=None):
    """A tokenizer folder as the C side reads it: config.json + model.safetensors."""
    os.makedirs(out_dir, exist_ok=True)
    tensors = OrderedDict((k, v.detach().float().numpy()) for k, v in enc.state_dict().items())
    if dec is not None:
        for k, v in dec.state_dict().items():
            tensors["decoder." + k] = v.detach().float().numpy()
    st.write(os.path.join(out_dir, "model.safetensors"), tensors)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)


def cmd_golden(args):
    torch.manual_seed(1234)
    cfg = dvae_config({"input_channels": 2, "n_hid": 8, "group_count": 2, "n_blk_per_group": 1,
                       "vocab_size": 12, "downsample": 2, "n_init": 6, "image_size": 10,
                       "decoder": True, "recon_loss": args.recon})
    enc, dec = Encoder(cfg), Decoder(cfg)
    # Non-zero biases so their gradients are exercised.
    with torch.no_grad():
        for p in list(enc.parameters()) + list(dec.parameters()):
            if p.dim() == 1:
                p.normal_(0, 0.1)
    # fp32 values, reference computed in fp64 from exactly those values.
    enc, dec = enc.double(), dec.double()
    B, C, S = 3, cfg["input_channels"], cfg["image_size"]
    x = (0.1 + 0.8 * torch.rand(B, C, S, S)).double()
    gs = S // cfg["downsample"]
    u = torch.rand(B, cfg["vocab_size"], gs, gs).clamp(1e-6, 1 - 1e-6)
    gumbel = (-torch.log(-torch.log(u))).float().double()
    tau, klw = 0.7, 3.0
    loss, recon, kl, logits, _ = dvae_loss(enc, dec, x, gumbel, tau, klw, cfg["recon_loss"])
    loss.backward()
    write_folder(args.out_dir, cfg, enc.float(), dec.float())
    out = OrderedDict()
    out["x"] = x.float().numpy()
    out["gumbel"] = gumbel.float().numpy()
    out["logits"] = logits.detach().float().numpy()
    out["scalars"] = np.array([loss.item(), recon.item(), kl.item(), tau, klw], dtype=np.float64)
    for k, p in enc.named_parameters():
        out["grad." + k] = p.grad.float().numpy()
    for k, p in dec.named_parameters():
        out["grad.decoder." + k] = p.grad.float().numpy()
    st.write(os.path.join(args.out_dir, "golden.safetensors"), out)
    print(f"golden: loss {loss.item():.6f} recon {recon.item():.6f} kl {kl.item():.6f} -> {args.out_dir}")


def test_images(n, size, channels, seed):
    """Smooth random images in (0.1, 0.9): sums of a few blurred blobs, like natural crops."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, channels, size // 8 + 1, size // 8 + 1, generator=g)
    img = F.interpolate(base, size=(size, size), mode="bilinear", align_corners=False)
    img = img + 0.1 * torch.rand(n, channels, size, size, generator=g)
    img = (img - img.amin()) / (img.amax() - img.amin())
    return 0.8 * img + 0.1


def timed(fn, iters, warmup=1):
    """Best and mean wall seconds per call, and process CPU seconds per call (all threads): on a
    shared machine the CPU time is the steadier measure of cost."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    t_all, c_all = time.perf_counter(), time.process_time()
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best, (time.perf_counter() - t_all) / iters, (time.process_time() - c_all) / iters


def autocast(precision):
    """The context of one forward: bf16 autocast (CPU), or nothing for fp32."""
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def cmd_bench_encoder(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    enc = Encoder(dvae_config({"image_size": args.size})).eval()
    x = test_images(args.batch, args.size, 3, 0)

    def forward():
        with autocast(args.precision):
            return enc(x)

    with torch.no_grad():
        best, mean, cpu = timed(forward, args.iters)
    print(json.dumps({"side": "pytorch", "what": "dalle_encoder_forward", "batch": args.batch,
                      "size": args.size, "threads": torch.get_num_threads(),
                      "precision": args.precision,
                      "best_s": best, "mean_s": mean, "cpu_s": cpu, "images_per_s": args.batch / best,
                      "mkldnn": torch.backends.mkldnn.is_available()}))


def cmd_bench_train(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with open(args.config) as f:
        conf = json.load(f)
    cfg = dvae_config(conf.get("model", conf))  # a training recipe or a tokenizer config.json
    enc, dec = Encoder(cfg), Decoder(cfg)
    opt = torch.optim.AdamW(list(enc.parameters()) + list(dec.parameters()), lr=1e-3,
                            weight_decay=1e-4)
    S, C = cfg["image_size"], cfg["input_channels"]
    x = test_images(args.batch, S, C, 0)
    gs = S // cfg["downsample"]

    def step():
        u = torch.rand(args.batch, cfg["vocab_size"], gs, gs).clamp(1e-10, 1 - 1e-10)
        with autocast(args.precision):
            loss = dvae_loss(enc, dec, x, -torch.log(-torch.log(u)), 0.9, 1.0,
                             cfg["recon_loss"])[0]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(enc.parameters()) + list(dec.parameters()), 1.0)
        opt.step()

    best, mean, cpu = timed(step, args.iters, warmup=2)
    print(json.dumps({"side": "pytorch", "what": "dvae_train_step", "batch": args.batch,
                      "size": S, "threads": torch.get_num_threads(),
                      "precision": args.precision, "best_s": best,
                      "mean_s": mean, "cpu_s": cpu, "images_per_s": args.batch / best}))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("golden")
    g.add_argument("out_dir")
    g.add_argument("--recon", default="logit_laplace", choices=["logit_laplace", "mse"])
    b = sub.add_parser("bench-encoder")
    b.add_argument("--batch", type=int, default=8)
    b.add_argument("--size", type=int, default=112)
    b.add_argument("--threads", type=int, default=2)
    b.add_argument("--iters", type=int, default=3)
    b.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="bf16: the forward under torch.autocast (CPU, bfloat16)")
    t = sub.add_parser("bench-train")
    t.add_argument("config")
    t.add_argument("--batch", type=int, default=64)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--iters", type=int, default=10)
    t.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="bf16: forward and loss under torch.autocast (CPU, bfloat16)")
    args = p.parse_args()
    {"golden": cmd_golden, "bench-encoder": cmd_bench_encoder,
     "bench-train": cmd_bench_train}[args.cmd](args)


if __name__ == "__main__":
    main()
