"""e2e: `cmake --install BUILD --prefix P` gives a beit that runs from P.

Checks: P/bin/beit, the shipped configs under P/share/beit/configs (models, recipes, tokenizer)
and the Python tools under P/share/beit/tools are installed; the installed `beit --version` says
what the build's says; `beit info` on an installed model config works; the installed beit
pretrains (2 steps of the small model) from another folder with an installed recipe given by its
path and by its bare name, and resolves its model inside P; an installed converter starts.

usage: /usr/bin/python3 tests/test_install_e2e.py CMAKE BUILD_DIR BEIT_BINARY WORK_DIR
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_recipe_paths_e2e as paths  # noqa: E402
from checks import check, fresh_dir, summary  # noqa: E402


def main():
    cmake, build, beit, work = sys.argv[1], sys.argv[2], sys.argv[3], os.path.abspath(sys.argv[4])
    fresh_dir(work)
    prefix = os.path.join(work, "prefix")
    r = subprocess.run([cmake, "--install", build, "--prefix", prefix], capture_output=True,
                       text=True)
    paths.check_run(r, "cmake --install")
    share = os.path.join(prefix, "share", "beit")
    installed = os.path.join(prefix, "bin", "beit")
    for rel in ("configs/models/beit_small_fashion_mnist.json",
                "configs/models/beit_base_patch16_224.json",
                "configs/recipes/pretrain_fashion_mnist.json",
                "configs/recipes/finetune_base_in1k.json", "configs/tokenizer/fashion_mnist.json",
                "tools/convert_checkpoint.py", "tools/convert_dalle.py", "tools/st.py",
                "tools/beit_ref.py", "tools/dvae_ref.py"):
        check(os.path.isfile(os.path.join(share, rel)), f"installed share/beit/{rel}")
    check(os.access(installed, os.X_OK), "installed bin/beit")
    if not os.access(installed, os.X_OK):
        return 1

    v = paths.version(installed)
    check(v == paths.version(beit), f"installed beit --version = the build's ({v})")
    r = subprocess.run([installed, "info",
                        os.path.join(share, "configs/models/beit_small_fashion_mnist.json")],
                       cwd=work, capture_output=True, text=True)
    check(r.returncode == 0 and "parameters" in r.stdout,
          "installed beit info on an installed model config " + r.stderr.strip()[-200:])

    data, tok = paths.small_kit(installed, work)
    elsewhere = os.path.join(work, "elsewhere")
    os.makedirs(elsewhere)
    model = os.path.realpath(os.path.join(share, "configs/models/beit_small_fashion_mnist.json"))
    by_path = os.path.join(share, "configs/recipes/pretrain_fashion_mnist.json")
    for name, recipe in (("path", by_path), ("bare name", "pretrain_fashion_mnist")):
        out = "out-" + name.replace(" ", "-")
        r = paths.pretrain(installed, recipe, out, elsewhere, "--data", data, "--tokenizer", tok)
        paths.check_run(r, f"installed beit pretrain --config <recipe {name}> from another folder")
        if r.returncode == 0:
            s, _ = paths.state(os.path.join(elsewhere, out))
            got = s["recipe"]["model"]
            check(os.path.realpath(got) == model, f"model config found in the prefix ({got})")

    r = subprocess.run([sys.executable, os.path.join(share, "tools/convert_checkpoint.py"),
                        "--help"], cwd=work, capture_output=True, text=True)
    check(r.returncode == 0 and "usage" in r.stdout,
          "installed tools/convert_checkpoint.py starts " + r.stderr.strip()[-200:])

    return summary("test_install_e2e")


if __name__ == "__main__":
    sys.exit(main())
