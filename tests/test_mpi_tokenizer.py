"""mpi: `beit tokenizer train` on 2 ranks x batch B is 1 rank x batch 2B (same samples, Gumbel
noise keyed by the global sample index, gradient of the global mean):

1. 20 steps give the same loss curve (relative difference <= 1e-5) and the same final weights;
2. a checkpoint written by 2 ranks resumes on 1 rank (and one written by 1 rank on 2 ranks) and
   continues the same curve;
3. the final held-out evaluation, split over the ranks, counts every image once and reports what
   1 rank reports.
In fp32 (config key precision): with bf16 operands a batch of B and one of 2B round differently.

usage: /usr/bin/python3 tests/test_mpi_tokenizer.py BEIT_BINARY MPIEXEC WORK_DIR
"""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rank_equivalence as req  # noqa: E402
from checks import check, fresh_dir, summary  # noqa: E402

STEPS, GLOBAL_BATCH = 20, 16
TINY = {
    "model": {"input_channels": 1, "n_hid": 8, "group_count": 2, "n_blk_per_group": 1,
              "vocab_size": 64, "downsample": 4, "n_init": 16, "image_size": 28,
              "decoder": True, "recon_loss": "mse"},
    "data": {"num_workers": 1},
    "optimizer": {"lr": 3e-3},
    "schedule": {"max_steps": STEPS, "warmup_steps": 4},
    "relaxation": {"kl_weight": 0.5, "kl_warmup_steps": 8},
    "checkpoint": {"every_steps": 10, "keep_last": 0},
    "log": {"every_steps": 1},
    "precision": "fp32",
}


def main():
    beit, mpiexec, work = sys.argv[1:4]
    fresh_dir(work)
    data = req.pack_test_split(beit, work)
    config = os.path.join(work, "tiny.json")
    with open(config, "w") as f:
        json.dump(TINY, f)

    def run(np_, out, *extra):
        cmd = [mpiexec, "--allow-run-as-root", "--oversubscribe", "-np", str(np_),
               "-x", "OMP_NUM_THREADS=1", beit, "tokenizer", "train", "--config", config,
               "--data", data, "--out", out, "--set", f"batch.size={GLOBAL_BATCH // np_}"]
        r = subprocess.run(cmd + list(extra), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True, timeout=600)
        check(r.returncode == 0, f"{np_} rank(s) -> {os.path.basename(out)} exits 0"
              + ("" if r.returncode == 0 else ": " + r.stderr[-400:]))
        return req.curve(out) if r.returncode == 0 else {}

    one = run(1, os.path.join(work, "np1"), "--eval-data", data)
    two = run(2, os.path.join(work, "np2"), "--eval-data", data)
    req.compare(check, work, STEPS, GLOBAL_BATCH, one, two)
    with open(os.path.join(work, "np1", "eval.json")) as f:
        e1 = json.load(f)
    with open(os.path.join(work, "np2", "eval.json")) as f:
        e2 = json.load(f)
    check(e1["eval_images"] == e2["eval_images"] == 10000,
          f"held-out images: {e1['eval_images']} and {e2['eval_images']} (10000 each)")
    check(abs(e1["eval_mae"] - e2["eval_mae"]) <= 1e-4 * e1["eval_mae"],
          f"held-out MAE {e1['eval_mae']:.6f} (1 rank) vs {e2['eval_mae']:.6f} (2 ranks)")

    # resume across rank counts from the step-10 checkpoints
    for src, np_, ref in (("np2", 1, two), ("np1", 2, one)):
        out = os.path.join(work, f"{src}-resumed-on-{np_}")
        os.makedirs(out)
        shutil.copytree(os.path.join(work, src, "checkpoint-10"),
                        os.path.join(out, "checkpoint-10"))
        got = run(np_, out, "--resume")
        d = req.rel_curve_diff(ref, got, range(11, STEPS + 1))
        check(d <= 1e-5, f"checkpoint of {src} resumed on {np_} rank(s): curve differs by {d:.2e}")
    return summary("mpi_tokenizer")


if __name__ == "__main__":
    sys.exit(main())
