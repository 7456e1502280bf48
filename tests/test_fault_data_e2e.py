"""e2e: data that goes bad during a run (data/dataset.c, data/loader.c, mim/trainer.c). The tiny
pretraining fixture on Fashion-MNIST's test split (one shard), OMP_NUM_THREADS=1.

a. bytes flipped in every 4th `images` chunk of the shard (offsets from h5py's get_chunk_info):
   the run reaches its end (exit 0); each record it meets in those chunks is skipped once, with
   a log line naming the shard file and the record, only records of those chunks are named;
   metrics.jsonl's corrupt_records and the summary's count agree with the log; beit pack
   --check lists exactly the records of those chunks and exits 1.
b. the shard deleted mid-run: the run stops at its next periodic checkpoint (exit 1) naming the
   file and the newest complete checkpoint, which is whole; --resume while it is missing is
   refused at start naming it; with the file back, --resume continues to the end.
c. index.json disagreeing with the shard (num_records, the shard's count, the task) or listing
   a missing file: refused at start (exit 1) naming the file and what disagrees, nothing
   written to --out.
About 4 s on 2 cores."""
import json
import os
import re
import shutil
import subprocess
import sys
import time

import h5py

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pretrain_fixture  # noqa: E402
from checks import check, summary  # noqa: E402

ENV = dict(os.environ, OMP_NUM_THREADS="1")


def flip_chunks(shard, every):
    """Flip a byte in every `every`-th images chunk; the records with bytes in those chunks."""
    with h5py.File(shard, "r") as f:
        d, offsets = f["images"], f["offsets"][:]
        size = d.chunks[0]
        chunks = [d.id.get_chunk_info(k) for k in range(0, d.id.get_num_chunks(), every)]
    hit = set()
    with open(shard, "r+b") as f:
        for c in chunks:
            f.seek(c.byte_offset + 100)
            b = f.read(1)
            f.seek(c.byte_offset + 100)
            f.write(bytes([b[0] ^ 0x5A]))
            lo = c.chunk_offset[0]
            hit.update(i for i in range(len(offsets) - 1)
                       if offsets[i + 1] > lo and offsets[i] < lo + size)
    return hit


def whole(ckpt):
    return all(os.path.isfile(os.path.join(ckpt, n)) for n in
               ("config.json", "model.safetensors", "optimizer.safetensors",
                "trainer_state.json"))


def edit_index(data, fn):
    path = os.path.join(data, "index.json")
    with open(path) as f:
        index = json.load(f)
    fn(index)
    with open(path, "w") as f:
        json.dump(index, f)


def main():
    beit, work = sys.argv[1], sys.argv[2]
    clean, _, base = pretrain_fixture.tiny_pretrain(beit, work)

    # a. flipped bytes: records skipped, named and counted; the run goes on
    data = os.path.join(work, "flipped")
    shutil.copytree(clean, data)
    shard = os.path.join(data, "shard-00000.h5")
    hit = flip_chunks(shard, 4)
    out = os.path.join(work, "a")
    r = subprocess.run(base + ["--data", data, "--out", out, "--set", "schedule.max_steps=30",
                               "--set", "log.every_steps=10"], env=ENV, capture_output=True,
                       text=True)
    named = [int(i) for i in re.findall(
        r"^skip %s: record (\d+) \(#\d+\) failed its Fletcher32 checksum: the shard is damaged "
        r"on disk$" % re.escape(shard), r.stderr, re.M)]
    check(r.returncode == 0 and "pretraining done: 30 steps" in r.stdout,
          f"the run reaches its end past the damaged chunks ({r.returncode}: "
          f"{r.stderr.strip()[-300:]})")
    check(named and set(named) <= hit and len(set(named)) == len(named),
          f"{len(named)} records skipped, each named once with the shard file and its record, "
          f"all in the flipped chunks")
    with open(os.path.join(out, "metrics.jsonl")) as f:
        counts = [m["corrupt_records"] for m in map(json.loads, f) if "loss" in m]
    m = re.search(r"data +(\d+) records skipped, (\d+) found failing their shard checksum",
                  r.stdout)
    check(m is not None and int(m.group(2)) == len(named) and int(m.group(1)) >= len(named)
          and counts and 0 < counts[-1] <= len(named) and counts == sorted(counts),
          f"corrupt_records in metrics.jsonl ({counts}) and the summary "
          f"({m.group(0) if m else None}) count them")
    r = subprocess.run([beit, "pack", "--check", data], env=ENV, capture_output=True, text=True)
    listed = [int(i) for i in re.findall(r"^corrupt %s: record (\d+) " % re.escape(shard),
                                         r.stderr, re.M)]
    check(r.returncode == 1 and sorted(listed) == sorted(hit)
          and f"{len(hit)} fail their checksum" in r.stdout,
          f"beit pack --check lists every record of the flipped chunks ({len(listed)} of "
          f"{len(hit)}) and exits 1")

    # b. the shard deleted mid-run
    data = os.path.join(work, "deleted")
    shutil.copytree(clean, data)
    shard = os.path.join(data, "shard-00000.h5")
    out = os.path.join(work, "b")
    cmd = base + ["--data", data, "--out", out, "--set", "checkpoint.every_steps=4",
                  "--set", "checkpoint.keep_last=2", "--set", "log.every_steps=1000"]
    p = subprocess.Popen(cmd + ["--set", "schedule.max_steps=20000"], env=ENV,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while time.time() - t0 < 60 and p.poll() is None:
        if os.path.isdir(out) and any(d.startswith("checkpoint-") for d in os.listdir(out)):
            os.unlink(shard)
            break
        time.sleep(0.002)
    _, err = p.communicate(timeout=120)
    m = re.search(r"error: %s: deleted since the run opened it; training stops so that it does "
                  r"not go on with data that is no longer on disk: restore the dataset, then "
                  r"continue with --resume; the newest complete checkpoint is "
                  r"(\S+/checkpoint-(\d+)) \(--resume" % re.escape(shard), err)
    check(p.returncode == 1 and m is not None and whole(m.group(1)),
          f"a shard deleted mid-run stops the run at its next checkpoint, naming the file and "
          f"the newest complete checkpoint ({p.returncode}: {err.strip()[-400:]})")
    if m:
        step = int(m.group(2))
        before = sorted(os.listdir(out))
        r = subprocess.run(cmd + ["--resume", "--set", f"schedule.max_steps={step + 4}"],
                           env=ENV, capture_output=True, text=True)
        check(r.returncode == 1 and f"{shard}: listed in index.json but missing" in r.stderr
              and sorted(os.listdir(out)) == before,
              f"--resume without it is refused at start naming it ({r.stderr.strip()[-200:]})")
        shutil.copy(os.path.join(clean, "shard-00000.h5"), shard)
        r = subprocess.run(cmd + ["--resume", "--set", f"schedule.max_steps={step + 4}"],
                           env=ENV, capture_output=True, text=True)
        check(r.returncode == 0 and f"at step {step}" in r.stderr
              and whole(os.path.join(out, f"checkpoint-{step + 4}")),
              f"with the shard back, --resume continues from checkpoint-{step} to the end "
              f"({r.stderr.strip()[-200:]})")

    # c. index.json against the shard, checked before anything is written
    index = os.path.join(work, "index", "index.json")
    cases = [
        ("num_records", lambda i: i.update(num_records=i["num_records"] + 1),
         f"{index}: num_records is 10001 but the shards' counts add up to 10000"),
        ("a shard's count", lambda i: (i["shards"][0].update(count=9999),
                                       i.update(num_records=9999)),
         "shard-00000.h5: holds 10000 records, index.json says 9999"),
        ("the task", lambda i: i.update(task="multilabel"),
         "shard-00000.h5: task 'multiclass', index.json says 'multilabel'"),
        ("a missing file", lambda i: i["shards"][0].update(file="shard-00009.h5"),
         "shard-00009.h5: listed in index.json but missing"),
    ]
    for what, edit, want in cases:
        data = os.path.dirname(index)
        shutil.rmtree(data, ignore_errors=True)
        shutil.copytree(clean, data)
        edit_index(data, edit)
        out = os.path.join(work, "c")
        r = subprocess.run(base + ["--data", data, "--out", out, "--set", "schedule.max_steps=2"],
                           env=ENV, capture_output=True, text=True)
        check(r.returncode == 1 and want in r.stderr and not os.path.exists(out),
              f"index.json disagreeing on {what}: refused at start naming it, nothing written "
              f"({r.returncode}: {r.stderr.strip()[-200:]})")
    return summary("test_fault_data_e2e")


if __name__ == "__main__":
    sys.exit(main())
