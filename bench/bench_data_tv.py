#!/usr/bin/env python3
"""torchvision + PIL side of bench/bench_data.c.

--make DIR --count N   write N ImageNet-sized photo-like JPEGs (500x375 mostly, quality 90, 4:2:0)
--time DIR --seconds S decode (PIL, as torchvision's pil_loader) + DataAugmentationForBEiT
                       (ColorJitter 0.4, flip, one RandomResizedCrop box -> 224 bicubic view with
                       0.5/0.5 Normalize + 112 lanczos view with map_pixels), one thread; prints
                       a JSON line with images/s."""
import argparse
import io
import json
import math
import os
import random
import time

import numpy as np
from PIL import Image


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


def timeit(d, seconds):
    import torch
    torch.set_num_threads(1)
    files = sorted(f for f in os.listdir(d) if f.endswith(".jpg"))
    blobs = [open(os.path.join(d, f), "rb").read() for f in files]
    fn = beit_transform()
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
    a = ap.parse_args()
    if a.make:
        make(a.make, a.count)
    if a.time:
        timeit(a.time, a.seconds)
