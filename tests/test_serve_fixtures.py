"""Fixtures of the serve tests: /usr/bin/python3 tests/test_serve_fixtures.py --out DIR

Writes under DIR:
  fridge/             BeitForImageClassification (32 px, patch 8, 2 layers), the model card's
                      fridge-objects labels can, carton, milk_bottle, water_bottle, and an HF
                      microsoft-style preprocessor_config.json (direct resize 32x32 bilinear,
                      mean = std = 0.5)
  fridge_multilabel/  the same weights, problem_type multi_label_classification, no
                      preprocessor_config.json (our default: direct resize, bicubic, 0.5/0.5)
  fridge_crop/        the same weights, HF-style shortest_edge 40 + centre crop 32, bicubic,
                      ImageNet mean/std
  images/             a.png (RGB 64x48), b.jpg (RGB 50x70), c.png (grey 40x40), d.png (RGBA
                      33x57), e.png (RGB 21x18, smaller than the crop), f.gif (palette 30x30)
  expected.json       {model: {image: probs}} from the PyTorch reference (tools/beit_ref.py, float64)
                      on PIL-preprocessed pixels, for every PNG (JPEG decoders differ in the last
                      bit, so b.jpg is compared between predict and serve only)

The preprocessing reference is written from HF BeitImageProcessor's documented semantics: PIL
resize of the 8-bit image, centre crop with offsets (size - crop) // 2 and zero padding,
x * 1/255, (x - mean) / std.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
from PIL import Image, ImageDraw

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import beit_ref  # noqa: E402
import st  # noqa: E402

LABELS = ["can", "carton", "milk_bottle", "water_bottle"]
SEED = 20240917

CONFIG = {
    "model_type": "beit", "architectures": ["BeitForImageClassification"],
    "image_size": 32, "patch_size": 8, "num_channels": 3, "hidden_size": 48,
    "num_hidden_layers": 2, "num_attention_heads": 3, "intermediate_size": 96,
    "hidden_act": "gelu", "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
    "initializer_range": 0.02, "layer_norm_eps": 1e-6, "drop_path_rate": 0.1,
    "layer_scale_init_value": 0.1, "use_mask_token": False,
    "use_absolute_position_embeddings": False, "use_relative_position_bias": True,
    "use_shared_relative_position_bias": False, "use_mean_pooling": True, "vocab_size": 8192,
    "id2label": {str(i): n for i, n in enumerate(LABELS)},
    "label2id": {n: i for i, n in enumerate(LABELS)},
    "problem_type": "single_label_classification", "torch_dtype": "float32",
}

PREPROCESSORS = {
    "fridge": {"do_resize": True, "size": {"height": 32, "width": 32}, "resample": 2,
               "do_center_crop": False, "crop_size": {"height": 32, "width": 32},
               "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
               "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
               "image_processor_type": "BeitImageProcessor"},
    "fridge_multilabel": None,
    "fridge_crop": {"do_resize": True, "size": {"shortest_edge": 40}, "resample": 3,
                    "do_center_crop": True, "crop_size": {"height": 32, "width": 32},
                    "do_normalize": True, "image_mean": [0.485, 0.456, 0.406],
                    "image_std": [0.229, 0.224, 0.225],
                    "feature_extractor_type": "BeitFeatureExtractor"},
}
DEFAULT_PP = {"do_resize": True, "size": {"height": 32, "width": 32}, "resample": 3,
              "do_center_crop": False, "rescale_factor": 1 / 255, "do_normalize": True,
              "image_mean": [0.5] * 3, "image_std": [0.5] * 3}


def make_images(out):
    rng = np.random.default_rng(SEED)
    os.makedirs(out, exist_ok=True)

    def scene(w, h, mode, seed):
        r = np.random.default_rng(seed)
        y, x = np.mgrid[0:h, 0:w]
        base = np.stack([(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)),
                         ((x + y) * 7) % 256], -1).astype(np.uint8)
        img = Image.fromarray(base, "RGB")
        d = ImageDraw.Draw(img)
        for _ in range(4):
            x0, y0 = int(r.integers(0, w)), int(r.integers(0, h))
            d.ellipse([x0, y0, x0 + w // 3, y0 + h // 3],
                      fill=tuple(int(c) for c in r.integers(0, 256, 3)))
        return img.convert(mode)

    scene(64, 48, "RGB", 1).save(os.path.join(out, "a.png"))
    scene(50, 70, "RGB", 2).save(os.path.join(out, "b.jpg"), quality=90)
    scene(40, 40, "L", 3).save(os.path.join(out, "c.png"))
    rgba = scene(33, 57, "RGBA", 4)
    alpha = np.asarray(rgba).copy()
    alpha[..., 3] = rng.integers(0, 256, alpha.shape[:2])
    Image.fromarray(alpha, "RGBA").save(os.path.join(out, "d.png"))
    scene(21, 18, "RGB", 5).save(os.path.join(out, "e.png"))
    scene(30, 30, "RGB", 6).convert("P", palette=Image.ADAPTIVE).save(os.path.join(out, "f.gif"))


def preprocess(path, pp, size):
    img = Image.open(path).convert("RGB")
    if pp.get("do_resize", True):
        s = pp["size"]
        if "shortest_edge" in s:
            w, h = img.size
            e = s["shortest_edge"]
            nw, nh = (e, int(e * h / w)) if w <= h else (int(e * w / h), e)
        else:
            nw, nh = s["width"], s["height"]
        img = img.resize((nw, nh), resample=pp.get("resample", 3))
    a = np.asarray(img, dtype=np.float64)
    if pp.get("do_center_crop", True):
        c = pp.get("crop_size", {"height": 224, "width": 224})
        ch, cw = c["height"], c["width"]
        h, w = a.shape[:2]
        top, left = (h - ch) // 2, (w - cw) // 2
        if top < 0 or left < 0 or top + ch > h or left + cw > w:  # HF: zero padding
            nh, nw = max(h, ch), max(w, cw)
            tp, lp = -(-(nh - h) // 2), -(-(nw - w) // 2)
            padded = np.zeros((nh, nw, 3))
            padded[tp:tp + h, lp:lp + w] = a
            a, top, left = padded, top + tp, left + lp
            top, left = max(top, 0), max(left, 0)
        a = a[top:top + ch, left:left + cw]
    assert a.shape[:2] == (size, size), a.shape
    a = a * pp.get("rescale_factor", 1 / 255)
    if pp.get("do_normalize", True):
        a = (a - np.array(pp.get("image_mean", [0.5] * 3))) / np.array(pp.get("image_std", [0.5] * 3))
    # the C side computes each pixel's value in double and stores float32
    return a.astype(np.float32).astype(np.float64).transpose(2, 0, 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(SEED)
    model = beit_ref.BeitRef(CONFIG, dtype=torch.float64)
    weights = beit_ref.random_weights(model, rng, classifier_scale=0.3)
    model.load_state_dict({k: torch.from_numpy(v).double() for k, v in weights.items()})
    model.eval()
    images_dir = os.path.join(args.out, "images")
    make_images(images_dir)
    expected = {}
    for name, pp in PREPROCESSORS.items():
        d = os.path.join(args.out, name)
        os.makedirs(d, exist_ok=True)
        cfg = dict(CONFIG)
        if name == "fridge_multilabel":
            cfg["problem_type"] = "multi_label_classification"
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
        st.write(os.path.join(d, "model.safetensors"), weights)
        pp_path = os.path.join(d, "preprocessor_config.json")
        if pp is not None:
            with open(pp_path, "w") as f:
                json.dump(pp, f, indent=2)
        elif os.path.exists(pp_path):
            os.remove(pp_path)
        use = pp if pp is not None else DEFAULT_PP
        expected[name] = {}
        for img in sorted(os.listdir(images_dir)):
            if not img.endswith(".png"):
                continue
            x = torch.from_numpy(preprocess(os.path.join(images_dir, img), use, 32))[None]
            with torch.no_grad():
                logits = model(x)["logits"][0]
            probs = torch.sigmoid(logits) if name == "fridge_multilabel" else torch.softmax(logits, -1)
            expected[name][img] = probs.tolist()
    with open(os.path.join(args.out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    print(f"wrote {len(PREPROCESSORS)} models and {len(os.listdir(images_dir))} images to {args.out}")


if __name__ == "__main__":
    main()
