"""mpi: `beit finetune` on 2 ranks x batch B equals 1 rank x batch 2B (same samples, per-sample
drop path, gradient of the global mean), and the merged evaluation counts every held-out image
once; `beit eval` under 2 ranks reports what 1 rank reports.

usage: /usr/bin/python3 tests/test_mpi_finetune.py BEIT_BINARY MPIEXEC WORK_DIR
"""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rank_equivalence as req  # noqa: E402
from checks import check, fresh_dir, summary  # noqa: E402


def main():
    beit, mpiexec, work = sys.argv[1], sys.argv[2], sys.argv[3]
    fresh_dir(work)
    data = req.pack_test_split(beit, work)
    model = req.tiny_model(work, 16)
    env = dict(os.environ, OMP_NUM_THREADS="1")

    def run(np_, batch, out):
        cmd = [beit, "finetune", "--config",
               os.path.join(ROOT, "configs/recipes/finetune_fashion_mnist.json"),
               "--data", data, "--eval-data", data, "--out", out, "--set", f"model={model}",
               "--set", f"batch.size={batch}", "--set", "schedule.max_steps=12",
               "--set", "schedule.warmup_steps=2", "--set", "log.every_steps=1",
               "--set", "data.fraction=0.05", "--set", "eval.batches=0",
               "--set", "data.num_workers=1",
               "--precision", "fp32"]  # bf16 rounds a batch of 16 and one of 8 differently
        if np_ > 1:
            cmd = [mpiexec, "--allow-run-as-root", "--oversubscribe", "-np", str(np_)] + cmd
        return subprocess.run(cmd, env=env, capture_output=True, text=True)

    one, two = os.path.join(work, "one"), os.path.join(work, "two")
    r1 = run(1, 16, one)
    r2 = run(2, 8, two)
    check(r1.returncode == 0 and r2.returncode == 0,
          "1 rank x 16 and 2 ranks x 8" + ("" if r1.returncode == r2.returncode == 0 else
                                          ": " + r1.stderr[-300:] + r2.stderr[-300:]))
    a, b = req.curve(one), req.curve(two)
    worst = max(abs(a[s] - b[s]) / abs(a[s]) for s in a) if a and a.keys() == b.keys() else 1
    check(worst < 1e-4, f"same loss curve (worst relative difference {worst:.1e})")
    # images/s counts the images of all ranks: rate x window = the global batch of 16 per step
    for out in (one, two):
        with open(os.path.join(out, "metrics.jsonl")) as f:
            recs = [json.loads(line) for line in f]
        recs = [r for r in recs if "images_per_s" in r]
        seen = [r["images_per_s"] * (r["elapsed_s"] - q["elapsed_s"]) / (r["step"] - q["step"])
                for q, r in zip(recs, recs[1:])]
        check(seen and all(abs(x - 16) < 0.2 for x in seen),
              f"{os.path.basename(out)}: images/s x seconds per step = the global batch 16 "
              f"(got {min(seen or [0]):.2f}..{max(seen or [0]):.2f})")
    with open(os.path.join(one, "eval.json")) as f:
        e1 = json.load(f)
    with open(os.path.join(two, "eval.json")) as f:
        e2 = json.load(f)
    check(e1["samples"] == e2["samples"] == 10000, "every held-out image evaluated once")
    check(abs(e1["top1"] - e2["top1"]) <= 0.002, f"held-out top-1 {e1['top1']:.4f} vs "
          f"{e2['top1']:.4f}")
    ck = os.path.join(one, "checkpoint-12")
    j1, j2 = os.path.join(work, "e1.json"), os.path.join(work, "e2.json")
    subprocess.run([beit, "eval", "--model", ck, "--data", data, "--json", j1, "--resize",
                    "direct", "--batch", "32", "--precision", "fp32"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run([mpiexec, "--allow-run-as-root", "--oversubscribe", "-np", "2", beit, "eval",
                    "--model", ck, "--data", data, "--json", j2, "--resize", "direct",
                    "--batch", "32", "--precision", "fp32"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    with open(j1) as f:
        x = json.load(f)
    with open(j2) as f:
        y = json.load(f)
    check(x["confusion_matrix"] == y["confusion_matrix"] and abs(x["log_loss"] - y["log_loss"]) < 1e-9,
          "beit eval: 2 ranks give the 1-rank confusion matrix and log loss")
    return summary("mpi_finetune")


if __name__ == "__main__":
    sys.exit(main())
