"""e2e: the precision policy of `beit pretrain` (recipe key `precision`, --precision).

The small Fashion-MNIST default (configs/models/beit_small_fashion_mnist.json: 28x28, patch 4,
width 192, depth 6) pretrains for a few steps of the Fashion-MNIST recipe on the packed test
split, with a random tokenizer of 7x7 tokens of 512 (tests/pretrain_fixture.py). Checks:
1. --precision fp32 and --precision bf16: the first stderr line names the precision and the
   backend line of `beit info`; the first metrics.jsonl record and trainer_state.json record the
   resolved precision and the backend, the recipe in trainer_state.json what was asked; step 1's
   loss agrees between the two (<= 1e-2 relative), and bf16 did compute differently;
2. bf16 resumes exactly: its step-3 checkpoint resumed with --resume logs the losses of the
   uninterrupted bf16 run, bit for bit;
3. the bf16 checkpoint resumed with --precision fp32 runs, and says the run is then not
   bit-identical to an uninterrupted one;
4. with ONEDNN_MAX_CPU_ISA=AVX2 (oneDNN capped below bf16): --precision auto runs fp32 and says
   so; --precision bf16 exits 1 with a message naming bf16 and the ISA;
5. a bad value of the recipe key is an error naming the key and the recipe file; a bad
   --precision is a usage error.
Where this machine has no bf16 matrix products, the bf16 parts (1 for bf16, 2, 3) are skipped
with a message.

usage: /usr/bin/python3 tests/test_precision_e2e.py BEIT_BINARY WORK_DIR
"""
import json
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import check, summary  # noqa: E402
import pretrain_fixture  # noqa: E402
import rank_equivalence  # noqa: E402

STEPS = 6
ENV = dict(os.environ, OMP_NUM_THREADS="2")
AVX2 = dict(ENV, ONEDNN_MAX_CPU_ISA="AVX2")


def machine(beit, env):
    """(backend line, bf16 available, ISA name) as `beit info` reports them under env."""
    r = subprocess.run([beit, "info", pretrain_fixture.SMALL_MODEL], env=env, check=True,
                       capture_output=True, text=True)
    backend = re.search(r"^backend +(.*)$", r.stdout, re.M).group(1)
    isa = re.search(r"ISA ([^,;)]+)", backend)
    return backend, "bf16 available" in r.stdout, isa.group(1) if isa else "none"


def first_record(out):
    with open(os.path.join(out, "metrics.jsonl")) as f:
        return json.loads(f.readline())


def state(out, step):
    with open(os.path.join(out, f"checkpoint-{step}", "trainer_state.json")) as f:
        return json.load(f)


def main():
    beit, work = sys.argv[1], sys.argv[2]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    data, tok, model = pretrain_fixture.make(beit, work, small=True)
    base = [beit, "pretrain", "--config", pretrain_fixture.RECIPE, "--data", data,
            "--tokenizer", tok, "--set", f"model={model}", "--set", "batch.size=16",
            "--set", f"schedule.max_steps={STEPS}", "--set", "schedule.warmup_steps=2",
            "--set", "log.every_steps=1", "--set", "checkpoint.every_steps=3",
            "--set", "checkpoint.keep_last=0", "--set", "data.num_workers=2"]

    def run(out, *extra, env=ENV):
        return subprocess.run(base + ["--out", out] + list(extra), env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    backend, bf16, _ = machine(beit, ENV)
    precisions = ["fp32", "bf16"] if bf16 else ["fp32"]
    if not bf16:
        print("skip bf16: no bf16 matrix products here: " + backend)

    # 1. what every run says and records
    curves = {}
    for p in precisions:
        out = os.path.join(work, p)
        r = run(out, "--precision", p)
        check(r.returncode == 0, f"--precision {p}: exit {r.returncode}"
              + ("" if r.returncode == 0 else ": " + r.stderr[-300:]))
        first = (r.stderr.splitlines() or [""])[0]
        check(first.startswith(f"precision {p} (requested {p}") and backend in first,
              f"--precision {p}: the first line names the precision and the backend: {first}")
        rec = first_record(out)
        check(rec.get("precision") == p and rec.get("backend") == backend,
              f"--precision {p}: first metrics.jsonl record {rec.get('precision')}, "
              f"{rec.get('backend')}")
        s = state(out, STEPS)
        check(s.get("precision") == p and s.get("backend") == backend
              and s["recipe"]["precision"] == p, f"--precision {p}: trainer_state.json records "
              f"{s.get('precision')} (recipe {s['recipe'].get('precision')})")
        curves[p] = rank_equivalence.curve(out)
        check(sorted(curves[p]) == list(range(1, STEPS + 1)), f"--precision {p}: a loss per step")
    if bf16:
        a, b = curves["fp32"].get(1, 0), curves["bf16"].get(1, 1)
        check(abs(a - b) <= 1e-2 * abs(a), f"step 1 loss fp32 {a:.6f} vs bf16 {b:.6f}")
        check(curves["fp32"] != curves["bf16"], "bf16 computes differently from fp32")

        def resume_bf16(name, precision):
            """work/name resumed in precision from a copy of the bf16 run's checkpoint-3:
            (folder, result, loss curve)."""
            out = os.path.join(work, name)
            os.makedirs(out)
            shutil.copytree(os.path.join(work, "bf16", "checkpoint-3"),
                            os.path.join(out, "checkpoint-3"))
            r = run(out, "--precision", precision, "--resume")
            return out, r, rank_equivalence.curve(out)

        # 2. bf16 resumes bit for bit
        out, r, got = resume_bf16("bf16-resumed", "bf16")
        check(r.returncode == 0 and "not bit-identical" not in r.stderr
              and all(got.get(s) == curves["bf16"][s] for s in range(4, STEPS + 1)),
              "bf16 --resume: the losses of the uninterrupted run, bit for bit"
              + ("" if r.returncode == 0 else ": " + r.stderr[-300:]))

        # 3. the bf16 checkpoint resumed in fp32: allowed, with a note
        out, r, got = resume_bf16("bf16-then-fp32", "fp32")
        note = [x for x in r.stderr.splitlines() if x.startswith("note:")]
        check(r.returncode == 0 and note and "trained in bf16" in note[0]
              and "not bit-identical" in note[0], "bf16 checkpoint resumed in fp32: exit "
              f"{r.returncode}, {note or r.stderr[-300:]}")
        d = rank_equivalence.rel_curve_diff(curves["bf16"], got, range(4, STEPS + 1))
        check(d <= 1e-2 and state(out, STEPS).get("precision") == "fp32",
              f"... continues the bf16 curve in fp32 (relative difference {d:.2e})")

    # 4. oneDNN capped at AVX2: no bf16
    backend2, bf16_2, isa2 = machine(beit, AVX2)
    check(not bf16_2, f"ONEDNN_MAX_CPU_ISA=AVX2 leaves no bf16: {backend2}")
    out = os.path.join(work, "avx2-auto")
    r = run(out, "--precision", "auto", "--set", "schedule.max_steps=2", env=AVX2)
    first = (r.stderr.splitlines() or [""])[0]
    check(r.returncode == 0 and first.startswith("precision fp32 (requested auto")
          and backend2 in first, f"AVX2, --precision auto: runs fp32 and says so: {first}")
    check(r.returncode == 0 and first_record(out).get("precision") == "fp32",
          "AVX2, --precision auto: metrics.jsonl records fp32")
    r = run(os.path.join(work, "avx2-bf16"), "--precision", "bf16", env=AVX2)
    check(r.returncode == 1 and "bf16" in r.stderr and isa2 in r.stderr,
          f"AVX2, --precision bf16: exit {r.returncode}, names bf16 and the ISA {isa2}: "
          f"{r.stderr.strip()[-300:]}")

    # 5. bad values
    recipe = os.path.join(work, "bad_recipe.json")
    with open(pretrain_fixture.RECIPE) as f:
        bad = json.load(f)
    bad["precision"] = "fp16"
    with open(recipe, "w") as f:
        json.dump(bad, f)
    r = subprocess.run(base[:3] + [recipe] + base[4:] + ["--out", os.path.join(work, "bad")],
                       env=ENV, capture_output=True, text=True)
    check(r.returncode == 1 and "'precision'" in r.stderr and recipe in r.stderr,
          f"a bad recipe value names the key and the file: {r.stderr.strip()[-300:]}")
    r = run(os.path.join(work, "bad2"), "--precision", "fp16")
    check(r.returncode == 2 and "--precision" in r.stderr, "a bad --precision is a usage error")
    return summary("precision_e2e")


if __name__ == "__main__":
    sys.exit(main())
