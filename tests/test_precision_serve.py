"""e2e: `beit predict` and `beit serve` in bf16 (ctest label e2e).

  /usr/bin/python3 tests/test_precision_serve.py BEIT_BINARY FIXTURE_DIR

FIXTURE_DIR is written by tests/test_serve_fixtures.py (classifier folders, images, float64
PyTorch probabilities); the helpers are test_serve_e2e.py's. Checks:
1. predict of one model (single- and multi-label) with --precision fp32 and bf16: probabilities
   within 2e-2 absolute of each other and of the PyTorch reference, and not identical (bf16 ran);
   the first stderr line names the precision and the backend;
2. a server with 3 workers in bf16 (sessions sharing session 0's weights and its one bfloat16
   copy) says bf16 in /metadata and answers concurrent requests as predict --precision bf16 does;
3. with ONEDNN_MAX_CPU_ISA=AVX2 (no bf16): predict's default (auto) gives the fp32 results and
   --precision bf16 exits 1 naming bf16 and the ISA.
Where this machine has no bf16 matrix products, 1 and 2 are skipped with a message.
"""
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import check, summary  # noqa: E402
import test_serve_e2e as se  # noqa: E402

TOL = 2e-2
NAMES = ["a.png", "c.png", "d.png", "e.png"]  # PNGs: exact decoding, PyTorch reference


def probs(beit, model, paths, precision):
    lines, _ = se.predict(beit, model, "--with-input", *paths, precision=precision)
    return {os.path.basename(x.get("input", "")): x.get("probs") for x in lines}


def first_line(beit, args, env=None):
    r = subprocess.run([beit, "predict", *args], capture_output=True, text=True, env=env,
                       timeout=120)
    return r, (r.stderr.splitlines() or [""])[0]


def backend_line(beit, model, env=None):
    r = subprocess.run([beit, "info", model], capture_output=True, text=True, env=env,
                       check=True)
    return [x for x in r.stdout.splitlines() if x.startswith("backend")][0].split(None, 1)[1]


def test_predict(beit, fx):
    images = [os.path.join(fx, "images", n) for n in NAMES]
    expected = json.load(open(os.path.join(fx, "expected.json")))
    out = {}
    for model in ("fridge", "fridge_multilabel"):
        m = os.path.join(fx, model)
        f32, b16 = probs(beit, m, images, "fp32"), probs(beit, m, images, "bf16")
        out[model] = b16
        check(sorted(f32) == sorted(b16) == sorted(NAMES), f"{model}: every image scored")
        worst = max((abs(x - y) for n in NAMES for x, y in zip(f32[n], b16[n])), default=1)
        ref = max((abs(x - y) for n in NAMES for x, y in zip(expected[model][n], b16[n])),
                  default=1)
        print(f"{model}: bf16 vs fp32 max |diff| {worst:.2e}, vs PyTorch float64 {ref:.2e}")
        check(worst <= TOL and ref <= TOL, f"{model}: bf16 within {TOL} of fp32 ({worst:.2e}) "
                 f"and of PyTorch ({ref:.2e})")
        check(f32 != b16, f"{model}: bf16 computed differently from fp32")
    r, line = first_line(beit, ["--model", os.path.join(fx, "fridge"), "--precision", "bf16",
                                images[0]])
    backend = backend_line(beit, os.path.join(fx, "fridge"))
    check(r.returncode == 0 and line.startswith("beit predict: precision bf16 (requested bf16)")
             and backend in line, f"predict's first line names the precision and backend: {line}")
    return out


def test_server(beit, fx, want):
    data = {n: se.b64(os.path.join(fx, "images", n)) for n in NAMES}
    srv = se.Server(beit, os.path.join(fx, "fridge"), "--workers", "3", "--max-batch", "4",
                    precision="bf16")
    try:
        code, body = srv.request("GET", "/metadata")
        check(code == 200 and body.get("precision") == "bf16" and body.get("workers") == 3,
                 f"/metadata: bf16, 3 workers: {body}")
        for i, r in enumerate(se.concurrent_scores(srv, data, NAMES, 12)):
            check(se.scored_as(r, want), f"bf16 server, 3 workers, request {i} equals predict "
                  f"bf16: {r}")
    finally:
        rc, log = srv.stop()
    check(rc == 0, f"bf16 server exit {rc}")
    check(log.startswith("beit serve: precision bf16"), f"serve's first line: {log[:200]}")


def test_no_bf16(beit, fx):
    env = dict(os.environ, ONEDNN_MAX_CPU_ISA="AVX2")
    model = os.path.join(fx, "fridge")
    backend = backend_line(beit, model, env)
    isa = re.search(r"ISA ([^,;)]+)", backend)
    isa = isa.group(1) if isa else "none"
    images = [os.path.join(fx, "images", n) for n in NAMES]
    r, line = first_line(beit, ["--model", model, *images], env)
    check(r.returncode == 0 and line.startswith("beit predict: precision fp32 (requested auto)"),
             f"AVX2: predict's default runs fp32 and says so: {line}")
    f32 = probs(beit, model, images, "fp32")
    got = {os.path.basename(p): json.loads(x)["probs"]
           for p, x in zip(images, r.stdout.splitlines())}
    check(got == f32, "AVX2: the default gives the fp32 results")
    r, _ = first_line(beit, ["--model", model, "--precision", "bf16", images[0]], env)
    check(r.returncode == 1 and "bf16" in r.stderr and isa in r.stderr,
             f"AVX2: --precision bf16 exits 1 naming bf16 and the ISA {isa}: {r.stderr[-300:]}")


def main():
    beit, fx = sys.argv[1], sys.argv[2]
    r = subprocess.run([beit, "info", os.path.join(fx, "fridge")], capture_output=True,
                       text=True, check=True)
    if "bf16 available" in r.stdout:
        want = test_predict(beit, fx)
        test_server(beit, fx, want["fridge"])
    else:
        print("skip bf16: no bf16 matrix products here")
    test_no_bf16(beit, fx)
    return summary("test_precision_serve")


if __name__ == "__main__":
    sys.exit(main())
