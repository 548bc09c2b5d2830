# SPDX-License-Identifier: MIT
"""Shared helpers for the integration tests: a real mplockd started as a
plain process in a temporary directory, mplockctl, and a raw Varlink client."""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

BUILD = os.environ.get("MPLOCK_BUILD", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
BUILD = os.path.abspath(BUILD)
MPLOCKD = os.path.join(BUILD, "mplockd")
MPLOCKCTL = os.path.join(BUILD, "mplockctl")
EXAMPLES = os.path.join(BUILD, "examples")
TESTMODULES = os.path.join(BUILD, "tests", "modules")
PROBE = os.path.join(BUILD, "tests", "integration", "probe.so")


def module(name):
    return os.path.join(EXAMPLES, name + ".so")


def children(pid):
    """pids whose parent is pid."""
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True).stdout.decode()
    except FileNotFoundError:
        out = ""
    return [int(p) for p in out.split()]


def job_processes(daemon_pid):
    """The processes mplockd runs for its users: its children (the users'
    agents) and theirs (checks and runners, "mplock-runner run")."""
    agents = children(daemon_pid)
    return agents + [p for a in agents for p in children(a)]


class Daemon:
    """An mplockd in its own directory; start() again after kill() resumes."""

    def __init__(self, root, args=(), binary=None):
        self.root = root
        self.binary = binary or MPLOCKD
        self.sock = os.path.join(root, "sock")
        self.state = os.path.join(root, "state")
        self.log = os.path.join(root, "daemon.log")
        self.args = list(args)
        self.proc = None

    def start(self, timeout=10):
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen([self.binary, "--socket", self.sock, "--state-dir", self.state] + self.args,
                                     stdout=logf, stderr=logf, stdin=subprocess.DEVNULL)
        logf.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("mplockd exited with %d:\n%s" % (self.proc.returncode, self.read_log()))
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(self.sock)
                s.close()
                return self
            except OSError:
                time.sleep(0.01)
        raise RuntimeError("mplockd did not start listening")

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=60)

    def stop(self):
        self.kill(signal.SIGTERM)

    def read_log(self):
        try:
            with open(self.log, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def ctl(self, *args, check=True, input=None, cwd=None, timeout=120):
        """Runs mplockctl against this daemon; returns CompletedProcess."""
        p = subprocess.run([MPLOCKCTL, "--socket", self.sock] + [str(a) for a in args], input=input,
                           capture_output=True, cwd=cwd, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError("mplockctl %s failed (%d): %s\n--- daemon log:\n%s" %
                                 (" ".join(map(str, args)), p.returncode, p.stderr.decode(errors="replace"),
                                  self.read_log()[-4000:]))
        return p

    def submit(self, mod, items_path, output, *extra, **kw):
        p = self.ctl("submit", "--module", mod, "--input", items_path, "--output", output, *extra, **kw)
        return int(p.stdout.decode().strip())

    def status(self, job):
        return json.loads(self.ctl("--json", "status", job).stdout)

    def wait(self, job, timeout=300):
        p = self.ctl("--json", "wait", job, check=False, timeout=timeout)
        return p.returncode, json.loads(p.stdout) if p.stdout.strip() else None

    def results_json(self, job, *extra):
        out = self.ctl("--json", "results", job, *extra).stdout.decode()
        return [json.loads(line) for line in out.splitlines()]

    def varlink(self, method, parameters=None, more=False, raw=None):
        """One call on a fresh connection; returns the list of replies."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(60)
        s.connect(self.sock)
        if raw is not None:
            s.sendall(raw)
        else:
            msg = {"method": method}
            if parameters is not None:
                msg["parameters"] = parameters
            if more:
                msg["more"] = True
            s.sendall(json.dumps(msg).encode() + b"\0")
        replies, buf = [], b""
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            buf += chunk
            while b"\0" in buf:
                m, buf = buf.split(b"\0", 1)
                r = json.loads(m)
                replies.append(r)
                if not r.get("continues"):
                    s.close()
                    return replies
        s.close()
        return replies


class DaemonTest(unittest.TestCase):
    """Each test gets a temporary directory and a running mplockd."""

    daemon_args = ()

    def prepare(self):
        """Runs before the daemon starts, in the new temporary directory."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="mplock-test-")
        self.daemon_binary = None
        self.prepare()
        self.d = Daemon(self.tmp, self.daemon_args, self.daemon_binary).start()

    def tearDown(self):
        self.d.stop()
        rc = self.d.proc.returncode
        if rc not in (0, None, -signal.SIGKILL):
            print("mplockd exit status %s; log:\n%s" % (rc, self.d.read_log()), file=sys.stderr)
        subprocess.run(["rm", "-rf", self.tmp])
        # SIGKILL is the tests' own; any other signal (an abort() of
        # sd-event or a sanitizer, a crash) is mplockd's failure, however
        # the test went.
        if rc is not None and rc < 0 and rc != -signal.SIGKILL:
            self.fail("mplockd died of %s" % signal.Signals(-rc).name)

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def write_items(self, name, items, sep="\n"):
        p = self.path(name)
        with open(p, "wb") as f:
            data = sep.join(items) + (sep if items else "")
            f.write(data.encode())
        return p


def main():
    """Run the tests of the calling module and print the summary line that
    .ci/run adds up: 'mplock-tests: N passed, M failed'."""
    import __main__
    suite = unittest.defaultTestLoader.loadTestsFromModule(__main__)
    if len(sys.argv) > 1:
        suite = unittest.defaultTestLoader.loadTestsFromNames(sys.argv[1:], __main__)
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    failed = len(result.failures) + len(result.errors)
    print("mplock-tests: %d passed, %d failed" % (result.testsRun - failed - len(result.skipped), failed))
    sys.exit(0 if result.wasSuccessful() else 1)
