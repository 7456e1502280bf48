"""DALL-E import, end to end on the Python side, and the fixture of the C parity test.

    python3 tests/test_convert_dalle.py OUT_DIR [--full] [--images N]

1. Builds a DALL-E-shaped dVAE with random weights from the spec (tools/dvae_ref.py), dresses
   it as OpenAI's modules (classes dall_e.encoder.Encoder, dall_e.utils.Conv2d, ... with the
   attributes the real ones carry) and pickles the whole modules as OUT/encoder.pkl and
   OUT/decoder.pkl, as OpenAI distributes them.
2. Runs tools/convert_dalle.py on them in a fresh interpreter (no dall_e importable there) and
   checks every tensor of OUT/tokenizer/model.safetensors and config.json.
3. Checks that the converter rejects a pickle with a missing or mis-shaped tensor, naming it.
4. Writes OUT/parity.safetensors: test images, the PyTorch encoder's logits, token ids, top-2
   logit gaps, and the PyTorch decoder's reconstruction of those tokens, for
   tests/test_tokenizer_parity.c.

Default: DALL-E's structure (4 groups of 2 blocks, 8x downsampling, post-gain 1/64) at small
widths (n_hid 16, vocabulary 512, 32x32 images) so the test takes seconds; --full is DALL-E's
size (n_hid 256, vocabulary 8192, 112x112 images).
"""
import argparse
import json
import os
import subprocess
import sys
import types
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.path.join(os.path.dirname(HERE), "tools")
sys.path.insert(0, TOOLS)
import dvae_ref  # noqa: E402
import st  # noqa: E402

failures = 0


def check(cond, msg):
    global failures
    if not cond:
        failures += 1
        print("FAIL", msg)


def dress_as_dalle(model, kind, cfg):
    """Give model and its submodules the classes and attributes of OpenAI's dall_e package."""
    mods = {}
    for name in ("dall_e", "dall_e.utils", "dall_e.encoder", "dall_e.decoder"):
        mods[name] = sys.modules.get(name) or types.ModuleType(name)
        sys.modules[name] = mods[name]

    def fake(mod_name, cls_name, base):
        cls = getattr(mods[mod_name], cls_name, None)
        if cls is None:
            cls = type(cls_name, (base,), {"__module__": mod_name, "__qualname__": cls_name})
            setattr(mods[mod_name], cls_name, cls)
        return cls

    Conv = fake("dall_e.utils", "Conv2d", dvae_ref.Conv2d)
    Blk = fake(f"dall_e.{kind}", "EncoderBlock" if kind == "encoder" else "DecoderBlock",
               dvae_ref.EncoderBlock if kind == "encoder" else dvae_ref.DecoderBlock)
    Top = fake(f"dall_e.{kind}", "Encoder" if kind == "encoder" else "Decoder",
               dvae_ref.Encoder if kind == "encoder" else dvae_ref.Decoder)
    n_layers = cfg["group_count"] * cfg["n_blk_per_group"]
    for m in model.modules():
        if isinstance(m, dvae_ref.Conv2d):
            m.__class__ = Conv
            m.n_in, m.n_out = m.w.shape[1], m.w.shape[0]
            m.use_float16, m.device, m.requires_grad = True, torch.device("cpu"), False
        elif isinstance(m, (dvae_ref.EncoderBlock, dvae_ref.DecoderBlock)):
            m.__class__ = Blk
            m.n_layers, m.device, m.requires_grad = n_layers, torch.device("cpu"), False
    model.__class__ = Top
    for k in ("group_count", "n_hid", "n_blk_per_group", "vocab_size"):
        setattr(model, k, cfg[k])
    if kind == "encoder":
        model.input_channels = cfg["input_channels"]
    else:
        model.n_init, model.output_channels = cfg["n_init"], cfg["input_channels"]
    model.device, model.requires_grad, model.use_mixed_precision = torch.device("cpu"), False, True
    return model


def run_converter(args):
    return subprocess.run([sys.executable, os.path.join(TOOLS, "convert_dalle.py")] + args,
                          capture_output=True, text=True, cwd="/")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out_dir")
    p.add_argument("--full", action="store_true")
    p.add_argument("--images", type=int, default=6)
    p.add_argument("--seed", type=int, default=11)
    a = p.parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    torch.manual_seed(a.seed)
    if a.full:
        cfg = dvae_ref.dvae_config({"image_size": 112})
    else:
        cfg = dvae_ref.dvae_config({"n_hid": 16, "vocab_size": 512, "n_init": 32, "image_size": 32})
    enc, dec = dvae_ref.Encoder(cfg).eval(), dvae_ref.Decoder(cfg).eval()
    with torch.no_grad():  # DALL-E's biases are trained, not zero: exercise them
        for prm in list(enc.parameters()) + list(dec.parameters()):
            if prm.dim() == 1:
                prm.normal_(0, 0.05)
    enc_sd = OrderedDict((k, v.clone()) for k, v in enc.state_dict().items())
    dec_sd = OrderedDict((k, v.clone()) for k, v in dec.state_dict().items())

    # 1. OpenAI-style pickles
    enc_pkl, dec_pkl = os.path.join(a.out_dir, "encoder.pkl"), os.path.join(a.out_dir, "decoder.pkl")
    torch.save(dress_as_dalle(enc, "encoder", cfg), enc_pkl)
    torch.save(dress_as_dalle(dec, "decoder", cfg), dec_pkl)

    # 2. convert in a fresh interpreter and check every tensor
    folder = os.path.join(a.out_dir, "tokenizer")
    r = run_converter(["--encoder", enc_pkl, "--decoder", dec_pkl, "--out", folder,
                       "--image-size", str(cfg["image_size"])])
    print(r.stdout.strip())
    check(r.returncode == 0, f"convert_dalle failed: {r.stderr}")
    if r.returncode:
        sys.exit(1)
    got = st.read(os.path.join(folder, "model.safetensors"))
    want = OrderedDict(list(enc_sd.items()) + [("decoder." + k, v) for k, v in dec_sd.items()])
    check(list(got.keys()) == list(want.keys()), "tensor names/order differ from DALL-E's")
    for k, v in want.items():
        check(k in got and got[k].dtype == np.float32 and np.array_equal(got[k], v.numpy()),
              f"tensor {k} differs")
    with open(os.path.join(folder, "config.json")) as f:
        conf = json.load(f)
    for k in ("input_channels", "n_hid", "group_count", "n_blk_per_group", "vocab_size",
              "downsample", "n_init", "image_size"):
        check(conf.get(k) == cfg[k], f"config {k}: {conf.get(k)} != {cfg[k]}")
    check(conf.get("decoder") is True and conf.get("recon_loss") == "logit_laplace",
          "config decoder/recon_loss")
    # encoder-only conversion
    r = run_converter(["--encoder", enc_pkl, "--out", os.path.join(a.out_dir, "encoder_only"),
                       "--image-size", str(cfg["image_size"])])
    check(r.returncode == 0, f"encoder-only conversion failed: {r.stderr}")

    # 3. malformed inputs are rejected with the tensor named
    bad = OrderedDict(enc_sd)
    del bad["blocks.group_2.block_1.res_path.conv_3.b"]
    torch.save(bad, os.path.join(a.out_dir, "bad_missing.pkl"))
    r = run_converter(["--encoder", os.path.join(a.out_dir, "bad_missing.pkl"), "--out",
                       os.path.join(a.out_dir, "bad_out")])
    check(r.returncode != 0 and "blocks.group_2.block_1.res_path.conv_3.b" in r.stderr,
          f"missing tensor not reported: {r.stderr}")
    bad = OrderedDict(enc_sd)
    bad["blocks.group_3.block_2.res_path.conv_1.w"] = torch.zeros(3, 3, 3, 3)
    torch.save(bad, os.path.join(a.out_dir, "bad_shape.pkl"))
    r = run_converter(["--encoder", os.path.join(a.out_dir, "bad_shape.pkl"), "--out",
                       os.path.join(a.out_dir, "bad_out")])
    check(r.returncode != 0 and "blocks.group_3.block_2.res_path.conv_1.w" in r.stderr,
          f"mis-shaped tensor not reported: {r.stderr}")
    check(not os.path.exists(os.path.join(a.out_dir, "bad_out")), "a failed conversion left output")

    # 4. parity fixture from the PyTorch reference (undressed copies of the same weights)
    ref_enc, ref_dec = dvae_ref.Encoder(cfg).eval(), dvae_ref.Decoder(cfg).eval()
    ref_enc.load_state_dict(enc_sd)
    ref_dec.load_state_dict(dec_sd)
    x = dvae_ref.test_images(a.images, cfg["image_size"], cfg["input_channels"], a.seed)
    with torch.no_grad():
        logits = ref_enc(x)
        V = logits.shape[1]
        top2 = logits.topk(2, dim=1).values
        gap = (top2[:, 0] - top2[:, 1]).reshape(x.shape[0], -1)
        tokens = logits.argmax(dim=1)
        onehot = torch.nn.functional.one_hot(tokens, V).permute(0, 3, 1, 2).float()
        out = ref_dec(onehot)
        C = cfg["input_channels"]
        recon = ((torch.sigmoid(out[:, :C]) - 0.1) / 0.8).clamp(0, 1)
    st.write(os.path.join(a.out_dir, "parity.safetensors"), OrderedDict([
        ("images", x.numpy().astype(np.float32)),
        ("logits", logits.numpy().astype(np.float32)),
        ("tokens", tokens.reshape(x.shape[0], -1).to(torch.int32).numpy()),
        ("gap", gap.numpy().astype(np.float32)),
        ("recon", recon.numpy().astype(np.float32))]))
    print(f"test_convert_dalle: {x.shape[0]} images {tuple(x.shape[1:])}, tokens "
          f"{tuple(tokens.shape[1:])}, min top-2 gap {gap.min().item():.3g}, "
          f"{failures} failures -> {a.out_dir}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
