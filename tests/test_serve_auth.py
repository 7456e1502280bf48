"""Access to `beit serve`: bearer tokens and HTTPS (ctest label e2e, a few seconds).

  /usr/bin/python3 tests/test_serve_auth.py BEIT_BINARY FIXTURE_DIR

FIXTURE_DIR is written by tests/test_serve_fixtures.py; the model is its smallest, `fridge`.

Checks. Tokens: a request without the header, with another token, or with another scheme is a
401 JSON fault (reason "unauthorized") with a WWW-Authenticate: Bearer header, on /score,
/metadata and unknown paths alike, also a POST whose announced body is never read; the right
token gets 200 and the PyTorch-reference probabilities; GET /health and /ready answer without
one; the server keeps serving after refusals. A non-loopback --host without --auth-token-file
and without --no-auth is refused at start naming both flags; with a token it serves (through
127.0.0.1) and warns that the token crosses the network in clear text; --no-auth serves it open
with a warning. Token files: missing, empty, two lines are errors naming the file; a file others
may read is a warning; the token is never printed. HTTPS: a self-signed certificate made by
openssl now; a client trusting it gets the answers, one that does not is refused, and plain HTTP
to the TLS port gets no HTTP answer; missing, malformed and mismatched files are errors naming
the file; --tls-cert without --tls-key is a usage error.
"""
import base64
import http.client
import json
import os
import select
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import check, close, summary, terminate  # noqa: E402

TOKEN = "tok-3f9a7c_E2E.test~token"


class Server:
    """beit serve on an ephemeral port; ssl_ctx makes the client speak HTTPS."""

    def __init__(self, beit, model, *args, host="127.0.0.1", ssl_ctx=None):
        self.log = tempfile.TemporaryFile(mode="w+")
        self.ssl_ctx = ssl_ctx
        self.proc = subprocess.Popen([beit, "serve", "--model", model, "--port", "0", "--host", host,
                                      "--precision", "fp32", "--workers", "1", "--threads", "1",
                                      *args], stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.stdout = ""
        deadline = time.time() + 30
        while time.time() < deadline and "ready on " not in self.stdout:
            r, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if r:
                self.stdout += self.proc.stdout.readline()
            if self.proc.poll() is not None:
                break
        if "ready on " not in self.stdout:
            self.proc.kill()
            self.log.seek(0)
            raise RuntimeError(f"server did not start: {self.log.read()}")
        self.url = self.stdout.split("ready on ", 1)[1].strip()
        self.port = int(self.url.rsplit(":", 1)[1])

    def request(self, method, path, body=None, headers=None, timeout=30):
        """(status, JSON body, response headers); always through 127.0.0.1."""
        if self.ssl_ctx:
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                               context=self.ssl_ctx)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
            return r.status, json.loads(data) if data else None, r.headers
        finally:
            conn.close()

    def stop(self):
        rc = terminate(self.proc)
        self.stdout += self.proc.stdout.read()
        self.log.seek(0)
        return rc, self.stdout + self.log.read()


def run(beit, *args):
    return subprocess.run([beit, "serve", *args], capture_output=True, text=True, timeout=60)


def bearer(token=TOKEN):
    return {"Authorization": f"Bearer {token}"}


def write(path, text, mode=0o600):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def score_body(fx):
    with open(os.path.join(fx, "images", "a.png"), "rb") as f:
        a = base64.b64encode(f.read()).decode()
    return json.dumps({"input_data": {"columns": ["image"], "index": [0], "data": [a]}}).encode()


def expect_401(srv, what, method, path, headers, body=None, error=None):
    code, got, hdrs = srv.request(method, path, body, headers)
    err = got.get("error", {}) if isinstance(got, dict) else {}
    check(code == 401 and err.get("status") == 401 and err.get("reason") == "unauthorized"
          and err.get("index", 0) is None and err.get("message"),
          f"{what}: got {code} {got}, want a 401 unauthorized fault")
    challenge = hdrs.get("WWW-Authenticate", "")
    check(challenge.startswith("Bearer"), f"{what}: WWW-Authenticate {challenge!r}")
    if error:
        check(f'error="{error}"' in challenge, f"{what}: {challenge!r} lacks error={error}")
    check(TOKEN not in json.dumps(got), f"{what}: the fault shows the token")


def test_tokens(beit, fx, tmp, expected):
    model = os.path.join(fx, "fridge")
    body = score_body(fx)
    json_ct = {"Content-Type": "application/json"}
    token_file = write(os.path.join(tmp, "token"), TOKEN + "\n")
    # every interface with a token: refusals, the right token, the open probes
    srv = Server(beit, model, "--auth-token-file", token_file, "--log-requests", host="0.0.0.0")
    try:
        expect_401(srv, "no header", "POST", "/score", json_ct, body)
        expect_401(srv, "wrong token", "POST", "/score", {**json_ct, **bearer("tok-wrong")}, body,
                   error="invalid_token")
        expect_401(srv, "token prefix", "POST", "/score", {**json_ct, **bearer(TOKEN[:-1])}, body,
                   error="invalid_token")
        expect_401(srv, "token + 1 byte", "POST", "/score", {**json_ct, **bearer(TOKEN + "x")}, body,
                   error="invalid_token")
        expect_401(srv, "Basic scheme", "POST", "/score",
                   {**json_ct, "Authorization": "Basic " + base64.b64encode(TOKEN.encode()).decode()},
                   body, error="invalid_request")
        expect_401(srv, "token without scheme", "GET", "/metadata", {"Authorization": TOKEN})
        expect_401(srv, "/metadata without header", "GET", "/metadata", {})
        expect_401(srv, "unknown path without header", "GET", "/nope", {})
        # refused from the headers alone: the announced gigabyte is never read
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
        s.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n")
        reply = s.recv(65536).decode(errors="replace")
        s.close()
        check(reply.startswith("HTTP/1.1 401"), f"401 before the body: {reply[:80]!r}")
        for path in ("/health", "/ready"):
            code, got, _ = srv.request("GET", path)
            check(code == 200, f"probe {path} without a token: {code} {got}")
        code, got, _ = srv.request("HEAD", "/ready")
        check(code == 200, f"HEAD /ready without a token: {code}")
        code, got, _ = srv.request("POST", "/score", body, {**json_ct, **bearer()})
        check(code == 200 and isinstance(got, list) and close(got[0]["probs"], expected["a.png"], 2e-5),
              f"right token: {code} {got}")
        code, got, _ = srv.request("POST", "/score", body,
                                   {**json_ct, "Authorization": f"bearer   {TOKEN}"})
        check(code == 200, f"scheme in lower case, several spaces: {code} {got}")
        code, got, _ = srv.request("GET", "/metadata", headers=bearer())
        check(code == 200 and got.get("task") == "multiclass", f"/metadata with the token: {code}")
        code, got, _ = srv.request("GET", "/nope", headers=bearer())
        check(code == 404, f"unknown path with the token: {code}")
    finally:
        rc, log = srv.stop()
    check(rc == 0, f"token server exit {rc}: {log[-400:]}")
    check(TOKEN not in log, "the token appears in the server's output")
    check("clear text" in log, f"no clear-text warning for a token on 0.0.0.0 without TLS: {log[-600:]}")
    check("401" in log, "--log-requests logs the refusals")

    # a non-loopback address needs a token or --no-auth
    for host in ("0.0.0.0", "::"):
        r = run(beit, "--model", model, "--port", "0", "--host", host)
        check(r.returncode == 2 and "--auth-token-file" in r.stderr and "--no-auth" in r.stderr,
              f"--host {host} without a token: exit {r.returncode}: {r.stderr}")
    r = run(beit, "--model", model, "--auth-token-file", token_file, "--no-auth")
    check(r.returncode == 2 and "contradict" in r.stderr, f"--auth-token-file + --no-auth: {r.stderr}")
    srv = Server(beit, model, "--no-auth", host="0.0.0.0")
    try:
        code, got, _ = srv.request("GET", "/metadata")
        check(code == 200, f"--no-auth: /metadata open: {code}")
    finally:
        rc, log = srv.stop()
    check(rc == 0 and "warning: --no-auth" in log, f"--no-auth warning: {log[-400:]}")
    # loopback stays open by default (the other serve tests rely on it)
    srv = Server(beit, model)
    try:
        code, got, _ = srv.request("GET", "/metadata")
        check(code == 200, f"loopback without a token: {code}")
    finally:
        srv.stop()

    # token files
    for name, text, what in (("empty", "", "empty"), ("newline", "\n", "empty"),
                             ("two-lines", TOKEN + "\nzweite\n", "visible ASCII"),
                             ("spaced", "tok en\n", "visible ASCII")):
        path = write(os.path.join(tmp, name), text)
        r = run(beit, "--model", model, "--auth-token-file", path)
        check(r.returncode != 0 and path in r.stderr and what in r.stderr
              and "zweite" not in r.stderr and TOKEN not in r.stderr,
              f"token file {name}: exit {r.returncode}: {r.stderr}")
    r = run(beit, "--model", model, "--auth-token-file", os.path.join(tmp, "absent"))
    check(r.returncode == 1 and os.path.join(tmp, "absent") in r.stderr, f"absent token file: {r.stderr}")
    shared = write(os.path.join(tmp, "shared-token"), TOKEN + "\r\n", 0o644)
    srv = Server(beit, model, "--auth-token-file", shared)
    try:
        code, _, _ = srv.request("GET", "/metadata", headers=bearer())
        check(code == 200, f"CRLF stripped from the token file: {code}")
    finally:
        rc, log = srv.stop()
    check("can be read by group or others" in log and TOKEN not in log, f"shared token file: {log[-400:]}")


def openssl(*args):
    r = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)}: {r.stderr}")


def make_cert(tmp, name):
    """A self-signed P-256 certificate for 127.0.0.1 and localhost, valid one day."""
    cert, key = os.path.join(tmp, name + ".pem"), os.path.join(tmp, name + ".key")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost")
    os.chmod(key, 0o600)
    return cert, key


def test_tls(beit, fx, tmp, expected):
    if not shutil.which("openssl"):
        check(False, "openssl is not installed (scripts/setup.sh installs it)")
        return
    model = os.path.join(fx, "fridge")
    cert, key = make_cert(tmp, "server")
    other_cert, other_key = make_cert(tmp, "other")
    token_file = write(os.path.join(tmp, "tls-token"), TOKEN + "\n")
    ctx = ssl.create_default_context(cafile=cert)
    srv = Server(beit, model, "--tls-cert", cert, "--tls-key", key, "--auth-token-file", token_file,
                 ssl_ctx=ctx)
    try:
        check(srv.url.startswith("https://127.0.0.1:"), f"ready line: {srv.url}")
        code, got, _ = srv.request("GET", "/ready")
        check(code == 200 and got == {"ready": True}, f"HTTPS /ready: {code} {got}")
        expect_401(srv, "HTTPS without a token", "GET", "/metadata", {})
        code, got, _ = srv.request("POST", "/score", score_body(fx),
                                   {"Content-Type": "application/json", **bearer()})
        check(code == 200 and close(got[0]["probs"], expected["a.png"], 2e-5),
              f"HTTPS /score with the token: {code} {got}")
        # a client that does not trust this certificate is refused by its own check
        try:
            conn = http.client.HTTPSConnection("127.0.0.1", srv.port, timeout=10,
                                               context=ssl.create_default_context(cafile=other_cert))
            conn.request("GET", "/ready")
            conn.getresponse()
            check(False, "a client trusting another certificate got an answer")
        except ssl.SSLCertVerificationError:
            pass
        # plain HTTP to the TLS port: no HTTP answer
        status = None
        try:
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
            conn.request("GET", "/ready")
            status = conn.getresponse().status
        except (http.client.HTTPException, OSError):
            pass
        check(status is None, f"plain HTTP to the TLS port answered {status}")
        code, _, _ = srv.request("GET", "/health")
        check(code == 200, "still serving HTTPS after the plain-HTTP attempt")
    finally:
        rc, log = srv.stop()
    check(rc == 0 and TOKEN not in log, f"TLS server exit {rc}: {log[-400:]}")

    garbage = write(os.path.join(tmp, "garbage.pem"), "-----BEGIN CERTIFICATE-----\nnot base64!\n"
                    "-----END CERTIFICATE-----\n")
    cases = (
        ("missing cert", ["--tls-cert", os.path.join(tmp, "absent.pem"), "--tls-key", key], 1,
         [os.path.join(tmp, "absent.pem"), "--tls-cert"]),
        ("missing key", ["--tls-cert", cert, "--tls-key", os.path.join(tmp, "absent.key")], 1,
         [os.path.join(tmp, "absent.key"), "--tls-key"]),
        ("malformed cert", ["--tls-cert", garbage, "--tls-key", key], 1, [garbage, "--tls-cert"]),
        ("a key as the cert", ["--tls-cert", key, "--tls-key", key], 1, [key, "--tls-cert"]),
        ("a cert as the key", ["--tls-cert", cert, "--tls-key", cert], 1, [cert, "--tls-key"]),
        ("another key", ["--tls-cert", cert, "--tls-key", other_key], 1, [cert, other_key]),
        ("cert without key", ["--tls-cert", cert], 2, ["--tls-key"]),
        ("key without cert", ["--tls-key", key], 2, ["--tls-cert"]),
    )
    for what, args, rc, words in cases:
        r = run(beit, "--model", model, "--port", "0", *args)
        check(r.returncode == rc and all(w in r.stderr for w in words),
              f"{what}: exit {r.returncode} (want {rc}), {words} in {r.stderr!r}")


def main():
    beit, fx = sys.argv[1], sys.argv[2]
    expected = json.load(open(os.path.join(fx, "expected.json")))["fridge"]
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        test_tokens(beit, fx, tmp, expected)
        test_tls(beit, fx, tmp, expected)
    print(f"test_serve_auth took {time.time() - t0:.1f} s")
    return summary("test_serve_auth")


if __name__ == "__main__":
    sys.exit(main())
