"""e2e: bf16 pretraining is deterministic and resumes bit for bit after SIGKILL.

The small Fashion-MNIST default (28x28, patch 4, width 192, depth 6: its products run on oneDNN's
AMX kernels in bf16) pretrains --precision bf16 for STEPS steps of batch 16 on the packed test
split with the fixture's random tokenizer (tests/pretrain_fixture.py), drop path and 2 loader
workers as in the recipe. Checks:
1. determinism: two identical runs log the same loss at every step and end with the same final
   weights and AdamW state, bit for bit;
2. exact resume: a run killed by SIGKILL at a random moment after its first checkpoint, then
   resumed with --resume, logs the loss of the uninterrupted run at every step and ends with its
   final weights and AdamW state, bit for bit (the bf16 weight copy is re-rounded from the fp32
   master weights of the checkpoint, so nothing of it needs saving);
3. every run says it computed in bf16 (first line), and the resumed one does not call itself
   not bit-identical.
test_pretrain_e2e.py does the same (and SIGTERM) in fp32. Skipped (exit 77) where this machine has
no bf16 matrix products.

usage: /usr/bin/python3 tests/test_bf16_pretrain_e2e.py BEIT_BINARY WORK_DIR
"""
import os
import random
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import check, summary  # noqa: E402
import pretrain_fixture  # noqa: E402
import st  # noqa: E402

STEPS, EVERY = 60, 20
ENV = dict(os.environ, OMP_NUM_THREADS="2")


def first_differences(a, b):
    """The first 3 steps whose losses differ, as text ('' when none)."""
    bad = [s for s in a if b.get(s) != a[s]][:3]
    return "".join(f"; step {s}: {a[s]!r} vs {b.get(s)!r}" for s in bad)


def same_tensors(a_dir, b_dir, name):
    """'' when a_dir/name and b_dir/name hold the same tensors bit for bit, else what differs."""
    a = st.read(os.path.join(a_dir, name))
    b = st.read(os.path.join(b_dir, name))
    if sorted(a) != sorted(b):
        return f"{name}: different tensor names"
    bad = [k for k in a if a[k].shape != b[k].shape or a[k].tobytes() != b[k].tobytes()]
    return f"{name}: {len(bad)} of {len(a)} tensors differ, e.g. {bad[:2]}" if bad else ""


def main():
    beit, work = sys.argv[1], sys.argv[2]
    if not pretrain_fixture.bf16_work(beit, work, ENV):
        return 77
    data, tok, model = pretrain_fixture.make(beit, work, small=True)
    base = [beit, "pretrain", "--config", pretrain_fixture.RECIPE, "--data", data,
            "--tokenizer", tok, "--set", f"model={model}", "--set", "batch.size=16",
            "--set", f"schedule.max_steps={STEPS}", "--set", "schedule.warmup_steps=10",
            "--set", "log.every_steps=1", "--set", f"checkpoint.every_steps={EVERY}",
            "--set", "checkpoint.keep_last=0", "--set", "data.num_workers=2",
            "--precision", "bf16"]

    def run(out, *extra):
        r = subprocess.run(base + ["--out", out] + list(extra), env=ENV,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        first = (r.stderr.splitlines() or [""])[0]
        check(r.returncode == 0 and first.startswith("precision bf16 "),
              f"{os.path.basename(out)}: exit {r.returncode}, "
              + (first[:60] if r.returncode == 0 else r.stderr[-300:]))
        return r

    final = f"checkpoint-{STEPS}"
    # 1. two identical runs
    a_out, b_out = os.path.join(work, "a"), os.path.join(work, "b")
    run(a_out)
    run(b_out)
    a = pretrain_fixture.curve(a_out)
    b = pretrain_fixture.curve(b_out)
    check(sorted(a) == list(range(1, STEPS + 1)), "a loss per step")
    check(a == b, "two identical bf16 runs: the same loss at every step, bit for bit"
          + first_differences(a, b))
    for name in ("model.safetensors", "optimizer.safetensors"):
        diff = same_tensors(os.path.join(a_out, final), os.path.join(b_out, final), name)
        check(not diff, f"two identical bf16 runs: final {name} bit for bit"
              + (": " + diff if diff else ""))

    # 2. SIGKILL at a random moment after the first checkpoint, then --resume
    k_out = os.path.join(work, "killed")
    p = subprocess.Popen(base + ["--out", k_out], env=ENV, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not os.path.isdir(os.path.join(k_out, f"checkpoint-{EVERY}")):
        time.sleep(0.02)
    time.sleep(random.Random(os.getpid()).uniform(0.0, 0.5))
    p.send_signal(signal.SIGKILL)
    p.wait()
    check(p.returncode == -signal.SIGKILL,
          f"killed by SIGKILL before the end (exit {p.returncode})")
    r = run(k_out, "--resume")
    resumed = [x for x in r.stderr.splitlines() if x.startswith("resumed from")]
    check(resumed and "not bit-identical" not in r.stderr,
          f"the killed run resumes as bf16: {resumed[0] if resumed else r.stderr[-300:]}")
    got = pretrain_fixture.curve(k_out)
    check(got == a, "SIGKILL + --resume: the loss of the uninterrupted run at every step, bit "
          "for bit" + first_differences(a, got))
    for name in ("model.safetensors", "optimizer.safetensors"):
        diff = same_tensors(os.path.join(a_out, final), os.path.join(k_out, final), name)
        check(not diff, f"SIGKILL + --resume: final {name} bit for bit"
              + (": " + diff if diff else ""))
    return summary("bf16_pretrain_e2e")


if __name__ == "__main__":
    sys.exit(main())
