"""beit plot end to end, the pictures decoded with PIL:
1. two runs (a pretraining-like one whose loss falls past a decade, with held-out records, and a
   fine-tuning-like one): a 960 px wide PNG of the documented height (include/beit/plot.h), every
   panel (loss, lr, acc, images/s) holding both runs' colours and not blank; one run without -o
   draws RUN/curves.png; --metrics grad_norm,loss draws two panels;
2. bad input gives the documented message: an unknown --metrics name (exit 2, naming it and the
   runs' fields), a malformed line (skipped with a warning naming file and line, exit 0), a
   missing metrics.jsonl and a run without records (exit 1 naming the file), several runs
   without -o (exit 2);
3. --table on a hand-written table.md (bf16 and fp32, '-' cells): 808x440, both bar colours in
   each precision's panel; a bad cell named by file and line (exit 1);
4. a 6-step pretraining of the tiny fixture with checkpoints and held-out evaluations every 2
   steps draws OUT/curves.png itself (4 panels, dots in the accuracy panel).
Exit 77 (skipped) when this build has no cairo."""
import json
import math
import os
import shutil
import subprocess
import sys

from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pretrain_fixture  # noqa: E402

ENV = dict(os.environ, OMP_NUM_THREADS="2")
FAILED = []

# include/beit/plot.h geometry and plot/draw_cairo.c colours
W, TITLE, ROW, HEAD, PLOT, GAP, BOTTOM, LEFT, RIGHT = 960, 40, 20, 24, 150, 14, 50, 76, 24
TAB10 = [(31, 119, 180), (255, 127, 14)]
BAR_RGB = [(31, 119, 180), (217, 140, 64)]


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        FAILED.append(what)


def height(nruns, npanels):
    return TITLE + (nruns + 1) // 2 * ROW + npanels * (HEAD + PLOT + GAP) - GAP + BOTTOM


def panel_box(nruns, k):
    """The inside of panel k's plot area (left, top, right, bottom)."""
    top = TITLE + (nruns + 1) // 2 * ROW + HEAD + k * (HEAD + PLOT + GAP)
    return (LEFT + 2, top + 2, W - RIGHT - 2, top + PLOT - 2)


def pixels_near(img, box, rgb, tol=30):
    """Pixels of img within box whose channels are all within tol of rgb."""
    crop = img.crop(box)
    return sum(n for n, c in crop.getcolors(crop.width * crop.height)
               if max(abs(a - b) for a, b in zip(c, rgb)) <= tol)


def non_white(img, box):
    crop = img.crop(box)
    return sum(n for n, c in crop.getcolors(crop.width * crop.height) if min(c) < 200)


def beit_plot(beit, *args):
    return subprocess.run([beit, "plot", *args], env=ENV, capture_output=True, text=True)


def write_metrics(folder, records):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "metrics.jsonl"), "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")


def pretrain_like(steps=300):
    recs = []
    for s in range(10, steps + 1, 10):
        t = s / steps
        lr = 1e-3 * min(1, s / 50) * (0.5 + 0.5 * math.cos(math.pi * t))
        recs.append({"loss": 6 * math.exp(-3 * t), "mlm_acc": 0.02 + 0.6 * t, "lr": lr,
                     "grad_norm": 3 - 2 * t, "images_per_s": 100 + 10 * math.sin(s),
                     "step": s})
        if s % 100 == 0:
            recs.append({"eval_loss": 6.5 * math.exp(-3 * t), "eval_mlm_acc": 0.5 * t,
                         "eval_tokens": 640, "step": s})
    return recs


def finetune_like(steps=200):
    recs = []
    for s in range(10, steps + 1, 10):
        t = s / steps
        recs.append({"loss": 2 - 1.5 * t, "acc": 0.3 + 0.5 * t, "lr": 2e-3 * (1 - t),
                     "images_per_s": 180 + 5 * math.cos(s), "step": s, "epoch": t})
        if s % 50 == 0:
            recs.append({"eval_loss": 1.9 - 1.4 * t, "eval_top1": 0.3 + 0.5 * t, "step": s})
    return recs


def check_panels(img, nruns, npanels, what):
    for k in range(npanels):
        box = panel_box(nruns, k)
        counts = [pixels_near(img, box, TAB10[r]) for r in range(nruns)]
        ink = non_white(img, box)
        area = (box[2] - box[0]) * (box[3] - box[1])
        check(all(c >= 60 for c in counts) and ink > area * 0.005,
              f"{what}: panel {k} holds every run's colour ({counts} px) and is not blank "
              f"({ink} of {area} px inked)")


def curves(beit, work):
    a, b = os.path.join(work, "pre"), os.path.join(work, "ft")
    write_metrics(a, pretrain_like())
    write_metrics(b, finetune_like())
    png = os.path.join(work, "both.png")
    r = beit_plot(beit, a, b, "-o", png)
    if r.returncode == 1 and "unavailable" in r.stderr:
        print(f"skipped: {r.stderr.strip()}")
        sys.exit(77)
    check(r.returncode == 0 and f"wrote {png} (960x{height(2, 4)}" in r.stdout
          and "panels loss,lr,acc,images_per_s" in r.stdout,
          f"two runs: exit 0, 4 panels ({r.returncode}: {r.stdout.strip()} {r.stderr.strip()})")
    img = Image.open(png).convert("RGB")
    check(img.size == (W, height(2, 4)), f"two runs: {img.size} = (960, {height(2, 4)})")
    check_panels(img, 2, 4, "two runs")
    # the legend: a swatch of each colour above the first panel
    legend = (LEFT, TITLE, W - RIGHT, TITLE + ROW)
    check(all(pixels_near(img, legend, TAB10[i]) > 20 for i in range(2)),
          "two runs: a legend swatch per run")
    r = beit_plot(beit, a)
    own = os.path.join(a, "curves.png")
    check(r.returncode == 0 and os.path.exists(own) and
          Image.open(own).size == (W, height(1, 4)),
          f"one run without -o: RUN/curves.png, 960x{height(1, 4)} ({r.stderr.strip()})")
    check_panels(Image.open(own).convert("RGB"), 1, 4, "one run")
    png = os.path.join(work, "chosen.png")
    r = beit_plot(beit, a, "-o", png, "--metrics", "grad_norm,loss")
    check(r.returncode == 0 and "panels grad_norm,loss" in r.stdout and
          Image.open(png).size == (W, height(1, 2)),
          f"--metrics grad_norm,loss: 2 panels ({r.stdout.strip()} {r.stderr.strip()})")
    check_panels(Image.open(png).convert("RGB"), 1, 2, "--metrics")
    return a, b


def bad_input(beit, work, a, b):
    r = beit_plot(beit, a, b, "-o", os.path.join(work, "x.png"), "--metrics", "loss,top5")
    check(r.returncode == 2 and "panel 'top5': no run has data for it" in r.stderr
          and "eval_top1" in r.stderr,
          f"unknown --metrics name: exit 2 naming it and the fields ({r.stderr.strip()})")
    bad = os.path.join(work, "malformed")
    write_metrics(bad, finetune_like(50))
    path = os.path.join(bad, "metrics.jsonl")
    with open(path) as f:
        lines = f.readlines()
    lines.insert(2, '{"loss": 1.5, "step": \n')
    with open(path, "w") as f:
        f.writelines(lines)
    r = beit_plot(beit, bad)
    check(r.returncode == 0 and f"warning: {path}:3: not JSON; line skipped" in r.stderr
          and os.path.exists(os.path.join(bad, "curves.png")),
          f"a malformed line: skipped with a warning naming file and line ({r.stderr.strip()})")
    empty = os.path.join(work, "empty")
    os.makedirs(empty)
    r = beit_plot(beit, empty)
    check(r.returncode == 1 and f"{empty}/metrics.jsonl: cannot open: No such file" in r.stderr,
          f"no metrics.jsonl: exit 1 naming it ({r.stderr.strip()})")
    with open(os.path.join(empty, "metrics.jsonl"), "w") as f:
        f.write("garbage\n")
    r = beit_plot(beit, empty)
    check(r.returncode == 1 and f"{empty}/metrics.jsonl: no records to plot" in r.stderr,
          f"a run without records: exit 1 naming the file ({r.stderr.strip()})")
    check(not os.path.exists(os.path.join(empty, "curves.png")), "nothing drawn for it")
    r = beit_plot(beit, a, b)
    check(r.returncode == 2 and "-o FILE is required for several runs" in r.stderr,
          f"several runs without -o: exit 2 ({r.stderr.strip()})")


TABLE = ("| labels used | steps x 64 images | pretrained bf16 top-1 % | random init bf16 top-1 % "
         "| pretrained fp32 top-1 % | random init fp32 top-1 % |\n") + """|---|---|---|---|---|---|
| 1% (600) | 200 | 71.17 | 49.51 | - | - |
| 10% (6000) | 500 | 78.27 | 59.35 | 77.90 | 58.80 |
| 100% (60000) | 1500 | 82.57 | 70.87 | 83.22 | 70.07 |

| precision | MIM pretraining | total |
|---|---|---|
| bf16 | 19 min 44 s | 70 min 41 s |
"""


def table(beit, work):
    md = os.path.join(work, "table.md")
    with open(md, "w") as f:
        f.write(TABLE)
    r = beit_plot(beit, "--table", md)
    png = os.path.join(work, "table.png")
    check(r.returncode == 0 and os.path.exists(png) and "[bf16,fp32]" in r.stdout,
          f"--table: table.png beside table.md ({r.stdout.strip()} {r.stderr.strip()})")
    img = Image.open(png).convert("RGB")
    check(img.size == (808, 440), f"--table: {img.size} = (808, 440): 2 panels of 3 groups")
    for p, name in enumerate(["bf16", "fp32"]):  # plot/draw_cairo.c: panels 392 px from x 24
        box = (24 + p * 392 + 56, 96, 24 + p * 392 + 56 + 312, 356)
        counts = [pixels_near(img, box, rgb, 10) for rgb in BAR_RGB]
        check(all(c > 2000 for c in counts),
              f"--table: {name} panel has pretrained and random bars ({counts} px)")
    bad = os.path.join(work, "bad.md")
    with open(bad, "w") as f:
        f.write(TABLE.replace("59.35", "n/a"))
    r = beit_plot(beit, "--table", bad, "-o", os.path.join(work, "bad.png"))
    check(r.returncode == 1 and f"{bad}:4: column 'random init bf16 top-1 %': 'n/a'" in r.stderr,
          f"--table with a bad cell: exit 1 naming file, line and column ({r.stderr.strip()})")


def training(beit, work):
    data, tok, model = pretrain_fixture.make(beit, work)
    out = os.path.join(work, "run")
    r = subprocess.run(
        [beit, "pretrain", "--config", pretrain_fixture.RECIPE, "--data", data, "--eval-data",
         data, "--tokenizer", tok, "--set", f"model={model}", "--set", "batch.size=8",
         "--set", "schedule.warmup_steps=1", "--set", "log.every_steps=1",
         "--set", "checkpoint.every_steps=2", "--set", "eval.every_steps=2",
         "--set", "eval.batches=2", "--set", "masking.num_masking_patches=4",
         "--set", "masking.min_num_patches=2", "--set", "data.num_workers=1",
         "--set", "schedule.max_steps=6", "--precision", "fp32", "--out", out],
        env=ENV, capture_output=True, text=True)
    png = os.path.join(out, "curves.png")
    check(r.returncode == 0 and os.path.exists(png) and "not drawn" not in r.stderr,
          f"6 pretraining steps draw OUT/curves.png ({r.returncode}: {r.stderr.strip()[-300:]})")
    with open(os.path.join(out, "metrics.jsonl")) as f:
        recs = [json.loads(line) for line in f]
    evals = [m["step"] for m in recs if "eval_mlm_acc" in m]
    check(evals == [2, 4, 6], f"pretraining logs its held-out evaluations ({evals})")
    if os.path.exists(png):
        img = Image.open(png).convert("RGB")
        check(img.size == (W, height(1, 4)), f"pretraining's curves.png: {img.size}")
        check_panels(img, 1, 4, "pretraining's curves.png")


def main():
    beit, work = sys.argv[1], sys.argv[2]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    a, b = curves(beit, work)
    bad_input(beit, work, a, b)
    table(beit, work)
    training(beit, os.path.join(work, "training"))
    print(f"test_plot_e2e: {len(FAILED)} failed")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
