"""How `beit serve` ends and how it treats slow clients (ctest label e2e).

  /usr/bin/python3 tests/test_serve_drain.py BEIT_BINARY FIXTURE_DIR

FIXTURE_DIR is written by tests/test_serve_fixtures.py. Everything runs on 127.0.0.1.

The drain (SIGTERM): requests whose bodies are half sent and clients looping requests on
keep-alive connections are in flight when the signal comes. Then: a new connection is refused
(the listening socket is shut), /ready on an already open connection answers 503 {"ready":
false, "reason": "draining"} with Connection: close, the server stays up while requests are
unanswered, every one of them (the half-sent ones finished after the signal) gets a 200 with
the right probabilities, and the process exits 0 with "drained" and its counters. A drain
longer than --drain-timeout is cut and the cut requests are counted; a second signal cuts at
once. The old shutdown (MHD_stop_daemon at once) fails the first part: the half-sent requests
lose their connections.

The read timeout: a client that sends its headers a byte at a time, or its body, is closed after
--read-timeout (the body case with a 408 JSON answer) while other clients are served.
"""
import base64
import http.client
import json
import os
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import check, close, summary  # noqa: E402
from test_serve_e2e import Server, b64, card_request  # noqa: E402


def partial_request(port, body, head=0.5):
    """A socket with the request headers and the first `head` of body sent."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(b"POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body))
    cut = int(len(body) * head)
    s.sendall(body[:cut])
    return s, body[cut:]


def read_response(s):
    """(status, headers dict, parsed JSON body) of one response on raw socket s, or (None, {},
    error text) when the connection ends first."""
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                return None, {}, f"connection closed after {len(data)} bytes"
            data += chunk
        head, rest = data.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (x.split(":", 1) for x in lines[1:])}
        n = int(headers.get("content-length", "0"))
        while len(rest) < n:
            chunk = s.recv(65536)
            if not chunk:
                return None, headers, "body cut short"
            rest += chunk
        return int(lines[0].split()[1]), headers, json.loads(rest[:n])
    except OSError as e:
        return None, {}, f"{type(e).__name__}: {e}"


def health(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/health")
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def wait_for(cond, timeout, step=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


def refused(port):
    """True once a new connection is refused. A connection that the kernel completed into the
    listening socket's backlog just as the server closed it is reset instead: not yet the
    answer, so the caller asks again."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return False
    except ConnectionRefusedError:
        return True
    except ConnectionResetError:
        return False


def server_log(srv):
    srv.log.seek(0)
    return srv.log.read()


def references(srv, images, names):
    ref = {}
    for n in names:
        code, body = srv.score(card_request([images[n]]))
        ref[n] = body[0]["probs"] if code == 200 else None
    return ref


def test_drain(beit, fx):
    names = ["a.png", "b.jpg", "c.png", "d.png", "e.png"]
    images = {n: b64(os.path.join(fx, "images", n)) for n in names}
    srv = Server(beit, os.path.join(fx, "fridge"), "--drain-timeout", "30", "--max-batch", "4")
    port = srv.port
    ref = references(srv, images, names)
    # requests half sent: they are "received" (headers in) when the signal comes
    slow = []
    for i in range(4):
        pick = [names[(i + k) % 5] for k in range(1 + i)]
        body = json.dumps(card_request([images[n] for n in pick])).encode()
        slow.append((pick,) + partial_request(port, body))
    # clients looping requests on keep-alive connections through the signal
    loop_results, stop_loops = [], threading.Event()

    def looper(i):
        got = {"ok": 0, "bad": [], "end": None}
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while not stop_loops.is_set():
            pick = [names[(i + k) % 5] for k in range(1 + i % 4)]
            fresh = conn.sock is None  # this request opens a new connection
            try:
                conn.request("POST", "/score", json.dumps(card_request([images[n] for n in pick])),
                             {"Content-Type": "application/json"})
                r = conn.getresponse()
                body = json.loads(r.read())
                if r.status == 200 and all(close(x["probs"], ref[n], 1e-5) for x, n in zip(body, pick)):
                    got["ok"] += 1
                else:
                    got["bad"].append((r.status, body))
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
            except ConnectionRefusedError:
                got["end"] = "refused"
                break
            except ConnectionResetError as e:
                # a new connection that reached the listening socket's backlog just as the
                # drain closed it is reset: the server never took it, as when refused; a reset
                # of a connection that was serving would lose a request
                got["end"] = "refused" if fresh else f"{type(e).__name__}: {e}"
                break
            except (OSError, http.client.HTTPException) as e:
                got["end"] = f"{type(e).__name__}: {e}"
                break
        loop_results.append(got)

    loops = [threading.Thread(target=looper, args=(i,)) for i in range(3)]
    for t in loops:
        t.start()
    keep = http.client.HTTPConnection("127.0.0.1", port, timeout=10)  # open before the signal
    keep.request("GET", "/health")
    keep.getresponse().read()
    check(wait_for(lambda: health(port)["in_flight"] >= 4 + 1, 10),
          f"the half-sent requests are in flight: {health(port)}")
    time.sleep(0.3)  # the loopers are running requests too
    srv.proc.send_signal(signal.SIGTERM)
    check(wait_for(lambda: refused(port), 5), "after SIGTERM a new connection is refused")
    try:
        keep.request("GET", "/ready")
        r = keep.getresponse()
        status, body, conn_header = r.status, json.loads(r.read()), r.getheader("Connection", "")
    except (OSError, http.client.HTTPException) as e:
        status, body, conn_header = None, f"{type(e).__name__}: {e}", ""
    check(status == 503 and body == {"ready": False, "reason": "draining"}
          and conn_header.lower() == "close",
          f"/ready on an open connection during the drain: {status} {body} "
          f"Connection: {conn_header}")
    keep.close()
    time.sleep(0.5)
    check(srv.proc.poll() is None, "the server waits for the unanswered requests")
    for pick, s, rest in slow:  # finish the bodies after the signal
        try:
            s.sendall(rest)
        except OSError:
            pass  # the old shutdown closed it: read_response says so
    for i, (pick, s, _) in enumerate(slow):
        status, headers, body = read_response(s)
        s.close()
        ok = status == 200 and len(body) == len(pick) and all(
            close(x["probs"], ref[n], 1e-5) for x, n in zip(body, pick))
        check(ok, f"half-sent request {i} ({len(pick)} images) answered in full: {status} "
                  f"{str(body)[:200]}")
        check(headers.get("connection", "").lower() == "close",
              f"its answer closes the connection: {headers.get('connection')}")
    try:
        rc = srv.proc.wait(timeout=20)
    except Exception:
        srv.proc.kill()
        rc = None
    stop_loops.set()
    for t in loops:
        t.join(30)
    for i, got in enumerate(loop_results):
        check(got["ok"] > 0 and not got["bad"] and got["end"] in ("refused", None),
              f"keep-alive looper {i}: {got['ok']} right answers, wrong {got['bad'][:2]}, "
              f"ended by {got['end']}")
    log = server_log(srv)
    check(rc == 0, f"exit {rc} after the drain: {log[-600:]}")
    check("drained in" in log and "cut" not in log, f"the log says it drained: {log[-400:]}")
    check("client errors" in log, "the counters line")


def signal_and_wait(srv, sig):
    """Send sig; the exit code (None when the server had to be killed) and the seconds it took."""
    t0 = time.time()
    srv.proc.send_signal(sig)
    try:
        rc = srv.proc.wait(timeout=15)
    except Exception:
        srv.proc.kill()
        rc = None
    return rc, time.time() - t0


def test_drain_cut(beit, fx):
    image = b64(os.path.join(fx, "images", "a.png"))
    body = json.dumps(card_request([image])).encode()
    # the deadline: a body that never comes is cut after --drain-timeout
    srv = Server(beit, os.path.join(fx, "fridge"), "--drain-timeout", "1")
    s, _ = partial_request(srv.port, body)
    # + 1: the /health request counts itself (>= 1 raced the half-sent request's headers)
    check(wait_for(lambda: health(srv.port)["in_flight"] >= 1 + 1, 10), "a request in flight")
    rc, dt = signal_and_wait(srv, signal.SIGTERM)
    status, _, why = read_response(s)
    s.close()
    log = server_log(srv)
    check(rc == 0 and 0.9 < dt < 6, f"--drain-timeout 1: exit {rc} after {dt:.1f} s")
    check("drain timed out" in log and "1 request(s) cut" in log,
          f"the cut request is counted: {log[-400:]}")
    check(status is None, f"the cut request got no answer ({why})")
    # a second signal cuts at once
    srv = Server(beit, os.path.join(fx, "fridge"), "--drain-timeout", "60")
    s, _ = partial_request(srv.port, body)
    # + 1: the /health request counts itself (>= 1 raced the half-sent request's headers)
    check(wait_for(lambda: health(srv.port)["in_flight"] >= 1 + 1, 10), "a request in flight")
    srv.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    check(srv.proc.poll() is None, "still draining after one signal")
    rc, dt = signal_and_wait(srv, signal.SIGINT)
    s.close()
    log = server_log(srv)
    check(rc == 0 and dt < 3, f"a second signal: exit {rc} after {dt:.1f} s")
    check("second signal" in log and "1 request(s) cut" in log, f"{log[-300:]}")


def test_read_timeout(beit, fx):
    image = b64(os.path.join(fx, "images", "a.png"))
    good = card_request([image])
    srv = Server(beit, os.path.join(fx, "fridge"), "--read-timeout", "1.5")
    port = srv.port
    results = {}

    def trickle(name, prefix, data):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(prefix)
        t0 = time.time()
        try:
            for byte in data:
                s.sendall(bytes([byte]))
                time.sleep(0.25)
                if time.time() - t0 > 10:
                    break
        except OSError:
            pass  # the server closed it while we were sending
        status, _, body = read_response(s)
        results[name] = (time.time() - t0, status, body)
        s.close()

    req = json.dumps(good).encode()
    head = (b"POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n" % len(req))
    threads = [threading.Thread(target=trickle, args=("headers", b"", head + req)),
               threading.Thread(target=trickle, args=("body", head, req))]
    for t in threads:
        t.start()
    served = 0
    for _ in range(5):  # other clients are served meanwhile
        code, body = srv.score(good)
        served += code == 200
        time.sleep(0.2)
    for t in threads:
        t.join(30)
    check(served == 5, f"{served}/5 requests served beside the slow clients")
    dt, status, body = results.get("headers", (None, None, None))
    check(dt is not None and 1.4 < dt < 4 and status is None,
          f"headers a byte at a time: closed without an answer after {dt} s ({body})")
    dt, status, body = results.get("body", (None, None, None))
    check(dt is not None and 1.4 < dt < 4 and status == 408
          and isinstance(body, dict) and body["error"]["reason"] == "request_timeout",
          f"a body a byte at a time: 408 after {dt} s: {status} {body}")
    # an idle keep-alive connection is closed by the same clock
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/health")
    conn.getresponse().read()
    s = conn.sock
    t0 = time.time()
    s.settimeout(10)
    try:
        gone = s.recv(1) == b""
    except OSError:
        gone = True
    dt = time.time() - t0
    conn.close()
    check(gone and 1.2 < dt < 4, f"an idle keep-alive connection is closed after {dt:.1f} s")
    h = health(port)
    check(h["read_timeouts"] >= 3, f"/health counts the connections cut: {h}")
    rc, log = srv.stop()
    check(rc == 0 and "slow connections closed" in log, f"exit {rc}: {log[-300:]}")


def main():
    beit, fx = sys.argv[1], sys.argv[2]
    t0 = time.time()
    test_drain(beit, fx)
    test_drain_cut(beit, fx)
    test_read_timeout(beit, fx)
    print(f"test_serve_drain took {time.time() - t0:.1f} s")
    return summary("test_serve_drain")


if __name__ == "__main__":
    sys.exit(main())
