"""Convert OpenAI DALL-E's dVAE (encoder.pkl, decoder.pkl) into a tokenizer folder.

    python3 tools/convert_dalle.py --encoder encoder.pkl [--decoder decoder.pkl] --out DIR
                                   [--image-size 112]

The .pkl files are whole pickled nn.Modules of the `dall_e` package (OpenAI's DALL-E release). That
package is not needed: the classes it names (dall_e.encoder.Encoder, dall_e.utils.Conv2d, ...)
are stood in for by empty nn.Module subclasses, which is all unpickling needs to restore the
parameters. The shape (n_hid, group_count, n_blk_per_group, input_channels, vocab_size, n_init)
is read off the tensors and checked against the module's own attributes where it has them;
every tensor is checked against the names and shapes that shape implies (tools/dvae_ref.py).

Output (what `beit tokenizer encode/recon` and pretraining load, include/beit/tokenizer.h):
  DIR/config.json        the tokenizer config ("model_type": "dall-e", image_size = view B side)
  DIR/model.safetensors  F32, encoder tensors under DALL-E's names (blocks.input.w, ...),
                         decoder tensors under "decoder." + DALL-E's names.
Written to DIR.tmp and renamed into place.
"""
import argparse
import json
import os
import re
import shutil
import sys
import types
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dvae_ref  # noqa: E402
import st  # noqa: E402

STUB_CLASSES = {
    "dall_e": [],
    "dall_e.utils": ["Conv2d"],
    "dall_e.encoder": ["Encoder", "EncoderBlock"],
    "dall_e.decoder": ["Decoder", "DecoderBlock"],
}


def install_stubs():
    """Empty stand-ins for the dall_e classes, unless the real package is importable."""
    try:
        import dall_e  # noqa: F401
        return
    except ImportError:
        pass
    for mod_name, classes in STUB_CLASSES.items():
        mod = types.ModuleType(mod_name)
        for cls_name in classes:
            cls = type(cls_name, (nn.Module,), {"__module__": mod_name})
            setattr(mod, cls_name, cls)
        sys.modules[mod_name] = mod
    sys.modules["dall_e"].utils = sys.modules["dall_e.utils"]
    sys.modules["dall_e"].encoder = sys.modules["dall_e.encoder"]
    sys.modules["dall_e"].decoder = sys.modules["dall_e.decoder"]


def load_pkl(path):
    install_stubs()
    try:
        obj = torch.load(path, map_location="cpu")
    except Exception as e:  # noqa: BLE001 - report which file, then stop
        sys.exit(f"convert_dalle: {path}: cannot unpickle: {e}")
    if isinstance(obj, nn.Module):
        return obj, obj.state_dict()
    if isinstance(obj, dict):  # a bare state_dict also works
        return None, obj
    sys.exit(f"convert_dalle: {path}: expected a pickled nn.Module or state_dict, got {type(obj)}")


def groups_and_blocks(sd, path):
    groups = sorted({int(m.group(1)) for k in sd for m in [re.match(r"blocks\.group_(\d+)\.", k)] if m})
    blocks = sorted({int(m.group(1)) for k in sd for m in [re.match(r"blocks\.group_1\.block_(\d+)\.", k)] if m})
    if not groups or groups != list(range(1, len(groups) + 1)) or not blocks:
        sys.exit(f"convert_dalle: {path}: tensor names are not DALL-E's (blocks.group_N.block_M...)")
    return len(groups), len(blocks)


def check_attr(module, name, value, path):
    if module is not None and hasattr(module, name) and getattr(module, name) != value:
        sys.exit(f"convert_dalle: {path}: attribute {name} = {getattr(module, name)} but the "
                 f"tensors say {value}")


def expect(sd, ref_sd, path, prefix=""):
    """Every reference tensor present with its shape, nothing else."""
    for k, v in ref_sd.items():
        if k not in sd:
            sys.exit(f"convert_dalle: {path}: missing tensor {k}")
        if tuple(sd[k].shape) != tuple(v.shape):
            sys.exit(f"convert_dalle: {path}: tensor {k} has shape {tuple(sd[k].shape)}, "
                     f"expected {tuple(v.shape)}")
    extra = [k for k in sd if k not in ref_sd]
    if extra:
        sys.exit(f"convert_dalle: {path}: unexpected tensors {extra[:5]}")
    return OrderedDict((prefix + k, sd[k].detach().to(torch.float32).contiguous().numpy())
                       for k in ref_sd)


def convert(encoder_path, decoder_path, out_dir, image_size):
    enc_mod, enc_sd = load_pkl(encoder_path)
    G, nb = groups_and_blocks(enc_sd, encoder_path)
    w_in, w_out = enc_sd["blocks.input.w"], enc_sd["blocks.output.conv.w"]
    cfg = dvae_ref.dvae_config({
        "input_channels": int(w_in.shape[1]), "n_hid": int(w_in.shape[0]), "group_count": G,
        "n_blk_per_group": nb, "vocab_size": int(w_out.shape[0]),
        "downsample": 2 ** (G - 1), "image_size": image_size, "decoder": decoder_path is not None,
        "recon_loss": "logit_laplace"})
    for name in ("group_count", "n_hid", "n_blk_per_group", "input_channels", "vocab_size"):
        check_attr(enc_mod, name, cfg[name], encoder_path)
    tensors = expect(enc_sd, dvae_ref.Encoder(cfg).state_dict(), encoder_path)
    if decoder_path:
        dec_mod, dec_sd = load_pkl(decoder_path)
        Gd, nbd = groups_and_blocks(dec_sd, decoder_path)
        d_in, d_out = dec_sd["blocks.input.w"], dec_sd["blocks.output.conv.w"]
        if (Gd, nbd) != (G, nb) or int(d_in.shape[1]) != cfg["vocab_size"]:
            sys.exit(f"convert_dalle: {decoder_path}: groups/blocks/vocabulary ({Gd}, {nbd}, "
                     f"{int(d_in.shape[1])}) differ from the encoder's ({G}, {nb}, {cfg['vocab_size']})")
        if int(d_out.shape[0]) != 2 * cfg["input_channels"]:
            sys.exit(f"convert_dalle: {decoder_path}: output conv has {int(d_out.shape[0])} maps, "
                     f"expected 2 x {cfg['input_channels']} (logit-Laplace mu, ln b)")
        cfg["n_init"] = int(d_in.shape[0])
        for name in ("group_count", "n_init", "n_hid", "n_blk_per_group", "vocab_size"):
            check_attr(dec_mod, name, cfg[name], decoder_path)
        check_attr(dec_mod, "output_channels", cfg["input_channels"], decoder_path)
        tensors.update(expect(dec_sd, dvae_ref.Decoder(cfg).state_dict(), decoder_path, "decoder."))
    if image_size % cfg["downsample"]:
        sys.exit(f"convert_dalle: --image-size {image_size} is not divisible by the encoder's "
                 f"downsampling {cfg['downsample']}")
    config = {"format_version": 1, "model_type": "dall-e", "input_map": "dalle", **cfg}
    tmp = out_dir.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    st.write(os.path.join(tmp, "model.safetensors"), tensors,
             metadata={"source": "openai DALL-E dVAE", "converter": "tools/convert_dalle.py"})
    with open(os.path.join(tmp, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    os.rename(tmp, out_dir)
    n = sum(int(np.prod(v.shape)) for v in tensors.values())
    print(f"convert_dalle: {len(tensors)} tensors, {n:,} parameters, token grid "
          f"{image_size // cfg['downsample']}x{image_size // cfg['downsample']} at "
          f"{image_size}x{image_size} -> {out_dir}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--encoder", required=True, help="DALL-E encoder.pkl")
    p.add_argument("--decoder", help="DALL-E decoder.pkl (optional: needed for recon)")
    p.add_argument("--out", required=True, help="tokenizer folder to write")
    p.add_argument("--image-size", type=int, default=112,
                   help="view B side the tokenizer will see (BEiT: 112 -> 14x14 tokens)")
    a = p.parse_args()
    convert(a.encoder, a.decoder, a.out, a.image_size)


if __name__ == "__main__":
    main()
