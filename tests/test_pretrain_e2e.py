"""e2e: `beit pretrain` is resumable exactly and never leaves a half-written checkpoint.

A tiny BEiT (12x12 inputs, patch 4) pretrains on a packed slice of Fashion-MNIST with a random
tokenizer (tools/dvae_ref.py). Checks:
1. an uninterrupted run of S steps logs a loss per step;
2. a run killed by SIGKILL at a random moment after its first checkpoint, then resumed with
   --resume, logs exactly the same loss for every step (bitwise: same code, same threads);
3. SIGTERM writes a final checkpoint, exits non-zero, and --resume finishes the same curve;
4. every checkpoint-* folder is complete (config, model, optimizer, trainer_state), no temporary
   folder is left once a run has finished, and a bad recipe key is an error naming the key;
5. batch 8 with 2 accumulation steps follows the curve of batch 16 (float reassociation only).
Every run is fp32 (--precision fp32): check 5 is a float32 claim; test_precision_e2e.py resumes
a bf16 run.

usage: /usr/bin/python3 tests/test_pretrain_e2e.py BEIT_BINARY WORK_DIR
"""
import os
import random
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pretrain_fixture  # noqa: E402
from checks import check, fresh_dir, summary  # noqa: E402

STEPS = 400


def main():
    beit, work = sys.argv[1], sys.argv[2]
    fresh_dir(work)
    data, tok, model = pretrain_fixture.make(beit, work)
    base = [beit, "pretrain", "--config", pretrain_fixture.RECIPE,
            "--data", data, "--tokenizer", tok, "--set", f"model={model}",
            "--set", "batch.size=16", "--set", f"schedule.max_steps={STEPS}",
            "--set", "schedule.warmup_steps=40", "--set", "log.every_steps=1",
            "--set", "masking.num_masking_patches=4", "--set", "masking.min_num_patches=2",
            "--set", "data.num_workers=2", "--precision", "fp32"]
    env = dict(os.environ, OMP_NUM_THREADS="2")

    def run(out, *extra, **kw):
        return subprocess.run(base + ["--out", out] + list(extra), env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **kw)

    # 1. reference run
    ref_out = os.path.join(work, "ref")
    r = run(ref_out, "--set", "checkpoint.every_steps=100")
    check(r.returncode == 0, f"uninterrupted run exits 0 ({r.stderr.strip()[-200:]})")
    ref = pretrain_fixture.curve(ref_out)
    check(sorted(ref) == list(range(1, STEPS + 1)), "one loss per step")

    # 2. SIGKILL at a random moment after the first checkpoint, then resume
    kill_out = os.path.join(work, "killed")
    p = subprocess.Popen(base + ["--out", kill_out, "--set", "checkpoint.every_steps=100"], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not os.path.isdir(os.path.join(kill_out, "checkpoint-100")):
        time.sleep(0.02)
    time.sleep(random.Random(os.getpid()).uniform(0.0, 0.5))
    p.send_signal(signal.SIGKILL)
    p.wait()
    r = run(kill_out, "--resume", "--set", "checkpoint.every_steps=100")
    check(r.returncode == 0, f"resumed run exits 0 ({r.stderr.strip()[-200:]})")
    got = pretrain_fixture.curve(kill_out)
    check(all(got.get(s) == ref[s] for s in ref),
          "SIGKILL + --resume: same loss at every step "
          + str([(s, ref[s], got.get(s)) for s in ref if got.get(s) != ref[s]][:3]))

    # 3. SIGTERM writes a final checkpoint; --resume completes the same curve
    term_out = os.path.join(work, "term")
    p = subprocess.Popen(base + ["--out", term_out, "--set", "checkpoint.every_steps=1000"],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    while time.time() < deadline and not os.path.exists(os.path.join(term_out, "metrics.jsonl")):
        time.sleep(0.02)
    time.sleep(0.3)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate()
    check(p.returncode != 0 and "checkpoint" in err, f"SIGTERM: exit {p.returncode}, final "
          "checkpoint written")
    saved = [d for d in os.listdir(term_out) if d.startswith("checkpoint-")]
    check(len(saved) == 1, f"SIGTERM left one checkpoint: {saved}")
    r = run(term_out, "--resume")
    got = pretrain_fixture.curve(term_out)
    check(r.returncode == 0 and all(got.get(s) == ref[s] for s in ref),
          "SIGTERM + --resume: same loss at every step")

    # 4. checkpoint folders complete, no temporary folder left
    for out in (ref_out, kill_out, term_out):
        names = os.listdir(out)
        check(not [n for n in names if n.startswith(".tmp")], f"{out}: no temporary folder")
        for n in names:
            if n.startswith("checkpoint-"):
                files = set(os.listdir(os.path.join(out, n)))
                check(files == {"config.json", "model.safetensors", "optimizer.safetensors",
                                "trainer_state.json"}, f"{out}/{n} complete")
    # 5. gradient accumulation: 2 micro-batches of 8 train like one batch of 16
    acc_out = os.path.join(work, "accum")
    r = run(acc_out, "--set", "batch.size=8", "--set", "batch.accum_steps=2",
            "--set", "checkpoint.every_steps=1000")
    got = pretrain_fixture.curve(acc_out)
    worst = max(abs(got[s] - ref[s]) / abs(ref[s]) for s in ref) if len(got) == len(ref) else 1
    check(r.returncode == 0 and worst <= 1e-5,
          f"batch 8 x 2 accumulation steps vs batch 16: loss curves differ by {worst:.2e}")

    r = run(os.path.join(work, "bad"), "--set", "optimizer.learning_rate=1")
    check(r.returncode == 1 and "optimizer.learning_rate" in r.stderr,
          "unknown recipe key named in the error")
    return summary("pretrain_e2e")


if __name__ == "__main__":
    sys.exit(main())
