"""mpi: data-parallel pretraining is the same training whatever the number of ranks.

1. 2 ranks x batch B and 1 rank x batch 2B for 20 steps of a small BEiT: same loss curve
   (relative difference <= 1e-5) and the same final weights (<= 1e-4 of each tensor's scale);
2. a checkpoint written by 2 ranks resumes on 1 rank (and one written by 1 rank on 2 ranks) and
   continues the same curve;
3. killing one rank of a 2-rank job ends the whole job with a non-zero exit within 30 seconds.
In fp32 (--precision fp32): with bf16 operands a batch of B and one of 2B round differently.

usage: /usr/bin/python3 tests/test_mpi_pretrain.py BEIT_BINARY MPIEXEC WORK_DIR
"""
import os
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pretrain_fixture  # noqa: E402
import rank_equivalence as req  # noqa: E402
from checks import check, fresh_dir, summary  # noqa: E402

STEPS, GLOBAL_BATCH = 20, 32


def main():
    beit, mpiexec, work = sys.argv[1:4]
    fresh_dir(work)
    data, tok, model = pretrain_fixture.make(beit, work)

    def cmd(np_, out, *extra):
        return [mpiexec, "--allow-run-as-root", "--oversubscribe", "-np", str(np_),
                "-x", "OMP_NUM_THREADS=1", beit, "pretrain",
                "--config", pretrain_fixture.RECIPE,
                "--data", data, "--tokenizer", tok, "--out", out, "--set", f"model={model}",
                "--set", f"batch.size={GLOBAL_BATCH // np_}",
                "--set", f"schedule.max_steps={STEPS}", "--set", "schedule.warmup_steps=5",
                "--set", "log.every_steps=1", "--set", "checkpoint.every_steps=10",
                "--set", "checkpoint.keep_last=0", "--set", "masking.num_masking_patches=4",
                "--set", "masking.min_num_patches=2", "--set", "data.num_workers=1",
                "--precision", "fp32"] + list(extra)

    def run(np_, out, *extra):
        r = subprocess.run(cmd(np_, out, *extra), stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True, timeout=600)
        check(r.returncode == 0, f"{np_} rank(s) -> {os.path.basename(out)} exits 0"
              + ("" if r.returncode == 0 else ": " + r.stderr[-300:]))
        return req.curve(out)

    one = run(1, os.path.join(work, "np1"))
    two = run(2, os.path.join(work, "np2"))
    req.compare(check, work, STEPS, GLOBAL_BATCH, one, two)

    # resume across rank counts from the step-10 checkpoints
    for src, np_, ref in (("np2", 1, two), ("np1", 2, one)):
        out = os.path.join(work, f"{src}-resumed-on-{np_}")
        os.makedirs(out)
        shutil.copytree(os.path.join(work, src, "checkpoint-10"), os.path.join(out, "checkpoint-10"))
        got = run(np_, out, "--resume")
        later = range(11, STEPS + 1)
        d = req.rel_curve_diff(ref, got, later)
        check(d <= 1e-5, f"checkpoint of {src} resumed on {np_} rank(s): curve differs by {d:.2e}")

    # a rank that dies ends the job promptly
    out = os.path.join(work, "killed")
    p = subprocess.Popen(cmd(2, out, "--set", "schedule.max_steps=100000"),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not os.path.exists(os.path.join(out, "metrics.jsonl")):
        time.sleep(0.05)
    ranks = subprocess.run(["pgrep", "-f", f"pretrain.*{out}"], capture_output=True,
                           text=True).stdout.split()
    ranks = [int(x) for x in ranks if int(x) != p.pid]
    victim = max(ranks) if ranks else None
    t0 = time.time()
    if victim:
        os.kill(victim, signal.SIGKILL)
    try:
        rc = p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = None
    took = time.time() - t0
    check(victim is not None and rc not in (0, None) and took < 30,
          f"killing one rank ends the job: exit {rc} after {took:.1f} s (< 30 s)")
    return summary("mpi_pretrain")


if __name__ == "__main__":
    sys.exit(main())
