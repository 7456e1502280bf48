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
import struct
import sys
import zlib

import numpy as np
from PIL import Image, ImageEnhance


def photo(rng, w, h, octaves=6, period=128, red_patch=True):
    """Smooth-plus-detail content: octaves of noise (the coarsest with a cell of period / 2
    pixels), like a natural image's 1/f spectrum; red_patch adds a block of hard edges."""
    img = np.zeros((h, w, 3), np.float32)
    for o in range(1, octaves + 1):
        s = 2 ** o
        n = rng.standard_normal((max(2, s * h // period), max(2, s * w // period), 3))
        n = Image.fromarray(((n * 40) + 128).clip(0, 255).astype(np.uint8))
        img += (np.asarray(n.resize((w, h), Image.BILINEAR), np.float32) - 128) / o
    if red_patch:
        img[h // 3: h // 2, w // 4: w // 2] = [250, 20, 30]  # hard edges ring with lanczos
    return Image.fromarray((img * 1.3 + 128).clip(0, 255).astype(np.uint8))


def write_png(path, a, bits, colour_type, interlace=False):
    """A PNG written by hand (PIL writes neither 16-bit RGB nor interlaced files): filter 0 on
    every row; with interlace, the seven Adam7 passes."""
    a = a.astype(">u2" if bits == 16 else np.uint8)
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
              (0, 1, 1, 2)] if interlace else [(0, 0, 1, 1)]
    raw = b""
    for x0, y0, dx, dy in passes:
        sub = a[y0::dy, x0::dx]
        if sub.size:
            raw += b"".join(b"\0" + row.tobytes() for row in sub)

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    h, w = a.shape[:2]
    ihdr = struct.pack(">IIBBBBB", w, h, bits, colour_type, 0, 0, 1 if interlace else 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
                + chunk(b"IEND", b""))


def write_scan_bomb(path, side=2000, extra=300):
    """A progressive JPEG of a flat side x side image whose last scan is repeated `extra` times:
    a few KB that ask the decoder for hundreds of passes over every coefficient."""
    buf = io.BytesIO()
    Image.new("RGB", (side, side), (120, 130, 140)).save(buf, "JPEG", progressive=True)
    d, i, head, scans = buf.getvalue(), 2, b"", []
    while d[i + 1] != 0xD9:
        n = d[i + 2] << 8 | d[i + 3]
        if d[i + 1] != 0xDA:
            head += d[i:i + 2 + n]
            i += 2 + n
            continue
        j = i + 2 + n
        while not (d[j] == 0xFF and d[j + 1] != 0 and not 0xD0 <= d[j + 1] <= 0xD7):
            j += 1
        scans.append(d[i:j])
        i = j
    with open(path, "wb") as f:
        f.write(b"\xff\xd8" + head + b"".join(scans) + scans[-1] * extra + b"\xff\xd9")


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

    # Decoding: JPEG variants (progressive; a baseline file followed by a trailer, as phones append
    # motion-photo videos, that contains FF DA / FF D9 byte pairs; 4:4:4, 4:2:2 and 4:2:0 at odd
    # sizes; grey; Adobe CMYK) and PNG variants (16-bit, palette with tRNS, RGBA, grey + alpha,
    # 1-bit, 4-bit palette, Adam7-interlaced), each with PIL's convert("RGB") as the expected
    # pixels, except 16-bit grey, which PIL opens as mode I and clips to 255: the expected pixels
    # are its high bytes, as for every other 16-bit PNG.
    big, tall = images["photo"], images["tall"]
    big.save(os.path.join(out, "progressive.jpg"), quality=85, progressive=True)
    buf = io.BytesIO()
    images["small"].save(buf, format="JPEG", quality=90)
    trailer = bytes([0xFF, 0xDA, 0x00, 0x0C, 0x12, 0xFF, 0xD9, 0x00]) * 50 + bytes([0xFF, 0xDA]) * 3
    with open(os.path.join(out, "trailer.jpg"), "wb") as f:
        f.write(buf.getvalue() + trailer)
    tall.save(os.path.join(out, "jpeg_444.jpg"), quality=95, subsampling=0)
    tall.save(os.path.join(out, "jpeg_422.jpg"), quality=75, subsampling=1)
    tall.save(os.path.join(out, "jpeg_420.jpg"), quality=60, subsampling=2)
    big.convert("L").save(os.path.join(out, "jpeg_grey.jpg"), quality=80)
    tall.convert("CMYK").save(os.path.join(out, "jpeg_cmyk.jpg"), quality=90)
    rgb = np.asarray(tall, np.uint16)
    wide = rgb * 257 + (np.arange(rgb.size, dtype=np.uint16).reshape(rgb.shape) % 251)
    write_png(os.path.join(out, "png_rgb16.png"), wide, 16, 2)
    write_png(os.path.join(out, "png_grey16.png"), wide[:, :, 0], 16, 0)
    write_png(os.path.join(out, "png_adam7.png"), np.asarray(tall), 8, 2, interlace=True)
    rgba = tall.copy()
    rgba.putalpha(Image.fromarray((np.arange(61 * 143) % 256).astype(np.uint8).reshape(143, 61)))
    rgba.save(os.path.join(out, "png_rgba.png"))
    rgba.convert("LA").save(os.path.join(out, "png_grey_alpha.png"))
    pal = tall.convert("P", palette=Image.ADAPTIVE, colors=200)
    pal.save(os.path.join(out, "png_palette_trns.png"), transparency=3)
    tall.convert("P", palette=Image.ADAPTIVE, colors=16).save(os.path.join(out, "png_palette4.png"),
                                                              bits=4)
    tall.convert("1").save(os.path.join(out, "png_1bit.png"))
    write_scan_bomb(os.path.join(out, "scan_bomb.jpg"))
    names = ["progressive.jpg", "trailer.jpg", "jpeg_444.jpg", "jpeg_422.jpg", "jpeg_420.jpg",
             "jpeg_grey.jpg", "jpeg_cmyk.jpg", "png_rgb16.png", "png_adam7.png", "png_rgba.png",
             "png_grey_alpha.png", "png_palette_trns.png", "png_palette4.png", "png_1bit.png"]
    for name in names:
        with Image.open(os.path.join(out, name)) as im:
            np.asarray(im.convert("RGB")).tofile(os.path.join(out, name + ".pil.u8"))
    grey = (wide[:, :, 0] >> 8).astype(np.uint8)
    np.repeat(grey[:, :, None], 3, axis=2).tofile(os.path.join(out, "png_grey16.png.pil.u8"))

    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump(cases, f, indent=1)
    print("wrote %d cases to %s" % (len(cases), out))


if __name__ == "__main__":
    main()
