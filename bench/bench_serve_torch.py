"""PyTorch side of the serving benchmark: tools/beit_ref.py eager, float32, CPU, on the same
model folder and the same images as the C side.

  /usr/bin/python3 bench/bench_serve_torch.py --model DIR --images DIR --threads T --batch B
      [--iters N] [--batch-iters M]

Preprocessing is the model's own (preprocessor_config.json, or the C side's documented default),
done with PIL as HF does. Timed: the batch-1 forward (median of N after a warm-up) and the
batch-B forward (median of M), under torch.no_grad with torch.set_num_threads(T). Prints one JSON
line with the latencies, images/s and each image's probabilities (for the agreement check).
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import beit_ref  # noqa: E402
import st  # noqa: E402
from test_serve_fixtures import preprocess  # noqa: E402  (HF BeitImageProcessor semantics)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--images", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--batch-iters", type=int, default=3)
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                    help="bf16: the forward under torch.autocast (CPU, bfloat16)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with open(os.path.join(args.model, "config.json")) as f:
        cfg = json.load(f)
    model = beit_ref.BeitRef(cfg, dtype=torch.float32)
    w = st.read(os.path.join(args.model, "model.safetensors"))
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in w.items()})
    model.eval()
    size = model.config["image_size"]
    pp_path = os.path.join(args.model, "preprocessor_config.json")
    if os.path.exists(pp_path):
        with open(pp_path) as f:
            pp = json.load(f)
    else:  # the C side's default: direct resize, bicubic, mean = std = 0.5
        pp = {"do_resize": True, "size": {"height": size, "width": size}, "resample": 3,
              "do_center_crop": False, "image_mean": [0.5] * 3, "image_std": [0.5] * 3}
    names = sorted(n for n in os.listdir(args.images) if n.endswith(".png"))
    t0 = time.perf_counter()
    x = torch.from_numpy(np.stack([preprocess(os.path.join(args.images, n), pp, size)
                                   for n in names]).astype(np.float32))
    prep_s = (time.perf_counter() - t0) / len(names)
    multilabel = model.config.get("problem_type") == "multi_label_classification"

    def forward(batch):
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16,
                                             enabled=args.precision == "bf16"):
            return model(batch)["logits"].float()

    forward(x[:1])  # warm-up
    lat = []
    for i in range(args.iters):
        t = time.perf_counter()
        forward(x[i % len(names): i % len(names) + 1])
        lat.append(time.perf_counter() - t)
    B = min(args.batch, len(names))
    forward(x[:B])
    bt = []
    for _ in range(args.batch_iters):
        t = time.perf_counter()
        forward(x[:B])
        bt.append(time.perf_counter() - t)
    logits = torch.cat([forward(x[i:i + B]) for i in range(0, len(names), B)])
    probs = torch.sigmoid(logits) if multilabel else torch.softmax(logits, -1)
    print(json.dumps({
        "side": "pytorch", "torch": torch.__version__, "threads": args.threads,
        "precision": args.precision,
        "batch1_latency_ms": 1e3 * statistics.median(lat), "batch1_min_ms": 1e3 * min(lat),
        "batch": B, "batch_images_per_s": B / statistics.median(bt),
        "preprocess_ms_per_image": 1e3 * prep_s,
        "probs": {n: p for n, p in zip(names, probs.tolist())},
    }))


if __name__ == "__main__":
    main()
