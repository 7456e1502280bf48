"""Load test of `beit serve` with wrk on loopback (ctest labels e2e, load; also used by
bench/bench_serve.sh for the reported numbers).

  /usr/bin/python3 tests/test_serve_load.py BEIT_BINARY FIXTURE_DIR [--model DIR]
      [--wrk wrk] [--seconds 5] [--connections 64] [--wrk-threads 2] [--images 2]
      [--image-file F ...] [--serve-arg=--max-batch=8 ...] [--json]

Starts the server on 127.0.0.1 (ephemeral port), posts the model card's request (--images
base64 images from FIXTURE_DIR/images, PNG and JPEG alternating) from many keep-alive
connections for a fixed time, and fails unless every request got a 200: no connect, read,
write or timeout errors and no non-2xx status (wrk counts those), and the server's own counters
agree. Prints requests/s, images/s and the p50/p90/p99 latency that wrk measured; --json prints
one JSON line instead.
"""
import argparse
import base64
import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

LUA = r"""
local f = assert(io.open(os.getenv("BEIT_WRK_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  io.write(string.format(
    "WRKJSON {\"requests\": %d, \"duration_us\": %d, \"connect\": %d, \"read\": %d, " ..
    "\"write\": %d, \"status\": %d, \"timeout\": %d, \"p50_us\": %d, \"p90_us\": %d, " ..
    "\"p99_us\": %d, \"mean_us\": %.1f, \"max_us\": %d}\n",
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean,
    latency.max))
end
"""


def start_server(beit, model, extra):
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen([beit, "serve", "--model", model, "--port", "0", *extra],
                            stdout=subprocess.PIPE, stderr=log, text=True)
    deadline, line = time.time() + 120, ""
    while time.time() < deadline and proc.poll() is None:
        r, _, _ = select.select([proc.stdout], [], [], 0.5)
        if r:
            line = proc.stdout.readline()
            if "ready on http://127.0.0.1:" in line:
                return proc, log, int(line.rsplit(":", 1)[1])
    log.seek(0)
    proc.kill()
    raise RuntimeError(f"server did not start: {log.read()}")


def run(args):
    images = os.path.join(args.fixtures, "images")
    files = args.image_file or [os.path.join(images, n) for n in ("a.png", "b.jpg")]
    data = []
    for i in range(args.images):
        with open(files[i % len(files)], "rb") as f:
            data.append(base64.b64encode(f.read()).decode())
    body = {"input_data": {"columns": ["image"], "index": list(range(len(data))), "data": data}}
    model = args.model or os.path.join(args.fixtures, "fridge")
    proc, log, port = start_server(args.beit, model, args.serve_arg)
    with tempfile.TemporaryDirectory() as tmp:
        body_path, lua_path = os.path.join(tmp, "body.json"), os.path.join(tmp, "post.lua")
        with open(body_path, "w") as f:
            json.dump(body, f)
        with open(lua_path, "w") as f:
            f.write(LUA)
        url = f"http://127.0.0.1:{port}/score"
        # one warm-up request (first forward, thread pools)
        req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        warm = json.loads(urllib.request.urlopen(req, timeout=600).read())
        before = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=30).read())
        cmd = [args.wrk, "-t", str(args.wrk_threads), "-c", str(args.connections),
               "-d", f"{args.seconds}s", "--timeout", "60s", "-s", lua_path, url]
        env = dict(os.environ, BEIT_WRK_BODY=body_path)
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.seconds + 120)
        health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=30).read())
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=60)
    log.seek(0)
    server_log = log.read()
    m = re.search(r"WRKJSON (\{.*\})", out.stdout)
    if out.returncode != 0 or not m:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout}\n{out.stderr}")
    w = json.loads(m.group(1))
    seconds = w["duration_us"] / 1e6
    errors = w["connect"] + w["read"] + w["write"] + w["status"] + w["timeout"]
    summary = re.search(r"(\d+) requests \((\d+) ok, (\d+) client errors, (\d+) server errors\)",
                        server_log)
    result = {
        "model": os.path.basename(os.path.normpath(model)), "connections": args.connections,
        "images_per_request": args.images, "seconds": round(seconds, 2), "requests": w["requests"],
        "failed": errors, "requests_per_s": round(w["requests"] / seconds, 2),
        "images_per_s": round(w["requests"] * args.images / seconds, 2),
        "p50_ms": w["p50_us"] / 1e3, "p90_ms": w["p90_us"] / 1e3, "p99_ms": w["p99_us"] / 1e3,
        "max_ms": w["max_us"] / 1e3, "server_batches": health["batches"],
        "server_images": health["images"], "max_batch_seen": health["max_batch_seen"],
        "mean_batch": round(health["images"] / max(health["batches"], 1), 2),
        "server_exit": rc, "warmup_ok": len(warm) == args.images,
        # the same window seen from inside: forward time of the workers, and the images/s that
        # all workers forwarding back to back would give (an offline batched run right now)
        "forward_seconds": round(health["forward_seconds"] - before["forward_seconds"], 3),
        "workers": health["workers"],
        "forward_images_per_s": round((health["images"] - before["images"]) * health["workers"] /
                                      max(health["forward_seconds"] - before["forward_seconds"], 1e-9), 3),
        "server_summary": summary.group(0) if summary else None,
    }
    result["serving_efficiency"] = round(result["images_per_s"] / max(result["forward_images_per_s"], 1e-9), 3)
    ok = (errors == 0 and w["requests"] > 0 and rc == 0 and result["warmup_ok"] and summary
          and int(summary.group(3)) == 0 and int(summary.group(4)) == 0)
    return result, ok, out.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("beit")
    ap.add_argument("fixtures")
    ap.add_argument("--model")
    ap.add_argument("--wrk", default="wrk")
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--wrk-threads", type=int, default=2)
    ap.add_argument("--images", type=int, default=2, help="images per request")
    ap.add_argument("--image-file", action="append", help="image files to send (default: the "
                    "fixture's a.png and b.jpg, alternating)")
    ap.add_argument("--serve-arg", action="append", default=[],
                    help="extra `beit serve` argument, e.g. --serve-arg=--max-batch=8")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    args.serve_arg = [a for x in args.serve_arg for a in x.split("=", 1)] if args.serve_arg else []
    result, ok, wrk_out = run(args)
    if args.json:
        print(json.dumps(result))
    else:
        print(wrk_out)
        print(f"load: {result['requests']} requests in {result['seconds']} s over {args.connections} "
              f"connections, {result['failed']} failed; {result['requests_per_s']} requests/s, "
              f"{result['images_per_s']} images/s; latency p50 {result['p50_ms']:.1f} ms, "
              f"p99 {result['p99_ms']:.1f} ms; mean batch {result['mean_batch']} "
              f"(workers' forwards {result['forward_images_per_s']} images/s, serving efficiency "
              f"{result['serving_efficiency']}) "
              f"(max {result['max_batch_seen']}); server: {result['server_summary']}")
    if not ok:
        print("test_serve_load: FAILED (failed requests or server errors)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
