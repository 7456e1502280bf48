"""Model folders and images of the serving benchmark: /usr/bin/python3 bench/bench_serve_model.py --out DIR

  DIR/base/   BEiT-base/16 at 224 as BeitForImageClassification (per-layer relative position
              bias, LayerScale 0.1, mean pooling: the released fine-tuned layout) with the model
              card's fridge-objects labels, random weights at init scale (N(0, 0.02)), and the HF
              microsoft/ preprocessor_config.json (direct resize 224 bilinear, mean = std = 0.5)
  DIR/small/  the repository's small Fashion-MNIST config (28 px, patch 4, D 192, depth 6) as a
              10-class classifier, no preprocessor_config.json (default preprocessing)
  DIR/images/ 16 PNG photos-to-be (640x480 and 480x640 scenes)
Weights are random: the benchmark measures speed; predict-vs-PyTorch agreement is checked on
these weights by bench/bench_serve.sh.
"""
import argparse
import json
import os
import sys

import numpy as np
from PIL import Image, ImageDraw

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import beit_ref  # noqa: E402
import st  # noqa: E402

FRIDGE = ["can", "carton", "milk_bottle", "water_bottle"]
FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot"]


def classifier_config(path, labels):
    with open(path) as f:
        cfg = json.load(f)
    cfg.update({"architectures": ["BeitForImageClassification"], "use_mask_token": False,
                "use_relative_position_bias": True, "use_shared_relative_position_bias": False,
                "use_mean_pooling": True, "problem_type": "single_label_classification",
                "id2label": {str(i): n for i, n in enumerate(labels)},
                "label2id": {n: i for i, n in enumerate(labels)}})
    cfg.pop("vocab_size", None)
    return cfg


def weights_for(cfg, rng):
    import torch
    model = beit_ref.BeitRef(cfg, dtype=torch.float32, device="meta")
    out = {}
    for name, p in model.state_dict().items():
        shape = tuple(p.shape)
        if name.endswith(".lambda_1") or name.endswith(".lambda_2"):
            v = np.full(shape, 0.1, np.float32)
        elif "layernorm" in name and name.endswith(".weight"):
            v = np.ones(shape, np.float32)
        elif name.endswith(".bias"):
            v = np.zeros(shape, np.float32)
        else:
            v = (0.02 * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)
        out[name] = v
    return out


def write_model(d, cfg, pp, rng):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    st.write(os.path.join(d, "model.safetensors"), weights_for(cfg, rng))
    if pp:
        with open(os.path.join(d, "preprocessor_config.json"), "w") as f:
            json.dump(pp, f, indent=2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--images", type=int, default=16)
    args = ap.parse_args()
    rng = np.random.default_rng(7)
    base = classifier_config(os.path.join(ROOT, "configs/models/beit_base_patch16_224.json"), FRIDGE)
    write_model(os.path.join(args.out, "base"), base,
                {"do_resize": True, "size": {"height": 224, "width": 224}, "resample": 2,
                 "do_center_crop": False, "do_rescale": True, "rescale_factor": 1 / 255,
                 "do_normalize": True, "image_mean": [0.5] * 3, "image_std": [0.5] * 3,
                 "image_processor_type": "BeitImageProcessor"}, rng)
    small = classifier_config(os.path.join(ROOT, "configs/models/beit_small_fashion_mnist.json"), FASHION)
    write_model(os.path.join(args.out, "small"), small, None, rng)
    img_dir = os.path.join(args.out, "images")
    os.makedirs(img_dir, exist_ok=True)
    for i in range(args.images):
        w, h = (640, 480) if i % 2 == 0 else (480, 640)
        y, x = np.mgrid[0:h, 0:w]
        a = np.stack([(x * 255 // w), (y * 255 // h), ((x * y) // 97 + 31 * i) % 256], -1).astype(np.uint8)
        img = Image.fromarray(a, "RGB")
        d = ImageDraw.Draw(img)
        for _ in range(12):
            x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
            d.rectangle([x0, y0, x0 + int(rng.integers(20, 200)), y0 + int(rng.integers(20, 200))],
                        fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
        img.save(os.path.join(img_dir, f"img-{i:02d}.png"))
    print(f"wrote base, small and {args.images} images to {args.out}")


if __name__ == "__main__":
    main()
