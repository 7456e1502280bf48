"""The python tests' pass/fail bookkeeping: check() prints one ok/FAIL line and counts failures;
summary() prints the count and gives the exit status (non-zero on any failure); close() compares
two lists of numbers within an absolute tolerance; fresh_dir() empties a test's work folder;
terminate() stops a child process with SIGTERM."""
import os
import shutil
import signal
import subprocess

failures = 0


def check(cond, msg):
    global failures
    print(("ok   " if cond else "FAIL ") + msg, flush=True)
    failures += not cond


def terminate(proc, timeout=20):
    """SIGTERM to proc, then its exit status; None when it was still running after timeout
    seconds and had to be killed."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return None


def fresh_dir(path):
    """path as an empty folder (what was there is removed)."""
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)


def summary(name):
    print(f"{name}: {failures} failed")
    return 1 if failures else 0


def close(a, b, atol):
    return len(a) == len(b) and all(abs(x - y) <= atol for x, y in zip(a, b))
