#!/usr/bin/env python3
"""torchvision + PIL side of bench/bench_data.c.

--make DIR --count N   write N ImageNet-sized photo-like JPEGs (500x375 mostly, quality 90, 4:2:0)
--time DIR --seconds S decode (PIL, as torchvision's pil_loader) + DataAugmentationForBEiT
                       (ColorJitter 0.4, flip, one RandomResizedCrop box -> 224 bicubic view with
                       0.5/0.5 Normalize + 112 lanczos view with map_pixels), one thread; prints
                       a JSON line with images/s.
  --finetune           time BEiT's fine-tuning transform instead (timm create_transform:
                       RandomResizedCrop 224 bicubic, flip, RandAugment rand-m9-mstd0.5-inc1,
                       ToTensor, Normalize 0.5, RandomErasing 0.25 with random values); timm is
                       not packaged in Debian, so its RandAugment policy is written out below
                       with the PIL calls timm makes."""
import argparse
import io
import json
import math
import os
import random
import time

import numpy as np
from PIL import Image, ImageEnhance, ImageOps


def make(d, count):
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(0)
    sizes = [(500, 375)] * 6 + [(375, 500), (500, 333)]
    for k in range(count):
        w, h = sizes[k % len(sizes)]
        img = np.zeros((h, w, 3), np.float32)
        for o in range(1, 9):
            s = 2 ** o
            n = rng.standard_normal((max(2, s * h // 256), max(2, s * w // 256), 3))
            n = Image.fromarray(((n * 40) + 128).clip(0, 255).astype(np.uint8))
            img += (np.asarray(n.resize((w, h), Image.BICUBIC), np.float32) - 128) * (1.4 / o ** 0.7)
        Image.fromarray((img + 120).clip(0, 255).astype(np.uint8)).save(
            os.path.join(d, "img%04d.jpg" % k), quality=90)


def beit_transform():
    import torch
    import torchvision.transforms as T
    import torchvision.transforms.functional as F
    from torchvision.transforms import InterpolationMode as IM

    class TwoPicCrop:  # unilm beit transforms.RandomResizedCropAndInterpolationWithTwoPic
        def __init__(self, size=224, second_size=112, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
            self.size, self.second_size, self.scale, self.ratio = size, second_size, scale, ratio

        def get_params(self, img):
            area = img.size[0] * img.size[1]
            for _ in range(10):
                target_area = random.uniform(*self.scale) * area
                log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
                aspect_ratio = math.exp(random.uniform(*log_ratio))
                w = int(round(math.sqrt(target_area * aspect_ratio)))
                h = int(round(math.sqrt(target_area / aspect_ratio)))
                if w <= img.size[0] and h <= img.size[1]:
                    return random.randint(0, img.size[1] - h), random.randint(0, img.size[0] - w), h, w
            in_ratio = img.size[0] / img.size[1]
            if in_ratio < min(self.ratio):
                w = img.size[0]; h = int(round(w / min(self.ratio)))
            elif in_ratio > max(self.ratio):
                h = img.size[1]; w = int(round(h * max(self.ratio)))
            else:
                w, h = img.size
            return (img.size[1] - h) // 2, (img.size[0] - w) // 2, h, w

        def __call__(self, img):
            i, j, h, w = self.get_params(img)
            return (F.resized_crop(img, i, j, h, w, [self.size, self.size], IM.BICUBIC),
                    F.resized_crop(img, i, j, h, w, [self.second_size, self.second_size], IM.LANCZOS))

    common = T.Compose([T.ColorJitter(0.4, 0.4, 0.4), T.RandomHorizontalFlip(p=0.5), TwoPicCrop()])
    patch = T.Compose([T.ToTensor(), T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
    token = T.Compose([T.ToTensor(), lambda x: 0.8 * x + 0.1])

    def apply(data):
        img = Image.open(io.BytesIO(data)).convert("RGB")
        a, b = common(img)
        return patch(a), token(b)
    return apply


def rand_augment(img, rng=random):
    """timm rand-m9-mstd0.5-inc1 with fill 128 and bicubic resampling (transforms_factory's
    hparams for mean 0.5): 2 ops chosen with replacement, each applied with probability 0.5,
    magnitude N(9, 0.5) clipped to [0, 10], the increasing level mappings."""
    ops = [rng.randrange(15) for _ in range(2)]
    kw = dict(resample=Image.BICUBIC, fillcolor=(128, 128, 128))
    for op in ops:
        if rng.random() > 0.5:
            continue
        lvl = min(10.0, max(0.0, rng.gauss(9, 0.5))) / 10.0

        def signed(v):
            return -v if rng.random() > 0.5 else v
        if op == 0:
            img = ImageOps.autocontrast(img)
        elif op == 1:
            img = ImageOps.equalize(img)
        elif op == 2:
            img = ImageOps.invert(img)
        elif op == 3:
            img = img.rotate(signed(30 * lvl), **kw)
        elif op == 4:
            img = ImageOps.posterize(img, 4 - int(4 * lvl))
        elif op == 5:
            img = ImageOps.solarize(img, 256 - int(256 * lvl))
        elif op == 6:
            add = int(110 * lvl)
            img = img.point([min(255, i + add) if i < 128 else i for i in range(256)] * 3)
        elif op <= 10:
            enhance = (ImageEnhance.Color, ImageEnhance.Contrast, ImageEnhance.Brightness,
                       ImageEnhance.Sharpness)[op - 7]
            img = enhance(img).enhance(max(0.1, 1.0 + signed(0.9 * lvl)))
        else:
            w, h = img.size
            v = signed((0.3 if op <= 12 else 0.45) * lvl)
            m = {11: (1, v, 0, 0, 1, 0), 12: (1, 0, 0, v, 1, 0),
                 13: (1, 0, v * w, 0, 1, 0), 14: (1, 0, 0, 0, 1, v * h)}[op]
            img = img.transform(img.size, Image.AFFINE, m, **kw)
    return img


def finetune_transform():
    import torchvision.transforms as T
    from torchvision.transforms import InterpolationMode as IM
    tf = T.Compose([T.RandomResizedCrop(224, interpolation=IM.BICUBIC), T.RandomHorizontalFlip(),
                    rand_augment, T.ToTensor(), T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
                    T.RandomErasing(p=0.25, value="random")])

    def apply(data):
        return tf(Image.open(io.BytesIO(data)).convert("RGB")), None
    return apply


def timeit(d, seconds, finetune=False):
    import torch
    torch.set_num_threads(1)
    files = sorted(f for f in os.listdir(d) if f.endswith(".jpg"))
    blobs = [open(os.path.join(d, f), "rb").read() for f in files]
    fn = finetune_transform() if finetune else beit_transform()
    for b in blobs[:4]:
        fn(b)
    n, t0, c0 = 0, time.perf_counter(), time.thread_time()
    while time.perf_counter() - t0 < seconds:
        a, b = fn(blobs[n % len(blobs)])
        n += 1
    el, cpu = time.perf_counter() - t0, time.thread_time() - c0
    print(json.dumps({"images": n, "seconds": el, "images_per_s": n / el,
                      "images_per_cpu_s": n / cpu,
                      "mean_file_kb": sum(map(len, blobs)) / len(blobs) / 1024}))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--make")
    ap.add_argument("--count", type=int, default=64)
    ap.add_argument("--time")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--finetune", action="store_true")
    a = ap.parse_args()
    if a.make:
        make(a.make, a.count)
    if a.time:
        timeit(a.time, a.seconds, a.finetune)
