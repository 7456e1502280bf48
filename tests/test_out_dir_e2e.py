"""e2e: the training commands' --out folder (mim/trainer.h beit_trainer_prepare_out).

1. a folder holding only unrelated files is fine: pretraining runs in it;
2. a second run into a folder that holds a run, without --resume or --overwrite, is refused
   before anything is written (exit 2, a message naming the folder, --resume and --overwrite;
   metrics.jsonl and the folder's listing unchanged); the same for finetune and tokenizer train,
   from a folder with only a checkpoint-* folder or only metrics.jsonl;
3. --resume and --overwrite together are a usage error (exit 2) for the three commands;
4. --resume continues the run (steps 5 and 6 after checkpoint-4), and its summary counts the 2
   steps it ran and the step reached;
5. --overwrite starts again at step 0: metrics.jsonl holds only the new run, the previous run's
   files (metrics.jsonl, checkpoints) are in OUT/previous-<time>/, unrelated files stay, and a
   later --resume picks the new run's checkpoint, not the old run's newer one (the run being
   complete, it says there is nothing to run rather than print the loss of no steps).
A few steps of the tiny pretraining fixture; about 5 s on 2 cores."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pretrain_fixture  # noqa: E402
from checks import check, summary  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, OMP_NUM_THREADS="2")


def records(out):
    """The training records' steps of out/metrics.jsonl, in file order."""
    with open(os.path.join(out, "metrics.jsonl")) as f:
        return [int(m["step"]) for m in map(json.loads, f) if "loss" in m]


def listing(out):
    return sorted(os.listdir(out))


def refused(r, out, what):
    """Exit 2 and a message naming the folder and both options."""
    ok = (r.returncode == 2 and out in r.stderr and "--resume" in r.stderr
          and "--overwrite" in r.stderr)
    check(ok, f"{what}: refused with exit 2 and a message naming the folder, --resume and "
          f"--overwrite ({r.returncode}: {r.stderr.strip()[-300:]})")


def refused_both_ways(cmd, out, what, holding, flags):
    """cmd (`what`, into out, which holds `holding` and nothing else, described by the text) is
    refused and writes nothing; with flags, --resume and --overwrite both, a usage error."""
    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True)
    name, text = holding
    refused(r, out, f"{what} into a folder with {text}")
    check(listing(out) == [name], f"the refused {what} wrote nothing")
    r = subprocess.run(cmd + flags, env=ENV, capture_output=True, text=True)
    check(r.returncode == 2 and "exclude" in r.stderr, f"{what} {' '.join(flags)}: usage error")


def main():
    beit, work = sys.argv[1], sys.argv[2]
    data, model, base = pretrain_fixture.tiny_pretrain(beit, work)
    base += ["--data", data, "--set", "log.every_steps=1", "--set", "checkpoint.every_steps=2",
             "--set", "checkpoint.keep_last=0"]

    def run(out, steps, *extra):
        return subprocess.run(base + ["--out", out, "--set", f"schedule.max_steps={steps}"]
                              + list(extra), env=ENV, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)

    # 1. an existing folder with unrelated files only
    out = os.path.join(work, "run")
    os.makedirs(out)
    with open(os.path.join(out, "notes.txt"), "w") as f:
        f.write("not a run\n")
    r = run(out, 4)
    check(r.returncode == 0 and records(out) == [1, 2, 3, 4],
          f"a folder with unrelated files only: the run starts ({r.stderr.strip()[-200:]})")

    # 2. a second run without --resume or --overwrite
    with open(os.path.join(out, "metrics.jsonl"), "rb") as f:
        before_metrics = f.read()
    before = listing(out)
    r = run(out, 4)
    refused(r, out, "pretrain into a folder holding a run")
    with open(os.path.join(out, "metrics.jsonl"), "rb") as f:
        check(f.read() == before_metrics and listing(out) == before,
              "the refused run wrote nothing (metrics.jsonl and the folder's listing unchanged)")

    # 3. --resume with --overwrite
    r = run(out, 4, "--resume", "--overwrite")
    check(r.returncode == 2 and "--resume" in r.stderr and "--overwrite" in r.stderr,
          f"pretrain --resume --overwrite: usage error ({r.returncode}: {r.stderr.strip()[-200:]})")

    # 4. --resume continues
    r = run(out, 6, "--resume")
    check(r.returncode == 0 and "checkpoint-4 at step 4" in r.stderr
          and records(out) == [1, 2, 3, 4, 5, 6],
          f"--resume continues from checkpoint-4 (steps {records(out)}; "
          f"{r.stderr.strip()[-200:]})")
    check("pretraining done: 2 steps in " in r.stdout and "(resumed; now at step 6)" in r.stdout,
          f"the resumed run's summary counts its own steps and the step reached ({r.stdout!r})")

    # 5. --overwrite starts again
    r = run(out, 4, "--overwrite")
    prev = [d for d in listing(out) if d.startswith("previous-")]
    check(r.returncode == 0 and records(out) == [1, 2, 3, 4],
          f"--overwrite: a run from step 0, metrics.jsonl holds only it (steps {records(out)}; "
          f"{r.stderr.strip()[-200:]})")
    check("--overwrite: moved the previous run" in r.stderr, "--overwrite says where the "
          "previous run went")
    old = os.path.join(out, prev[0]) if len(prev) == 1 else ""
    check(old and records(old) == [1, 2, 3, 4, 5, 6] and
          os.path.isdir(os.path.join(old, "checkpoint-6")),
          f"the previous run (metrics.jsonl, checkpoints) is in OUT/previous-<time>/ ({prev})")
    check(not os.path.exists(os.path.join(out, "checkpoint-6"))
          and os.path.isfile(os.path.join(out, "notes.txt")),
          "no old checkpoint left in OUT; unrelated files stay")
    r = run(out, 4, "--resume")
    check(r.returncode == 0 and "checkpoint-4 at step 4" in r.stderr
          and records(out) == [1, 2, 3, 4],
          f"a later --resume picks the new run's checkpoint-4, not the old checkpoint-6 "
          f"({r.stderr.strip()[-200:]})")
    check("nothing to run, the run was already complete at step 4" in r.stdout
          and "nan" not in r.stdout,
          f"--resume of a complete run says so, with no training loss of no steps ({r.stdout!r})")
    r = run(out, 4, "--overwrite")
    prev2 = [d for d in listing(out) if d.startswith("previous-")]
    check(r.returncode == 0 and len(prev2) == 2 and records(out) == [1, 2, 3, 4],
          f"a second --overwrite keeps the first previous run and adds another ({prev2})")

    # 2 and 3 for finetune and tokenizer train (refused before any training)
    ft = os.path.join(work, "ft")
    os.makedirs(os.path.join(ft, "checkpoint-3"))
    ft_cmd = [beit, "finetune", "--config",
              os.path.join(ROOT, "configs/recipes/finetune_fashion_mnist.json"), "--data", data,
              "--set", f"model={model}", "--out", ft]
    refused_both_ways(ft_cmd, ft, "finetune", ("checkpoint-3", "a checkpoint-* folder"),
                      ["--resume", "--overwrite"])
    r = subprocess.run(ft_cmd + ["--overwrite", "--init", os.path.join(ft, "checkpoint-3")],
                       env=ENV, capture_output=True, text=True)
    check(r.returncode == 2 and "is inside --out" in r.stderr and
          listing(ft) == ["checkpoint-3"],
          "finetune --overwrite with --init inside --out: refused before moving anything")
    tk = os.path.join(work, "tok-run")
    os.makedirs(tk)
    with open(os.path.join(tk, "metrics.jsonl"), "w") as f:
        f.write('{"step": 1, "loss": 1}\n')
    tiny = os.path.join(work, "tiny_tokenizer.json")
    with open(tiny, "w") as f:
        json.dump({"model": {"input_channels": 1, "n_hid": 8, "group_count": 2,
                             "n_blk_per_group": 1, "vocab_size": 64, "downsample": 4,
                             "n_init": 16, "image_size": 28, "decoder": True,
                             "recon_loss": "mse"},
                   "schedule": {"max_steps": 2}, "batch": {"size": 8}}, f)
    tk_cmd = [beit, "tokenizer", "train", "--config", tiny, "--data", data, "--out", tk]
    refused_both_ways(tk_cmd, tk, "tokenizer train", ("metrics.jsonl", "metrics.jsonl"),
                      ["--overwrite", "--resume"])
    return summary("test_out_dir_e2e")


if __name__ == "__main__":
    sys.exit(main())
