"""e2e: one preprocessing per model, from the fine-tuning recipe to every command that reads images.

For two recipes -- direct resize with inception normalisation, and shorter side + centre crop with
ImageNet normalisation -- a tiny classifier is fine-tuned for 2 steps (a checkpoint after each):
1. every checkpoint holds a preprocessor_config.json in HF BeitImageProcessor terms that says the
   recipe's eval transform: the expected keys and values, and on the test images the pixels of
   the recipe's transform written independently (PIL + torchvision rounding, where torchvision's
   centre-crop rounding and HF's floor agree) equal those the file means to HF;
2. beit export --with-head copies the file byte for byte (and scales its sizes under
   --image-size);
3. on the checkpoint and on its export, every image gets the same probabilities (within 1e-5)
   from beit eval --predictions, beit predict, one beit serve request, and beit run on pixels
   prepared in Python from the file with HF's semantics; checkpoint and export agree too;
4. a command-line override (eval --resize) is reported and changes the probabilities (so the
   comparison above can fail); the --help texts say which preprocessing each command uses.

usage: /usr/bin/python3 tests/test_preprocess_e2e.py BEIT_BINARY WORK_DIR [--no-serve]
"""
import base64
import filecmp
import json
import os
import select
import subprocess
import sys
import time
import http.client

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import st  # noqa: E402
from test_serve_fixtures import preprocess as hf_preprocess  # noqa: E402  HF semantics
from checks import check, fresh_dir, summary, terminate  # noqa: E402

ENV = dict(os.environ, OMP_NUM_THREADS="1")
S = 12
TOL = 1e-5
IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
RECIPES = {
    "direct": {"sets": ["data.eval_resize=direct", "data.norm=inception"],
               "file": {"do_resize": True, "size": {"height": S, "width": S}, "resample": 3,
                        "do_center_crop": False, "crop_size": {"height": S, "width": S},
                        "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
                        "image_mean": [0.5] * 3, "image_std": [0.5] * 3}},
    "crop": {"sets": ["data.eval_resize=center_crop", "data.crop_pct=0.75",
                      "data.norm=imagenet"],
             "file": {"do_resize": True, "size": {"shortest_edge": 16}, "resample": 3,
                      "do_center_crop": True, "crop_size": {"height": S, "width": S},
                      "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
                      "image_mean": IMAGENET[0], "image_std": IMAGENET[1]}},
}
SIZES = [(30, 22), (17, 26), (40, 40), (25, 31), (33, 19), (21, 45)]


def run(args, **kw):
    r = subprocess.run(args, env=ENV, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        print(f"command failed ({r.returncode}): {' '.join(args)}\n{r.stderr[-1500:]}")
    return r


def make_data(work):
    """18 images of 3 classes, sizes that need resizing and cropping; a --no-shuffle dataset."""
    rng = np.random.default_rng(7)
    paths, rows = [], ["path,label"]
    src = os.path.join(work, "images")
    os.makedirs(src)
    for i in range(18):
        w, h = SIZES[i % len(SIZES)]
        cls = i % 3
        y, x = np.mgrid[0:h, 0:w]
        img = np.stack([(x * 255 // (w - 1) + 80 * cls) % 256, (y * 255 // (h - 1)),
                        ((x * y) * 5 + 40 * cls) % 256], -1)
        img = (img + rng.integers(0, 60, img.shape)).clip(0, 255).astype(np.uint8)
        p = os.path.join(src, f"{i:02d}.png")
        Image.fromarray(img).save(p)
        paths.append(p)
        rows.append(f"{i:02d}.png,{'abc'[cls]}")
    with open(os.path.join(src, "manifest.csv"), "w") as f:
        f.write("\n".join(rows) + "\n")
    data = os.path.join(work, "data")
    subprocess.run([sys.argv[1], "pack", "--manifest", os.path.join(src, "manifest.csv"), "--out",
                    data, "--no-shuffle", "--quiet"], check=True)
    return paths, data


def torchvision_eval(path, rec):
    """The recipe's eval transform as unilm/timm write it: Resize(int(S / crop_pct)) on the
    shorter side (or (S, S)), bicubic, CenterCrop with torchvision's round-half-even offsets,
    ToTensor, Normalize. None where torchvision's offset differs from HF's floor."""
    img = Image.open(path).convert("RGB")
    sets = dict(s.split("=") for s in rec["sets"])
    if sets["data.eval_resize"] == "direct":
        img = img.resize((S, S), Image.BICUBIC)
        top = left = 0
    else:
        e = int(S / float(sets["data.crop_pct"]))
        w, h = img.size
        nw, nh = (e, int(e * h / w)) if w <= h else (int(e * w / h), e)
        img = img.resize((nw, nh), Image.BICUBIC)
        top, left = int(round((nh - S) / 2.0)), int(round((nw - S) / 2.0))
        if top != (nh - S) // 2 or left != (nw - S) // 2:
            return None
    a = np.asarray(img, np.float64)[top:top + S, left:left + S] / 255.0
    mean, std = IMAGENET if sets["data.norm"] == "imagenet" else ([0.5] * 3, [0.5] * 3)
    return ((a - np.array(mean)) / np.array(std)).transpose(2, 0, 1)


def eval_probs(beit, model, data, work, *extra):
    out = os.path.join(work, "pred.jsonl")
    r = run([beit, "eval", "--model", model, "--data", data, "--predictions", out, "--batch", "4",
             "--precision", "fp32", "--workers", "1", *extra])
    if r.returncode != 0:
        return None, r
    with open(out) as f:
        lines = [json.loads(x) for x in f]
    return {x["index"]: np.array(x["probs"]) for x in lines}, r


def predict_probs(beit, model, paths):
    r = run([beit, "predict", "--model", model, "--precision", "fp32", "--batch", "3", "--quiet",
             "--with-input", *paths])
    if r.returncode != 0:
        return None
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.strip()]
    return {paths.index(x["input"]): np.array(x["probs"]) for x in lines}


def serve_probs(beit, model, paths):
    """One POST /score request with every image."""
    log = open(os.path.join(os.path.dirname(model), "serve.log"), "w+")
    proc = subprocess.Popen([beit, "serve", "--model", model, "--port", "0", "--precision",
                             "fp32", "--workers", "1"], stdout=subprocess.PIPE, stderr=log,
                            text=True, env=ENV)
    try:
        deadline, line = time.time() + 60, ""
        while time.time() < deadline and "ready on" not in line and proc.poll() is None:
            if select.select([proc.stdout], [], [], 0.5)[0]:
                line = proc.stdout.readline()
        if "ready on" not in line:
            log.seek(0)
            print("server did not start: " + log.read()[-1000:])
            return None
        port = int(line.rsplit(":", 1)[1])
        body = {"input_data": {"columns": ["image"], "index": list(range(len(paths))),
                               "data": [base64.b64encode(open(p, "rb").read()).decode()
                                        for p in paths]}}
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("POST", "/score", json.dumps(body), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        answer = json.loads(resp.read())
        conn.close()
        if resp.status != 200:
            print(f"/score {resp.status}: {answer}")
            return None
        return {i: np.array(a["probs"]) for i, a in enumerate(answer)}
    finally:
        terminate(proc)
        log.close()


def run_probs(beit, model, paths, work):
    """beit run on pixel_values prepared in Python from the folder's file (HF semantics)."""
    with open(os.path.join(model, "preprocessor_config.json")) as f:
        pp = json.load(f)
    pixels = np.stack([hf_preprocess(p, pp, S) for p in paths]).astype(np.float32)
    x, y = os.path.join(work, "pixels.safetensors"), os.path.join(work, "out.safetensors")
    st.write(x, {"pixel_values": pixels})
    if run([beit, "run", "--model", model, "--input", x, "--output", y, "--precision",
            "fp32"]).returncode != 0:
        return None
    z = st.read(y)["logits"].astype(np.float64)
    p = np.exp(z - z.max(1, keepdims=True))
    return {i: r for i, r in enumerate(p / p.sum(1, keepdims=True))}


def worst(a, b):
    if a is None or b is None or sorted(a) != sorted(b):
        return float("inf")
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


def main():
    beit, work = sys.argv[1], sys.argv[2]
    serve = "--no-serve" not in sys.argv[3:]
    fresh_dir(work)
    paths, data = make_data(work)
    with open(os.path.join(ROOT, "configs/models/beit_small_fashion_mnist.json")) as f:
        cfg = json.load(f)
    cfg.update(image_size=S, hidden_size=24, num_hidden_layers=2, num_attention_heads=2,
               intermediate_size=32, vocab_size=16)
    model = os.path.join(work, "model.json")
    with open(model, "w") as f:
        json.dump(cfg, f)
    recipe = os.path.join(ROOT, "configs/recipes/finetune_fashion_mnist.json")
    reference = None
    for name, rec in RECIPES.items():
        out = os.path.join(work, "ft-" + name)
        sets = rec["sets"] + [f"model={model}", "batch.size=4", "schedule.max_steps=2",
                              "schedule.warmup_steps=1", "checkpoint.every_steps=1",
                              "checkpoint.keep_last=0", "data.num_workers=1", "precision=fp32",
                              "head_init_scale=10", "eval.batches=1"]
        args = [beit, "finetune", "--config", recipe, "--data", data, "--eval-data", data,
                "--out", out]
        for s in sets:
            args += ["--set", s]
        r = run(args)
        check(r.returncode == 0, f"{name}: fine-tune 2 steps")
        if r.returncode != 0:
            continue
        # 1. the file says the recipe's eval transform
        files = []
        for step in (1, 2):
            with open(os.path.join(out, f"checkpoint-{step}", "preprocessor_config.json")) as f:
                files.append(json.load(f))
        got = {k: v for k, v in files[1].items()
               if k not in ("image_processor_type", "do_reduce_labels")}
        want = rec["file"]
        same = set(got) == set(want) and all(
            np.allclose(got[k], want[k], rtol=1e-7, atol=0) if isinstance(want[k], (list, float))
            else got[k] == want[k] for k in want)
        check(same and files[0] == files[1] and
              files[1].get("image_processor_type") == "BeitImageProcessor",
              f"{name}: checkpoint-1 and checkpoint-2 preprocessor_config.json = the recipe's eval "
              f"transform: {json.dumps(files[1], sort_keys=True)}")
        ck = os.path.join(out, "checkpoint-2")
        compared, diff = 0, 0.0
        for p in paths:
            ref = torchvision_eval(p, rec)
            if ref is not None:
                compared += 1
                diff = max(diff, float(np.abs(hf_preprocess(p, files[1], S) - ref).max()))
        check(compared >= 10 and diff < 1e-6,
              f"{name}: the file's pixels (HF semantics) = the recipe's transform written with "
              f"PIL on {compared} images (max difference {diff:.1e})")

        # 2. export copies the file
        exp = os.path.join(work, "export-" + name)
        r = run([beit, "export", "--from", ck, "--out", exp, "--with-head", "--quiet"])
        check(r.returncode == 0 and filecmp.cmp(os.path.join(ck, "preprocessor_config.json"),
                                                os.path.join(exp, "preprocessor_config.json"),
                                                shallow=False),
              f"{name}: export --with-head copies preprocessor_config.json byte for byte")

        # 3. every command, checkpoint and export
        per_folder = {}
        for label, folder in (("checkpoint", ck), ("export", exp)):
            e, r = eval_probs(beit, folder, data, work)
            check(e is not None and "preprocessing: " in r.stderr and
                  "(preprocessor_config.json)" in r.stderr,
                  f"{name} {label}: eval names the file's preprocessing: "
                  + (r.stderr.split("preprocessing: ")[-1].splitlines()[0]
                     if "preprocessing: " in r.stderr else r.stderr[-300:]))
            pr = predict_probs(beit, folder, paths)
            rn = run_probs(beit, folder, paths, work)
            answers = {"predict": pr, "run (HF-semantics pixels)": rn}
            if serve:
                answers["serve"] = serve_probs(beit, folder, paths)
            for what, a in answers.items():
                d = worst(e, a)
                check(d < TOL, f"{name} {label}: eval --predictions == {what} on {len(paths)} "
                      f"images (max difference {d:.1e})")
            per_folder[label] = e
        d = worst(per_folder.get("checkpoint"), per_folder.get("export"))
        check(d < TOL, f"{name}: checkpoint == export (max difference {d:.1e})")

        # 4. an override is reported and matters
        e2, r = eval_probs(beit, ck, data, work, "--resize",
                           "center_crop" if name == "direct" else "direct")
        d = worst(per_folder.get("checkpoint"), e2)
        check("+ --resize" in r.stderr and 1e-3 < d < float("inf"),
              f"{name}: eval --resize overrides the file (probabilities move by {d:.2e})")
        if name == "crop":
            reference = exp
    # export at another resolution scales the file's sizes
    if reference:
        big = os.path.join(work, "export-16")
        r = run([beit, "export", "--from", reference, "--out", big, "--with-head",
                 "--image-size", "16", "--quiet"])
        ok = r.returncode == 0
        if ok:
            with open(os.path.join(big, "preprocessor_config.json")) as f:
                pp = json.load(f)
            ok = pp["size"] == {"shortest_edge": 21} and pp["crop_size"] == {"height": 16,
                                                                             "width": 16}
        check(ok, "export --image-size 16: shortest_edge 16 -> 21 (floor 16 * 16 / 12), crop 12 -> 16")
    for cmd in ("eval", "predict", "serve", "run", "export"):
        r = subprocess.run([beit, cmd, "--help"], capture_output=True, text=True)
        check("preprocessor_config.json" in r.stdout, f"beit {cmd} --help names "
              "preprocessor_config.json")
    return summary("test_preprocess_e2e")


if __name__ == "__main__":
    sys.exit(main())
