#!/usr/bin/env python3
"""PIL / torchvision reference outputs for tests/test_data_pil.c.

Writes into OUTDIR: test images (PNG), and for each case the uint8 result of PIL doing the
operation (raw .u8, (H, W, 3)), plus cases.json describing them. Cases: Image.resize with
BILINEAR/BICUBIC/LANCZOS down and up (whole image and crop boxes, as RandomResizedCrop does),
flip-then-crop (the order of DataAugmentationForBEiT), ImageEnhance colour jitter in several
orders (torchvision ColorJitter on PIL images), and the evaluation Resize + CenterCrop."""
import io
import json
import os
import sys

import numpy as np
from PIL import Image, ImageEnhance


def photo(rng, w, h):
    """Smooth-plus-detail content: octaves of noise, like a natural image's 1/f spectrum."""
    img = np.zeros((h, w, 3), np.float32)
    for o in range(1, 7):
        s = 2 ** o
        n = rng.standard_normal((max(2, s * h // 128), max(2, s * w // 128), 3))
        n = Image.fromarray(((n * 40) + 128).clip(0, 255).astype(np.uint8))
        img += (np.asarray(n.resize((w, h), Image.BILINEAR), np.float32) - 128) / o
    img[h // 3: h // 2, w // 4: w // 2] = [250, 20, 30]  # hard edges ring with lanczos/bicubic
    return Image.fromarray((img * 1.3 + 128).clip(0, 255).astype(np.uint8))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(1234)
    images = {"photo": photo(rng, 500, 375), "small": photo(rng, 37, 23),
              "tall": photo(rng, 61, 143)}
    for name, im in images.items():
        im.save(os.path.join(out, name + ".png"))
    filt = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "lanczos": Image.LANCZOS}
    cases = []

    def add(kind, image, arr, **kw):
        path = "%s_%d.u8" % (kind, len(cases))
        a = np.ascontiguousarray(np.asarray(arr, np.uint8))
        a.tofile(os.path.join(out, path))
        kw.update(kind=kind, image=image, out=path, h=int(a.shape[0]), w=int(a.shape[1]))
        cases.append(kw)

    resize_cases = [
        ("photo", None, (224, 224)), ("photo", None, (112, 112)), ("photo", (31, 47, 301, 257), (224, 224)),
        ("photo", (200, 10, 150, 90), (112, 112)), ("photo", None, (333, 250)),
        ("small", None, (224, 224)), ("small", (3, 2, 20, 15), (112, 112)), ("small", None, (80, 50)),
        ("tall", None, (224, 224)), ("tall", (5, 7, 40, 100), (31, 29)),
    ]
    for name, box, (dw, dh) in resize_cases:
        im = images[name]
        x0, y0, w, h = box if box else (0, 0, im.width, im.height)
        for fname, f in filt.items():
            r = im.crop((x0, y0, x0 + w, y0 + h)).resize((dw, dh), f)
            add("resize", name, r, filter=fname, box=[x0, y0, w, h], flip=0)
            # flip first, then the same box on the flipped image (DataAugmentationForBEiT order)
            if box and fname != "bilinear":
                r = im.transpose(Image.FLIP_LEFT_RIGHT).crop((x0, y0, x0 + w, y0 + h)).resize((dw, dh), f)
                add("resize", name, r, filter=fname, box=[x0, y0, w, h], flip=1)

    enh = [ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color]
    jitter_cases = [([0, 1, 2], [0.7, 1.3, 0.9]), ([1, 0, 2], [1.35, 0.62, 1.21]),
                    ([2, 1, 0], [1.1, 1.39, 0.61]), ([2, 0, 1], [0.6, 1.4, 1.0]),
                    ([0, 2, 1], [1.4, 0.8, 1.33]), ([1, 2, 0], [0.93, 0.71, 1.38])]
    for name in ("photo", "small"):
        for order, factors in jitter_cases:
            im = images[name]
            for op in order:
                im = enh[op](im).enhance(float(np.float32(factors[op])))
            add("jitter", name, im, order=order, factors=factors)

    # Evaluation: torchvision Resize(256, bicubic) + CenterCrop(224) (unilm eval), and HF direct.
    import torchvision.transforms as T
    from torchvision.transforms import InterpolationMode as IM
    for name in ("photo", "tall"):
        im = images[name]
        r = T.Compose([T.Resize(256, interpolation=IM.BICUBIC), T.CenterCrop(224)])(im)
        add("eval_crop", name, r, size=224, crop_pct=224 / 256, filter="bicubic")
        r = im.resize((224, 224), Image.BILINEAR)
        add("eval_direct", name, r, size=224, filter="bilinear")

    # JPEG variants stb_image_write cannot make: progressive, and a baseline file followed by a
    # trailer (as phones append motion-photo videos) that contains FF DA / FF D9 byte pairs.
    images["photo"].save(os.path.join(out, "progressive.jpg"), quality=85, progressive=True)
    buf = io.BytesIO()
    images["small"].save(buf, format="JPEG", quality=90)
    trailer = bytes([0xFF, 0xDA, 0x00, 0x0C, 0x12, 0xFF, 0xD9, 0x00]) * 50 + bytes([0xFF, 0xDA]) * 3
    with open(os.path.join(out, "trailer.jpg"), "wb") as f:
        f.write(buf.getvalue() + trailer)
    for name in ("progressive.jpg", "trailer.jpg"):
        im = Image.open(os.path.join(out, name)).convert("RGB")
        np.asarray(im).tofile(os.path.join(out, name + ".pil.u8"))

    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump(cases, f, indent=1)
    print("wrote %d cases to %s" % (len(cases), out))


if __name__ == "__main__":
    main()
