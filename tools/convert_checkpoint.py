"""Convert BEiT checkpoints between unilm/timm `.pth`, HF `pytorch_model.bin` and our model folder.

  /usr/bin/python3 tools/convert_checkpoint.py IN OUT_DIR [--arch A] [--config HF_CONFIG.json]
      IN: a unilm/timm .pth (state dict at top level or under "model" / "module" / "state_dict",
      "module." prefixes stripped), an HF pytorch_model.bin, a .safetensors file with either naming,
      or a folder holding one of those (a config.json beside an HF file is reused).
      OUT_DIR gets config.json (HF BeitConfig field names; sizes inferred from the tensor shapes
      unless --config gives the HF config, which is then checked against the shapes) and
      model.safetensors (HF names, F32, every relative_position_index dropped).
  /usr/bin/python3 tools/convert_checkpoint.py MODEL_DIR OUT.pth --to timm
      writes the folder's weights as a flat unilm/timm-named state dict (torch.save), which loads
      into timm `Beit` / unilm models (they recompute relative_position_index themselves).

Name mapping (spec 10.2): qkv.weight is split by row blocks into query/key/value; q_bias/v_bias
-> query.bias/value.bias (the key has no bias: a key bias adds q.k_bias, constant over the keys of
each query, so softmax ignores it and it is dropped); gamma_k -> lambda_k; norm1/norm2 ->
layernorm_before/after; attn.proj -> attention.output.dense; mlp.fc1/fc2 -> intermediate.dense /
output.dense; rel_pos_bias.* (shared) -> beit.encoder.relative_position_bias.*;
blocks.i.attn.relative_position_bias_table -> per-layer table; fc_norm -> beit.pooler.layernorm;
head -> classifier; norm -> layernorm (MIM) or beit.layernorm (cls pooling); pos_embed ->
position_embeddings; patch_embed.proj -> patch_embeddings.projection; mask_token, lm_head as such.

Inference of the config from shapes: hidden from cls_token, patch size and channels from the patch
conv, layers from the block count, heads from an RPB table (else --num-heads, else hidden/64),
grid from pos_embed or an RPB table (else --image-size), architecture from the heads present
(lm_head -> BeitForMaskedImageModeling, head/classifier -> BeitForImageClassification, else
BeitModel; --arch BeitModel drops the heads). unilm/timm sources get layer_norm_eps 1e-6 (their
LayerNorm), HF sources without a config the HF default 1e-12. The LayerScale init value cannot be
recovered from trained weights: layer_scale_init_value is written as 0.1 when lambda/gamma
exist, 0 otherwise (it only decides whether the parameters exist).
"""
import argparse
import json
import os
import re
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import beit_ref  # noqa: E402
import st  # noqa: E402

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.pth", "checkpoint.pth")


class ConvertError(Exception):
    pass


# ------------------------------------------------------------------------------------------------
# loading

def _to_numpy_dict(sd):
    out = {}
    for k, v in sd.items():
        if isinstance(v, torch.Tensor):
            out[k] = v.detach().cpu().numpy() if v.dtype != torch.bfloat16 else \
                v.detach().float().cpu().numpy()
        elif isinstance(v, np.ndarray):
            out[k] = v
    return out


def load_state_dict(path):
    """name -> numpy array from a .pth/.bin/.pt/.safetensors file or a folder holding one.
    Returns (state dict, path of a config.json found beside an HF-named file or None)."""
    folder_config = None
    if os.path.isdir(path):
        for name in WEIGHT_FILES:
            if os.path.exists(os.path.join(path, name)):
                if os.path.exists(os.path.join(path, "config.json")):
                    folder_config = os.path.join(path, "config.json")
                path = os.path.join(path, name)
                break
        else:
            raise ConvertError(f"{path}: no {' / '.join(WEIGHT_FILES)} inside")
    if path.endswith(".safetensors"):
        return st.read(path), folder_config
    ckpt = torch.load(path, map_location="cpu")
    if isinstance(ckpt, dict):
        for key in ("model", "module", "state_dict"):
            if key in ckpt and isinstance(ckpt[key], dict):
                ckpt = ckpt[key]
                break
    if not isinstance(ckpt, dict):
        raise ConvertError(f"{path}: not a state dict (found {type(ckpt).__name__})")
    sd = _to_numpy_dict(ckpt)
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    if not sd:
        raise ConvertError(f"{path}: no tensors found")
    return sd, folder_config


def is_hf_names(sd):
    return any(k.startswith("beit.") for k in sd)


# ------------------------------------------------------------------------------------------------
# unilm/timm <-> HF names

_BLOCK_MAP = [  # unilm suffix inside blocks.i. -> HF suffix inside beit.encoder.layer.i.
    ("norm1.weight", "layernorm_before.weight"),
    ("norm1.bias", "layernorm_before.bias"),
    ("norm2.weight", "layernorm_after.weight"),
    ("norm2.bias", "layernorm_after.bias"),
    ("attn.q_bias", "attention.attention.query.bias"),
    ("attn.v_bias", "attention.attention.value.bias"),
    ("attn.relative_position_bias_table",
     "attention.attention.relative_position_bias.relative_position_bias_table"),
    ("attn.proj.weight", "attention.output.dense.weight"),
    ("attn.proj.bias", "attention.output.dense.bias"),
    ("mlp.fc1.weight", "intermediate.dense.weight"),
    ("mlp.fc1.bias", "intermediate.dense.bias"),
    ("mlp.fc2.weight", "output.dense.weight"),
    ("mlp.fc2.bias", "output.dense.bias"),
    ("gamma_1", "lambda_1"),
    ("gamma_2", "lambda_2"),
]
_TOP_MAP = [
    ("cls_token", "beit.embeddings.cls_token"),
    ("mask_token", "beit.embeddings.mask_token"),
    ("pos_embed", "beit.embeddings.position_embeddings"),
    ("patch_embed.proj.weight", "beit.embeddings.patch_embeddings.projection.weight"),
    ("patch_embed.proj.bias", "beit.embeddings.patch_embeddings.projection.bias"),
    ("rel_pos_bias.relative_position_bias_table",
     "beit.encoder.relative_position_bias.relative_position_bias_table"),
    ("fc_norm.weight", "beit.pooler.layernorm.weight"),
    ("fc_norm.bias", "beit.pooler.layernorm.bias"),
    ("head.weight", "classifier.weight"),
    ("head.bias", "classifier.bias"),
    ("lm_head.weight", "lm_head.weight"),
    ("lm_head.bias", "lm_head.bias"),
]
_BLOCK_RE = re.compile(r"^blocks\.(\d+)\.(.+)$")
_LAYER_RE = re.compile(r"^beit\.encoder\.layer\.(\d+)\.(.+)$")


def _rename(sd, skip, layer_re, layer_pre, special, block, top, norm, naming):
    """The renaming loop of both directions. A name that skip() takes is dropped; a block tensor
    (layer_re: index, rest) is special(out, pre, i, rest, v)'s when that returns True, else renamed
    by the block table under layer_pre.format(i); a top-level one by the top table; the final
    norm's by norm(name) (None: not the norm). Any other name is an error (`naming` names)."""
    out, unknown = {}, []
    for name, v in sd.items():
        if skip(name):
            continue
        m = layer_re.match(name)
        if m:
            i, rest = m.group(1), m.group(2)
            pre = layer_pre.format(i)
            if special(out, pre, i, rest, v):
                pass
            elif rest in block:
                out[pre + block[rest]] = v
            else:
                unknown.append(name)
        elif name in top:
            out[top[name]] = v
        elif norm(name) is not None:
            out[norm(name)] = v
        else:
            unknown.append(name)
    if unknown:
        raise ConvertError(f"unknown {naming} tensor names: " + ", ".join(sorted(unknown)[:20]))
    return out


def unilm_to_hf(sd):
    """unilm/timm names -> HF names (no architecture decisions except where `norm` goes)."""
    mim = "lm_head.weight" in sd

    def split_qkv(out, pre, i, rest, v):
        if rest == "attn.qkv.weight":
            d = v.shape[0] // 3
            out[pre + "attention.attention.query.weight"] = v[:d]
            out[pre + "attention.attention.key.weight"] = v[d:2 * d]
            out[pre + "attention.attention.value.weight"] = v[2 * d:]
        elif rest == "attn.qkv.bias":  # a full qkv bias (plain ViT style): drop its key part
            d = v.shape[0] // 3
            out[pre + "attention.attention.query.bias"] = v[:d]
            out[pre + "attention.attention.value.bias"] = v[2 * d:]
        else:
            return False
        return True

    def norm(name):
        if name not in ("norm.weight", "norm.bias"):
            return None
        return ("layernorm." if mim else "beit.layernorm.") + name.split(".")[1]

    # relative_position_index: a recomputed buffer; attn.k_bias: softmax-invariant key bias
    out = _rename(sd, lambda n: n.endswith("relative_position_index") or n.endswith("attn.k_bias"),
                  _BLOCK_RE, "beit.encoder.layer.{}.", split_qkv, dict(_BLOCK_MAP),
                  dict(_TOP_MAP), norm, "unilm/timm")
    # qkv_bias=False models have no q/v bias; HF always has them: fill zeros.
    for i in {int(_LAYER_RE.match(k).group(1)) for k in out if _LAYER_RE.match(k)}:
        pre = f"beit.encoder.layer.{i}.attention.attention."
        d = out[pre + "query.weight"].shape[0]
        for b in ("query.bias", "value.bias"):
            out.setdefault(pre + b, np.zeros(d, dtype=np.float32))
    return out


def hf_to_unilm(sd):
    """HF names -> unilm/timm names (query/key/value rows concatenated back into qkv)."""
    def join_qkv(out, pre, i, rest, v):
        if rest == "attention.attention.query.weight":
            k = sd[f"beit.encoder.layer.{i}.attention.attention.key.weight"]
            val = sd[f"beit.encoder.layer.{i}.attention.attention.value.weight"]
            out[pre + "attn.qkv.weight"] = np.concatenate([v, k, val], axis=0)
        return rest in ("attention.attention.query.weight", "attention.attention.key.weight",
                        "attention.attention.value.weight")

    def norm(name):
        if name not in ("layernorm.weight", "layernorm.bias", "beit.layernorm.weight",
                        "beit.layernorm.bias"):
            return None
        return "norm." + name.rsplit(".", 1)[1]

    return _rename(sd, lambda n: n.endswith("relative_position_index"), _LAYER_RE, "blocks.{}.",
                   join_qkv, {hf: u for u, hf in _BLOCK_MAP}, {hf: u for u, hf in _TOP_MAP},
                   norm, "HF")


# ------------------------------------------------------------------------------------------------
# architecture and config

HEAD_KEYS = {
    "BeitForMaskedImageModeling": ("lm_head.weight", "lm_head.bias", "layernorm.weight",
                                   "layernorm.bias"),
    "BeitForImageClassification": ("classifier.weight", "classifier.bias"),
}


def detect_arch(sd):
    if "lm_head.weight" in sd:
        return "BeitForMaskedImageModeling"
    if "classifier.weight" in sd:
        return "BeitForImageClassification"
    return "BeitModel"


def apply_arch(sd, arch):
    """Drop the heads the target architecture lacks; refuse to invent a missing head."""
    have = detect_arch(sd)
    if arch == have:
        return sd
    if arch != "BeitModel":
        raise ConvertError(f"checkpoint is {have}; cannot make {arch} (its head is not in the file)")
    out = {k: v for k, v in sd.items() if k not in HEAD_KEYS.get(have, ())}
    if have == "BeitForMaskedImageModeling":  # the MIM final norm becomes BeitModel's final norm
        if "beit.layernorm.weight" in sd:
            raise ConvertError("MIM checkpoint with two final norms: cannot make a BeitModel")
        out["beit.layernorm.weight"] = sd["layernorm.weight"]
        out["beit.layernorm.bias"] = sd["layernorm.bias"]
    return out


def _grid_from_table(rows):
    side = int(round((rows - 3) ** 0.5))
    if side * side != rows - 3 or side % 2 == 0:
        raise ConvertError(f"relative_position_bias_table with {rows} rows is not a square grid")
    return (side + 1) // 2


def infer_config(sd, arch, layer_norm_eps, num_heads=None, image_size=None):
    """HF BeitConfig dict from HF-named tensors."""
    def need(name):
        if name not in sd:
            raise ConvertError(f"missing tensor {name}")
        return sd[name]

    d = need("beit.embeddings.cls_token").shape[-1]
    proj = need("beit.embeddings.patch_embeddings.projection.weight")
    if proj.shape[2] != proj.shape[3]:
        raise ConvertError("only square patches are supported")
    patch, channels = proj.shape[2], proj.shape[1]
    layers = sorted({int(m.group(1)) for m in map(_LAYER_RE.match, sd) if m})
    if not layers or layers != list(range(len(layers))):
        raise ConvertError(f"encoder layers are not 0..L-1: {layers}")
    pre0 = "beit.encoder.layer.0."
    inter = need(pre0 + "intermediate.dense.weight").shape[0]
    shared_key = "beit.encoder.relative_position_bias.relative_position_bias_table"
    layer_key = pre0 + "attention.attention.relative_position_bias.relative_position_bias_table"
    tables = [sd[k] for k in (shared_key, layer_key) if k in sd]
    if tables:
        heads = tables[0].shape[1]
        if num_heads is not None and num_heads != heads:
            raise ConvertError(f"num_attention_heads {num_heads} (--num-heads or --config) but "
                               f"the RPB table has {heads} heads")
    elif num_heads is not None:
        heads = num_heads
    elif d % 64 == 0:
        heads = d // 64
    else:
        raise ConvertError(f"cannot infer the head count of hidden {d} (no RPB table): --num-heads")
    grid = None
    if "beit.embeddings.position_embeddings" in sd:
        n = sd["beit.embeddings.position_embeddings"].shape[1] - 1
        grid = int(round(n ** 0.5))
        if grid * grid != n:
            raise ConvertError(f"position_embeddings for {n} patches is not a square grid")
    elif tables:
        grid = _grid_from_table(tables[0].shape[0])
    if grid is None:
        grid = (image_size or 224) // patch
    elif image_size is not None and image_size != grid * patch:
        raise ConvertError(f"image_size {image_size} (--image-size or --config) but the "
                           f"weights are for {grid * patch}")
    if arch == "BeitForMaskedImageModeling":
        mean_pool = "beit.layernorm.weight" not in sd
    elif "beit.pooler.layernorm.weight" in sd:
        if "beit.layernorm.weight" in sd:
            raise ConvertError("both a final norm and fc_norm: ambiguous pooling")
        mean_pool = True
    elif "beit.layernorm.weight" in sd:
        mean_pool = False
    else:
        raise ConvertError("neither a final norm nor fc_norm: cannot tell the pooling")
    cfg = dict(beit_ref.HF_DEFAULTS)
    cfg.update({
        "architectures": [arch],
        "image_size": grid * patch,
        "patch_size": patch,
        "num_channels": channels,
        "hidden_size": d,
        "num_hidden_layers": len(layers),
        "num_attention_heads": heads,
        "intermediate_size": inter,
        "layer_norm_eps": layer_norm_eps,
        "layer_scale_init_value": 0.1 if pre0 + "lambda_1" in sd else 0.0,
        "use_mask_token": "beit.embeddings.mask_token" in sd,
        "use_absolute_position_embeddings": "beit.embeddings.position_embeddings" in sd,
        "use_relative_position_bias": layer_key in sd,
        "use_shared_relative_position_bias": shared_key in sd,
        "use_mean_pooling": mean_pool,
    })
    if "lm_head.weight" in sd:
        cfg["vocab_size"] = sd["lm_head.weight"].shape[0]
    if arch == "BeitForImageClassification":
        c = sd["classifier.weight"].shape[0]
        cfg["id2label"] = {str(i): f"LABEL_{i}" for i in range(c)}
        cfg["label2id"] = {f"LABEL_{i}": i for i in range(c)}
    return cfg


def check_against_model(cfg, sd):
    """Every tensor the config implies is present with its shape, and nothing else."""
    model = beit_ref.BeitRef(cfg, device="meta")
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in sd.items()}
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    bad = sorted(k for k in set(want) & set(got) if want[k] != got[k])
    if missing or extra or bad:
        msg = []
        if missing:
            msg.append("missing " + ", ".join(missing[:10]))
        if extra:
            msg.append("unexpected " + ", ".join(extra[:10]))
        if bad:
            msg.append("shape " + ", ".join(f"{k} {got[k]} vs {want[k]}" for k in bad[:10]))
        raise ConvertError("weights do not match the config: " + "; ".join(msg))
    return list(want)  # HF order


# ------------------------------------------------------------------------------------------------
# commands

def to_hf_folder(src, out_dir, arch=None, config_path=None, num_heads=None, image_size=None,
                 layer_norm_eps=None):
    sd, folder_config = load_state_dict(src)
    hf_source = is_hf_names(sd)
    sd = sd if hf_source else unilm_to_hf(sd)
    sd = {k: v for k, v in sd.items() if not k.endswith("relative_position_index")}
    if config_path is None and hf_source:
        config_path = folder_config
    given = None
    if config_path:
        with open(config_path) as f:
            given = json.load(f)
        given_arch = (given.get("architectures") or [None])[0]
        arch = arch or given_arch
    arch = arch or detect_arch(sd)
    if given:  # sizes the tensors cannot tell come from the given config
        resolved_given = beit_ref.resolve_config(dict(given, architectures=[arch]))
        num_heads = num_heads or resolved_given["num_attention_heads"]
        image_size = image_size or resolved_given["image_size"]
    sd = apply_arch(sd, arch)
    if layer_norm_eps is None:
        layer_norm_eps = given.get("layer_norm_eps", 1e-12) if given else (
            1e-12 if hf_source else 1e-6)
    cfg = infer_config(sd, arch, layer_norm_eps, num_heads, image_size)
    if given:  # reuse the HF config, after checking it describes these tensors
        merged = dict(given)
        merged["architectures"] = [arch]
        if arch != given_arch:  # heads dropped: pooling follows the tensors, labels go
            merged["use_mean_pooling"] = cfg["use_mean_pooling"]
            if arch != "BeitForImageClassification":
                for key in ("id2label", "label2id", "num_labels", "problem_type"):
                    merged.pop(key, None)
        merged.setdefault("layer_norm_eps", layer_norm_eps)
        resolved = beit_ref.resolve_config(merged)
        for key in ("image_size", "patch_size", "num_channels", "hidden_size", "num_hidden_layers",
                    "num_attention_heads", "intermediate_size", "use_mask_token",
                    "use_absolute_position_embeddings", "use_relative_position_bias",
                    "use_shared_relative_position_bias", "use_mean_pooling"):
            if resolved[key] != cfg[key]:
                raise ConvertError(f"{config_path}: {key} = {resolved[key]} but the weights say "
                                   f"{cfg[key]}")
        if (resolved["layer_scale_init_value"] > 0) != (cfg["layer_scale_init_value"] > 0):
            raise ConvertError(f"{config_path}: layer_scale_init_value disagrees with lambda_1/2")
        cfg = merged
    order = check_against_model(cfg, sd)
    os.makedirs(out_dir, exist_ok=True)
    tensors = {k: np.ascontiguousarray(sd[k], dtype=np.float32) for k in order}
    st.write(os.path.join(out_dir, "model.safetensors"), tensors)
    tmp = os.path.join(out_dir, "config.json.tmp")
    with open(tmp, "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    os.replace(tmp, os.path.join(out_dir, "config.json"))
    return cfg, len(tensors)


def to_timm_file(src, out_path):
    sd, _ = load_state_dict(src)
    if not is_hf_names(sd):
        raise ConvertError(f"{src}: expected HF names (our model folder)")
    out = hf_to_unilm(sd)
    tmp = out_path + ".tmp"
    torch.save({k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
                for k, v in out.items()}, tmp)
    os.replace(tmp, out_path)
    return len(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Convert BEiT checkpoints (unilm/timm .pth, HF .bin) "
                                             "to our model folder, or a folder to timm names.")
    ap.add_argument("input", help=".pth/.bin/.safetensors file or a folder holding one")
    ap.add_argument("output", help="output folder (to hf) or .pth file (--to timm)")
    ap.add_argument("--to", choices=("hf", "timm"), default="hf")
    ap.add_argument("--arch", choices=beit_ref.ARCHITECTURES,
                    help="target architecture (default: from the heads present)")
    ap.add_argument("--config", help="HF config.json to reuse (checked against the tensors)")
    ap.add_argument("--num-heads", type=int, help="head count when no RPB table tells it")
    ap.add_argument("--image-size", type=int, help="image size when no pos_embed/RPB tells it")
    ap.add_argument("--layer-norm-eps", type=float,
                    help="default 1e-6 for unilm/timm, the config's (or 1e-12) for HF")
    args = ap.parse_args(argv)
    try:
        if args.to == "timm":
            n = to_timm_file(args.input, args.output)
            print(f"wrote {n} tensors (timm/unilm names) to {args.output}")
        else:
            cfg, n = to_hf_folder(args.input, args.output, args.arch, args.config, args.num_heads,
                                  args.image_size, args.layer_norm_eps)
            print(f"wrote {cfg['architectures'][0]} ({n} tensors, D={cfg['hidden_size']}, "
                  f"L={cfg['num_hidden_layers']}) to {args.output}")
    except (ConvertError, OSError) as e:
        print(f"convert_checkpoint: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
