"""mpi e2e: a stuck rank ends the job instead of hanging it (--dist-timeout, issue 13 point 3).

A tiny BEiT pretrains on 3 ranks:
1. an uninterrupted run of STEPS steps (the reference curve); its start line names the deadline
   and every rank's host and pid;
2. the same run with --dist-timeout 5, rank 2 stopped with SIGSTOP at a random moment (0-0.3 s) after the first
   checkpoint, its pid from the start line (wherever it stops, in a collective or in compute, the
   others wait in a collective; the message names that collective): the job exits non-zero within the deadline + 30 s, the message names rank 2 with its
   host and pid, the step and --dist-timeout; the stopped rank is gone too (MPI_Abort); every
   checkpoint left is complete;
3. --resume without the fault (like the reference, with a deadline of 60 s: the deadline changes
   nothing numerically, and a loaded machine cannot fake a fault) reaches the end with the reference's loss at every step, bit for
   bit (as tests/test_pretrain_e2e.py compares a resumed run).
Every rank runs one OpenMP thread; fp32 (--precision fp32).

usage: /usr/bin/python3 tests/test_mpi_timeout_e2e.py BEIT_BINARY MPIEXEC WORK_DIR
"""
import json
import os
import random
import re
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pretrain_fixture  # noqa: E402
import st  # noqa: E402
from checks import check, fresh_dir, summary  # noqa: E402

STEPS, EVERY, TIMEOUT, RANKS, VICTIM = 1000, 100, 5, 3, 2


def alive(pid):
    """pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def start_line_pids(text):
    """rank -> (host, pid) from the line 'distributed: N ranks; ...; rank 0 host H pid P, ...'."""
    for line in text.splitlines():
        if line.startswith("distributed: "):
            return {int(r): (h, int(p)) for r, h, p in
                    re.findall(r"rank (\d+) host (\S+) pid (\d+)", line)}
    return {}


def main():
    beit, mpiexec, work = sys.argv[1:4]
    fresh_dir(work)
    data, tok, model = pretrain_fixture.make(beit, work)
    env = dict(os.environ, OMP_NUM_THREADS="1")

    def cmd(out, timeout, *extra):
        return [mpiexec, "--allow-run-as-root", "--oversubscribe", "-np", str(RANKS),
                "-x", "OMP_NUM_THREADS=1", beit, "pretrain",
                "--config", pretrain_fixture.RECIPE, "--data", data, "--tokenizer", tok,
                "--out", out, "--set", f"model={model}", "--set", "batch.size=4",
                "--set", f"schedule.max_steps={STEPS}", "--set", "schedule.warmup_steps=20",
                "--set", "log.every_steps=1", "--set", f"checkpoint.every_steps={EVERY}",
                "--set", "checkpoint.keep_last=0", "--set", "masking.num_masking_patches=4",
                "--set", "masking.min_num_patches=2", "--set", "data.num_workers=1",
                "--precision", "fp32", "--dist-timeout", str(timeout)] + list(extra)

    # 1. the reference
    ref_out = os.path.join(work, "ref")
    r = subprocess.run(cmd(ref_out, 60), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True, timeout=240)
    check(r.returncode == 0, f"uninterrupted 3-rank run exits 0 ({r.stderr.strip()[-300:]})")
    ref = pretrain_fixture.curve(ref_out)
    check(sorted(ref) == list(range(1, STEPS + 1)), "one loss per step")
    ranks = start_line_pids(r.stderr)
    check(sorted(ranks) == list(range(RANKS)) and "waits 60 s" in r.stderr,
          f"the start line names the deadline and every rank's host and pid: {ranks}")

    # 2. rank 2 stopped after the first checkpoint
    out = os.path.join(work, "stopped")
    log_path = os.path.join(work, "stopped.log")
    with open(log_path, "w") as log:
        p = subprocess.Popen(cmd(out, TIMEOUT), env=env, stdout=subprocess.DEVNULL, stderr=log)
    first = os.path.join(out, f"checkpoint-{EVERY}")
    deadline = time.time() + 120
    while p.poll() is None and time.time() < deadline and not os.path.isdir(first):
        time.sleep(0.005)
    time.sleep(random.Random(os.getpid()).uniform(0.0, 0.3))
    with open(log_path) as f:
        ranks = start_line_pids(f.read())
    host, victim = ranks.get(VICTIM, ("?", None))
    stopped = victim is not None and p.poll() is None
    if stopped:
        os.kill(victim, signal.SIGSTOP)
    t0 = time.time()
    check(stopped, f"rank {VICTIM} (pid {victim}) stopped after {first} (the run had not ended)")
    try:
        rc = p.wait(timeout=TIMEOUT + 60)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = None
    took = time.time() - t0
    with open(log_path) as f:
        text = f.read()
    check(rc not in (0, None) and took < TIMEOUT + 30,
          f"the job ends non-zero within the deadline + 30 s: exit {rc} after {took:.1f} s "
          f"(--dist-timeout {TIMEOUT})")
    pattern = (rf"has waited {TIMEOUT}\.\d s for rank {VICTIM} \(host {re.escape(host)}, "
               rf"pid {victim}\), which does not answer: aborting \(--dist-timeout {TIMEOUT}\)")
    named = [line for line in text.splitlines() if re.search(pattern, line)]
    check(bool(named), f"a waiting rank names rank {VICTIM}, its host and pid: "
          + (named[0] if named else text[-800:]))
    check(bool(named) and re.search(r"(of|after) step \d+ \(collective #\d+\)", named[0]),
          "the message says where the job was (step and collective number)")
    gone = time.time() + 10
    while victim and alive(victim) and time.time() < gone:
        time.sleep(0.1)
    check(victim is not None and not alive(victim), f"the stopped rank {VICTIM} is gone too")
    # leftovers, whatever happened: continue the stopped one, then kill every rank of this run
    if victim and alive(victim):
        os.kill(victim, signal.SIGCONT)
    left = subprocess.run(["pgrep", "-f", f"pretrain.*{out} "], capture_output=True,
                          text=True).stdout.split()
    for pid in map(int, left):
        if pid != os.getpid():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    check(not left, f"no rank left running: {left}")

    saved = sorted(int(n.split("-")[1]) for n in os.listdir(out) if n.startswith("checkpoint-"))
    check(saved and saved[0] == EVERY, f"checkpoints written before the stop: {saved}")
    for step in saved:
        d = os.path.join(out, f"checkpoint-{step}")
        files = set(os.listdir(d))
        whole = files == {"config.json", "model.safetensors", "optimizer.safetensors",
                          "trainer_state.json"}
        if whole:
            with open(os.path.join(d, "trainer_state.json")) as f:
                whole = json.load(f)["step"] == step
            whole = whole and len(st.read(os.path.join(d, "model.safetensors"))) > 0
        check(whole, f"{d} complete (config, model, optimizer, trainer_state at step {step})")

    # 3. --resume without the fault: the reference's losses, bit for bit
    r = subprocess.run(cmd(out, 60, "--resume"), env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True, timeout=240)
    check(r.returncode == 0 and f"resumed from {out}/checkpoint-{saved[-1] if saved else '?'}"
          in r.stderr, f"--resume continues from the newest checkpoint and exits 0 "
          f"({r.stderr.strip()[-300:]})")
    got = pretrain_fixture.curve(out)
    diff = [(s, ref[s], got.get(s)) for s in ref if got.get(s) != ref[s]]
    check(sorted(got) == sorted(ref) and not diff,
          f"stopped + --resume: the same loss at every step as the uninterrupted run {diff[:3]}")
    return summary("mpi_timeout_e2e")


if __name__ == "__main__":
    sys.exit(main())
