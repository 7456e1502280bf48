"""Shared setup of the pretraining e2e tests: a packed Fashion-MNIST test split, a random tiny
tokenizer (tools/dvae_ref.py, 3x3 tokens of 64) and a tiny BEiT config (12x12 inputs, patch 4)
derived from the small default, all under a work folder; or, with small=True, a random tokenizer
of 7x7 tokens of 512 for the small default itself, or with patch_tokens=True too a hand-built one
whose tokens carry information (write_patch_tokenizer); pack_heldout: images of the training
split to evaluate runs that train on the test split."""
import gzip
import os
import subprocess
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import dvae_ref  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checks  # noqa: E402
import rank_equivalence  # noqa: E402

RECIPE = os.path.join(ROOT, "configs/recipes/pretrain_fashion_mnist.json")


SMALL_MODEL = os.path.join(ROOT, "configs/models/beit_small_fashion_mnist.json")


def make(beit, work, small=False, patch_tokens=False):
    """Returns (dataset folder, tokenizer folder, model config path). small: the small
    Fashion-MNIST default model itself (28x28, 7x7 tokens of 512) instead of the tiny one;
    patch_tokens (with small): the tokenizer of write_patch_tokenizer instead of a random one."""
    data = rank_equivalence.pack_test_split(beit, work)
    if patch_tokens:
        assert small, "the patch tokenizer is for the small model (28x28, 7x7 tokens of 512)"
        tok = os.path.join(work, "tokenizer")
        write_patch_tokenizer(tok)
        return data, tok, SMALL_MODEL
    tok = os.path.join(work, "tokenizer")
    random_tokenizer(tok, small)
    if small:
        return data, tok, SMALL_MODEL
    return data, tok, rank_equivalence.tiny_model(work, 64)


def tiny_pretrain(beit, work):
    """The start of the tiny fp32 pretraining tests: work made empty and the fixture of make()
    made in it. Returns (dataset folder, model config, command): `beit pretrain` with the recipe,
    the random tokenizer and the tiny model, batches of 8, one warmup step, 4 masked patches (at
    least 2), one data worker, fp32; the caller adds --data and --out."""
    checks.fresh_dir(work)
    data, tok, model = make(beit, work)
    return data, model, [beit, "pretrain", "--config", RECIPE, "--tokenizer", tok,
                         "--set", f"model={model}", "--set", "batch.size=8",
                         "--set", "schedule.warmup_steps=1",
                         "--set", "masking.num_masking_patches=4",
                         "--set", "masking.min_num_patches=2", "--set", "data.num_workers=1",
                         "--precision", "fp32"]


def random_tokenizer(out, small=False):
    """A random dVAE encoder folder (seed 0): 7x7 tokens of 512 for the small default model
    (28x28) with small, else 3x3 tokens of 64 for the tiny one (12x12)."""
    torch.manual_seed(0)
    tcfg = dvae_ref.dvae_config({"n_hid": 8, "group_count": 2, "n_blk_per_group": 1,
                                 "vocab_size": 512 if small else 64, "downsample": 4,
                                 "n_init": 8, "image_size": 28 if small else 12,
                                 "decoder": False})
    dvae_ref.write_folder(out, tcfg, dvae_ref.Encoder(tcfg))


def fashion_mnist_images(split, n):
    """The first n images of a Fashion-MNIST split (source order), (n, 28, 28) uint8."""
    name = "t10k" if split == "test" else "train"
    path = os.path.join(rank_equivalence.FASHION_MNIST, f"{name}-images-idx3-ubyte.gz")
    with gzip.open(path) as f:
        raw = f.read(16 + n * 28 * 28)
    return np.frombuffer(raw[16:], np.uint8).reshape(n, 28, 28)


def pack_heldout(beit, work, n=1024):
    """The first n images of Fashion-MNIST's training split as a dataset folder (PNG files of
    one class packed with --folder): held out from runs that train on the test split."""
    from PIL import Image
    src = os.path.join(work, "heldout-png", "0")
    os.makedirs(src, exist_ok=True)
    for i, img in enumerate(fashion_mnist_images("train", n)):
        Image.fromarray(img).save(os.path.join(src, f"{i:05d}.png"))
    data = os.path.join(work, "heldout")
    subprocess.run([beit, "pack", "--folder", os.path.dirname(src), "--out", data, "--quiet"],
                   check=True, stdout=subprocess.DEVNULL)
    return data


def write_patch_tokenizer(out, active=32, vocab=512, images=2000):
    """A tokenizer folder for 28x28 inputs (7x7 tokens of vocab) whose token is the nearest of
    `active` centroids (k-means over the first `images` test images) of eight statistics of a
    4x4 patch: max and 1 - min of the intensity and of its 3x3 mean, and the largest rise and
    fall along each axis. A random dVAE maps ~78% of patches to one token, so masked-token
    accuracy only measures the majority token; here the most frequent is 11-13%, and
    predicting the others from the visible patches is what pretraining learns.

    Built in DALL-E's module tree (tools/dvae_ref.py, n_hid 8, 2 groups, downsample 4): the
    input conv computes the per-pixel statistics (mean of the 3 channels), the residual paths are
    zero so the blocks are identities, the two 2x2 max pools take each patch's maxima, and the
    output conv scores centroid c_k as 2 c_k.f - |c_k|^2 (argmax = nearest centroid); the
    other vocab - active tokens have bias -1e4 and are never chosen."""
    cfg = dvae_ref.dvae_config({"n_hid": 8, "group_count": 2, "n_blk_per_group": 1,
                                "vocab_size": vocab, "downsample": 4, "n_init": 8,
                                "image_size": 28, "decoder": False})
    enc = dvae_ref.Encoder(cfg)
    with torch.no_grad():
        for p in enc.parameters():
            p.zero_()
        w, b = enc.blocks.input.w, enc.blocks.input.b  # (8, 3, 7, 7), (8,)

        def tap(ch, di, dj, v):  # v x intensity at offset (di, dj) of the kernel centre
            w[ch, :, 3 + di, 3 + dj] += v / 3.0

        tap(0, 0, 0, 1.0)                                     # intensity
        tap(1, 0, 0, -1.0)                                    # 1 - intensity
        b[1] = 1.0
        for ch, (di, dj), s in ((2, (0, 1), 2.0), (3, (0, 1), -2.0),   # rise / fall along x
                                (4, (1, 0), 2.0), (5, (1, 0), -2.0)):  # and along y
            tap(ch, di, dj, s)
            tap(ch, 0, 0, -s)
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                tap(6, di, dj, 1.0 / 9)                       # 3x3 mean
                tap(7, di, dj, -1.0 / 9)                      # 1 - 3x3 mean
        b[7] = 1.0
        idw = enc.blocks.group_2.block_1.id_path.w           # (16, 8, 1, 1): 8 -> 16 widening
        for k in range(8):
            idw[k, k, 0, 0] = 1.0
        x = torch.from_numpy(fashion_mnist_images("test", images).astype(np.float32) / 255)
        x = (0.8 * x + 0.1)[:, None].expand(-1, 3, -1, -1)   # the tokenizer's input map
        f = torch.relu(enc.blocks[:-1](x))[:, :8].permute(0, 2, 3, 1).reshape(-1, 8).double()
        g = torch.Generator().manual_seed(0)
        cent = f[torch.randperm(len(f), generator=g)[:active]].clone()
        for _ in range(20):                                   # Lloyd's k-means
            near = torch.cdist(f, cent).argmin(1)
            for k in range(active):
                if (near == k).any():
                    cent[k] = f[near == k].mean(0)
        ow, ob = enc.blocks.output.conv.w, enc.blocks.output.conv.b  # (vocab, 16, 1, 1)
        ob.fill_(-1e4)
        ow[:active, :8, 0, 0] = 2 * cent.float()
        ob[:active] = -(cent ** 2).sum(1).float()
    dvae_ref.write_folder(out, cfg, enc)


def bf16_backend(beit, env=None):
    """(backend line, whether bf16 matrix products are available) as `beit info` reports them
    (false under ONEDNN_MAX_CPU_ISA=AVX2 or on a CPU without AMX / AVX512-BF16)."""
    r = subprocess.run([beit, "info", SMALL_MODEL], env=env, check=True, capture_output=True,
                       text=True)
    backend = next((x.split(None, 1)[1] for x in r.stdout.splitlines()
                    if x.startswith("backend ")), "?")
    return backend, "bf16 available" in r.stdout


def bf16_work(beit, work, env=None):
    """The start of a bf16-only test: False (after printing why; the test exits 77) where bf16
    matrix products are unavailable, else True with work made empty."""
    backend, bf16 = bf16_backend(beit, env)
    if not bf16:
        print("skip: no bf16 matrix products on this machine (" + backend + ")")
        return False
    checks.fresh_dir(work)
    return True


curve = rank_equivalence.curve  # step -> loss of out/metrics.jsonl
