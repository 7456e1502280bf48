"""A soak of `beit serve`: every kind of client at once, for minutes (ctest labels e2e, soak).

  /usr/bin/python3 tests/serve_soak.py BEIT_BINARY FIXTURE_DIR [--duration SECONDS]
      [--read-timeout S] [--valid N] [--slow N] [--json]

--duration defaults to $BEIT_SOAK_SECONDS, else 600 (the full soak, run by hand; ctest runs 25 s:
tests/serve.cmake). The server runs on 127.0.0.1 on FIXTURE_DIR/fridge (tests/test_serve_fixtures.py
writes it) with --max-body-bytes 1000000 and --max-images 8, and for the whole duration, at once:

  valid      N threads, 1-4 images per request, back to back on keep-alive connections (a new
             connection every 20 requests); every answer must be a 200 equal (1e-5) to the
             first answer for the same image alone
  malformed  broken and non-JSON bodies, bad base64, wrong types, missing fields, index/data
             mismatch, undecodable bytes, an unknown path: each must be its 4xx JSON error
  oversize   a Content-Length over the body cap (answered from the headers), a chunked body over
             the cap, a decompression-bomb PNG over the pixel cap, too many images: 413 JSON
  slow       clients sending their headers, or their body, one byte a second: the server must
             close each within --read-timeout (+ 5 s), the body case with a 408 JSON

Every few seconds it reads the server's VmRSS and thread count (/proc/PID/status) and its open
descriptors (/proc/PID/fd). It fails unless: no valid request failed, every malformed and
oversize request got its 4xx JSON, every slow client was cut by the timeout, the server counted
no 5xx, RSS at the end (median of the last 10% of samples) is within 5% of RSS after warm-up
(median of the samples from 10% to 20% of the run), the descriptors at the end are within 4 of
those after warm-up and, with no client connected, within 2 of the count before the load; and
SIGTERM then drains (requests half sent at the signal answered in full, new connections
refused) and the server exits 0. It prints a summary table (--json: one JSON line as well).
"""
import argparse
import base64
import http.client
import json
import os
import random
import re
import select
import signal
import socket
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import check, close, summary  # noqa: E402
from test_serve_e2e import Server, b64, bomb_png, card_request  # noqa: E402

NAMES = ["a.png", "b.jpg", "c.png", "d.png", "e.png"]
MAX_BODY = 1000000
MAX_IMAGES = 8


class Tally:
    """Counts and failures of one kind of client (appends are atomic under the GIL)."""

    def __init__(self):
        self.n = 0
        self.failed = []
        self.latency = []
        self.images = 0
        self.notes = {}

    def fail(self, what):
        if len(self.failed) < 20:
            self.failed.append(what)
        else:
            self.failed.append(None)

    def note(self, key):
        self.notes[key] = self.notes.get(key, 0) + 1


def raw_response(s, timeout):
    """(status, parsed JSON body) of one response on raw socket s; (None, why) if it ends first."""
    s.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                return None, f"closed after {len(data)} bytes"
            data += chunk
        head, rest = data.split(b"\r\n\r\n", 1)
        lines = head.decode(errors="replace").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (x.split(":", 1) for x in lines[1:] if ":" in x)}
        n = int(headers.get("content-length", "0"))
        while len(rest) < n:
            chunk = s.recv(65536)
            if not chunk:
                return None, "body cut short"
            rest += chunk
        return int(lines[0].split()[1]), json.loads(rest[:n]) if n else None
    except (OSError, ValueError) as e:
        return None, f"{type(e).__name__}: {e}"


def is_error(body, status, reason):
    err = body.get("error") if isinstance(body, dict) else None
    return isinstance(err, dict) and err.get("status") == status and err.get("reason") == reason


class Soak:
    def __init__(self, args):
        self.args = args
        self.images = {n: b64(os.path.join(args.fixtures, "images", n)) for n in NAMES}
        self.kinds = {k: Tally() for k in ("valid", "malformed", "oversize", "slow")}
        self.samples = []  # (t, rss_kib, fds, threads)
        self.ref = {}
        self.stop = threading.Event()

    # ---- clients ---------------------------------------------------------------------------

    def valid(self, i):
        t, rng = self.kinds["valid"], random.Random(i)
        conn, used = None, 0
        while not self.stop.is_set():
            if conn is None or used >= 20:
                if conn:
                    conn.close()
                conn, used = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60), 0
            pick = [rng.choice(NAMES) for _ in range(rng.randint(1, 4))]
            body = json.dumps(card_request([self.images[n] for n in pick]))
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/score", body, {"Content-Type": "application/json"})
                r = conn.getresponse()
                got = json.loads(r.read())
                status = r.status
            except (OSError, http.client.HTTPException, ValueError) as e:
                t.n += 1
                t.fail(f"{pick}: {type(e).__name__}: {e}")
                conn = None
                continue
            t.latency.append(time.perf_counter() - t0)
            t.n += 1
            used += 1
            if status == 200 and isinstance(got, list) and len(got) == len(pick) and all(
                    close(x["probs"], self.ref[n], 1e-5) for x, n in zip(got, pick)):
                t.images += len(pick)
            else:
                t.fail(f"{pick}: {status} {str(got)[:200]}")

    def malformed_cases(self):
        a = self.images["a.png"]
        junk = base64.b64encode(random.Random(7).randbytes(300)).decode()
        return [
            ("truncated JSON", "POST", "/score", b'{"input_data": {"data": [', 400, "malformed_json"),
            ("not JSON", "POST", "/score", b"\x00\xff\xfe binary", 400, "malformed_json"),
            ("trailing data", "POST", "/score", json.dumps(card_request([a])).encode() + b"}", 400, "malformed_json"),
            ("bad base64", "POST", "/score", json.dumps(card_request([a, "not*base64"])).encode(), 400, "bad_base64"),
            ("data a number", "POST", "/score", b'{"input_data": {"data": 5}}', 400, "bad_field"),
            ("input a number", "POST", "/score", json.dumps(card_request([a, 17])).encode(), 400, "bad_field"),
            ("no input_data", "POST", "/score", b'{"inputs": []}', 400, "missing_field"),
            ("index/data mismatch", "POST", "/score",
             json.dumps({"input_data": {"columns": ["image"], "index": [0, 1], "data": [a]}}).encode(),
             400, "bad_field"),
            ("undecodable image", "POST", "/score", json.dumps(card_request([junk])).encode(), 422,
             "undecodable_image"),
            ("unknown path", "GET", "/nope", None, 404, "not_found"),
        ]

    def malformed(self, i):
        t, cases = self.kinds["malformed"], self.malformed_cases()
        conn, k = None, 0
        while not self.stop.is_set():
            name, method, path, body, status, reason = cases[k % len(cases)]
            k += 1
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                conn.request(method, path, body, {"Content-Type": "application/json"} if body else {})
                r = conn.getresponse()
                got, code = json.loads(r.read()), r.status
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException, ValueError) as e:
                t.n += 1
                t.fail(f"{name}: {type(e).__name__}: {e}")
                conn = None
                continue
            t.n += 1
            t.note(f"{code} {reason}")
            if not (code == status and is_error(got, status, reason)):
                t.fail(f"{name}: {code} {str(got)[:200]} (want {status} {reason})")
            time.sleep(0.01)

    def oversize(self, i):
        t = self.kinds["oversize"]
        a = self.images["a.png"]
        bomb = json.dumps(card_request([a, base64.b64encode(bomb_png(10000, 10000)).decode()])).encode()
        many = json.dumps(card_request([a] * (MAX_IMAGES + 1))).encode()
        k = 0
        while not self.stop.is_set():
            case = k % 4
            k += 1
            s = None
            try:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=60)
                if case == 0:  # announced: refused from the headers, no body sent
                    s.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (2 * MAX_BODY))
                    want, name = "body_too_large", "Content-Length over the cap"
                elif case == 1:  # chunked: only the running count can refuse it
                    s.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
                    piece = b"A" * 100000
                    for _ in range(MAX_BODY // len(piece) + 2):
                        s.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                    s.sendall(b"0\r\n\r\n")
                    want, name = "body_too_large", "chunked body over the cap"
                else:
                    body = bomb if case == 2 else many
                    s.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                    want = "image_too_large" if case == 2 else "too_many_images"
                    name = "bomb PNG over the pixel cap" if case == 2 else "too many images"
                code, got = raw_response(s, 60)
            except OSError as e:
                code, got, want, name = None, f"{type(e).__name__}: {e}", "?", f"case {case}"
            finally:
                if s:
                    s.close()
            t.n += 1
            t.note(f"413 {want}")
            if not (code == 413 and is_error(got, 413, want)):
                t.fail(f"{name}: {code} {str(got)[:200]}")
            time.sleep(0.02)

    def slow(self, i):
        """One byte a second until the server closes the connection; it must, within the read
        timeout (+ 5 s for the watch's period and this loop's second)."""
        t, rt = self.kinds["slow"], self.args.read_timeout
        req = json.dumps(card_request([self.images["a.png"]])).encode()
        head = b"POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n" % len(req)
        k = i
        while not self.stop.is_set():
            mode = "headers" if k % 2 == 0 else "body"
            k += 1
            try:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=60)
            except OSError as e:
                t.n += 1
                t.fail(f"{mode}: connect: {e}")
                continue
            if mode == "body":
                s.sendall(head)
            t0 = time.time()
            data = head + req if mode == "headers" else req
            for byte in data:
                try:
                    s.sendall(bytes([byte]))
                except OSError:
                    break  # closed under us: the answer, if any, is read below
                ready, _, _ = select.select([s], [], [], 1.0)
                if ready or time.time() - t0 > rt + 10:
                    break
            code, got = raw_response(s, 10)
            dt = time.time() - t0
            s.close()
            t.n += 1
            t.latency.append(dt)
            t.note(f"{mode}: {'408' if code == 408 else 'closed' if code is None else code}")
            want_code = 408 if mode == "body" else None
            if not (rt - 0.5 <= dt <= rt + 5 and code == want_code
                    and (code is None or is_error(got, 408, "request_timeout"))):
                t.fail(f"{mode} a byte a second: {code} {str(got)[:120]} after {dt:.1f} s "
                       f"(--read-timeout {rt})")

    # ---- the server's process --------------------------------------------------------------

    def sample(self):
        pid = self.srv.proc.pid
        rss = threads = None
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("Threads:"):
                    threads = int(line.split()[1])
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        return rss, fds, threads

    def sampler(self, t_start):
        while not self.stop.wait(self.args.sample_every):
            try:
                rss, fds, threads = self.sample()
            except OSError:
                return
            self.samples.append((time.time() - t_start, rss, fds, threads))

    def rest_fds(self):
        """Descriptors with no client connected: wait until the count settles."""
        last, same = None, 0
        for _ in range(50):
            fds = self.sample()[1]
            same = same + 1 if fds == last else 0
            if same >= 3:
                break
            last = fds
            time.sleep(0.2)
        return fds

    # ---- the run -----------------------------------------------------------------------------

    def run(self):
        a = self.args
        self.srv = Server(a.beit, os.path.join(a.fixtures, "fridge"), "--max-body-bytes", str(MAX_BODY),
                          "--max-images", str(MAX_IMAGES), "--read-timeout", str(a.read_timeout),
                          "--drain-timeout", "30")
        self.port = self.srv.port
        for n in NAMES:
            code, body = self.srv.score(card_request([self.images[n]]))
            if code != 200:
                raise RuntimeError(f"reference answer for {n}: {code} {body}")
            self.ref[n] = body[0]["probs"]
        self.fds_rest_before = self.rest_fds()
        t_start = time.time()
        threads = [threading.Thread(target=self.sampler, args=(t_start,))]
        threads += [threading.Thread(target=self.valid, args=(i,)) for i in range(a.valid)]
        threads += [threading.Thread(target=self.malformed, args=(0,)),
                    threading.Thread(target=self.oversize, args=(0,))]
        threads += [threading.Thread(target=self.slow, args=(i,)) for i in range(a.slow)]
        for th in threads:
            th.start()
        while time.time() - t_start < a.duration and self.srv.proc.poll() is None:
            time.sleep(0.5)
        self.stop.set()
        self.elapsed = time.time() - t_start
        for th in threads:
            th.join(a.read_timeout + 30)
        self.fds_rest_after = self.rest_fds()
        self.drain()

    def drain(self):
        """SIGTERM with requests half sent: answered in full, new connections refused, exit 0."""
        self.drain_ok = []
        socks = []
        for n in NAMES[:3]:
            body = json.dumps(card_request([self.images[n]])).encode()
            s = socket.create_connection(("127.0.0.1", self.port), timeout=30)
            s.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
                      + body[: len(body) // 2])
            socks.append((n, s, body[len(body) // 2:]))
        time.sleep(0.5)
        t0 = time.time()
        self.srv.proc.send_signal(signal.SIGTERM)
        refused = False
        for _ in range(50):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=2).close()
            except ConnectionRefusedError:
                refused = True
                break
            time.sleep(0.05)
        self.drain_refused = refused
        time.sleep(0.5)  # the server holds on for the rest of the bodies
        for n, s, rest in socks:
            try:
                s.sendall(rest)
            except OSError:
                pass
            code, got = raw_response(s, 30)
            s.close()
            self.drain_ok.append(code == 200 and close(got[0]["probs"], self.ref[n], 1e-5))
        try:
            self.rc = self.srv.proc.wait(timeout=40)
        except Exception:
            self.srv.proc.kill()
            self.rc = None
        self.drain_seconds = time.time() - t0
        self.srv.log.seek(0)
        self.log = self.srv.log.read()

    # ---- verdict -------------------------------------------------------------------------------

    def report(self):
        a, k = self.args, self.kinds
        d = self.elapsed
        warm = [s for s in self.samples if 0.10 * d <= s[0] <= 0.20 * d]
        end = [s for s in self.samples if s[0] >= 0.90 * d]
        med = lambda xs, j: statistics.median(x[j] for x in xs) if xs else float("nan")  # noqa: E731
        rss_warm, rss_end = med(warm, 1), med(end, 1)
        fds_warm, fds_end = med(warm, 2), med(end, 2)
        thr_warm, thr_end = med(warm, 3), med(end, 3)
        growth = (rss_end - rss_warm) / rss_warm if warm and end else float("nan")
        lat = sorted(k["valid"].latency)
        pct = lambda p: 1e3 * lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")  # noqa: E731
        m = re.search(r"(\d+) requests \((\d+) ok, (\d+) client errors, (\d+) server errors\), "
                      r"(\d+) images in (\d+) batches, (\d+) slow connections closed", self.log)
        server = [int(x) for x in m.groups()] if m else None
        slow_dt = k["slow"].latency
        rows = [
            ("valid", k["valid"], f"{k['valid'].images} images; latency p50 {pct(0.50):.1f} ms, "
                                  f"p99 {pct(0.99):.1f} ms, max {1e3 * lat[-1] if lat else 0:.1f} ms"),
            ("malformed", k["malformed"], ", ".join(f"{v} {key}" for key, v in sorted(k["malformed"].notes.items()))),
            ("oversize", k["oversize"], ", ".join(f"{v} {key}" for key, v in sorted(k["oversize"].notes.items()))),
            ("slow", k["slow"], ", ".join(f"{v} {key}" for key, v in sorted(k["slow"].notes.items()))
             + (f"; cut after {min(slow_dt):.1f}-{max(slow_dt):.1f} s" if slow_dt else "")),
        ]
        print(f"\nserve soak: {d:.0f} s on {os.path.join(a.fixtures, 'fridge')}, {a.valid} valid + 1 "
              f"malformed + 1 oversize + {a.slow} slow clients, --read-timeout {a.read_timeout}, "
              f"{len(self.samples)} samples every {a.sample_every} s")
        print(f"  {'kind':<10} {'requests':>9} {'failed':>7}  notes")
        for name, t, notes in rows:
            print(f"  {name:<10} {t.n:>9} {len(t.failed):>7}  {notes}")
        print(f"  {'':<10} {'warm-up':>9} {'end':>7}  (medians of the samples at 10-20% and 90-100% of the run)")
        print(f"  {'RSS MiB':<10} {rss_warm / 1024:>9.1f} {rss_end / 1024:>7.1f}  {100 * growth:+.2f}%; "
              f"max over the run {max(s[1] for s in self.samples) / 1024:.1f} MiB" if self.samples else "  RSS: no samples")
        if self.samples:  # the shape of the curve: a leak climbs steadily, an allocator settles
            deciles = [statistics.median(x[1] for x in self.samples if j * d / 10 <= x[0] < (j + 1) * d / 10 + 1e-9)
                       if any(j * d / 10 <= x[0] < (j + 1) * d / 10 + 1e-9 for x in self.samples) else float("nan")
                       for j in range(10)]
            print(f"  {'':<10} RSS MiB by tenth of the run: " + " ".join(f"{v / 1024:.1f}" for v in deciles))
        print(f"  {'fds':<10} {fds_warm:>9.0f} {fds_end:>7.0f}  with no client: {self.fds_rest_before} "
              f"before the load, {self.fds_rest_after} after")
        print(f"  {'threads':<10} {thr_warm:>9.0f} {thr_end:>7.0f}")
        if server:
            print(f"  server: {server[0]} requests ({server[1]} ok, {server[2]} client errors, "
                  f"{server[3]} server errors), {server[4]} images in {server[5]} batches, "
                  f"{server[6]} slow connections closed")
        print(f"  drain: {sum(self.drain_ok)}/{len(self.drain_ok)} half-sent requests answered, new "
              f"connections {'refused' if self.drain_refused else 'NOT refused'}, exit {self.rc} "
              f"{self.drain_seconds:.2f} s after SIGTERM")
        for name, t, _ in rows:
            shown = [f for f in t.failed if f]
            check(not t.failed, f"{name}: {len(t.failed)} failed" + (f", e.g. {shown[:3]}" if shown else ""))
            check(t.n > 0, f"{name}: {t.n} requests")
        check(len(self.samples) >= 5 and bool(warm) and bool(end), f"{len(self.samples)} samples")
        check(growth <= 0.05, f"RSS {rss_warm / 1024:.1f} MiB after warm-up -> {rss_end / 1024:.1f} MiB "
                              f"at the end ({100 * growth:+.2f}%, limit +5%)")
        check(fds_end <= fds_warm + 4, f"descriptors {fds_warm:.0f} after warm-up -> {fds_end:.0f} at the end")
        check(self.fds_rest_after <= self.fds_rest_before + 2,
              f"descriptors with no client: {self.fds_rest_before} before, {self.fds_rest_after} after")
        check(server is not None and server[3] == 0, f"no 5xx counted by the server: {server}")
        check(server is not None and server[6] >= k["slow"].n - a.slow,
              f"the server counted the slow connections it closed: {server and server[6]} for {k['slow'].n}")
        check(all(self.drain_ok) and len(self.drain_ok) == 3 and self.drain_refused and self.rc == 0
              and "drained in" in self.log, f"SIGTERM drained and exit {self.rc}: {self.log[-300:]}")
        if a.json:
            print(json.dumps({
                "seconds": round(d, 1), "read_timeout": a.read_timeout,
                "requests": {n: t.n for n, t, _ in rows}, "failed": {n: len(t.failed) for n, t, _ in rows},
                "valid_images": k["valid"].images, "p50_ms": round(pct(0.5), 2), "p99_ms": round(pct(0.99), 2),
                "rss_warm_kib": rss_warm, "rss_end_kib": rss_end, "rss_growth": round(growth, 4),
                "fds_warm": fds_warm, "fds_end": fds_end, "fds_rest": [self.fds_rest_before, self.fds_rest_after],
                "threads_warm": thr_warm, "threads_end": thr_end, "server": server, "exit": self.rc}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("beit")
    ap.add_argument("fixtures")
    ap.add_argument("--duration", type=float, default=float(os.environ.get("BEIT_SOAK_SECONDS", 600)))
    ap.add_argument("--read-timeout", type=float, default=None,
                    help="the server's --read-timeout (default: 30, its own default, for runs of "
                         "5 minutes or more; else 4 so that short runs see slow clients cut)")
    ap.add_argument("--valid", type=int, default=3, help="valid client threads")
    ap.add_argument("--slow", type=int, default=2, help="slow client threads")
    ap.add_argument("--sample-every", type=float, default=None, help="seconds (default: duration / 100, 1-5)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.read_timeout is None:
        args.read_timeout = 30.0 if args.duration >= 300 else 4.0
    if args.sample_every is None:
        args.sample_every = min(5.0, max(1.0, args.duration / 100))
    soak = Soak(args)
    soak.run()
    soak.report()
    return summary("serve_soak")


if __name__ == "__main__":
    sys.exit(main())
