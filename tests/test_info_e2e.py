"""e2e: `beit info --json` says what `beit info` says, and `beit help CMD` is `beit CMD --help`.

1. For the small Fashion-MNIST config and BEiT-base (whose 91,965,776 parameters the README
   quotes), the JSON object parses and its values agree with the text output: parameter groups,
   FLOPs, input grid, architecture, activation MiB, precision, version; the documented keys
   are all there.
2. Without a model, both forms give the build/backend facts only (no model keys).
3. Errors: --json on a missing config prints nothing on stdout and exits 1; --set without a model
   is a usage error (exit 2).
4. `beit help CMD` prints byte for byte what `beit CMD --help` prints, for every command;
   `beit help` alone prints the generic usage; an unknown command is exit 2 naming it and listing
   the commands.

usage: /usr/bin/python3 tests/test_info_e2e.py BEIT_BINARY
"""
import json
import os
import platform
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = os.path.join(ROOT, "configs", "models", "beit_small_fashion_mnist.json")
BASE = os.path.join(ROOT, "configs", "models", "beit_base_patch16_224.json")
COMMANDS = ["pack", "tokenizer", "pretrain", "info", "run", "finetune", "eval", "probe", "export",
            "predict", "serve", "plot"]
TOP_KEYS = {"version", "commit", "build", "runtime", "backend", "isa", "precision"}
MODEL_KEYS = {"model", "parameters", "flops_per_image", "memory"}

failures = 0


def check(label, ok, detail=""):
    global failures
    print(f"{'ok' if ok else 'FAIL':4} {label}{'' if ok else ': ' + detail}")
    failures += not ok


def run(args, env=None):
    return subprocess.run([BEIT] + args, capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})))


LABELS = ["config", "architecture", "input", "encoder", "positions", "pooling", "head",
          "parameters", "embeddings", "blocks", "rel. pos. bias", "heads/norms", "forward FLOPs",
          "training FLOPs", "activations", "runtime", "backend", "precision", "bf16 memory",
          "version", "build"]


def text_fields(out):
    """The lines of `beit info` as {label: value}; a line with no known label is an error."""
    fields = {}
    for line in out.splitlines():
        label = next((x for x in LABELS if line.strip().startswith(x + " ")), None)
        if label is None:
            check(f"known label in {line[:30]!r}", False, line)
        else:
            fields[label] = line.strip()[len(label):].strip()
    return fields


def compare_model(name, path, want_params=None, env=None):
    t = run(["info", path], env)
    j = run(["info", "--json", path], env)
    check(f"{name}: both exit 0", t.returncode == 0 and j.returncode == 0, t.stderr + j.stderr)
    if t.returncode or j.returncode:
        return
    info = json.loads(j.stdout)
    f = text_fields(t.stdout)
    check(f"{name}: every documented key", TOP_KEYS | MODEL_KEYS <= set(info),
          str(sorted(info)))
    p = info["parameters"]
    check(f"{name}: parameters total = text", str(p["total"]) == f["parameters"],
          f"{p['total']} vs {f['parameters']}")
    if want_params is not None:
        check(f"{name}: parameters total = {want_params}", p["total"] == want_params,
              str(p["total"]))
    check(f"{name}: groups sum to the total",
          p["embeddings"] + p["blocks"] + p["relative_position_bias"] + p["heads_norms"]
          == p["total"], str(p))
    check(f"{name}: embeddings = text", str(p["embeddings"]) == f["embeddings"], f["embeddings"])
    m = info["model"]
    check(f"{name}: blocks = text",
          f["blocks"] == f"{p['blocks']} ({m['num_hidden_layers']} x {p['per_block']})",
          f["blocks"])
    check(f"{name}: rel. pos. bias = text",
          str(p["relative_position_bias"]) == f["rel. pos. bias"], f["rel. pos. bias"])
    check(f"{name}: heads/norms = text", str(p["heads_norms"]) == f["heads/norms"],
          f["heads/norms"])
    gflop = float(f["forward FLOPs"].split()[0])
    check(f"{name}: forward FLOPs = text", abs(info["flops_per_image"]["forward"] / 1e9 - gflop)
          <= 5e-4, f"{info['flops_per_image']['forward']} vs {gflop} GFLOP")
    check(f"{name}: training FLOPs = 3 x forward",
          info["flops_per_image"]["training"] == 3 * info["flops_per_image"]["forward"])
    check(f"{name}: architecture = text", f["architecture"].startswith(m["architecture"]),
          f["architecture"])
    check(f"{name}: config path = text", m["config"] == f["config"], m["config"])
    gh, gw = m["patches"]
    check(f"{name}: input = text", f["input"] == f"{m['num_channels']} x {m['image_size']} x "
          f"{m['image_size']}, patch {m['patch_size']} -> {gh} x {gw} patches", f["input"])
    mem = info["memory"]["fp32"]
    act = re.match(r"([0-9.]+) MiB planned for batch (\d+) \(training\), ([0-9.]+) MiB",
                   f["activations"])
    check(f"{name}: activations = text", act is not None
          and f"{mem['training_activation_bytes'] / 1048576:.1f}" == act.group(1)
          and int(act.group(2)) == info["memory"]["batch"]
          and f"{mem['inference_activation_bytes'] / 1048576:.1f}" == act.group(3),
          f["activations"])
    check(f"{name}: bf16 memory present iff bf16 is available",
          (info["memory"]["bf16"] is not None) == info["precision"]["bf16_available"]
          == ("bf16 memory" in f))
    compare_machine(name, info, f)


def compare_machine(name, info, f):
    check(f"{name}: backend = text", info["backend"] == f["backend"], info["backend"])
    if platform.machine() == "x86_64":  # every command treats float32 subnormals as zero
        check(f"{name}: subnormals flushed", info["backend"].endswith(", subnormals flushed"),
              info["backend"])
    check(f"{name}: precision = text", f["precision"].startswith(info["precision"]["auto"] + " "),
          f["precision"])
    check(f"{name}: version = text",
          f["version"] == f"beit {info['version']}, commit {info['commit']}", f["version"])
    check(f"{name}: OpenMP threads = text",
          f["runtime"].startswith(f"{info['runtime']['omp_threads']} OpenMP threads"),
          f["runtime"])
    v = run(["--version"]).stdout.splitlines()
    check(f"{name}: version = beit --version", v[0] == f"beit {info['version']}"
          and v[1].split()[-1] == info["commit"], str(v[:2]))


def main():
    compare_model("small", SMALL)
    compare_model("base", BASE, want_params=91965776)
    # oneDNN limited to AVX2 (no bf16 products): bf16 unavailable, memory.bf16 null
    compare_model("small under AVX2", SMALL, env={"ONEDNN_MAX_CPU_ISA": "AVX2"})
    j = json.loads(run(["info", "--json", SMALL], {"ONEDNN_MAX_CPU_ISA": "AVX2"}).stdout)
    check("under AVX2: fp32, no bf16", j["precision"] == {"auto": "fp32", "bf16_available": False}
          and j["memory"]["bf16"] is None, str(j["precision"]))

    t, j = run(["info"]), run(["info", "--json"])
    check("no model: both exit 0", t.returncode == 0 and j.returncode == 0, t.stderr + j.stderr)
    info = json.loads(j.stdout)
    check("no model: build facts only", set(info) == TOP_KEYS, str(sorted(info)))
    f = text_fields(t.stdout)
    check("no model: no model lines in the text", "config" not in f and "parameters" not in f,
          t.stdout)
    compare_machine("no model", info, f)

    r = run(["info", "--json", "/nonexistent/config.json"])
    check("missing config: exit 1, nothing on stdout, the path on stderr",
          r.returncode == 1 and r.stdout == "" and "/nonexistent/config.json" in r.stderr,
          f"{r.returncode} {r.stdout!r} {r.stderr!r}")
    r = run(["info", "--set", "image_size=32"])
    check("--set without a model: exit 2", r.returncode == 2, f"{r.returncode} {r.stderr!r}")

    for cmd in COMMANDS:
        h, o = run(["help", cmd]), run([cmd, "--help"])
        check(f"help {cmd} = {cmd} --help", h.returncode == o.returncode == 0
              and h.stdout == o.stdout and h.stdout.startswith("usage: beit " + cmd),
              h.stdout[:80] + " | " + o.stdout[:80])
    h, o = run(["help"]), run(["--help"])
    check("help alone = --help", h.returncode == 0 and h.stdout == o.stdout
          and "beit help <command>" in h.stdout)
    r = run(["help", "nosuchcmd"])
    check("help of an unknown command: exit 2, named, commands listed",
          r.returncode == 2 and "unknown command 'nosuchcmd'" in r.stderr
          and all(c in r.stderr for c in COMMANDS) and r.stdout == "", r.stderr)
    print("FAILED" if failures else "all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    BEIT = sys.argv[1]
    sys.exit(main())
