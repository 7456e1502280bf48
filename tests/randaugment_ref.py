#!/usr/bin/env python3
"""PIL reference outputs of timm's RandAugment operations for tests/test_randaugment.c.

Writes into OUTDIR: the input images as raw uint8 (H, W, 3) files, and for each case the uint8
result of PIL doing the operation the way timm's auto_augment.py calls it (ImageOps,
ImageEnhance, Image.rotate / Image.transform AFFINE with a fill colour and BICUBIC or BILINEAR),
plus cases.json describing them: {op, image, w, h, arg, fill, bicubic, out}. The argument is the
PIL argument (degrees, bits, threshold, add, factor, shear, pixels), written with repr() so the
C side reads the same double."""
import json
import os
import sys

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data_pil_ref  # noqa: E402


def gradient_noise(rng, w, h):
    """Gradients in each channel plus noise and a saturated block (clipping paths)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([255 * x / (w - 1), 255 * y / (h - 1), 128 + 100 * np.sin(x / 3 + y / 5)], -1)
    img += rng.normal(0, 18, img.shape)
    img[h // 4: h // 2, w // 3: w // 2] = [255, 0, 250]
    return img.clip(0, 255).astype(np.uint8)


def photo(rng, w, h):
    """data_pil_ref.py's smooth-plus-detail content, five octaves, no red patch (an array)."""
    return np.asarray(data_pil_ref.photo(rng, w, h, octaves=5, period=64, red_patch=False))


def flat(rng, w, h):
    """Low contrast, a constant green channel (autocontrast/equalize identity paths) and few
    levels in blue (equalize with a sparse histogram); square, for the 90/270 transposes."""
    img = np.empty((h, w, 3), np.uint8)
    img[..., 0] = rng.integers(60, 141, (h, w))
    img[..., 1] = 97
    img[..., 2] = rng.choice([10, 11, 200, 201, 230], (h, w))
    return img


def solarize_add(img, add, thresh=128):
    """timm's solarize_add: values below thresh get + add (capped at 255)."""
    lut = [min(255, i + add) if i < thresh else i for i in range(256)]
    return img.point(lut * 3)


def run_op(img, op, arg, fill, resample):
    kw = dict(resample=resample, fillcolor=fill)
    if op == "autocontrast":
        return ImageOps.autocontrast(img)
    if op == "equalize":
        return ImageOps.equalize(img)
    if op == "invert":
        return ImageOps.invert(img)
    if op == "posterize":
        return img if arg >= 8 else ImageOps.posterize(img, arg)
    if op == "solarize":
        return ImageOps.solarize(img, arg)
    if op == "solarize_add":
        return solarize_add(img, arg)
    enh = {"color": ImageEnhance.Color, "contrast": ImageEnhance.Contrast,
           "brightness": ImageEnhance.Brightness, "sharpness": ImageEnhance.Sharpness}
    if op in enh:
        return enh[op](img).enhance(arg)
    if op == "rotate":
        return img.rotate(arg, **kw)
    matrix = {"shear_x": (1, arg, 0, 0, 1, 0), "shear_y": (1, 0, 0, arg, 1, 0),
              "translate_x": (1, 0, arg, 0, 1, 0), "translate_y": (1, 0, 0, 0, 1, arg)}[op]
    return img.transform(img.size, Image.AFFINE, matrix, **kw)


def op_args(op, w, h):
    """A few PIL arguments per op, with both signs for the geometric ones."""
    if op in ("autocontrast", "equalize", "invert"):
        return [0]
    table = {
        "posterize": [0, 1, 3, 4, 7, 8],
        "solarize": [0, 26, 128, 255, 256],
        "solarize_add": [0, 37, 110],
        "rotate": [-30.0, -13.7, 0.0, 7.25, 27.0, 30.0, 90.0, 180.0, 270.0, -450.5],
        "shear_x": [-0.3, -0.117, 0.05, 0.27],
        "shear_y": [-0.3, -0.117, 0.05, 0.27],
        "translate_x": [-(0.9 * 0.45) * w, -3.7, 2.0, (0.3 * 0.45) * w],
        "translate_y": [-(0.9 * 0.45) * h, -3.7, 2.0, (0.3 * 0.45) * h],
    }
    if op in table:
        return table[op]
    return [0.1, 0.19, 0.55, 1.0, 1.37, 1.81, 1.9]  # enhance factors (max(0.1, 1 +- 0.9 L))


OPS = ["autocontrast", "equalize", "invert", "rotate", "posterize", "solarize", "solarize_add",
       "color", "contrast", "brightness", "sharpness", "shear_x", "shear_y", "translate_x",
       "translate_y"]
GEOMETRIC = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20240611)
    images = {"grad": gradient_noise(rng, 37, 29), "photo": photo(rng, 64, 48),
              "flat": flat(rng, 24, 24), "tiny": gradient_noise(rng, 2, 5)}
    for name, a in images.items():
        a.tofile(os.path.join(out, name + ".u8"))
    fills = [(128, 128, 128), (124, 116, 104)]
    cases = []
    for name, a in images.items():
        img = Image.fromarray(a)
        for op in OPS:
            for k, arg in enumerate(op_args(op, img.width, img.height)):
                for bicubic in ((1, 0) if op in GEOMETRIC else (1,)):
                    fill = fills[(k + bicubic) % 2]
                    resample = Image.BICUBIC if bicubic else Image.BILINEAR
                    r = np.ascontiguousarray(np.asarray(run_op(img, op, arg, fill, resample)))
                    assert r.shape == a.shape and r.dtype == np.uint8
                    path = "case_%d.u8" % len(cases)
                    r.tofile(os.path.join(out, path))
                    cases.append(dict(op=op, image=name, w=img.width, h=img.height, arg=arg,
                                      fill=list(fill), bicubic=bicubic, out=path))
    with open(os.path.join(out, "cases.json"), "w") as f:
        f.write("[\n" + ",\n".join(json.dumps(c) for c in cases) + "\n]\n")
    print("wrote %d cases to %s" % (len(cases), out))


if __name__ == "__main__":
    main()
