#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""mplockd under a real systemd: boots Debian 12 in a container
(systemd-nspawn), installs the build into it, and checks the service
through systemctl and journalctl as an administrator would.

The root filesystem is made once with debootstrap and cached (by default
under /var/cache/mplock-test); each run boots an overlay of it, so runs
start clean. Needs root, debootstrap and systemd-container.

Usage: run.py BUILD_DIR [TEST ...]"""

import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import sh  # noqa: E402

# python3 with libpython (the bridge embeds it) and cloudpickle: the mp_lock
# API as installed.
PACKAGES = "systemd,systemd-sysv,dbus,libpam-systemd,libjson-c5,procps,python3,libpython3.11,python3-cloudpickle"
# The cache is named after what is in it: another package list, another cache.
CACHE = os.path.join(os.environ.get("MPLOCK_ROOTFS_CACHE", "/var/cache/mplock-test"),
                     "bookworm-" + hashlib.sha256(PACKAGES.encode()).hexdigest()[:12])
MODULES = None  # where meson installed the example modules, in the container


def ensure_rootfs():
    common.ensure_rootfs(CACHE, PACKAGES, "usr/")  # the trailing slash: a directory


class Container:
    def __init__(self, build):
        self.build = build
        self.dir = tempfile.mkdtemp(prefix="mplock-ct-")
        self.root = os.path.join(self.dir, "root")
        self.proc = None
        self.pid1 = None

    def start(self):
        for d in ("upper", "work", "root"):
            os.mkdir(os.path.join(self.dir, d))
        sh("mount", "-t", "overlay", "overlay", "-o", "lowerdir=%s,upperdir=%s/upper,workdir=%s/work" %
           (CACHE, self.dir, self.dir), self.root)
        global MODULES
        sh("meson", "install", "-C", self.build, "--destdir", self.root, "--no-rebuild", "--quiet")
        found = glob.glob(os.path.join(self.root, "usr", "**", "mplock", "examples", "square.so"), recursive=True)
        if len(found) != 1:
            raise RuntimeError("the example modules were not installed: %s" % found)
        MODULES = os.path.dirname(found[0])[len(self.root):]
        shutil.copy(os.path.join(self.build, "tests", "integration", "probe.so"), os.path.dirname(found[0]))
        self.proc = subprocess.Popen(["systemd-nspawn", "-D", self.root, "--boot", "--register=no", "--keep-unit",
                                      "--quiet", "-M", "mplock-test"], stdin=subprocess.DEVNULL,
                                     stdout=open(os.path.join(self.dir, "console.log"), "w"),
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not self.pid1:
            kids = sh("pgrep", "-P", str(self.proc.pid), check=False).stdout.split()
            self.pid1 = int(kids[0]) if kids else None
            time.sleep(0.1)
        if not self.pid1:
            raise RuntimeError("the container did not start")
        # PID 1 exists a moment before systemd answers in it: ask until it
        # says it has booted.
        state = ""
        while time.monotonic() < deadline + 60 and state not in ("running", "degraded"):
            state = self.run("systemctl", "is-system-running", "--wait", check=False, timeout=120).stdout.strip()
            if state not in ("running", "degraded"):
                time.sleep(0.2)
        if state not in ("running", "degraded"):
            raise RuntimeError("the container's systemd is %r" % state)
        # A user for the user-instance tests, with a runtime directory kept.
        self.run("useradd", "-m", "-u", "1000", "alice")

    def stop(self):
        if self.pid1:
            self.run("systemctl", "poweroff", check=False)
        if self.proc:
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        sh("umount", self.root, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    def run(self, *cmd, check=True, timeout=120, user=None, input=None):
        full = ["nsenter", "-t", str(self.pid1), "-a"]
        if user:
            full += ["runuser", "-u", user, "--", "env", "XDG_RUNTIME_DIR=/run/user/1000"]
        return common.run(cmd, full, check=check, timeout=timeout, input=input)

    def ctl(self, *args, **kw):
        return self.run("mplockctl", *args, **kw)

    def status(self, job, **kw):
        return json.loads(self.ctl("--json", "status", job, **kw).stdout)

    def wait_for(self, what, cond, timeout=60):
        return common.wait_for(what, cond, timeout, 0.1)

    def show(self, prop, unit="mplockd.service"):
        return self.run("systemctl", "show", "-p", prop, "--value", unit).stdout.strip()

    def items(self, path, n, user=None):
        self.run("sh", "-c", "seq 0 %d > %s" % (n - 1, path), user=user)

    def check_square_results(self, job, n, user=None):
        out = self.ctl("--json", "results", job, user=user).stdout.splitlines()
        res = [json.loads(line) for line in out]
        idx = [r["index"] for r in res]
        assert idx == list(range(n)), "lost or duplicated: %d results, %d distinct" % (len(idx), len(set(idx)))
        assert all(r["result"] == str(r["index"] ** 2) for r in res), "wrong results"


def submit_square(c, n, out, sleep_us, user=None, extra=()):
    c.items("/tmp/items-%s.txt" % (user or "root"), n, user=user)
    p = c.ctl("submit", "--module", MODULES + "/square.so", "--input", "/tmp/items-%s.txt" % (user or "root"),
              "--output", out, "--workers", 2, "--shared", '{"sleep_us": %d}' % sleep_us, *extra, user=user)
    return int(p.stdout)


def test_socket_activation(c):
    c.run("systemctl", "enable", "--now", "mplockd.socket")
    assert c.show("ActiveState") == "inactive", "the service runs before anyone asked"
    assert c.show("ActiveState", "mplockd.socket") == "active"
    c.ctl("list")
    assert c.show("ActiveState") == "active", "mplockctl list did not start the service"
    assert c.show("Type") == "notify"
    # A second mplockd on the same socket is refused.
    p = c.run("mplockd", "--socket", "/run/mplockd/io.mplock.Manager", "--state-dir", "/tmp/other", check=False)
    assert p.returncode != 0 and "already listening" in p.stderr, p.stderr


def test_status_text_reports_progress(c):
    job = submit_square(c, 4000, "/root/out-status", 2000, extra=("--save-batch", "100"))
    text = c.wait_for("StatusText with progress", lambda: (
        lambda t: t if "1 running" in t and ("job %d: " % job) in t and not t.endswith(" 0/4000 items, 0/s") else None)(
        c.show("StatusText")))
    assert "/4000 items" in text, text
    c.ctl("cancel", job)


def test_kill_9_then_start_finishes_the_job(c):
    n = 20000
    job = submit_square(c, n, "/root/out-kill", 200)
    c.wait_for("progress", lambda: c.status(job)["done"] >= 3000)
    pid = c.show("MainPID")
    c.run("systemctl", "kill", "-s", "KILL", "mplockd")
    # Restart=on-failure may bring it back by itself; start it anyway, as an
    # administrator would.
    c.wait_for("the old mplockd gone", lambda: c.show("MainPID") != pid)
    c.run("systemctl", "start", "mplockd")
    st = json.loads(c.ctl("--json", "wait", job, timeout=300).stdout)
    assert st["state"] == "completed" and st["done"] == n, st
    c.check_square_results(job, n)
    assert "will resume" in c.run("journalctl", "-u", "mplockd", "--no-pager").stdout


def test_stop_then_start_resumes(c):
    n = 6000
    job = submit_square(c, n, "/root/out-stop", 1000)
    c.wait_for("progress", lambda: c.status(job)["done"] >= 1000)
    c.run("systemctl", "stop", "mplockd")
    assert c.show("ActiveState") == "inactive"
    assert c.show("Result") == "success", c.show("Result")
    done_at_stop = json.loads(c.run("cat", "/var/lib/mplockd/jobs/%d/state.json" % job).stdout)["state"]
    assert done_at_stop == "running", done_at_stop
    c.run("systemctl", "start", "mplockd")
    st = json.loads(c.ctl("--json", "wait", job, timeout=300).stdout)
    assert st["state"] == "completed", st
    c.check_square_results(job, n)


def test_watchdog_restarts_a_frozen_daemon(c):
    c.run("mkdir", "-p", "/run/systemd/system/mplockd.service.d")
    c.run("sh", "-c", "printf '[Service]\\nWatchdogSec=2s\\nTimeoutAbortSec=2s\\n' > "
                      "/run/systemd/system/mplockd.service.d/watchdog.conf")
    c.run("systemctl", "daemon-reload")
    c.run("systemctl", "restart", "mplockd")
    n = 8000
    job = submit_square(c, n, "/root/out-watchdog", 500)
    c.wait_for("progress", lambda: c.status(job)["done"] >= 500)
    pid = c.show("MainPID")
    c.run("kill", "-STOP", pid)
    c.wait_for("a new mplockd", lambda: c.show("MainPID") not in ("0", pid) and c.show("ActiveState") == "active",
               timeout=60)
    assert int(c.show("NRestarts")) >= 1
    st = json.loads(c.ctl("--json", "wait", job, timeout=300).stdout)
    assert st["state"] == "completed", st
    c.check_square_results(job, n)
    assert "watchdog" in c.run("journalctl", "-u", "mplockd", "--no-pager").stdout.lower()
    c.run("rm", "-r", "/run/systemd/system/mplockd.service.d")
    c.run("systemctl", "daemon-reload")
    c.run("systemctl", "restart", "mplockd")


def test_journal_has_the_jobs_lines(c):
    c.items("/tmp/items-j.txt", 50)
    job = int(c.ctl("submit", "--module", MODULES + "/probe.so", "--input", "/tmp/items-j.txt", "--output",
                    "/root/out-journal", "--shared", '{"print": true}').stdout)
    c.ctl("wait", job)
    lines = c.run("journalctl", "MPLOCK_JOB=%d" % job, "--no-pager", "-o", "cat").stdout.splitlines()
    assert any("Submitted" in line for line in lines), lines[:5]
    assert any("completed" in line for line in lines), lines[-5:]
    for i in range(50):
        assert "probe out %d" % i in lines and "probe err %d" % i in lines, i
    other = c.run("journalctl", "MPLOCK_JOB=%d" % (job + 1000), "--no-pager", "-o", "cat", check=False).stdout
    assert "probe out" not in other
    logs = c.ctl("logs", job).stdout
    assert "probe out 49" in logs


def test_a_flooding_job_does_not_silence_the_journal(c):
    """Every worker line went to the journal, whose per-unit rate limit
    then dropped everyone's lines, mplockd's own included. A job's lines
    reach it at a bounded rate; the rest is counted, said, and in the
    job's log."""
    n = 20000
    c.items("/tmp/items-flood.txt", n)
    job = int(c.ctl("submit", "--module", MODULES + "/probe.so", "--input", "/tmp/items-flood.txt", "--output",
                    "/root/out-flood", "--shared", '{"print": true}').stdout)
    c.ctl("wait", job)
    lines = c.run("journalctl", "MPLOCK_JOB=%d" % job, "--no-pager", "-o", "cat").stdout.splitlines()
    probe = [line for line in lines if line.startswith("probe ")]
    assert 200 <= len(probe) < 2 * n // 10, len(probe)
    assert any("were not sent to the journal" in line for line in lines), lines[-5:]
    assert any("completed" in line for line in lines), lines[-5:]
    logs = c.ctl("logs", job).stdout
    assert logs.count("probe out ") == n and logs.count("probe err ") == n
    # journald dropped none of mplockd's unit meanwhile (it says so in
    # its own lines when it does).
    everything = c.run("journalctl", "--no-pager", "-o", "cat").stdout.splitlines()
    dropped = [x for x in everything if "Suppressed" in x and "mplockd" in x]
    assert not dropped, dropped


def test_reload_applies_the_config_file(c):
    c.run("sh", "-c", "echo 'max-workers = 1' > /etc/mplockd.conf")
    c.run("systemctl", "reload", "mplockd")
    c.wait_for("reload", lambda: "Reloaded /etc/mplockd.conf: 1 workers at most" in
               c.run("journalctl", "-u", "mplockd", "--no-pager").stdout)
    assert c.show("ActiveState") == "active"
    c.run("rm", "/etc/mplockd.conf")
    c.run("systemctl", "reload", "mplockd")


def test_user_units_for_an_unprivileged_user(c):
    c.run("loginctl", "enable-linger", "alice")
    c.wait_for("alice's systemd", lambda: c.run("systemctl", "is-active", "user@1000.service",
                                                check=False).stdout.strip() == "active")
    c.run("systemctl", "--user", "enable", "--now", "mplockd.socket", user="alice")
    assert c.run("systemctl", "--user", "is-active", "mplockd.service", user="alice",
                 check=False).stdout.strip() == "inactive"
    job = submit_square(c, 3000, "/home/alice/out", 100, user="alice")
    assert c.run("systemctl", "--user", "is-active", "mplockd.service", user="alice").stdout.strip() == "active"
    st = json.loads(c.ctl("--json", "wait", job, user="alice").stdout)
    assert st["state"] == "completed" and st["uid"] == 1000, st
    c.check_square_results(job, 3000, user="alice")
    # Alice's own instance: its state is in her home, and the system one
    # never saw the job.
    owner = c.run("stat", "-c", "%U %a", "/home/alice/.local/state/mplockd").stdout.split()
    assert owner == ["alice", "700"], owner
    assert c.run("stat", "-c", "%U", "/home/alice/out/mplock-%d.results" % job).stdout.strip() == "alice"
    c.run("systemctl", "start", "mplockd.socket")
    sysjobs = c.ctl("--system", "--json", "list").stdout
    assert '"/home/alice/out"' not in sysjobs


def test_stdin_input_under_the_units_sandbox(c):
    """--input - is read by the submission's check through /proc/PID/fd of
    mplockctl: it must work under the system unit (ProtectProc=invisible)
    for a user, and leave no file in the output directory."""
    c.run("systemctl", "start", "mplockd.socket")
    data = "".join("%d\n" % i for i in range(500))
    p = c.ctl("--system", "submit", "--module", MODULES + "/square.so", "--input", "-", "--output",
              "/home/alice/out-stdin", user="alice", input=data)
    job = int(p.stdout)
    st = json.loads(c.ctl("--system", "--json", "wait", job, user="alice").stdout)
    assert st["state"] == "completed" and st["items"] == 500, st
    res = c.ctl("--system", "results", job, user="alice").stdout.split()
    assert res == [str(i * i) for i in range(500)], res[:5]
    left = c.run("ls", "-A", "/home/alice/out-stdin").stdout.split()
    assert not [f for f in left if f.startswith(".mplock-stdin")], left


PY_SCRIPT = """
import os
from mplock import mp_lock_value

def process(data, shared_data, init_values):
    return int(data) ** 2, os.getuid()

res = mp_lock_value([str(i) for i in range(10)], process, None, 2, "out-" + os.environ["WHICH"])
print(sum(r[0] for r in res), sorted({r[1] for r in res}))
"""


def test_python_mp_lock_as_installed(c):
    """The README's Python example as a user runs it on an installed
    system: the package and bridge where meson put them, nothing set; no
    daemon running, so the call starts the user's own through her user
    manager; then against the system instance, whose runner runs the
    callbacks as her."""
    c.run("loginctl", "enable-linger", "alice")
    c.wait_for("alice's systemd", lambda: c.run("systemctl", "is-active", "user@1000.service",
                                                check=False).stdout.strip() == "active")
    # No daemon reachable at all: not hers, and not the system's either
    # (which her call would use, as mplockctl does, if it answered).
    c.run("systemctl", "--user", "stop", "mplockd.socket", "mplockd.service", user="alice", check=False)
    c.run("systemctl", "stop", "mplockd.socket", "mplockd.service")
    c.run("sh", "-c", "cat > /home/alice/sq.py", input=PY_SCRIPT, user="alice")

    def script(which, *env):
        return c.run("sh", "-c", "cd /home/alice && env WHICH=%s %s python3 sq.py" % (which, " ".join(env)),
                     user="alice", timeout=180)

    p = script("user")
    assert p.stdout.strip() == "285 [1000]", (p.stdout, p.stderr)
    assert "mplock: started mplockd (user instance)" in p.stderr, p.stderr
    assert c.run("systemctl", "--user", "is-active", "mplockd.service", user="alice").stdout.strip() == "active"
    again = script("user")  # completed: at once, from its results, nothing started
    assert again.stdout == p.stdout and "started" not in again.stderr, again.stderr
    c.run("systemctl", "start", "mplockd.socket")
    p = script("system", "MPLOCK_SOCKET=/run/mplockd/io.mplock.Manager")
    assert p.stdout.strip() == "285 [1000]", (p.stdout, p.stderr)
    job = [j for j in map(json.loads, c.ctl("--system", "--json", "list").stdout.splitlines())
           if j["output"] == "/home/alice/out-system"][0]
    # mplockd knew the installed bridge: its agent for alice had Python
    # running, and the runner was forked from it.
    assert "taken over from the agent" in c.run("cat", job["log_path"]).stdout


# --- issue 14: every job its own scope ------------------------------------

def pids_with(c, marker):
    out = c.run("pgrep", "-f", marker, check=False).stdout.split()
    return [int(p) for p in out]


def cgroup_of(c, pid):
    p = c.run("cat", "/proc/%d/cgroup" % pid, check=False)
    return p.stdout if p.returncode == 0 else ""


def exec_job(c, command, items, out, user=None, extra=(), workers=2):
    p = c.ctl("submit", "--exec", command, "--output", out, "--workers", workers, *extra, ":::", *items, user=user)
    return int(p.stdout)


def test_a_job_runs_in_its_own_scope(c):
    c.run("systemctl", "start", "mplockd.socket")
    marker = "scoped%d" % time.monotonic_ns()
    job = exec_job(c, "sh -c 'sleep 60' %s {}" % marker, ["a", "b", "c"], "/tmp/scope-out")
    unit = "mplock-job-%d.scope" % job
    c.wait_for("two commands", lambda: len(pids_with(c, marker)) >= 2)
    st = c.status(job)
    assert st["isolation"] == "scope" and st["unit"] == unit, st
    assert c.run("systemctl", "is-active", unit).stdout.strip() == "active"
    assert c.show("ControlGroup", unit) == "/mplock.slice/mplock-u0.slice/" + unit, c.show("ControlGroup", unit)
    # The runner, its workers and the commands: every one of them.
    runners = [int(p) for p in c.run("pgrep", "-f", "mplock-runner run").stdout.split()]
    assert len(runners) == 3, runners  # the runner and two workers
    for pid in runners + pids_with(c, marker):
        assert "/mplock.slice/mplock-u0.slice/%s\n" % unit in cgroup_of(c, pid), (pid, cgroup_of(c, pid))
    # mplockd and the agent stay in the service's cgroup.
    main = int(c.show("MainPID"))
    assert "/system.slice/mplockd.service" in cgroup_of(c, main)
    c.ctl("cancel", job)
    c.wait_for("the scope to go", lambda: c.run("systemctl", "is-active", unit, check=False).stdout.strip()
               in ("inactive", "failed", "unknown"))


def test_cancel_and_the_end_leave_nothing_that_detached(c):
    # Each command leaves a sleeper in a session of its own (setsid
    # -f: a double fork, no longer in the command's process group).
    marker = "detached%d" % time.monotonic_ns()
    job = exec_job(c, "sh -c 'setsid -f sh -c \"sleep 3001\" %s; sleep 3002' %s {}" % (marker, marker), ["a", "b"],
                   "/tmp/detach-out")
    c.wait_for("the sleepers", lambda: len(pids_with(c, "sleep 3001")) >= 2)
    c.ctl("cancel", job)
    c.wait_for("every process of the job to be gone",
               lambda: not pids_with(c, "sleep 300[12]"), timeout=15)
    # A job that completes: what its commands left behind goes with it.
    job = exec_job(c, "sh -c 'setsid -f sleep 3003' %s {}" % marker, ["a", "b", "c"], "/tmp/detach-out2")
    st = json.loads(c.ctl("--json", "wait", job).stdout)
    assert st["state"] == "completed", st
    c.wait_for("the leftovers of a completed job to be gone", lambda: not pids_with(c, "sleep 3003"), timeout=15)


LOOP = "i=0; while [ $i -lt 500000 ]; do i=$((i+1)); done"


def test_status_accounts_the_jobs_cpu(c):
    n = 6
    # One worker, as the reference below runs them: two commands at once on
    # a shared VM's two cores each take more CPU time (CI saw 1.24x).
    job = exec_job(c, "sh -c '%s' {}" % LOOP, [str(i) for i in range(n)], "/tmp/cpu-out", workers=1)
    st = json.loads(c.ctl("--json", "wait", job).stdout)
    assert st["state"] == "completed", st
    used = st["usage"]["cpu_usec"] / 1e6
    # The same commands, run here one after another: their CPU time.
    ref = float(c.run("python3", "-c", "import resource, subprocess\n"
                      "for _ in range(%d): subprocess.run(['sh', '-c', %r], check=True)\n"
                      "r = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
                      "print(r.ru_utime + r.ru_stime)" % (n, LOOP)).stdout)
    print("    job's CPU %.2f s, the same commands alone %.2f s" % (used, ref))
    # The commands are counted (the runner alone would be a few hundredths
    # of this) and not twice over. CPU time itself varies between two runs
    # on a shared VM (CI saw the reference at 0.67x and 1.49x of the job's),
    # so the bound is that of what is tested, not of the machine's noise.
    assert 0.5 * ref <= used <= 2.0 * ref, (used, ref)
    # Kept in the job's state once it has ended (a restart reads it back).
    c.run("systemctl", "restart", "mplockd.service")
    assert abs(c.status(job)["usage"]["cpu_usec"] / 1e6 - used) < 0.01


def test_memory_max_fails_the_items_that_exceed_it(c):
    other = submit_square(c, 2000, "/tmp/mem-other", 200)
    grab = "python3 -c 'import sys; b = bytearray(int(sys.argv[1]) << 20); print(len(b))' {}"
    job = exec_job(c, grab, ["100", "1", "100", "2"], "/tmp/mem-out", extra=("--memory-max", "64M"))
    st = json.loads(c.ctl("--json", "wait", job, check=False).stdout)
    assert st["state"] == "completed_with_failures" and st["failed"] == 2, st
    res = [json.loads(line) for line in c.ctl("--json", "results", job, check=False).stdout.splitlines()]
    assert [r.get("result") for r in res] == [None, str(1 << 20) + "\n", None, str(2 << 20) + "\n"], res
    assert "MemoryError" in res[0]["error"]["message"], res[0]
    assert json.loads(c.ctl("--json", "wait", other).stdout)["state"] == "completed"
    assert c.show("ActiveState") == "active"
    # What the kernel enforces for it here is said, not assumed.
    assert "controllers" in st and "isolation" in st, st


def test_after_kill_9_of_the_daemon_the_job_resumes_in_a_fresh_scope(c):
    # What the killed daemon's job left (a detached sleeper, commands'
    # children) is still in the job's scope: the next run kills it and
    # takes the name again, it does not run unscoped.
    marker = "leftover%d" % time.monotonic_ns()
    job = exec_job(c, "sh -c 'setsid -f sh -c \"sleep 3005\" %s; sleep 2' %s {}" % (marker, marker),
                   [str(i) for i in range(6)], "/tmp/left-out")
    c.wait_for("the sleepers", lambda: len(pids_with(c, "sleep 3005")) >= 2)
    pid = c.show("MainPID")
    c.run("systemctl", "kill", "-s", "KILL", "mplockd")
    c.wait_for("the old mplockd gone", lambda: c.show("MainPID") != pid)
    c.run("systemctl", "start", "mplockd")
    c.wait_for("the job running again in its scope",
               lambda: c.status(job).get("isolation") == "scope" and c.status(job)["state"] == "running")
    st = json.loads(c.ctl("--json", "wait", job, timeout=120).stdout)
    assert st["state"] == "completed" and st["done"] == 6, st
    c.wait_for("every leftover to be gone", lambda: not pids_with(c, "sleep 3005"), timeout=15)
    assert "still there from an earlier run" in c.run("journalctl", "-u", "mplockd", "--no-pager").stdout


def test_the_user_instance_puts_jobs_in_the_users_manager(c):
    c.run("systemctl", "--user", "start", "mplockd.socket", user="alice")
    marker = "userscope%d" % time.monotonic_ns()
    job = exec_job(c, "sh -c 'sleep 60' %s {}" % marker, ["a"], "/home/alice/scope-out", user="alice")
    unit = "mplock-job-%d.scope" % job
    c.wait_for("the command", lambda: pids_with(c, marker))
    assert c.run("systemctl", "--user", "is-active", unit, user="alice").stdout.strip() == "active"
    cg = cgroup_of(c, pids_with(c, marker)[0])
    assert "/user@1000.service/mplock.slice/mplock-u1000.slice/%s\n" % unit in cg, cg
    c.ctl("cancel", job, user="alice")
    c.wait_for("alice's command to go", lambda: not pids_with(c, marker))


TESTS = [test_socket_activation, test_status_text_reports_progress, test_kill_9_then_start_finishes_the_job,
         test_stop_then_start_resumes, test_watchdog_restarts_a_frozen_daemon, test_journal_has_the_jobs_lines,
         test_reload_applies_the_config_file, test_user_units_for_an_unprivileged_user,
         test_stdin_input_under_the_units_sandbox, test_a_flooding_job_does_not_silence_the_journal,
         test_python_mp_lock_as_installed, test_a_job_runs_in_its_own_scope,
         test_cancel_and_the_end_leave_nothing_that_detached, test_status_accounts_the_jobs_cpu,
         test_memory_max_fails_the_items_that_exceed_it,
         test_after_kill_9_of_the_daemon_the_job_resumes_in_a_fresh_scope,
         test_the_user_instance_puts_jobs_in_the_users_manager]


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
    names = sys.argv[2:]
    if os.geteuid() != 0 or not shutil.which("systemd-nspawn") or not shutil.which("debootstrap"):
        # Skipped (meson's code 77) where a container cannot be made; CI
        # runs as root with both installed (scripts/deps.sh).
        print("skipped: needs root, systemd-nspawn (systemd-container) and debootstrap")
        return 77
    ensure_rootfs()
    c = Container(build)
    passed = failed = 0
    try:
        c.start()
        for t in TESTS:
            if names and t.__name__ not in names:
                continue
            t0 = time.monotonic()
            try:
                t(c)
                passed += 1
                print("ok   %s (%.1f s)" % (t.__name__, time.monotonic() - t0), flush=True)
            except Exception:
                failed += 1
                print("FAIL %s (%.1f s)" % (t.__name__, time.monotonic() - t0), flush=True)
                traceback.print_exc()
                print(c.run("journalctl", "-u", "mplockd", "-n", "40", "--no-pager", check=False).stdout)
    except Exception:
        failed += 1
        traceback.print_exc()
    finally:
        c.stop()
    print("mplock-tests: %d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
