"""Self-test of tools/convert_checkpoint.py, tools/st.py and the beit_ref anchors (ctest golden).

For several small random BEiT models (MIM with shared RPB, classifier with per-layer RPB and mean
pooling, cls-pooling classifier with absolute positions and no RPB/LayerScale, both RPBs): save a
unilm-named .pth (qkv concatenated, q_bias/v_bias, gamma, relative_position_index buffers, under
"model" with other checkpoint entries) built here by its own explicit mapping, and an HF
pytorch_model.bin with its config.json; convert both with the CLI; load each result into a fresh
beit_ref and demand bit-identical logits and hidden states; convert the folder to timm names and
check it equals the unilm dict minus the buffers, then back again to identical tensors. Also:
--arch BeitModel head dropping, refusals that must fail, safetensors dtype round trips and
corruption detection, the spec's RPB index test vectors and parameter counts.
Exit status is non-zero on any failure.
"""
import contextlib
import io
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.path.join(ROOT, "tools")
sys.path.insert(0, TOOLS)
import beit_ref  # noqa: E402
import convert_checkpoint  # noqa: E402
import st  # noqa: E402

CONVERTER = os.path.join(TOOLS, "convert_checkpoint.py")
FAILURES = []

SMALL = {"image_size": 16, "patch_size": 4, "num_channels": 3, "hidden_size": 24,
         "num_hidden_layers": 2, "num_attention_heads": 3, "intermediate_size": 40,
         "layer_norm_eps": 1e-6, "vocab_size": 29}

CASES = {
    "mim": dict(architectures=["BeitForMaskedImageModeling"], use_mask_token=True,
                use_shared_relative_position_bias=True, layer_scale_init_value=0.1),
    "cls_mean": dict(architectures=["BeitForImageClassification"],
                     use_relative_position_bias=True, use_mean_pooling=True,
                     layer_scale_init_value=0.1, num_labels=5),
    "cls_abs": dict(architectures=["BeitForImageClassification"],
                    use_absolute_position_embeddings=True, use_mean_pooling=False,
                    layer_scale_init_value=0.0, num_labels=3),
    "both_rpb": dict(architectures=["BeitForImageClassification"],
                     use_relative_position_bias=True, use_shared_relative_position_bias=True,
                     use_mean_pooling=True, layer_scale_init_value=0.1, num_labels=4),
}


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        FAILURES.append(what)


def run_cli(*args, expect_ok=True, subprocess_run=False):
    """The converter's main() in this process (fast), or as a real command."""
    if subprocess_run:
        r = subprocess.run([sys.executable, CONVERTER, *args], capture_output=True, text=True)
        rc, log = r.returncode, r.stdout + r.stderr
    else:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            rc = convert_checkpoint.main(list(args))
        log = buf.getvalue()
    if (rc == 0) != expect_ok:
        print(log)
    return rc == 0, log


def make_model(case, seed):
    cfg = beit_ref.case_config(SMALL, CASES[case], "c")
    model = beit_ref.BeitRef(cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g) + (1.0 if name.endswith("norm.weight")
                                                               else 0.0))
    return cfg, model.eval()


def unilm_state_dict(model, cfg):
    """HF-named model -> unilm names, written independently of the converter."""
    hf = {k: v.clone() for k, v in model.state_dict().items()}
    grid = cfg["image_size"] // cfg["patch_size"]
    index = beit_ref.relative_position_index(grid, grid)
    out = {"cls_token": hf["beit.embeddings.cls_token"],
           "patch_embed.proj.weight": hf["beit.embeddings.patch_embeddings.projection.weight"],
           "patch_embed.proj.bias": hf["beit.embeddings.patch_embeddings.projection.bias"]}
    if cfg.get("use_mask_token"):
        out["mask_token"] = hf["beit.embeddings.mask_token"]
    if cfg.get("use_absolute_position_embeddings"):
        out["pos_embed"] = hf["beit.embeddings.position_embeddings"]
    if cfg.get("use_shared_relative_position_bias"):
        out["rel_pos_bias.relative_position_bias_table"] = \
            hf["beit.encoder.relative_position_bias.relative_position_bias_table"]
        out["rel_pos_bias.relative_position_index"] = index.clone()
    for i in range(cfg["num_hidden_layers"]):
        h = f"beit.encoder.layer.{i}."
        u = f"blocks.{i}."
        a = h + "attention.attention."
        out[u + "norm1.weight"] = hf[h + "layernorm_before.weight"]
        out[u + "norm1.bias"] = hf[h + "layernorm_before.bias"]
        out[u + "attn.qkv.weight"] = torch.cat([hf[a + "query.weight"], hf[a + "key.weight"],
                                                hf[a + "value.weight"]], dim=0)
        out[u + "attn.q_bias"] = hf[a + "query.bias"]
        out[u + "attn.v_bias"] = hf[a + "value.bias"]
        if cfg.get("use_relative_position_bias"):
            out[u + "attn.relative_position_bias_table"] = \
                hf[a + "relative_position_bias.relative_position_bias_table"]
            out[u + "attn.relative_position_index"] = index.clone()
        out[u + "attn.proj.weight"] = hf[h + "attention.output.dense.weight"]
        out[u + "attn.proj.bias"] = hf[h + "attention.output.dense.bias"]
        out[u + "norm2.weight"] = hf[h + "layernorm_after.weight"]
        out[u + "norm2.bias"] = hf[h + "layernorm_after.bias"]
        out[u + "mlp.fc1.weight"] = hf[h + "intermediate.dense.weight"]
        out[u + "mlp.fc1.bias"] = hf[h + "intermediate.dense.bias"]
        out[u + "mlp.fc2.weight"] = hf[h + "output.dense.weight"]
        out[u + "mlp.fc2.bias"] = hf[h + "output.dense.bias"]
        if cfg.get("layer_scale_init_value", 0) > 0:
            out[u + "gamma_1"] = hf[h + "lambda_1"]
            out[u + "gamma_2"] = hf[h + "lambda_2"]
    if model.arch == "BeitForMaskedImageModeling":
        out["norm.weight"] = hf["layernorm.weight"]
        out["norm.bias"] = hf["layernorm.bias"]
        out["lm_head.weight"] = hf["lm_head.weight"]
        out["lm_head.bias"] = hf["lm_head.bias"]
    else:
        if cfg.get("use_mean_pooling", True):
            out["fc_norm.weight"] = hf["beit.pooler.layernorm.weight"]
            out["fc_norm.bias"] = hf["beit.pooler.layernorm.bias"]
        else:
            out["norm.weight"] = hf["beit.layernorm.weight"]
            out["norm.bias"] = hf["beit.layernorm.bias"]
        out["head.weight"] = hf["classifier.weight"]
        out["head.bias"] = hf["classifier.bias"]
    return out


def hf_bin_state_dict(model, cfg):
    """HF state dict as the 2021 .bin files hold it: with relative_position_index buffers."""
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    grid = cfg["image_size"] // cfg["patch_size"]
    for k in list(sd):
        if k.endswith("relative_position_bias_table"):
            sd[k.replace("relative_position_bias_table", "relative_position_index")] = \
                beit_ref.relative_position_index(grid, grid)
    return sd


def inputs_for(cfg, seed):
    g = torch.Generator().manual_seed(seed)
    b, grid = 2, cfg["image_size"] // cfg["patch_size"]
    pix = torch.rand(b, cfg["num_channels"], cfg["image_size"], cfg["image_size"], generator=g) * 2 - 1
    mask = torch.rand(b, grid * grid, generator=g) < 0.4
    mask[:, 0] = True
    return pix, (mask if cfg.get("use_mask_token") else None)


def load_folder(folder):
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    model = beit_ref.BeitRef(cfg)
    sd = st.read(os.path.join(folder, "model.safetensors"))
    model.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=True)
    return cfg, model.eval(), sd


def same_outputs(a, b, pix, mask):
    with torch.no_grad():
        oa, ob = a(pix, mask), b(pix, mask)
    return all(torch.equal(oa[k], ob[k]) for k in ("logits", "hidden"))


STRUCTURAL = ("image_size", "patch_size", "num_channels", "hidden_size", "num_hidden_layers",
              "num_attention_heads", "intermediate_size", "use_mask_token",
              "use_absolute_position_embeddings", "use_relative_position_bias",
              "use_shared_relative_position_bias", "use_mean_pooling", "layer_norm_eps",
              "architecture", "num_labels")


def same_structure(c1, c2):
    r1, r2 = beit_ref.resolve_config(c1), beit_ref.resolve_config(c2)
    diff = [k for k in STRUCTURAL if r1.get(k) != r2.get(k)]
    if (r1["layer_scale_init_value"] > 0) != (r2["layer_scale_init_value"] > 0):
        diff.append("layer_scale_init_value")
    if r1["architecture"] == "BeitForMaskedImageModeling" and r1["vocab_size"] != r2["vocab_size"]:
        diff.append("vocab_size")
    return diff


def test_case(case, seed, tmp):
    cfg, model = make_model(case, seed)
    pix, mask = inputs_for(cfg, seed + 1)
    d = os.path.join(tmp, case)
    os.makedirs(d)
    extra = [] if cfg.get("use_relative_position_bias") or cfg.get(
        "use_shared_relative_position_bias") else ["--num-heads", str(cfg["num_attention_heads"])]

    # unilm .pth (under "model", with the other entries a training checkpoint has)
    unilm = unilm_state_dict(model, cfg)
    pth = os.path.join(d, "checkpoint-99.pth")
    torch.save({"model": unilm, "epoch": 99, "optimizer": {"state": {}}}, pth)
    ok, log = run_cli(pth, os.path.join(d, "from_unilm"), *extra, subprocess_run=case == "mim")
    check(ok, f"{case}: convert unilm .pth")
    if not ok:
        return
    c_u, m_u, sd_u = load_folder(os.path.join(d, "from_unilm"))
    check(same_outputs(model, m_u, pix, mask), f"{case}: unilm -> folder gives identical logits")
    diff = same_structure(cfg, c_u)
    check(not diff, f"{case}: inferred config matches ({diff})")
    check(not any("relative_position_index" in k for k in sd_u), f"{case}: no index buffers")

    # HF pytorch_model.bin with its config.json
    hf_dir = os.path.join(d, "hf")
    os.makedirs(hf_dir)
    torch.save(hf_bin_state_dict(model, cfg), os.path.join(hf_dir, "pytorch_model.bin"))
    hf_cfg = dict(cfg, model_type="beit", hidden_act="gelu")
    with open(os.path.join(hf_dir, "config.json"), "w") as f:
        json.dump(hf_cfg, f)
    ok, _ = run_cli(os.path.join(hf_dir, "pytorch_model.bin"), os.path.join(d, "from_hf"),
                    "--config", os.path.join(hf_dir, "config.json"))
    check(ok, f"{case}: convert HF .bin with --config")
    if ok:
        c_h, m_h, sd_h = load_folder(os.path.join(d, "from_hf"))
        check(same_outputs(model, m_h, pix, mask), f"{case}: HF .bin -> folder identical logits")
        check(c_h.get("id2label") == cfg.get("id2label"), f"{case}: HF config reused (id2label)")
        check(sd_h.keys() == sd_u.keys() and all(np.array_equal(sd_h[k], sd_u[k]) for k in sd_h),
              f"{case}: both conversions give the same tensors")

    # folder -> timm names -> folder
    timm_pth = os.path.join(d, "timm.pth")
    ok, _ = run_cli(os.path.join(d, "from_unilm"), timm_pth, "--to", "timm")
    check(ok, f"{case}: folder -> timm")
    if not ok:
        return
    timm_sd = torch.load(timm_pth, map_location="cpu")
    want = {k: v for k, v in unilm.items() if not k.endswith("relative_position_index")}
    check(timm_sd.keys() == want.keys() and all(torch.equal(timm_sd[k], want[k]) for k in want),
          f"{case}: timm names and values equal the unilm dict minus buffers")
    ok, _ = run_cli(timm_pth, os.path.join(d, "back"), *extra)
    check(ok, f"{case}: timm -> folder")
    if ok:
        _, _, sd_b = load_folder(os.path.join(d, "back"))
        check(sd_b.keys() == sd_u.keys() and all(np.array_equal(sd_b[k], sd_u[k]) for k in sd_b),
              f"{case}: round trip through timm names is exact")

    # heads dropped to a BeitModel: the pooled features survive
    if model.arch == "BeitForImageClassification":
        ok, _ = run_cli(pth, os.path.join(d, "backbone"), "--arch", "BeitModel", *extra)
        check(ok, f"{case}: --arch BeitModel")
        if ok:
            _, m_b, _ = load_folder(os.path.join(d, "backbone"))
            with torch.no_grad():
                check(torch.equal(m_b(pix)["pooled"], model(pix)["pooled"]),
                      f"{case}: BeitModel pooled output equals the classifier's")
    ok, _ = run_cli(pth, os.path.join(d, "bad"), "--arch",
                    "BeitForImageClassification" if model.arch != "BeitForImageClassification"
                    else "BeitForMaskedImageModeling", *extra, expect_ok=False)
    check(not ok, f"{case}: refuses an architecture whose head is not in the file")


def test_refusals(tmp):
    cfg, model = make_model("cls_mean", 7)
    unilm = unilm_state_dict(model, cfg)
    bad = dict(unilm)
    bad["blocks.0.attn.mystery"] = torch.zeros(3)
    p = os.path.join(tmp, "bad_names.pth")
    torch.save(bad, p)
    ok, log = run_cli(p, os.path.join(tmp, "o1"), expect_ok=False, subprocess_run=True)
    check(not ok and "mystery" in log, "unknown tensor name is an error naming it")
    bad = dict(unilm)
    bad["blocks.1.mlp.fc1.weight"] = torch.zeros(41, 24)
    p = os.path.join(tmp, "bad_shape.pth")
    torch.save({"module": bad}, p)
    ok, log = run_cli(p, os.path.join(tmp, "o2"), expect_ok=False)
    check(not ok and "fc1" not in log and "intermediate.dense" in log,
          "inconsistent shape is an error naming the HF tensor")
    hf_cfg = dict(cfg, num_attention_heads=4)
    cp = os.path.join(tmp, "wrong_config.json")
    with open(cp, "w") as f:
        json.dump(hf_cfg, f)
    p = os.path.join(tmp, "hf.bin")
    torch.save(model.state_dict(), p)
    ok, log = run_cli(p, os.path.join(tmp, "o3"), "--config", cp, expect_ok=False)
    check(not ok and "num_attention_heads" in log, "a config that contradicts the tensors is refused")


def test_safetensors(tmp):
    path = os.path.join(tmp, "t.safetensors")
    data = {"f": np.arange(6, dtype=np.float32).reshape(2, 3) / 7, "d": np.array([1.5, -2.0]),
            "i": np.array([[-3, 2**40]], dtype=np.int64), "u": np.array([0, 255], dtype=np.uint8),
            "b": np.array([True, False, True]), "s": np.array(3.25, dtype=np.float32),
            "e": np.zeros((0, 4), dtype=np.float32)}
    st.write(path, data)
    back = st.read(path)
    check(list(back) == list(data) and all(back[k].dtype == data[k].dtype and back[k].shape ==
                                           data[k].shape and np.array_equal(back[k], data[k])
                                           for k in data), "safetensors round trip keeps dtypes")
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    check((8 + n) % 8 == 0, "data section 8-byte aligned")
    header = json.loads(raw[8:8 + n])
    check(header["__metadata__"] == {"format": "pt"}, "metadata format pt")
    # F16 and BF16 read as float32
    vals = np.array([1.0, -2.5, 0.15625], dtype=np.float32)
    bf16 = (vals.view(np.uint32) >> 16).astype("<u2").tobytes()
    f16 = vals.astype("<f2").tobytes()
    hdr = json.dumps({"h": {"dtype": "F16", "shape": [3], "data_offsets": [0, 6]},
                      "g": {"dtype": "BF16", "shape": [3], "data_offsets": [6, 12]}}).encode()
    p2 = os.path.join(tmp, "half.safetensors")
    with open(p2, "wb") as f:
        f.write(struct.pack("<Q", len(hdr)) + hdr + f16 + bf16)
    r = st.read(p2)
    check(r["h"].dtype == np.float32 and np.array_equal(r["h"], vals) and
          r["g"].dtype == np.float32 and np.array_equal(r["g"], vals), "F16/BF16 read as float32")
    for what, bad_hdr, payload in (
            ("wrong size", {"x": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, 8),
            ("hole", {"x": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, 8),
            ("overlap", {"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                         "y": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, 8),
            ("past end", {"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, 8),
            ("bad dtype", {"x": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 4]}}, 4)):
        hdr = json.dumps(bad_hdr).encode()
        with open(p2, "wb") as f:
            f.write(struct.pack("<Q", len(hdr)) + hdr + bytes(payload))
        try:
            st.read(p2)
            check(False, f"safetensors rejects {what}")
        except ValueError:
            check(True, f"safetensors rejects {what}")


def test_anchors():
    idx = beit_ref.relative_position_index(14, 14)
    got = [idx[0, 0], idx[0, 1], idx[1, 0], idx[1, 1], idx[1, 2], idx[2, 1], idx[1, 15],
           idx[15, 1], idx[1, 196], idx[196, 1]]
    check([int(v) for v in got] == [731, 729, 730, 364, 363, 365, 337, 391, 0, 728],
          "RPB index matches the spec's 14x14 test vectors")
    for arch, extra, want in (
            ("BeitForMaskedImageModeling", dict(use_mask_token=True,
                                                use_shared_relative_position_bias=True), 91965776),
            ("BeitForImageClassification", dict(use_relative_position_bias=True, num_labels=1000),
             86530984),
            ("BeitForImageClassification", dict(use_relative_position_bias=True, num_labels=21841),
             102557713)):
        m = beit_ref.BeitRef(dict(architectures=[arch], **extra), device="meta")
        n = sum(p.numel() for p in m.parameters())
        check(n == want, f"{arch} base parameter count {n} == {want}")
    sched = beit_ref.cosine_schedule(1.0, 0.0, 6, 3)
    check(np.allclose(sched, [0, 0.5, 1, 1, 0.75, 0.25]), f"cosine schedule {sched}")


def main():
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        test_anchors()
        test_safetensors(tmp)
        for i, case in enumerate(CASES):
            test_case(case, 100 + i, tmp)
        test_refusals(tmp)
    if FAILURES:
        print(f"{len(FAILURES)} failure(s)")
        return 1
    print("all conversion checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
