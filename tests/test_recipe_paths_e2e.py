"""e2e: a recipe works from any folder, and every run records the build that computed it.

Paths inside a recipe are relative to the recipe file, then (recipes written for the repository
root, "configs/models/x.json") to the current directory; paths on the command line (--data, --out,
--set model=...) to the current directory (mim/recipe.h beit_recipe_resolve). Checks, each run 2
steps of the small Fashion-MNIST model on 64 images with a random tokenizer:
1. the shipped pretraining recipe and its model config copied to a temporary configs/ tree, run
   from another folder by the recipe's absolute path, with --data and --out relative to that
   folder: exit 0, the outputs under the current folder, the model resolved beside the recipe;
2. a flat copy whose "model" and "data.train" are relative to it, run without --data;
3. an old-style copy ("model": "configs/models/...") run from the repository root;
4. a missing model path: exit 1 and a message naming the recipe, the key and the paths tried (also
   for data.eval); --set model=PATH (relative to the current folder) replaces it and runs;
5. trainer_state.json and the first metrics.jsonl record carry `beit --version`'s version and
   commit (beside precision and backend).

usage: /usr/bin/python3 tests/test_recipe_paths_e2e.py BEIT_BINARY WORK_DIR
"""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pretrain_fixture  # noqa: E402
from checks import check, fresh_dir, summary  # noqa: E402

ROOT = pretrain_fixture.ROOT
RECIPE = "pretrain_fashion_mnist.json"
MODEL = "beit_small_fashion_mnist.json"
# two steps of 8, fp32 (the same on every CPU), one loader thread
QUICK = ["--set", "batch.size=8", "--set", "schedule.max_steps=2", "--set",
         "schedule.warmup_steps=1", "--set", "log.every_steps=1", "--set", "data.num_workers=1",
         "--set", "checkpoint.every_steps=0", "--precision", "fp32"]
ENV = dict(os.environ, OMP_NUM_THREADS="2")


def small_kit(beit, work):
    """(dataset folder of 64 Fashion-MNIST images, random tokenizer of 7x7 tokens of 512) for the
    small default model, under work."""
    data = pretrain_fixture.pack_heldout(beit, work, n=64)
    tok = os.path.join(work, "tokenizer")
    pretrain_fixture.random_tokenizer(tok, small=True)
    return data, tok


def version(beit):
    """`beit --version` as {"beit": version, "commit": ..., "build": ..., "backend": ...}."""
    r = subprocess.run([beit, "--version"], check=True, capture_output=True, text=True)
    return dict(line.split(None, 1) for line in r.stdout.splitlines() if line.strip())


def pretrain(beit, recipe, out, cwd, *extra):
    return subprocess.run([beit, "pretrain", "--config", recipe, "--out", out] + QUICK
                          + list(extra), cwd=cwd, env=ENV, capture_output=True, text=True)


def state(out):
    """(trainer_state.json of the last checkpoint, first metrics.jsonl record) of a run."""
    ckpts = sorted(d for d in os.listdir(out) if d.startswith("checkpoint-"))
    with open(os.path.join(out, ckpts[-1], "trainer_state.json")) as f:
        s = json.load(f)
    with open(os.path.join(out, "metrics.jsonl")) as f:
        first = json.loads(f.readline())
    return s, first


def check_run(r, what):
    check(r.returncode == 0,
          f"{what}: exit 0" + ("" if r.returncode == 0 else f" ({r.stderr.strip()[-300:]})"))


def main():
    beit, work = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    fresh_dir(work)
    data, tok = small_kit(beit, work)
    elsewhere = os.path.join(work, "elsewhere")
    os.makedirs(elsewhere)
    with open(os.path.join(ROOT, "configs/recipes", RECIPE)) as f:
        shipped = json.load(f)

    # 1. the shipped recipe and model config in a copied configs/ tree, by absolute path
    kit = os.path.join(work, "kit", "configs")
    os.makedirs(os.path.join(kit, "recipes"))
    os.makedirs(os.path.join(kit, "models"))
    recipe = os.path.join(kit, "recipes", RECIPE)
    shutil.copy(os.path.join(ROOT, "configs/recipes", RECIPE), recipe)
    shutil.copy(os.path.join(ROOT, "configs/models", MODEL), os.path.join(kit, "models", MODEL))
    check(shipped["model"] == "../models/" + MODEL,
          f"the shipped recipe names its model relative to itself ({shipped['model']})")
    r = pretrain(beit, recipe, "out1", elsewhere, "--data", os.path.relpath(data, elsewhere),
                 "--tokenizer", tok)
    check_run(r, "copied recipe by absolute path from another folder")
    out1 = os.path.join(elsewhere, "out1")
    check(os.path.isfile(os.path.join(out1, "metrics.jsonl")),
          "--out is relative to the current folder")
    s, first = state(out1) if os.path.isdir(out1) else ({}, {})
    model = s.get("recipe", {}).get("model", "")
    check(os.path.realpath(model) == os.path.realpath(os.path.join(kit, "models", MODEL)),
          f"the model config resolved beside the recipe ({model})")
    check(s.get("recipe", {}).get("data", {}).get("train") == os.path.relpath(data, elsewhere),
          "--data kept as given (relative to the current folder)")

    # 5. the build that computed the run
    v = version(beit)
    check(v.get("beit") and v.get("commit") and v.get("build") and v.get("backend"),
          f"beit --version names version, commit, build and backend ({v})")
    for name, rec in (("trainer_state.json", s), ("first metrics.jsonl record", first)):
        check(rec.get("version") == v.get("beit") and rec.get("commit") == v.get("commit"),
              f"{name} records version {rec.get('version')} and commit {rec.get('commit')}")
        check("precision" in rec and "backend" in rec, f"{name} records precision and backend")

    # 2. a flat copy: model and data.train relative to the recipe, no --data
    flat = os.path.join(work, "flat")
    os.makedirs(flat)
    shutil.copy(os.path.join(ROOT, "configs/models", MODEL), os.path.join(flat, "model.json"))
    cfg = dict(shipped, model="model.json")
    cfg["data"] = dict(shipped["data"], train=os.path.relpath(data, flat))
    with open(os.path.join(flat, "recipe.json"), "w") as f:
        json.dump(cfg, f)
    r = pretrain(beit, os.path.join(flat, "recipe.json"), "out2", elsewhere, "--tokenizer", tok)
    check_run(r, "model and data.train relative to the recipe, no --data")

    # 3. an old-style recipe (paths from the repository root), run from the root
    old = os.path.join(work, "old")
    os.makedirs(old)
    with open(os.path.join(old, "recipe.json"), "w") as f:
        json.dump(dict(shipped, model="configs/models/" + MODEL), f)
    r = pretrain(beit, os.path.join(old, "recipe.json"), os.path.join(work, "out3"), ROOT,
                 "--data", data, "--tokenizer", tok)
    check_run(r, "old-style recipe (configs/models/...) from the repository root")

    # 4. a missing path names the recipe, the key and the paths tried
    bad = os.path.join(work, "bad")
    os.makedirs(bad)
    with open(os.path.join(bad, "recipe.json"), "w") as f:
        json.dump(dict(shipped, model="models/missing.json"), f)
    r = pretrain(beit, os.path.join(bad, "recipe.json"), "out4", elsewhere, "--data", data,
                 "--tokenizer", tok)
    want = [os.path.join(bad, "recipe.json"), "key 'model'", "'models/missing.json'",
            os.path.join(bad, "models/missing.json")]
    check(r.returncode == 1 and all(w in r.stderr for w in want),
          f"missing model: exit 1 naming recipe, key and paths ({r.stderr.strip()[-300:]})")
    check(not os.path.exists(os.path.join(elsewhere, "out4")), "nothing written")
    with open(os.path.join(bad, "no_eval.json"), "w") as f:
        json.dump(dict(shipped, model=os.path.join(kit, "models", MODEL),
                       data=dict(shipped["data"], eval="heldout-nowhere")), f)
    r = pretrain(beit, os.path.join(bad, "no_eval.json"), "out4", elsewhere, "--data", data,
                 "--tokenizer", tok)
    check(r.returncode == 1 and "no_eval.json: key 'data.eval'" in r.stderr
          and os.path.join(bad, "heldout-nowhere") in r.stderr,
          f"missing data.eval: exit 1 naming recipe, key and path ({r.stderr.strip()[-300:]})")
    r = pretrain(beit, os.path.join(bad, "recipe.json"), "out5", elsewhere, "--data", data,
                 "--tokenizer", tok, "--set",
                 "model=" + os.path.relpath(os.path.join(flat, "model.json"), elsewhere))
    check_run(r, "--set model=PATH relative to the current folder replaces a missing one")

    return summary("test_recipe_paths_e2e")


if __name__ == "__main__":
    sys.exit(main())
