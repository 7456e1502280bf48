"""e2e: writes that fail during a run lose nothing and say what happened (mim/trainer.h
beit_trainer_run, core/checkpoint.h). The tiny pretraining fixture, OMP_NUM_THREADS=1.

1. checkpoint write fails: the file size limit (RLIMIT_FSIZE) of the running pretraining is
   lowered to 16 KiB, below model.safetensors (49 KB). The run exits 1 (not killed by SIGXFSZ)
   with an error naming the checkpoint it was writing, the file that failed and the newest
   complete checkpoint; that one is whole, no .tmp-checkpoint-* is left, and --resume with the
   limit lifted continues from it to the end.
2. --resume passes over a newer checkpoint folder whose optimizer.safetensors is cut short, with
   a warning naming it, and never takes a .tmp-checkpoint-* folder, however whole.
3. metrics.jsonl write fails: a limit set once the run has started (110 KB, above every
   checkpoint file) that metrics.jsonl reaches after ~150 one-step records. The run writes a final checkpoint, exits 1
   naming metrics.jsonl and that checkpoint, prints the unwritten record on stderr; metrics.jsonl
   holds whole lines only; --resume continues to the end.
4. fine-tuning: as 1.
About 6 s on 2 cores."""
import json
import os
import re
import resource
import shutil
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pretrain_fixture  # noqa: E402
from checks import check, summary  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, OMP_NUM_THREADS="1")
FAILED = (r"cannot write (\S+/checkpoint-(\d+)): \S+/\.tmp-checkpoint-\2/"
          r"(model|optimizer)\.safetensors\.tmp: write failed: File too large; "
          r"the newest complete checkpoint is (\S+/checkpoint-(\d+)) \(--resume continues")


def whole(ckpt):
    """Every file of a checkpoint folder present, both safetensors as long as their headers say."""
    for name in ("config.json", "trainer_state.json"):
        with open(os.path.join(ckpt, name)) as f:
            json.load(f)
    for name in ("model.safetensors", "optimizer.safetensors"):
        with open(os.path.join(ckpt, name), "rb") as f:
            raw = f.read()
        n = struct.unpack("<Q", raw[:8])[0]
        header = json.loads(raw[8:8 + n])
        end = max(v["data_offsets"][1] for k, v in header.items() if k != "__metadata__")
        if len(raw) != 8 + n + end:
            return False
    return True


def tmp_folders(out):
    return [d for d in os.listdir(out) if d.startswith(".tmp")]


def limit_mid_run(cmd, out, limit, first="checkpoint-"):
    """Start cmd, lower its file size limit once an entry of out starting with `first` exists
    (after MPI's start-up, whose shared-memory files a low limit would break); (rc, stderr)."""
    p = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True)
    t0 = time.time()
    while time.time() - t0 < 60 and p.poll() is None:
        if os.path.isdir(out) and any(d.startswith(first) for d in os.listdir(out)):
            resource.prlimit(p.pid, resource.RLIMIT_FSIZE, (limit, limit))
            break
        time.sleep(0.002)
    _, err = p.communicate(timeout=120)
    return p.returncode, err


def checkpoint_fails(name, cmd, out, resume_cmd):
    """Cases 1 and 4; returns the newest complete checkpoint's step."""
    rc, err = limit_mid_run(cmd + ["--set", "schedule.max_steps=20000"], out, 16384)
    m = re.search(FAILED, err)
    check(rc == 1 and m is not None,
          f"{name}: a checkpoint that cannot be written stops the run with exit 1 and an error "
          f"naming it, its file and the newest complete checkpoint (exit {rc}: "
          f"{err.strip()[-400:]})")
    if not m:
        return None
    failed, step, good, good_step = m.group(1), int(m.group(2)), m.group(4), int(m.group(5))
    check(not os.path.exists(failed) and good_step < step and whole(good),
          f"{name}: {os.path.basename(failed)} absent, {os.path.basename(good)} whole")
    check(not tmp_folders(out), f"{name}: no temporary folder left ({tmp_folders(out)})")
    r = subprocess.run(resume_cmd + ["--set", f"schedule.max_steps={good_step + 4}"], env=ENV,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    check(r.returncode == 0 and f"resumed from {good} at step {good_step}" in r.stderr
          and whole(os.path.join(out, f"checkpoint-{good_step + 4}")),
          f"{name}: --resume without the limit continues from {os.path.basename(good)} to the "
          f"end ({r.returncode}: {r.stderr.strip()[-300:]})")
    return good_step


def main():
    beit, work = sys.argv[1], sys.argv[2]
    data, model, base = pretrain_fixture.tiny_pretrain(beit, work)
    base += ["--data", data]

    # 1. a checkpoint that cannot be written
    out = os.path.join(work, "ckpt")
    cmd = base + ["--out", out, "--set", "checkpoint.every_steps=2",
                  "--set", "checkpoint.keep_last=2", "--set", "log.every_steps=1000"]
    good = checkpoint_fails("pretrain", cmd, out, cmd + ["--resume"])

    # 2. --resume passes over a damaged newer checkpoint and a whole temporary folder
    if good is not None:
        src = os.path.join(out, f"checkpoint-{good + 4}")
        bad, tmp = os.path.join(out, "checkpoint-9000"), os.path.join(out, ".tmp-checkpoint-9100")
        shutil.copytree(src, bad)
        shutil.copytree(src, tmp)
        with open(os.path.join(bad, "optimizer.safetensors"), "r+b") as f:
            f.truncate(50000)
        r = subprocess.run(cmd + ["--resume", "--set", f"schedule.max_steps={good + 6}"],
                           env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        check(r.returncode == 0 and f"warning: {bad} is incomplete or damaged and is skipped: "
              f"{bad}/optimizer.safetensors" in r.stderr
              and f"resumed from {src} at step {good + 4}" in r.stderr,
              f"--resume skips the cut-short checkpoint-9000 with a warning naming it and takes "
              f"checkpoint-{good + 4} ({r.stderr.strip()[-400:]})")
        check(not os.path.exists(tmp) and os.path.isdir(bad),
              "the temporary folder was never taken (and is cleared by the next save); the "
              "damaged checkpoint is left for the user")

    # 3. metrics.jsonl that cannot be appended to
    out = os.path.join(work, "metrics")
    cmd = base + ["--out", out, "--set", "checkpoint.every_steps=50",
                  "--set", "checkpoint.keep_last=2", "--set", "log.every_steps=1"]

    rc, err = limit_mid_run(cmd + ["--set", "schedule.max_steps=1000"], out, 110000,
                            "metrics.jsonl")
    m = re.search(r"metrics\.jsonl: cannot append a record: File too large; the newest "
                  r"complete checkpoint is (\S+/checkpoint-(\d+)) \(--resume", err)
    check(rc == 1 and m is not None,
          f"metrics.jsonl over the limit: exit 1, an error naming it and the checkpoint "
          f"({rc}: {err.strip()[-400:]})")
    with open(os.path.join(out, "metrics.jsonl")) as f:
        text = f.read()
    lines = text.splitlines()
    ok = text.endswith("\n") and all(json.loads(x) for x in lines)
    check(ok, "metrics.jsonl holds whole JSON lines only")
    last = json.loads(lines[-1])["step"] if ok and lines else -1
    if m:
        step = int(m.group(2))
        check(step == last + 1 and whole(m.group(1)),
              f"a final checkpoint at the step whose record failed ({step}, last record "
              f"{last}), whole")
        check(re.search(r'the record is: \{"loss":[^\n]*"step":%d,' % step, err)
              is not None, "the unwritten record is on stderr")
        r = subprocess.run(cmd + ["--resume", "--set", f"schedule.max_steps={step + 3}"],
                           env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        with open(os.path.join(out, "metrics.jsonl")) as f:
            steps = [json.loads(x)["step"] for x in f]
        check(r.returncode == 0 and steps[-3:] == [step + 1, step + 2, step + 3],
              f"--resume continues to the end ({r.returncode}; {steps[-4:]}; "
              f"{r.stderr.strip()[-200:]})")

    # 4. fine-tuning: the same trainer
    out = os.path.join(work, "ft")
    cmd = [beit, "finetune", "--config",
           os.path.join(ROOT, "configs/recipes/finetune_fashion_mnist.json"), "--data", data,
           "--set", f"model={model}", "--set", "batch.size=8", "--set", "schedule.warmup_steps=1",
           "--set", "data.num_workers=1", "--set", "checkpoint.every_steps=2",
           "--set", "checkpoint.keep_last=2", "--set", "log.every_steps=1000", "--out", out]
    checkpoint_fails("finetune", cmd, out, cmd + ["--resume"])
    return summary("test_fault_write_e2e")


if __name__ == "__main__":
    sys.exit(main())
