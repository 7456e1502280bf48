#!/usr/bin/env python3
"""Reference distribution of BEiT blockwise masks (spec section 8), without PyTorch or NumPy.

A re-implementation of unilm's MaskingGenerator from the spec, drawing with Python's `random`
(Mersenne Twister) as the original does. It draws many masks and prints, as JSON, what
tests/test_masking.c compares the C generator (mim/masking.c) against:

  count_hist      masks with exactly k masked patches, k = 0 .. height*width
  count_prob      the same as fractions
  mean_count      mean masked patches per mask
  mean_rows/cols  mean number of grid rows / columns holding a masked patch
  mean_boundary   mean number of 4-neighbour cell pairs that differ (masked next to unmasked):
                  sensitive to block sizes, which the counts alone hardly show
  position_freq   fraction of masks in which each cell is masked (row-major, height*width)
  mean_blocks     mean number of place_block calls per mask, counting a final failed one

Usage: masking_ref.py --height 14 --width 14 --budget 75 --min-patches 16 --draws 20000
       [--max-patches 0] [--min-aspect 0.3] [--max-aspect 0] [--mode blockwise|random]
       [--seed 0] [--out FILE]
"""
import argparse
import json
import os
import math
import random
import sys


class MaskingGenerator:
    """unilm MaskingGenerator semantics: blocks until the budget is met or a block adds nothing."""

    def __init__(self, height, width, num_masking_patches, min_num_patches=4,
                 max_num_patches=None, min_aspect=0.3, max_aspect=None):
        self.height, self.width = height, width
        self.num_masking_patches = num_masking_patches
        self.min_num_patches = min_num_patches
        self.max_num_patches = num_masking_patches if max_num_patches is None else max_num_patches
        max_aspect = max_aspect or 1.0 / min_aspect
        self.log_aspect_ratio = (math.log(min_aspect), math.log(max_aspect))
        self.place_calls = 0

    def _place_block(self, mask, budget):
        self.place_calls += 1
        for _attempt in range(10):
            area = random.uniform(self.min_num_patches, budget)  # a + (b-a)U, also when b < a
            ratio = math.exp(random.uniform(*self.log_aspect_ratio))
            h = int(round(math.sqrt(area * ratio)))  # round(): half to even
            w = int(round(math.sqrt(area / ratio)))
            if w < self.width and h < self.height:
                top = random.randint(0, self.height - h)  # inclusive
                left = random.randint(0, self.width - w)
                cells = [(i, j) for i in range(top, top + h) for j in range(left, left + w)]
                new = sum(1 for i, j in cells if not mask[i][j])
                if 0 < new <= budget:
                    for i, j in cells:
                        mask[i][j] = 1
                    return new
        return 0

    def __call__(self):
        mask = [[0] * self.width for _ in range(self.height)]
        count = 0
        while count < self.num_masking_patches:
            budget = min(self.num_masking_patches - count, self.max_num_patches)
            delta = self._place_block(mask, budget)
            if delta == 0:
                break
            count += delta
        return mask


def random_mask(height, width, budget):
    """The paper's '- blockwise' ablation: exactly `budget` cells, uniformly."""
    mask = [[0] * width for _ in range(height)]
    for k in random.sample(range(height * width), min(budget, height * width)):
        mask[k // width][k % width] = 1
    return mask


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--height", type=int, default=14)
    ap.add_argument("--width", type=int, default=14)
    ap.add_argument("--budget", type=int, default=75, help="num_masking_patches")
    ap.add_argument("--min-patches", type=int, default=16, help="min_num_patches")
    ap.add_argument("--max-patches", type=int, default=0, help="max_num_patches, 0 = budget")
    ap.add_argument("--min-aspect", type=float, default=0.3)
    ap.add_argument("--max-aspect", type=float, default=0.0, help="0 = 1/min-aspect")
    ap.add_argument("--mode", choices=("blockwise", "random"), default="blockwise")
    ap.add_argument("--draws", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="write JSON here instead of stdout")
    args = ap.parse_args()
    if args.height < 1 or args.width < 1 or not 0 <= args.budget <= args.height * args.width:
        ap.error("need a non-empty grid and 0 <= budget <= height*width")
    if args.draws < 1:
        ap.error("need at least one draw")

    random.seed(args.seed)
    H, W, n = args.height, args.width, args.height * args.width
    gen = MaskingGenerator(H, W, args.budget, args.min_patches, args.max_patches or None,
                           args.min_aspect, args.max_aspect or None)
    hist = [0] * (n + 1)
    pos = [0] * n
    rows = cols = boundary = 0
    for _ in range(args.draws):
        mask = gen() if args.mode == "blockwise" else random_mask(H, W, args.budget)
        c = sum(map(sum, mask))
        if c > args.budget:
            sys.exit(f"masking_ref.py: mask of {c} patches exceeds the budget {args.budget}")
        hist[c] += 1
        rows += sum(1 for r in mask if any(r))
        cols += sum(1 for j in range(W) if any(mask[i][j] for i in range(H)))
        for i in range(H):
            row = mask[i]
            for j in range(W):
                pos[i * W + j] += row[j]
                if j + 1 < W and row[j] != row[j + 1]:
                    boundary += 1
                if i + 1 < H and row[j] != mask[i + 1][j]:
                    boundary += 1

    d = args.draws
    out = {
        "source": "tools/masking_ref.py",
        "mode": args.mode,
        "height": H,
        "width": W,
        "num_masking_patches": args.budget,
        "min_num_patches": args.min_patches,
        "max_num_patches": args.max_patches,
        "min_aspect": args.min_aspect,
        "max_aspect": args.max_aspect,
        "draws": d,
        "seed": args.seed,
        "count_hist": hist,
        "count_prob": [h / d for h in hist],
        "mean_count": sum(k * h for k, h in enumerate(hist)) / d,
        "mean_rows": rows / d,
        "mean_cols": cols / d,
        "mean_boundary": boundary / d,
        "position_freq": [p / d for p in pos],
        "mean_blocks": gen.place_calls / d if args.mode == "blockwise" else 0.0,
    }
    text = json.dumps(out, indent=1) + "\n"
    if args.out:
        with open(args.out + ".tmp", "w") as f:
            f.write(text)
        os.replace(args.out + ".tmp", args.out)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
