"""PyTorch side of the encoder benchmark: times tools/beit_ref.py (CPU) on one config.

  /usr/bin/python3 bench/bench_encoder_torch.py --config configs/models/X.json --batch B
      --threads T --mode train|infer --iters N --warmup W [--vocab V] [--precision fp32|bf16]

train: BeitForMaskedImageModeling with the shared RPB and mask token forced on (other flags from
the config), spec-3 pretraining init, round(mask_ratio * N) random masked patches per image (a fresh
mask each step, same count so every step does the same work), DropPath scales from the config's
drop_path_rate, random token labels. One timed step = forward (final LN, MIM head on the masked
rows only), cross-entropy, backward, [clip if --clip-grad > 0], AdamW step (decay / no-decay
groups), zero_grad. infer: forward under torch.no_grad of BeitForImageClassification when the
config says so, else BeitModel (pooled features), on random pixels.

--precision bf16 is PyTorch's CPU mixed precision: the forward and the loss run under
torch.autocast("cpu", dtype=torch.bfloat16) (matrix products, convolution included, in bf16 through
oneDNN; LayerNorm and the losses in float32), backward outside the context as PyTorch recommends,
weights, gradients and AdamW in float32. Under autocast beit_ref's GELU also runs in bf16 (it gets
the bf16 output of the fc1 product), and so does softmax where no relative position bias is added.
fp32 (default): everything in float32.

Prints one JSON line: images_per_s (batch / median step time), median_step_s, peak_rss_mb
(getrusage ru_maxrss of this process), plus the settings used.
"""
import argparse
import contextlib
import json
import os
import resource
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tools"))
import beit_ref  # noqa: E402


def build(args):
    with open(args.config) as f:
        cfg = json.load(f)
    if args.vocab is not None:
        cfg["vocab_size"] = args.vocab
    if args.mode == "train":
        cfg["architectures"] = ["BeitForMaskedImageModeling"]
        cfg["use_mask_token"] = True
        cfg["use_shared_relative_position_bias"] = True
    else:
        arch = (cfg.get("architectures") or ["BeitModel"])[0]
        cfg["architectures"] = [arch if arch == "BeitForImageClassification" else "BeitModel"]
    model = beit_ref.BeitRef(cfg, dtype=torch.float32)
    beit_ref.init_pretrain_(model)
    return model, model.config


def autocast(precision):
    """The context of one forward: bf16 autocast, or nothing for fp32."""
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True, help="HF-schema model config.json")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--mode", choices=("train", "infer"), default="train")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--vocab", type=int, help="visual vocabulary (default: the config's)")
    ap.add_argument("--mask-ratio", type=float, default=0.4)
    ap.add_argument("--clip-grad", type=float, default=0.0, help="global-norm clip (0: none)")
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                    help="bf16: forward and loss under torch.autocast (CPU, bfloat16)")
    args = ap.parse_args()
    if args.iters < 1 or args.batch < 1 or args.threads < 1:
        ap.error("--iters, --batch and --threads must be >= 1")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model, cfg = build(args)
    b = args.batch
    grid = cfg["image_size"] // cfg["patch_size"]
    n = grid * grid
    n_mask = max(1, round(args.mask_ratio * n))
    pix = torch.rand(b, cfg["num_channels"], cfg["image_size"], cfg["image_size"]) * 2 - 1
    times = []

    if args.mode == "train":
        model.train()
        groups = beit_ref.param_groups(model, args.weight_decay)
        opt = torch.optim.AdamW([{"params": g["params"], "weight_decay": g["weight_decay"]}
                                 for g in groups], lr=args.lr, betas=(0.9, 0.999), eps=1e-8)
        layers = cfg["num_hidden_layers"]
        for it in range(args.warmup + args.iters):
            mask = torch.zeros(b, n, dtype=torch.bool)
            mask[torch.arange(b)[:, None], torch.rand(b, n).argsort(dim=1)[:, :n_mask]] = True
            labels = torch.randint(0, cfg["vocab_size"], (b * n_mask,))
            scales = beit_ref.sample_drop_scales(cfg["drop_path_rate"], layers, b)
            t0 = time.perf_counter()
            with autocast(args.precision):
                out = model(pix, bool_masked_pos=mask, drop_scales=scales, labels=labels)
            out["loss"].backward()  # outside autocast: backward ops follow the forward's dtypes
            if args.clip_grad > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip_grad)
            opt.step()
            opt.zero_grad(set_to_none=True)
            dt = time.perf_counter() - t0
            if it >= args.warmup:
                times.append(dt)
    else:
        model.eval()
        with torch.no_grad():
            for it in range(args.warmup + args.iters):
                t0 = time.perf_counter()
                with autocast(args.precision):
                    model(pix)
                dt = time.perf_counter() - t0
                if it >= args.warmup:
                    times.append(dt)

    med = statistics.median(times)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB
    print(json.dumps({
        "images_per_s": b / med,
        "median_step_s": med,
        "peak_rss_mb": rss_mb,
        "mode": args.mode,
        "precision": args.precision,
        "architecture": cfg["architecture"],
        "batch": b,
        "threads": args.threads,
        "iters": args.iters,
        "masked_per_image": n_mask if args.mode == "train" else 0,
        "params": sum(p.numel() for p in model.parameters()),
        "torch": torch.__version__,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
