# SPDX-License-Identifier: MIT
"""A shared machine: a system mplockd (root) serving two real users, alice
and bob, and carol of the admin group. Jobs run as their owners; users see
and manage only their own jobs; nobody can make mplockd read or write what
they could not; abuse of the socket does not slow anyone else down.

Needs root (to create the users and run the system instance)."""

import grp
import json
import os
import stat
import subprocess
import sys
import textwrap
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import BUILD, MPLOCKCTL, DaemonTest, main  # noqa: E402
from users import USER_PYTHON, UsersTest, ids  # noqa: E402

WHOAMI = os.path.join(BUILD, "tests", "integration", "whoami.so")
HOSTILE = os.path.join(BUILD, "tests", "integration", "hostile.so")


@unittest.skipIf(os.geteuid() != 0, "needs root: real users and a system instance")
class SharedMachine(UsersTest):
    daemon_args = ("--admin-group", "mplock-admins", "--max-connections-per-uid", "64",
                   "--max-connections", "256", "--max-processes-per-uid", "64", "--system")

    def alice_job(self, n=20, shared=None):
        mod = self.user_file("mplock-alice", "whoami.so", open(WHOAMI, "rb").read(), 0o700)
        items = self.user_file("mplock-alice", "items.txt", "".join("%d\n" % i for i in range(n)).encode())
        args = ["submit", "--module", mod, "--input", items, "--output", os.path.join(self.home["mplock-alice"], "out")]
        if shared:
            args += ["--shared", shared]
        return int(self.as_user("mplock-alice", *args).stdout)

    def test_a_job_runs_as_its_owner_with_their_groups(self):
        job = self.alice_job()
        st = json.loads(self.as_user("mplock-alice", "--json", "wait", job).stdout)
        self.assertEqual(st["state"], "completed", st)
        uid, gid, groups = ids("mplock-alice")
        self.assertEqual(st["uid"], uid)
        res = [json.loads(x) for x in self.as_user("mplock-alice", "--json", "results", job).stdout.splitlines()]
        want = "uid=%d gid=%d groups=%s nnp=1 capeff=0000000000000000" % (uid, gid, ",".join(map(str, groups)))
        self.assertEqual({r["result"] for r in res}, {want})
        self.assertIn(grp.getgrnam("mplock-team").gr_gid, groups)
        out = os.path.join(self.home["mplock-alice"], "out")
        for name in (out, os.path.join(out, "mplock-%d.results" % job), os.path.join(out, "mplock-%d.log" % job)):
            self.assertEqual(os.stat(name).st_uid, uid, name)
        # Through the daemon too (it reads the file as alice).
        via = self.as_user("mplock-alice", "--json", "results", "--via-daemon", job).stdout
        self.assertEqual(via, self.as_user("mplock-alice", "--json", "results", job).stdout)
        # The state directory stays root's and private.
        st_dir = os.stat(self.d.state)
        self.assertEqual((st_dir.st_uid, stat.S_IMODE(st_dir.st_mode)), (0, 0o700))

    def test_user_code_holds_no_writable_descriptor_of_the_state(self):
        """A module's constructor runs in the check and in the runner: what
        they inherited of mplockd's state directory cannot be written,
        grown or cut (the lock and the snapshot are read-only, the input
        comes to mplockd through a pipe)."""
        log = os.path.join(self.home["mplock-alice"], "hostile.log")
        self.d.stop()
        # User code sees none of mplockd's environment but what an admin
        # passes on by name (agent-env.h).
        os.environ["MPLOCK_HOSTILE_LOG"] = log
        os.environ["MPLOCKD_PASS_ENV"] = "MPLOCK_HOSTILE_LOG"
        try:
            self.d.start()
        finally:
            del os.environ["MPLOCK_HOSTILE_LOG"]
            del os.environ["MPLOCKD_PASS_ENV"]
        mod = self.user_file("mplock-alice", "hostile.so", open(HOSTILE, "rb").read(), 0o700)
        items = self.user_file("mplock-alice", "items.txt", b"a\nb\nc\n")
        job = int(self.as_user("mplock-alice", "submit", "--module", mod, "--input", items, "--output",
                               os.path.join(self.home["mplock-alice"], "out")).stdout)
        st = json.loads(self.as_user("mplock-alice", "--json", "wait", job).stdout)
        self.assertEqual(st["state"], "completed", st)
        with open(log) as f:
            lines = f.read().splitlines()
        self.assertGreaterEqual(len([x for x in lines if x.endswith(" done")]), 2, lines)  # check and runner
        attempts = [x for x in lines if "write=" in x]
        self.assertTrue(attempts, lines)  # the runner has the lock and the snapshot
        for x in attempts:
            self.assertNotIn("write=0", x)
            self.assertNotIn("truncate=0", x)
        jobdir = os.path.join(self.d.state, "jobs", str(job))
        with open(os.path.join(jobdir, "input"), "rb") as f:
            self.assertEqual(f.read(), b"a\0b\0c\0")
        # No lock file to write into: the lock is a flock of the snapshot.
        self.assertNotIn("lock", os.listdir(jobdir))

    def test_a_users_jobs_cannot_fork_without_bound(self):
        mod = self.user_file("mplock-alice", "whoami.so", open(WHOAMI, "rb").read(), 0o700)
        items = self.user_file("mplock-alice", "forks.txt", b"forks\n")
        job = int(self.as_user("mplock-alice", "submit", "--module", mod, "--input", items, "--output",
                               os.path.join(self.home["mplock-alice"], "out"), "--workers", 1).stdout)
        st = json.loads(self.as_user("mplock-alice", "--json", "wait", job).stdout)
        self.assertEqual(st["state"], "completed", st)
        res = json.loads(self.as_user("mplock-alice", "--json", "results", job).stdout)
        forks = int(res["result"].split("=")[1])
        # 64 processes for alice, the runner and its worker among them.
        self.assertGreater(forks, 0)
        self.assertLessEqual(forks, 62)

    def test_other_users_cannot_see_or_touch_a_job_root_and_admins_can(self):
        job = self.alice_job(n=200, shared='{"sleep_us": 1}')
        bob_list = self.as_user("mplock-bob", "--json", "list").stdout
        self.assertEqual(bob_list, b"")
        for cmd in ("status", "results", "failed", "cancel", "pause", "resume", "retry", "remove", "wait", "logs",
                    "stats"):
            p = self.as_user("mplock-bob", cmd, job, check=False)
            self.assertEqual(p.returncode, 6, (cmd, p.stderr))
            self.assertIn("permission denied: job %d belongs to another user" % job, p.stderr.decode(), cmd)
        p = self.as_user("mplock-bob", "results", "--via-daemon", job, check=False)
        self.assertEqual(p.returncode, 6)
        r = subprocess.run([MPLOCKCTL, "--socket", self.d.sock, "--json", "status", str(job)], capture_output=True)
        self.assertEqual(json.loads(r.stdout)["id"], job)  # root
        carol = self.as_user("mplock-carol", "--json", "list").stdout.splitlines()
        self.assertEqual([json.loads(x)["id"] for x in carol], [job])  # the admin group
        self.as_user("mplock-carol", "status", job)
        # Alice's own view is untouched by all this.
        st = json.loads(self.as_user("mplock-alice", "--json", "wait", job).stdout)
        self.assertEqual(st["state"], "completed")

    def test_nobody_can_borrow_the_daemons_rights(self):
        private_mod = self.user_file("mplock-alice", "whoami.so", open(WHOAMI, "rb").read(), 0o700)
        private_items = self.user_file("mplock-alice", "items.txt", b"1\n2\n")
        bob_items = self.user_file("mplock-bob", "items.txt", b"1\n2\n")
        bob_mod = self.user_file("mplock-bob", "whoami.so", open(WHOAMI, "rb").read(), 0o700)
        bob_out = os.path.join(self.home["mplock-bob"], "out")
        alice_dir = self.home["mplock-alice"]
        os.chmod(alice_dir, 0o755)  # readable, not writable, by bob
        cases = [
            (("--module", private_mod, "--input", bob_items, "--output", bob_out), "invalid module"),
            (("--module", bob_mod, "--input", private_items, "--output", bob_out), "invalid input"),
            (("--module", bob_mod, "--input", bob_items, "--output", os.path.join(alice_dir, "out")),
             "invalid output"),
            (("--module", bob_mod, "--input", bob_items, "--output", alice_dir), "invalid output"),
        ]
        # A symlink of bob's pointing into alice's directory changes nothing.
        link = os.path.join(self.home["mplock-bob"], "link")
        os.symlink(alice_dir, link)
        cases.append((("--module", bob_mod, "--input", bob_items, "--output", os.path.join(link, "out")),
                      "invalid output"))
        for args, expect in cases:
            p = self.as_user("mplock-bob", "submit", *args, check=False)
            self.assertEqual(p.returncode, 1, (args, p.stderr))
            self.assertIn(expect, p.stderr.decode())
            self.assertIn("Permission denied", p.stderr.decode())
        self.assertEqual(sorted(os.listdir(alice_dir)), ["items.txt", "whoami.so"])
        self.assertEqual([f for f in os.listdir(os.path.join(self.d.state, "jobs"))], [])
        # Bob's own job, reading his own files, works.
        job = int(self.as_user("mplock-bob", "submit", "--module", bob_mod, "--input", bob_items, "--output",
                               bob_out).stdout)
        self.assertEqual(self.as_user("mplock-bob", "wait", job, check=False).returncode, 0)

    def test_abuse_of_the_socket_does_not_slow_anyone_down(self):
        probe = textwrap.dedent("""
            import json, socket, sys, time
            worst, n = 0.0, 0
            end = time.monotonic() + float(sys.argv[2])
            while time.monotonic() < end:
                t0 = time.monotonic()
                s = socket.socket(socket.AF_UNIX)
                s.settimeout(5)
                s.connect(sys.argv[1])
                s.sendall(b'{"method":"io.mplock.Manager.List"}\\0')
                buf = b""
                while not buf.endswith(b"\\0"):
                    chunk = s.recv(65536)
                    if not chunk:
                        raise SystemExit("closed")
                    buf += chunk
                s.close()
                assert "jobs" in json.loads(buf[:-1])["parameters"]
                worst = max(worst, time.monotonic() - t0)
                n += 1
                time.sleep(0.02)
            print(json.dumps({"worst": worst, "calls": n}))
        """)
        abuse = textwrap.dedent("""
            import json, socket, sys, threading
            path = sys.argv[1]
            def conn():
                s = socket.socket(socket.AF_UNIX)
                s.settimeout(10)
                s.connect(path)
                return s
            report = {}
            # 500 concurrent connections, held open.
            held = []
            for _ in range(500):
                try:
                    held.append(conn())
                except OSError:
                    pass
            report["connected"] = len(held)
            # Connections wait in the listen backlog until mplockd accepts
            # (or refuses) them: count the ones still open once that
            # has settled.
            import time
            def count_alive():
                alive = 0
                for s in held:
                    try:
                        s.setblocking(False)
                        alive += s.recv(1) != b""
                    except BlockingIOError:
                        alive += 1
                    except OSError:
                        pass
                return alive
            last, t0 = -1, time.monotonic()
            while time.monotonic() - t0 < 5:
                alive = count_alive()
                if alive == last:
                    break
                last = alive
                time.sleep(0.3)
            report["kept"] = alive
            for s in held:
                s.close()
            # 1,000 malformed messages.
            bad = [b"{oops}\\0", b"[1]\\0", b"\\xff\\0", b'{"method": 5}\\0', b"{" * 5000 + b"\\0"]
            closed = 0
            for i in range(1000):
                s = conn()
                s.sendall(bad[i % len(bad)])
                try:
                    closed += s.recv(10) == b""
                except OSError:
                    closed += 1
                s.close()
            report["malformed_closed"] = closed
            # One 100 MB message.
            s = conn()
            sent = 0
            chunk = b"x" * (1 << 20)
            try:
                s.sendall(b'{"method": "io.mplock.Manager.List", "parameters": {"x": "')
                for _ in range(100):
                    s.sendall(chunk)
                    sent += len(chunk)
            except OSError:
                pass
            report["big_sent_mb"] = sent >> 20
            s.close()
            print(json.dumps(report))
        """)
        # Idle clients that never send anything, held the whole time.
        idle = [subprocess.Popen([USER_PYTHON, "-c", "import socket,sys,time; s=socket.socket(socket.AF_UNIX);"
                                  "s.connect(sys.argv[1]); time.sleep(30)", self.d.sock],
                                 user=ids("mplock-bob")[0]) for _ in range(5)]
        alice = subprocess.Popen([USER_PYTHON, "-c", probe, self.d.sock, "12"], stdout=subprocess.PIPE,
                                 user=ids("mplock-alice")[0], group=ids("mplock-alice")[1])
        time.sleep(0.5)
        bob = subprocess.run([USER_PYTHON, "-c", abuse, self.d.sock], capture_output=True, timeout=120,
                             user=ids("mplock-bob")[0], group=ids("mplock-bob")[1])
        out, _ = alice.communicate(timeout=120)
        for p in idle:
            p.kill()
            p.wait()
        self.assertEqual(bob.returncode, 0, bob.stderr)
        report = json.loads(bob.stdout)
        result = json.loads(out)
        print("abuse: %s; alice: %d calls, worst %.1f ms" % (report, result["calls"], result["worst"] * 1000))
        self.assertGreater(report["connected"], 64, "the cap was not put to the test")
        self.assertGreater(report["kept"], 0, "the daemon dropped every connection")
        self.assertLessEqual(report["kept"], 64, "one user held more connections than allowed")
        self.assertEqual(report["malformed_closed"], 1000)
        self.assertLess(report["big_sent_mb"], 100, "a 100 MB message was swallowed")
        self.assertGreater(result["calls"], 50)
        self.assertLess(result["worst"], 0.1, "a well-behaved client waited %.0f ms" % (result["worst"] * 1000))
        self.assertIsNone(self.d.proc.poll(), "mplockd died")
        self.assertIn("jobs", self.d.varlink("io.mplock.Manager.List", {})[0]["parameters"])


@unittest.skipIf(os.geteuid() != 0, "needs root")
class Timeouts(DaemonTest):
    daemon_args = ("--idle-timeout", "1", "--message-timeout", "1")

    def test_idle_and_trickling_clients_are_dropped(self):
        import socket
        idle = socket.socket(socket.AF_UNIX)
        idle.connect(self.d.sock)
        trickle = socket.socket(socket.AF_UNIX)
        trickle.connect(self.d.sock)
        trickle.sendall(b'{"method": ')
        deadline = time.monotonic() + 10
        closed = set()
        while len(closed) < 2 and time.monotonic() < deadline:
            for name, s in (("idle", idle), ("trickle", trickle)):
                if name in closed:
                    continue
                s.settimeout(0.1)
                try:
                    if name == "trickle":
                        s.sendall(b" ")  # a byte now and then is not enough
                    if s.recv(10) == b"":
                        closed.add(name)
                except socket.timeout:
                    pass
                except OSError:
                    closed.add(name)
        self.assertEqual(closed, {"idle", "trickle"})


if __name__ == "__main__":
    main()
