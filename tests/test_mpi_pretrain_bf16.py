"""mpi: bf16 data-parallel pretraining follows the same curve whatever the split of the batch.

The small Fashion-MNIST default (28x28, patch 4, width 192, depth 6; its products run on
oneDNN's AMX kernels in bf16) pretrains --precision bf16 for STEPS steps of global batch 32 on the
packed test split (random tokenizer of tests/pretrain_fixture.py), one thread per rank:
  np1:   1 rank x 32
  np2:   2 ranks x 16 (mpirun --allow-run-as-root --oversubscribe -np 2)
  accum: 1 rank x 16 x 2 accumulation steps
Checks, of np2 and of accum against np1:
1. the loss curves agree within 1e-4 relative at every step (the issue's bound);
2. the final weights agree within 1e-3 relative in L2 over the whole model, and every tensor
   within 0.1 of its largest element.
test_mpi_pretrain.py (and test_pretrain_e2e.py's accumulation check) hold fp32 to 1e-5 and 1e-4
of each tensor's scale; bf16 cannot meet those, and why bounds it over a horizon:
  The step-1 forward is the same computation (bf16 products are row by row; measured 2.8e-16,
  the f64 loss sums in another order). The backward is not: the weight gradients reduce over 32
  rows on one rank and over 16 + 16 (or two micro-batches of 16) elsewhere, so float32
  reassociation leaves the fp32 master weights an ulp or so apart, as in fp32. But each step
  rounds the master weights to bf16 (8 significant bits) for its products, and a weight an ulp
  from a rounding boundary lands on the other of two bf16 neighbours ~2^-8 apart; activations
  rounded to bf16 flip likewise. These flips perturb the next step ~2^16 times more than fp32's
  reassociation does, and training amplifies any perturbation: the curves part step by step.
  Measured here (batch 32, warmup 5, cosine over the run, np2 vs np1; accum vs np1 over 40 steps:
  1.3e-5, 1.0e-4, 1.7e-2 as np2):
    40 steps:   step 1 2.8e-16, steps 1-5 9.9e-09, 1-10 1.5e-06, 1-20 7.4e-06, all 40 1.3e-05;
                final weights 1.0e-4 in L2, the worst tensor 1.7e-2 of its largest element
    100 steps:  all 100 steps 4.9e-05; the worst tensor 2.6e-2 of its largest element
    300 steps:  within 1e-5 for 28 steps, 1e-4 for 47, then up to 1.1e-2; final weights 4.6e-2
                in L2, the worst tensor (a query bias) 0.88 of its largest element
  fp32, 300 steps: within 1e-5 for 215 steps, 4.4e-5 at most; final weights 1.1e-4 in L2, the
  worst tensor 3.3e-3 (the same amplification, from a 2^16 times smaller start).
  So this test holds the issue's 1e-4 over STEPS = 40 (measured 1.3e-5), and the weights to an
  L2 bound: AdamW divides each update by the root of its squared-gradient average, so an element
  whose gradient is near zero and flips sign moves a full learning rate the other way, and
  single elements of small tensors differ far more than the whole.
Skipped (exit 77) where this machine has no bf16 matrix products.

usage: /usr/bin/python3 tests/test_mpi_pretrain_bf16.py BEIT_BINARY MPIEXEC WORK_DIR
"""
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import check, summary  # noqa: E402
import pretrain_fixture  # noqa: E402
import rank_equivalence as req  # noqa: E402
import st  # noqa: E402

STEPS, GLOBAL_BATCH = 40, 32
CURVE_BOUND, WEIGHT_L2_BOUND, WEIGHT_MAX_BOUND = 1e-4, 1e-3, 0.1


def weight_diffs(a_dir, b_dir):
    """(relative L2 difference over the whole model, (worst per-tensor max |a - b| / max |a|,
    tensor name)) of the model.safetensors of two checkpoints."""
    a = st.read(os.path.join(a_dir, "model.safetensors"))
    b = st.read(os.path.join(b_dir, "model.safetensors"))
    num = sum(float(np.sum((a[k].astype(np.float64) - b[k]) ** 2)) for k in a)
    den = sum(float(np.sum(a[k].astype(np.float64) ** 2)) for k in a)
    worst = max((float(np.max(np.abs(a[k] - b[k])) / max(np.max(np.abs(a[k])), 1e-6)), k)
                for k in a)
    return (num / den) ** 0.5, worst


def main():
    beit, mpiexec, work = sys.argv[1:4]
    if not pretrain_fixture.bf16_work(beit, work, dict(os.environ, OMP_NUM_THREADS="1")):
        return 77
    data, tok, model = pretrain_fixture.make(beit, work, small=True)

    def run(name, np_, batch, accum):
        out = os.path.join(work, name)
        cmd = [mpiexec, "--allow-run-as-root", "--oversubscribe", "-np", str(np_),
               "-x", "OMP_NUM_THREADS=1", beit, "pretrain", "--config", pretrain_fixture.RECIPE,
               "--data", data, "--tokenizer", tok, "--out", out, "--set", f"model={model}",
               "--set", f"batch.size={batch}", "--set", f"batch.accum_steps={accum}",
               "--set", f"schedule.max_steps={STEPS}", "--set", "schedule.warmup_steps=5",
               "--set", "log.every_steps=1", "--set", f"checkpoint.every_steps={STEPS}",
               "--set", "checkpoint.keep_last=0", "--set", "data.num_workers=1",
               "--precision", "bf16"]
        r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           timeout=600)
        first = (r.stderr.splitlines() or [""])[0]
        check(r.returncode == 0 and first.startswith("precision bf16 "),
              f"{name}: {np_} rank(s) x {batch} x {accum}: exit {r.returncode}"
              + ("" if r.returncode == 0 else ": " + r.stderr[-300:]))
        return req.curve(out), os.path.join(out, f"checkpoint-{STEPS}")

    one, one_ckpt = run("np1", 1, GLOBAL_BATCH, 1)
    for name, np_, batch, accum in (("np2", 2, GLOBAL_BATCH // 2, 1),
                                    ("accum", 1, GLOBAL_BATCH // 2, 2)):
        got, ckpt = run(name, np_, batch, accum)
        steps = range(1, STEPS + 1)
        d = req.rel_curve_diff(one, got, steps)
        first = req.rel_curve_diff(one, got, [1])
        upto10 = req.rel_curve_diff(one, got, range(1, 11))
        label = f"{np_} rank(s) x {batch} x {accum} vs 1 rank x {GLOBAL_BATCH}"
        check(d <= CURVE_BOUND, f"{label}: loss curves differ by {d:.2e} over {STEPS} steps "
              f"(<= {CURVE_BOUND:.0e}; step 1 {first:.1e}, steps 1-10 {upto10:.1e})")
        if d == float("inf"):
            continue
        l2, (worst, name_) = weight_diffs(one_ckpt, ckpt)
        check(l2 <= WEIGHT_L2_BOUND and worst <= WEIGHT_MAX_BOUND,
              f"{label}: final weights differ by {l2:.2e} in L2 (<= {WEIGHT_L2_BOUND:.0e}), "
              f"the worst tensor {name_} by {worst:.2e} of its largest element "
              f"(<= {WEIGHT_MAX_BOUND})")
    return summary("mpi_pretrain_bf16")


if __name__ == "__main__":
    sys.exit(main())
