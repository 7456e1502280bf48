"""End-to-end test of `beit predict` and `beit serve` (ctest label e2e).

  /usr/bin/python3 tests/test_serve_e2e.py BEIT_BINARY FIXTURE_DIR

FIXTURE_DIR is written by tests/test_serve_fixtures.py (model folders, images, PyTorch-reference
probabilities). Everything talks to 127.0.0.1 only: the server under test binds loopback, and the
URL inputs are served by a small HTTP server this test starts on loopback.

Checks (in fp32; test_precision_serve.py runs bf16): predict == PyTorch reference for every PNG
and preprocessing mode; folders, dataset folders (beit pack) and JSON lines inputs; --top-k,
--threshold, --visualize; exit codes. The server: the model card's request with PNG + JPEG
base64 gives the card's response shape, in order, equal to predict; /health, /ready, /metadata;
every malformed case gets its 4xx with the input index and the server answers the next request;
URL inputs (allowed, refused, too large, 404, redirect to ftp, timeout 504); concurrent requests
are batched and still right; SIGTERM ends the server cleanly.
"""
import base64
import http.client
import http.server
import json
import os
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import check, close, summary, terminate  # noqa: E402

LABELS = ["can", "carton", "milk_bottle", "water_bottle"]


def b64(path):
    with open(path, "rb") as f:
        return base64.b64encode(f.read()).decode()


def card_request(items):
    return {"input_data": {"columns": ["image"], "index": list(range(len(items))), "data": items}}


# ---- the CLI -------------------------------------------------------------------------------

def predict(beit, model, *args, expect_rc=0, precision="fp32"):
    """precision fp32 by default: the checks compare with the float64 PyTorch reference."""
    r = subprocess.run([beit, "predict", "--model", model, "--quiet", "--precision", precision,
                        *args],
                       capture_output=True, text=True, timeout=120)
    check(r.returncode == expect_rc, f"predict {args}: exit {r.returncode} (want {expect_rc}): {r.stderr}")
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()], r


def test_predict(beit, fx, tmp):
    images = os.path.join(fx, "images")
    expected = json.load(open(os.path.join(fx, "expected.json")))
    names = sorted(os.listdir(images))
    for model in ("fridge", "fridge_multilabel", "fridge_crop"):
        lines, _ = predict(beit, os.path.join(fx, model), "--with-input", images)
        check(len(lines) == len(names), f"{model}: {len(lines)} lines for {len(names)} images")
        for name, line in zip(names, lines):
            check(line.get("input", "").endswith(name), f"{model}: order {line.get('input')} vs {name}")
            check(line.get("labels") == LABELS, f"{model} {name}: labels {line.get('labels')}")
            if name in expected[model]:
                check(close(line["probs"], expected[model][name], 2e-5),
                      f"{model} {name}: {line['probs']} vs PyTorch {expected[model][name]}")
            s = sum(line["probs"])
            if model != "fridge_multilabel":
                check(abs(s - 1) < 1e-4, f"{model} {name}: probabilities sum to {s}")
    # selection: top-k sorted, threshold keeps the multi-label set
    lines, _ = predict(beit, os.path.join(fx, "fridge"), "--top-k", "2", os.path.join(images, "a.png"))
    p = lines[0]["probs"]
    check(len(p) == 2 and p[0] >= p[1] and len(lines[0]["labels"]) == 2, f"top-k 2: {lines[0]}")
    lines, _ = predict(beit, os.path.join(fx, "fridge_multilabel"), "--threshold", "0.5", images)
    for line in lines:
        check(all(x >= 0.5 for x in line["probs"]) and line["probs"] == sorted(line["probs"], reverse=True),
              f"threshold 0.5: {line}")
    # a dataset folder written by beit pack (ImageFolder: class/<image>)
    src = os.path.join(tmp, "ds_src")
    for cls, files in (("can", ["a.png", "c.png"]), ("carton", ["b.jpg", "d.png"])):
        os.makedirs(os.path.join(src, cls))
        for f in files:
            shutil.copy(os.path.join(images, f), os.path.join(src, cls, f))
    ds = os.path.join(tmp, "ds")
    r = subprocess.run([beit, "pack", "--folder", src, "--out", ds, "--no-shuffle", "--quiet"],
                       capture_output=True, text=True, timeout=120)
    check(r.returncode == 0, f"beit pack: {r.stderr}")
    by_file, _ = predict(beit, os.path.join(fx, "fridge"), "--with-input", images)
    ref = {os.path.basename(x["input"]): x["probs"] for x in by_file}
    lines, _ = predict(beit, os.path.join(fx, "fridge"), "--with-input", ds)
    check(len(lines) == 4, f"dataset: {len(lines)} lines")
    for line in lines:
        base = os.path.basename(line.get("input", ""))
        check(base in ref and close(line["probs"], ref[base], 1e-5), f"dataset record {line}")
    # JSON lines: the card's request, a malformed line, a URL without --allow-urls
    jl = os.path.join(tmp, "requests.jsonl")
    with open(jl, "w") as f:
        f.write(json.dumps(card_request([b64(os.path.join(images, "a.png")),
                                         b64(os.path.join(images, "b.jpg"))])) + "\n")
        f.write('{"input_data": {"data": [\n')
        f.write(json.dumps(card_request(["http://127.0.0.1:9/x.png"])) + "\n")
    lines, _ = predict(beit, os.path.join(fx, "fridge"), jl, expect_rc=1)
    check(len(lines) == 4, f"jsonl: {len(lines)} lines")
    if len(lines) == 4:
        check(close(lines[0]["probs"], ref["a.png"], 1e-5) and close(lines[1]["probs"], ref["b.jpg"], 1e-5),
              "jsonl results equal the file results")
        check(lines[2]["error"]["reason"] == "malformed_json", f"jsonl malformed: {lines[2]}")
        check(lines[3]["error"]["reason"] == "url_not_allowed" and lines[3]["error"]["index"] == 0,
              f"jsonl url: {lines[3]}")
    # a corrupt file among good ones: its own error line, the others scored, exit 1
    bad = os.path.join(tmp, "bad.png")
    with open(os.path.join(images, "a.png"), "rb") as f:
        data = f.read()
    with open(bad, "wb") as f:
        f.write(data[: len(data) // 2])
    lines, r = predict(beit, os.path.join(fx, "fridge"), os.path.join(images, "a.png"), bad,
                       os.path.join(images, "c.png"), expect_rc=1)
    check(len(lines) == 3 and "error" in lines[1] and lines[1]["error"]["status"] == 422
          and "probs" in lines[0] and "probs" in lines[2], f"corrupt file in the middle: {lines}")
    # visualization
    png = os.path.join(tmp, "vis.png")
    predict(beit, os.path.join(fx, "fridge"), "--visualize", png, "--top-k", "3", images)
    with open(png, "rb") as f:
        head = f.read(24)
    w, h = struct.unpack(">II", head[16:24])
    check(head[:8] == b"\x89PNG\r\n\x1a\n" and w > 400 and h > 200 * 6, f"visualization {w}x{h}")
    # usage and runtime errors
    _, r = predict(beit, os.path.join(fx, "fridge"), os.path.join(tmp, "nope.png"), expect_rc=1)
    check("nope.png" in r.stderr, "a missing input is named")
    r = subprocess.run([beit, "predict", images], capture_output=True, text=True)
    check(r.returncode == 2, "predict without --model is a usage error")
    return ref


# ---- the server ----------------------------------------------------------------------------

class Server:
    def __init__(self, beit, model, *args, host="127.0.0.1", precision="fp32"):
        self.log = tempfile.TemporaryFile(mode="w+")
        self.host = host
        self.proc = subprocess.Popen([beit, "serve", "--model", model, "--port", "0",
                                      "--host", host, "--precision", precision, *args],
                                     stdout=subprocess.PIPE, stderr=self.log, text=True)
        url = f"http://[{host}]:" if ":" in host else f"http://{host}:"
        deadline = time.time() + 30
        line = ""
        while time.time() < deadline:
            r, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if r:
                line = self.proc.stdout.readline()
                if "ready on " + url in line:
                    break
            if self.proc.poll() is not None:
                break
        if "ready on" not in line:
            self.log.seek(0)
            raise RuntimeError(f"server did not start: {self.log.read()}")
        self.port = int(line.rsplit(":", 1)[1])

    def request(self, method, path, body=None, headers=None, timeout=60):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
            return r.status, json.loads(data) if data else None
        finally:
            conn.close()

    def score(self, obj, raw=None):
        body = raw if raw is not None else json.dumps(obj).encode()
        return self.request("POST", "/score", body, {"Content-Type": "application/json"})

    def stop(self):
        rc = terminate(self.proc)
        self.log.seek(0)
        return rc, self.log.read()


def concurrent_scores(srv, data, names, n):
    """n clients at once, client i scoring 1 + i % 3 images of names (cycling from the i-th; data:
    name -> base64); returns (names, status, body) per client, None where one did not finish."""
    results = [None] * n

    def client(i):
        pick = [names[(i + k) % len(names)] for k in range(1 + i % 3)]
        results[i] = (pick,) + srv.score(card_request([data[n] for n in pick]))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def scored_as(r, want):
    """A concurrent_scores result that is a 200 with, for each image, the probabilities of want
    (name -> probabilities) within 1e-5."""
    return r is not None and r[1] == 200 and len(r[2]) == len(r[0]) and all(
        close(got["probs"], want[n], 1e-5) for got, n in zip(r[2], r[0]))


def bomb_png(w, h):
    """A valid PNG header claiming w x h RGB pixels, one row of data, IEND: a few hundred bytes
    that would decode to w*h*3 bytes."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (1 + 3 * w), 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def expect_fault(srv, what, status, reason, index, obj=None, raw=None, good=None):
    code, body = srv.score(obj, raw)
    err = (body or {}).get("error", {}) if isinstance(body, dict) else {}
    check(code == status and err.get("reason") == reason and err.get("index") == index
          and err.get("status") == status and err.get("message"),
          f"{what}: got {code} {body}, want {status} {reason} index {index}")
    if good is not None:  # the server keeps serving
        code, body = srv.score(good)
        check(code == 200 and isinstance(body, list), f"after {what}: next request {code}")


class Files(http.server.BaseHTTPRequestHandler):
    """Loopback-only image server for the URL inputs."""
    images = {}

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/slow":
            time.sleep(2.0)
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/a.png")
            self.end_headers()
            return
        if self.path == "/redirect-ftp":
            self.send_response(302)
            self.send_header("Location", "ftp://127.0.0.1/a.png")
            self.end_headers()
            return
        data = self.images.get(self.path.split("?")[0])
        if data is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if self.path != "/big-chunked":
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass


def test_server(beit, fx, ref):
    images = os.path.join(fx, "images")
    a, bj, c = (b64(os.path.join(images, n)) for n in ("a.png", "b.jpg", "c.png"))
    good = card_request([a])
    srv = Server(beit, os.path.join(fx, "fridge"), "--max-images", "4", "--max-body-bytes", "300000")
    try:
        code, body = srv.score(card_request([a, bj]))
        check(code == 200 and isinstance(body, list) and len(body) == 2, f"card request: {code} {body}")
        if code == 200:
            for got, name in zip(body, ("a.png", "b.jpg")):
                check(set(got) == {"probs", "labels"} and got["labels"] == LABELS, f"shape {got}")
                check(close(got["probs"], ref[name], 1e-5), f"serve {name} {got['probs']} != predict {ref[name]}")
        code, body = srv.score(card_request([bj, a, c]))  # order follows the request
        check(code == 200 and close(body[0]["probs"], ref["b.jpg"], 1e-5)
              and close(body[1]["probs"], ref["a.png"], 1e-5) and close(body[2]["probs"], ref["c.png"], 1e-5),
              "response order follows the request")
        code, body = srv.score({"input_data": {"columns": ["image"], "data": [[a], [c]]}})
        check(code == 200 and len(body) == 2, "rows format")
        code, body = srv.request("GET", "/health")
        check(code == 200 and body["status"] == "ok", f"/health {body}")
        code, body = srv.request("GET", "/ready")
        check(code == 200 and body == {"ready": True}, f"/ready {body}")
        code, body = srv.request("GET", "/metadata")
        check(code == 200 and body["labels"] == LABELS and body["input"]["image_size"] == [32, 32]
              and body["task"] == "multiclass", f"/metadata {body}")
        # every malformed case: its 4xx, the index, and the next request still answered
        expect_fault(srv, "malformed JSON", 400, "malformed_json", None, raw=b'{"input_data": {"data": [', good=good)
        expect_fault(srv, "missing input_data", 400, "missing_field", None, {"inputs": []}, good=good)
        expect_fault(srv, "missing data", 400, "missing_field", None, {"input_data": {"columns": ["image"]}}, good=good)
        expect_fault(srv, "not a string", 400, "bad_field", 1, card_request([a, 17]), good=good)
        expect_fault(srv, "bad base64", 400, "bad_base64", 1, card_request([a, "not*base64"]), good=good)
        expect_fault(srv, "undecodable image", 422, "undecodable_image", 0,
                     card_request([base64.b64encode(os.urandom(300)).decode(), a]), good=good)
        with open(os.path.join(images, "a.png"), "rb") as f:
            half = f.read()
        expect_fault(srv, "truncated PNG", 422, "undecodable_image", 2,
                     card_request([a, a, base64.b64encode(half[: len(half) // 2]).decode()]), good=good)
        gif = b"GIF89a\x02\x00\x03\x00\x00\x00\x00,\x00\x00\x00\x00\x02\x00\x03\x00\x00\x02\x02\x04\x01\x00;"
        expect_fault(srv, "a GIF (JPEG and PNG only)", 415, "unsupported_media_type", 1,
                     card_request([a, base64.b64encode(gif).decode()]), good=good)
        expect_fault(srv, "too many images", 413, "too_many_images", 4, card_request([a] * 5), good=good)
        expect_fault(srv, "decompression bomb", 413, "image_too_large", 1,
                     card_request([a, base64.b64encode(bomb_png(10000, 10000)).decode()]), good=good)
        expect_fault(srv, "URL without --allow-urls", 400, "url_not_allowed", 0,
                     card_request(["http://127.0.0.1:9/a.png"]), good=good)
        expect_fault(srv, "ftp URL", 400, "unsupported_url", 0, card_request(["ftp://127.0.0.1/a.png"]), good=good)
        big = json.dumps(card_request(["A" * 400000])).encode()
        expect_fault(srv, "body over the cap", 413, "body_too_large", None, raw=big, good=good)
        # chunked body over the cap (no Content-Length to refuse early)
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
        conn.putrequest("POST", "/score")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        for _ in range(8):
            piece = b"A" * 50000
            conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        conn.send(b"0\r\n\r\n")
        r = conn.getresponse()
        check(r.status == 413 and json.loads(r.read())["error"]["reason"] == "body_too_large", "chunked body over the cap")
        conn.close()
        # an announced huge body is refused from the headers alone
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
        s.sendall(b"POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000000\r\n\r\n")
        reply = s.recv(65536).decode(errors="replace")
        s.close()
        check(reply.startswith("HTTP/1.1 413"), f"Content-Length over the cap: {reply[:80]!r}")
        code, body = srv.request("GET", "/score")
        check(code == 405, f"GET /score: {code}")
        code, body = srv.request("GET", "/nope")
        check(code == 404 and body["error"]["reason"] == "not_found", f"unknown path: {code}")
        code, body = srv.score(good)
        check(code == 200, "still serving after every fault")
    finally:
        rc, log = srv.stop()
    check(rc == 0, f"SIGTERM: exit {rc}: {log[-500:]}")
    check("client errors" in log, "shutdown summary")


def test_urls(beit, fx, ref):
    images = os.path.join(fx, "images")
    with open(os.path.join(images, "a.png"), "rb") as f:
        png = f.read()
    Files.images = {"/a.png": png, "/big": os.urandom(300000), "/big-chunked": os.urandom(300000),
                    "/slow": png}
    files = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Files)
    threading.Thread(target=files.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{files.server_address[1]}"
    # without --allow-private-urls nothing on loopback (or a private network) is fetched
    srv = Server(beit, os.path.join(fx, "fridge"), "--allow-urls")
    try:
        expect_fault(srv, "URL to loopback without --allow-private-urls", 400, "url_fetch_failed",
                     0, card_request([f"{base}/a.png"]),
                     good=card_request([b64(os.path.join(images, "c.png"))]))
        code, body = srv.score(card_request([f"http://localhost:{files.server_address[1]}/a.png"]))
        check(code == 400 and "not a public address" in body["error"]["message"],
              f"a host name resolving to loopback is refused too: {code} {body}")
    finally:
        rc, _ = srv.stop()
    check(rc == 0, f"URL filter server exit {rc}")
    srv = Server(beit, os.path.join(fx, "fridge"), "--allow-urls", "--allow-private-urls",
                 "--url-max-bytes", "100000", "--timeout", "1.0")
    try:
        code, body = srv.score(card_request([f"{base}/a.png", b64(os.path.join(images, "c.png")),
                                             f"{base}/redirect"]))
        check(code == 200 and close(body[0]["probs"], ref["a.png"], 1e-5)
              and close(body[1]["probs"], ref["c.png"], 1e-5) and close(body[2]["probs"], ref["a.png"], 1e-5),
              f"URL inputs: {code} {body}")
        good = card_request([f"{base}/a.png"])
        expect_fault(srv, "URL 404", 400, "url_fetch_failed", 1, card_request([f"{base}/a.png", f"{base}/missing"]), good=good)
        expect_fault(srv, "URL over the cap", 413, "url_too_large", 0, card_request([f"{base}/big"]), good=good)
        expect_fault(srv, "chunked URL over the cap", 413, "url_too_large", 0, card_request([f"{base}/big-chunked"]), good=good)
        expect_fault(srv, "redirect to ftp", 400, "url_fetch_failed", 0, card_request([f"{base}/redirect-ftp"]), good=good)
        expect_fault(srv, "request timeout", 504, "timeout", 0, card_request([f"{base}/slow"]), good=good)
        expect_fault(srv, "closed port", 400, "url_fetch_failed", 0, card_request(["http://127.0.0.1:9/a.png"]), good=good)
    finally:
        rc, log = srv.stop()
        files.shutdown()
    check(rc == 0, f"URL server exit {rc}")


def test_concurrency(beit, fx, ref):
    images = os.path.join(fx, "images")
    names = ["a.png", "b.jpg", "c.png", "d.png", "e.png"]
    data = {n: b64(os.path.join(images, n)) for n in names}
    srv = Server(beit, os.path.join(fx, "fridge"), "--batch-wait-us", "20000", "--max-batch", "8")
    try:
        for i, r in enumerate(concurrent_scores(srv, data, names, 24)):
            check(scored_as(r, ref), f"concurrent request {i}: {r}")
        code, body = srv.request("GET", "/health")
        check(code == 200 and body["max_batch_seen"] >= 2 and body["batches"] < body["images"],
              f"requests arriving together are batched together: {body}")
    finally:
        rc, log = srv.stop()
    check(rc == 0, "concurrency server exit")
    # multi-label metadata
    srv = Server(beit, os.path.join(fx, "fridge_multilabel"), "--threshold", "0.5", "--max-queue", "1")
    try:
        expect_fault(srv, "admission cap", 503, "busy", None, card_request([data["a.png"]] * 2))
        code, body = srv.request("GET", "/metadata")
        check(code == 200 and body["task"] == "multilabel" and body["outputs"] == "sigmoid", f"{body}")
        code, body = srv.score(card_request([data["a.png"]]))
        check(code == 200 and all(p >= 0.5 for p in body[0]["probs"]), f"threshold in serve: {body}")
    finally:
        srv.stop()


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_ipv6(beit, fx, ref):
    if not ipv6_loopback():
        print("skip IPv6: this machine has no ::1")
        return
    srv = Server(beit, os.path.join(fx, "fridge"), host="::1")
    try:
        code, body = srv.score(card_request([b64(os.path.join(fx, "images", "a.png"))]))
        check(code == 200 and close(body[0]["probs"], ref["a.png"], 1e-5),
              f"served on IPv6 [::1]: {code} {body}")
    finally:
        rc, _ = srv.stop()
    check(rc == 0, f"IPv6 server exit {rc}")


def main():
    beit, fx = sys.argv[1], sys.argv[2]
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        ref = test_predict(beit, fx, tmp)
        test_server(beit, fx, ref)
        test_urls(beit, fx, ref)
        test_concurrency(beit, fx, ref)
        test_ipv6(beit, fx, ref)
    print(f"test_serve_e2e took {time.time() - t0:.1f} s")
    return summary("test_serve_e2e")


if __name__ == "__main__":
    sys.exit(main())
