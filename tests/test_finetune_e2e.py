"""e2e: `beit finetune`, `beit eval`, `beit probe` on small data, tiny model, seconds each.

1. random init, 5% of the labels (seeded class-balanced subset, every class present), held-out
   evaluation: metrics.jsonl per step, eval.json, a checkpoint folder that is a
   BeitForImageClassification with the dataset's class names;
2. exact resume: a run stopped by SIGTERM after its first checkpoint and resumed with --resume
   logs the same loss for every step as an uninterrupted run;
3. --init from a MIM checkpoint (shared relative position bias, mask token, lm_head) at another
   resolution: the log reports the shared table copied into every layer and resized, the MIM head
   dropped; Mixup + CutMix run; the loss goes down;
4. `beit eval` of the checkpoint agrees with the fine-tuning's own final evaluation (top-1, log
   loss) and writes a JSON report with per-class rows and a confusion matrix;
5. multi-label: a manifest dataset with label sets, --task multilabel (sigmoid BCE), eval mAP;
6. `beit probe --block 0` reports every block; held-out data with other classes is an error
   naming it (it was scored as nan); a bad recipe key is an error naming it.

usage: /usr/bin/python3 tests/test_finetune_e2e.py BEIT_BINARY WORK_DIR
"""
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import torch
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import beit_ref  # noqa: E402
import st  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rank_equivalence as req  # noqa: E402
from checks import check, fresh_dir, summary  # noqa: E402

ENV = dict(os.environ, OMP_NUM_THREADS="2")


def losses(out):
    per_step = {}
    with open(os.path.join(out, "metrics.jsonl")) as f:
        for line in f:
            m = json.loads(line)
            if "loss" in m:
                per_step[int(m["step"])] = m["loss"]
    return per_step


def main():
    beit, work = sys.argv[1], sys.argv[2]
    fresh_dir(work)
    data = req.pack_test_split(beit, work)
    model = req.tiny_model(work, 16)
    recipe = os.path.join(ROOT, "configs/recipes/finetune_fashion_mnist.json")
    base = [beit, "finetune", "--config", recipe, "--data", data, "--eval-data", data,
            "--set", f"model={model}", "--set", "batch.size=16", "--set", "log.every_steps=1",
            "--set", "data.fraction=0.05", "--set", "eval.batches=8",
            "--set", "data.num_workers=2"]

    # 1. random init on 5% of the labels
    out1 = os.path.join(work, "ft1")
    r = subprocess.run(base + ["--out", out1, "--set", "schedule.max_steps=30",
                               "--set", "schedule.warmup_steps=3"],
                       env=ENV, capture_output=True, text=True)
    check(r.returncode == 0, "fine-tune from random init" + ("" if r.returncode == 0 else
                                                            ": " + r.stderr[-500:]))
    sub = os.path.join(out1, "train-fraction-0.05")
    with open(os.path.join(sub, "index.json")) as f:
        idx = json.load(f)
    with open(sub + ".json") as f:
        meta = json.load(f)
    check(idx["num_records"] == meta["records"] and 450 <= meta["records"] <= 550
          and idx["num_classes"] == 10, f"5% subset: {meta['records']} of 10000, 10 classes")
    ck = os.path.join(out1, "checkpoint-30")
    with open(os.path.join(ck, "config.json")) as f:
        ccfg = json.load(f)
    check(ccfg["architectures"] == ["BeitForImageClassification"] and
          ccfg["id2label"]["0"] == "T-shirt/top" and ccfg["use_relative_position_bias"] and
          not ccfg["use_shared_relative_position_bias"],
          "checkpoint is a classifier with the dataset's class names and per-layer RPB")
    with open(os.path.join(out1, "eval.json")) as f:
        ev = json.load(f)
    check(ev["samples"] == 128 and 0 <= ev["top1"] <= 1, f"eval.json top-1 {ev['top1']:.3f}")
    l1 = losses(out1)
    check(sorted(l1) == list(range(1, 31)), "a loss per step in metrics.jsonl")

    # 2. exact resume after SIGTERM, against an uninterrupted run of the same length, with the
    #    BEiT fine-tuning augmentations on (per-sample streams: the loader's 2 threads and the
    #    resume must not change a single draw)
    steps2 = ["--set", "schedule.max_steps=150", "--set", "schedule.warmup_steps=3",
              "--set", "checkpoint.every_steps=5", "--set", "checkpoint.keep_last=0",
              "--set", "eval.batches=1", "--set", "data.rand_augment=rand-m9-mstd0.5-inc1",
              "--set", "data.reprob=0.25"]
    ref2 = os.path.join(work, "ft2-ref")
    subprocess.run(base + ["--out", ref2] + steps2, env=ENV, capture_output=True, check=True)
    out2 = os.path.join(work, "ft2")
    args2 = base + ["--out", out2] + steps2
    p = subprocess.Popen(args2, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not os.path.exists(os.path.join(out2, "checkpoint-5")):
        time.sleep(0.02)
    time.sleep(random.uniform(0.0, 0.2))
    p.send_signal(signal.SIGTERM)
    _, err2 = p.communicate(timeout=60)
    stopped = sorted(int(d.split("-")[1]) for d in os.listdir(out2) if d.startswith("checkpoint-"))
    check(p.returncode != 0 and "interrupted" in err2 and stopped and stopped[-1] < 150,
          f"SIGTERM stops the run with a final checkpoint (exit {p.returncode}, "
          f"last checkpoint {stopped[-1] if stopped else None})")
    r = subprocess.run(args2 + ["--resume"], env=ENV, capture_output=True, text=True)
    check(r.returncode == 0 and "resumed from" in r.stderr, "--resume finishes the run")
    l2, lref = losses(out2), losses(ref2)
    same = sorted(lref) == list(range(1, 151)) and all(l2.get(s) == lref[s] for s in lref)
    check(same, "resumed run logs the uninterrupted run's loss at every step (bitwise)")

    # 3. --init from a MIM checkpoint (shared RPB) at another resolution, mixup + cutmix
    mim = os.path.join(work, "mim")
    with open(model) as f:
        mcfg = dict(json.load(f), architectures=["BeitForMaskedImageModeling"], image_size=8)
    torch.manual_seed(0)
    ref = beit_ref.BeitRef(mcfg)
    beit_ref.init_pretrain_(ref)
    os.makedirs(mim)
    with open(os.path.join(mim, "config.json"), "w") as f:
        json.dump(mcfg, f)
    w = {k: v.detach().numpy() for k, v in ref.state_dict().items()}
    w["beit.encoder.relative_position_bias.relative_position_bias_table"] = np.random.default_rng(
        0).normal(0, 0.3, w["beit.encoder.relative_position_bias.relative_position_bias_table"]
                  .shape).astype(np.float32)
    st.write(os.path.join(mim, "model.safetensors"), w)
    out3 = os.path.join(work, "ft3")
    r = subprocess.run(base + ["--out", out3, "--init", mim, "--mixup", "0.8", "--cutmix", "1.0",
                               "--set", "image_size=12",
                               "--set", "schedule.max_steps=40", "--set", "schedule.warmup_steps=4"],
                       env=ENV, capture_output=True, text=True)
    check(r.returncode == 0, "fine-tune --init MIM checkpoint with mixup/cutmix" +
          ("" if r.returncode == 0 else ": " + r.stderr[-800:]))
    check("2 layers from the shared relative position bias, 2 tables resized" in r.stderr and
          "lm_head.weight: dropped" in r.stderr, "transfer log: shared table copied + resized, "
          "MIM head dropped")
    l3 = losses(out3)
    first, last = np.mean([l3[s] for s in range(1, 6)]), np.mean([l3[s] for s in range(36, 41)])
    check(last < first, f"loss goes down ({first:.3f} -> {last:.3f})")

    # 4. beit eval agrees with the fine-tuning's final evaluation
    rep = os.path.join(work, "eval1.json")
    r = subprocess.run([beit, "eval", "--model", ck, "--data", data, "--json", rep, "--batch",
                        "16", "--resize", "direct"], env=ENV, capture_output=True, text=True)
    check(r.returncode == 0 and "top-1 accuracy" in r.stdout and "confusion matrix" in r.stdout,
          "beit eval prints the table")
    with open(rep) as f:
        full = json.load(f)
    check(full["samples"] == 10000 and len(full["per_class"]) == 10 and
          len(full["confusion_matrix"]) == 10 and
          sum(map(sum, full["confusion_matrix"])) == 10000, "JSON report: per class, confusion")
    r = subprocess.run([beit, "eval", "--model", ck, "--data", data, "--json", rep, "--batch",
                        "16", "--resize", "direct"], env=dict(ENV, OMP_NUM_THREADS="1"),
                       capture_output=True, text=True)
    with open(rep) as f:
        again = json.load(f)
    check(again["top1"] == full["top1"], "eval is deterministic across thread counts")
    sub_eval = subprocess.run([beit, "finetune", "--help"], capture_output=True, text=True)
    check("--task" in sub_eval.stdout, "finetune --help")

    # 5. multi-label from a manifest
    ml = os.path.join(work, "ml-src")
    os.makedirs(ml)
    rng = np.random.default_rng(1)
    rows = ["path,labels"]
    for i in range(96):
        labels = [c for c in ("red", "green", "blue") if rng.uniform() < 0.5] or ["red"]
        img = np.zeros((12, 12, 3), np.uint8)
        for c, name in enumerate(("red", "green", "blue")):
            if name in labels:
                img[:, :, c] = 200
        img = (img + rng.integers(0, 40, img.shape)).astype(np.uint8)
        Image.fromarray(img).save(os.path.join(ml, f"{i}.png"))
        rows.append(f"{i}.png," + ";".join(labels))
    with open(os.path.join(ml, "manifest.csv"), "w") as f:
        f.write("\n".join(rows) + "\n")
    mld = os.path.join(work, "ml")
    subprocess.run([beit, "pack", "--manifest", os.path.join(ml, "manifest.csv"), "--out", mld,
                    "--quiet", "--multilabel"], check=True)
    out5 = os.path.join(work, "ft5")
    r = subprocess.run([beit, "finetune", "--config", recipe, "--data", mld, "--eval-data", mld,
                        "--out", out5, "--task", "multilabel", "--set", f"model={model}",
                        "--set", "batch.size=16", "--set", "schedule.max_steps=60",
                        "--set", "schedule.warmup_steps=5", "--set", "optimizer.lr=5e-3"],
                       env=ENV, capture_output=True, text=True)
    check(r.returncode == 0 and "mAP" in r.stdout, "multi-label fine-tuning" +
          ("" if r.returncode == 0 else ": " + r.stderr[-500:]))
    with open(os.path.join(out5, "eval.json")) as f:
        mev = json.load(f)
    check(mev["task"] == "multilabel" and mev["mAP"] > 0.7 and len(mev["per_class"]) == 3,
          f"multi-label eval: mAP {mev['mAP']:.3f}, subset accuracy {mev['subset_accuracy']:.3f}")

    # 6. probe, and a bad key
    pj = os.path.join(work, "probe.json")
    r = subprocess.run([beit, "probe", "--model", mim, "--data", sub, "--eval-data", sub,
                        "--block", "0", "--json", pj, "--set", "probe.epochs=20",
                        "--set", "probe.batch=64", "--set", "data.eval_resize=direct"],
                       env=ENV, capture_output=True, text=True)
    ok = r.returncode == 0
    if ok:
        with open(pj) as f:
            pr = json.load(f)
        ok = [b["block"] for b in pr["blocks"]] == [1, 2] and all(
            b["train_top1"] > 0.2 for b in pr["blocks"])
    check(ok, "probe of every block" + ("" if r.returncode == 0 else ": " + r.stderr[-300:]))
    r = subprocess.run([beit, "probe", "--model", mim, "--data", sub, "--eval-data", mld,
                        "--block", "1"], env=ENV, capture_output=True, text=True)
    check(r.returncode == 1 and mld in r.stderr and "training set's classes" in r.stderr,
          "probe: held-out classes that are not the training set's are an error naming it")
    r = subprocess.run(base + ["--out", os.path.join(work, "bad"), "--set", "mixup.alfa=1"],
                       capture_output=True, text=True)
    check(r.returncode == 2 or (r.returncode != 0 and "mixup.alfa" in r.stderr),
          "unknown recipe key is an error naming it")
    r = subprocess.run(base + ["--out", os.path.join(work, "bad-aa"), "--aa", "rand-m9-bogus"],
                       capture_output=True, text=True)
    check(r.returncode != 0 and "data.rand_augment" in r.stderr and "bogus" in r.stderr,
          "a bad RandAugment spec is an error naming the key and the section: " + r.stderr[-200:])
    return summary("test_finetune_e2e")


if __name__ == "__main__":
    sys.exit(main())
