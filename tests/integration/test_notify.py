# SPDX-License-Identifier: MIT
"""submit --on-end: the command runs as the job's owner each time the job
ends, with the job's facts and nothing of mplockd's environment, its
output in the job's log, at least once: a kill -9 of mplockd while it runs
makes it run again after the restart."""

import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import DaemonTest, main, module  # noqa: E402
from users import UsersTest, ids  # noqa: E402

ALLOWED_ENV = {"MPLOCK_JOB_ID", "MPLOCK_JOB_NAME", "MPLOCK_JOB_STATE", "MPLOCK_JOB_DONE", "MPLOCK_JOB_FAILED",
               "MPLOCK_JOB_TOTAL", "MPLOCK_JOB_OUTPUT", "PATH", "HOME", "USER", "LOGNAME", "SHELL",
               # what sh itself sets
               "PWD", "OLDPWD", "SHLVL", "_"}


def read_env(path):
    with open(path, "rb") as f:
        return dict(line.split("=", 1) for line in f.read().decode().split("\0") if line)


class OnEnd(DaemonTest):
    def prepare(self):
        # In mplockd's environment, as an admin's shell would have it: the
        # command must not see it.
        os.environ["MPLOCK_TEST_SECRET"] = "root-only"

    def tearDown(self):
        os.environ.pop("MPLOCK_TEST_SECRET", None)
        super().tearDown()

    def settled(self, job, timeout=30):
        """The job's status once it has ended and owes no on-end command."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.d.status(job)
            if st["state"] in ("completed", "completed_with_failures", "failed", "cancelled") and \
                    not st.get("on_end_owed", True):
                return st
            time.sleep(0.05)
        self.fail("job %d still owes its on-end command:\n%s" % (job, self.d.read_log()[-3000:]))

    def env_command(self):
        # env -0: values may hold anything; one file per job and end.
        return 'n=$(cat "%s/runs-$MPLOCK_JOB_ID" 2>/dev/null | wc -l); echo x >> "%s/runs-$MPLOCK_JOB_ID"; ' \
               'env -0 > "%s/env-$MPLOCK_JOB_ID-$n"; echo hello-from-on-end; echo err-from-on-end >&2' % (
                   self.tmp, self.tmp, self.tmp)

    def runs(self, job):
        try:
            with open(self.path("runs-%d" % job)) as f:
                return len(f.read().splitlines())
        except FileNotFoundError:
            return 0

    def test_runs_once_per_end_with_the_jobs_facts_and_its_output_in_the_log(self):
        items = self.write_items("items.txt", ["1", "2", "3"])
        out = self.path("out")
        job = self.d.submit(module("square"), items, out, "--name", "sq job", "--on-end", self.env_command())
        st = self.settled(job)
        self.assertEqual(st["state"], "completed")
        self.assertEqual(st["on_end"], self.env_command())
        self.assertIn("on end:", self.d.ctl("status", job).stdout.decode())
        time.sleep(0.5)  # a second run would have begun by now
        self.assertEqual(self.runs(job), 1)
        env = read_env(self.path("env-%d-0" % job))
        self.assertEqual({k: env[k] for k in env if k.startswith("MPLOCK_JOB_")}, {
            "MPLOCK_JOB_ID": str(job), "MPLOCK_JOB_NAME": "sq job", "MPLOCK_JOB_STATE": "completed",
            "MPLOCK_JOB_DONE": "3", "MPLOCK_JOB_FAILED": "0", "MPLOCK_JOB_TOTAL": "3", "MPLOCK_JOB_OUTPUT": out})
        self.assertLessEqual(set(env), ALLOWED_ENV, env)
        self.assertNotIn("MPLOCK_TEST_SECRET", env)
        self.assertIn("PATH", env)
        # Framed in the job's log: its start, its output, its end.
        with open(os.path.join(out, "mplock-%d.log" % job)) as f:
            log = f.read()
        start = log.index("on-end command starting")
        self.assertLess(start, log.index("hello-from-on-end"))
        self.assertLess(log.index("hello-from-on-end"), log.index("on-end command exited with status 0"))
        self.assertIn("err-from-on-end", log)
        self.assertIn("On-end command exited with status 0", self.d.read_log())

    def test_failures_cancel_and_retry_notify_with_their_states(self):
        items = self.write_items("items.txt", ["a", "b", "c"])
        job = self.d.submit(module("flaky"), items, self.path("out"), "--max-attempts", 1,
                            "--shared", '{"fail": ["b"]}', "--on-end", self.env_command())
        st = self.settled(job)
        self.assertEqual(st["state"], "completed_with_failures")
        env = read_env(self.path("env-%d-0" % job))
        self.assertEqual((env["MPLOCK_JOB_STATE"], env["MPLOCK_JOB_DONE"], env["MPLOCK_JOB_FAILED"]),
                         ("completed_with_failures", "3", "1"))
        # Retried, it ends again and notifies again.
        self.d.ctl("retry", job)
        self.settled(job)
        deadline = time.monotonic() + 10
        while self.runs(job) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.runs(job), 2)
        self.assertEqual(read_env(self.path("env-%d-1" % job))["MPLOCK_JOB_STATE"], "completed_with_failures")

        many = self.write_items("many.txt", [str(i) for i in range(100000)])
        job = self.d.submit(module("square"), many, self.path("out2"), "--workers", 1,
                            "--shared", '{"sleep_us": 1000}', "--on-end", self.env_command())
        self.d.ctl("cancel", job)
        st = self.settled(job)
        self.assertEqual(st["state"], "cancelled")
        env = read_env(self.path("env-%d-0" % job))
        self.assertEqual(env["MPLOCK_JOB_STATE"], "cancelled")
        self.assertEqual(env["MPLOCK_JOB_TOTAL"], "100000")
        self.assertEqual(self.runs(job), 1)

    def test_a_bad_command_is_refused_and_nothing_is_submitted(self):
        items = self.write_items("items.txt", ["1"])
        for bad, why in (("x" * 4097, "longer than 4096"), ("echo a\necho b", "control characters"),
                         ("echo \x1b[2J", "control characters"), ("", "empty")):
            p = self.d.ctl("submit", "--module", module("square"), "--input", items, "--output", self.path("out"),
                           "--on-end", bad, check=False)
            self.assertNotEqual(p.returncode, 0, bad)
            self.assertIn("on_end", p.stderr.decode(), bad)
            self.assertIn(why, p.stderr.decode(), bad)
        self.assertEqual(self.d.ctl("--json", "list").stdout, b"")  # one line a job
        # A tab is text, and the longest command is taken.
        for good in ("true\t# a tab", "#" * 4096):
            job = self.d.submit(module("square"), items, self.path("out"), "--on-end", good)
            self.assertEqual(self.settled(job)["on_end"], good)


class OnEndLimits(DaemonTest):
    daemon_args = ("--max-on-end-per-uid", "1", "--on-end-timeout", "2")

    def test_one_of_a_users_commands_at_a_time_and_each_under_the_timeout(self):
        items = self.write_items("items.txt", ["1"])
        trace = self.path("trace")
        cmd = 'echo "start $MPLOCK_JOB_ID" >> %s; sleep 1; echo "end $MPLOCK_JOB_ID" >> %s' % (trace, trace)
        jobs = [self.d.submit(module("square"), items, self.path("out"), "--on-end", cmd) for _ in range(3)]
        hung = self.d.submit(module("square"), items, self.path("out"), "--on-end", "sleep 60; echo woke")
        for j in jobs + [hung]:
            st = OnEnd.settled(self, j, timeout=60)
        with open(trace) as f:
            lines = f.read().splitlines()
        # Never two at once: each start followed by its own end.
        self.assertEqual(len(lines), 6, lines)
        for k in range(0, 6, 2):
            self.assertEqual(lines[k].split()[0], "start")
            self.assertEqual(lines[k + 1], "end " + lines[k].split()[1])
        self.assertEqual(sorted(int(x.split()[1]) for x in lines[::2]), jobs)
        with open(self.path("out", "mplock-%d.log" % hung)) as f:
            log = f.read()
        self.assertIn("on-end command timed out after 2 s", log)
        self.assertNotIn("woke", log)
        self.assertIn("On-end command timed out after 2 s", self.d.read_log())
        self.assertFalse(st["on_end_owed"])


class OnEndAfterACrash(DaemonTest):
    def test_a_kill_9_while_it_runs_runs_it_again_after_the_restart(self):
        items = self.write_items("items.txt", ["1", "2"])
        marks = self.path("marks")
        cmd = 'echo first >> %s; sleep 3; echo second >> %s' % (marks, marks)
        job = self.d.submit(module("square"), items, self.path("out"), "--on-end", cmd)
        deadline = time.monotonic() + 30
        while not os.path.exists(marks) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertTrue(os.path.exists(marks), self.d.read_log()[-3000:])
        st = self.d.status(job)
        self.assertEqual(st["state"], "completed")
        self.assertTrue(st["on_end_owed"])
        self.d.kill()
        time.sleep(3.5)  # the first run would have finished by now, had it lived
        with open(marks) as f:
            self.assertEqual(f.read().splitlines(), ["first"])
        self.d.start()
        st = OnEnd.settled(self, job)
        self.assertEqual(st["state"], "completed")
        with open(marks) as f:
            self.assertEqual(f.read().splitlines(), ["first", "first", "second"])
        # Delivered is durable: another restart does not run it again.
        self.d.kill()
        self.d.start()
        time.sleep(1)
        self.assertFalse(self.d.status(job)["on_end_owed"])
        with open(marks) as f:
            self.assertEqual(f.read().splitlines(), ["first", "first", "second"])


@unittest.skipIf(os.geteuid() != 0, "needs root: real users and a system instance")
class OnEndAsTheOwner(UsersTest):
    def prepare(self):
        os.environ["MPLOCK_TEST_SECRET"] = "root-only"
        super().prepare()

    def tearDown(self):
        os.environ.pop("MPLOCK_TEST_SECRET", None)
        super().tearDown()

    def test_a_root_daemon_runs_it_as_the_jobs_owner(self):
        user = "mplock-alice"
        home = self.home[user]
        with open(module("square"), "rb") as f:
            mod = self.user_file(user, "square.so", f.read(), 0o700)
        items = self.user_file(user, "items.txt", b"1\n2\n")
        cmd = 'id -u > %s/who; printenv MPLOCK_TEST_SECRET >> %s/who; true' % (home, home)
        job = int(self.as_user(user, "submit", "--module", mod, "--input", items, "--output",
                               os.path.join(home, "out"), "--on-end", cmd).stdout)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            st = json.loads(self.as_user(user, "--json", "status", job).stdout)
            if st["state"] == "completed" and not st["on_end_owed"]:
                break
            time.sleep(0.05)
        self.assertFalse(st["on_end_owed"], self.d.read_log()[-3000:])
        who = os.path.join(home, "who")
        uid, _, _ = ids(user)
        with open(who) as f:
            self.assertEqual(f.read().splitlines(), [str(uid)])
        self.assertEqual(os.stat(who).st_uid, uid)


if __name__ == "__main__":
    main()
