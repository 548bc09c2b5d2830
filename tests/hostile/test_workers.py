# SPDX-License-Identifier: MIT
"""A module's process misbehaving toward its own runner: garbage on the
worker's pipes, signals to the runner, its process group or every process
of the user. Each used to fail the whole job after five runner restarts;
a misbehaving worker now costs its own items (as attempts), and cannot
signal the runner at all.

Runs as root, as CI does: a system mplockd and real users (users.py): the
job runs as alice, so that kill(-1) can only reach alice's processes."""

import json
import os
import pwd
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from harness import BUILD, main  # noqa: E402
from users import UsersTest  # noqa: E402

ROGUE = os.path.join(BUILD, "tests", "hostile", "rogue.so")


@unittest.skipIf(os.geteuid() != 0, "needs root: real users and a system instance")
class RogueWorkers(UsersTest):
    def setUp(self):
        super().setUp()
        self.mod = self.module_for_all(ROGUE)

    def run_job(self, items):
        path = self.user_file("mplock-alice", "items.txt", "".join(i + "\n" for i in items).encode(), 0o644)
        out = os.path.join(self.home["mplock-alice"], "out")
        job = int(self.as_user("mplock-alice", "submit", "--module", self.mod, "--input", path, "--output", out,
                               "--workers", 2, "--max-attempts", 2).stdout)
        p = self.as_user("mplock-alice", "--json", "wait", job, check=False, timeout=120)
        st = json.loads(p.stdout)
        res = [json.loads(x) for x in self.as_user("mplock-alice", "--json", "results", job,
                                                   check=False).stdout.splitlines()]
        return job, st, {r["item"]: r for r in res}

    def test_signals_to_the_runner_are_refused(self):
        items = ["a", "killparent", "b", "killgroup", "c", "killeveryone", "d", "stopparent", "e"]
        job, st, res = self.run_job(items)
        self.assertEqual(st["state"], "completed", st)
        for k in ("killparent", "killgroup", "killeveryone", "stopparent"):
            self.assertEqual(res[k]["result"], "%s errno=1" % k, res[k])  # EPERM
        for k in "abcde":
            self.assertEqual(res[k]["result"], k)
        self.assertNotIn("Runner ended unexpectedly", self.d.read_log())

    def test_garbage_on_the_pipes_costs_only_its_item(self):
        items = [str(i) for i in range(50)] + ["garbage"] + [str(i) for i in range(50, 100)]
        job, st, res = self.run_job(items)
        self.assertEqual(st["state"], "completed_with_failures", st)
        self.assertEqual((st["done"], st["failed"]), (101, 1))
        self.assertIn("broke the protocol", res["garbage"]["error"]["message"])
        for i in range(100):
            self.assertEqual(res[str(i)]["result"], str(i))
        self.assertNotIn("Runner ended unexpectedly", self.d.read_log())


@unittest.skipIf(os.geteuid() != 0, "needs root: real users and a system instance")
class WhatUserCodeInherits(RogueWorkers):
    """mplockd's environment is not the users': an admin's shell may hold
    keys and tokens, systemd gives the service NOTIFY_SOCKET and its
    directories. A worker sees its user's HOME, USER, LOGNAME, SHELL, a
    fixed PATH and the locale; more only if an admin names it."""

    def prepare(self):
        super().prepare()
        os.environ.update(MPLOCK_TEST_SECRET="s3cret", NOTIFY_SOCKET="/run/mplock-test-notify",
                          STATE_DIRECTORY="/var/lib/mplockd", LD_PRELOAD="", MPLOCK_TEST_PASSED="yes",
                          MPLOCKD_PASS_ENV="MPLOCK_TEST_PASSED")
        self.addCleanup(lambda: [os.environ.pop(k, None) for k in (
            "MPLOCK_TEST_SECRET", "NOTIFY_SOCKET", "STATE_DIRECTORY", "LD_PRELOAD", "MPLOCK_TEST_PASSED",
            "MPLOCKD_PASS_ENV")])

    def test_a_worker_sees_its_users_environment_not_mplockds(self):
        job, st, res = self.run_job(["env"])
        self.assertEqual(st["state"], "completed", st)
        env = dict(line.split("=", 1) for line in res["env"]["result"].splitlines())
        for k in ("MPLOCK_TEST_SECRET", "NOTIFY_SOCKET", "STATE_DIRECTORY", "LD_PRELOAD", "MPLOCKD_PASS_ENV"):
            self.assertNotIn(k, env)
        self.assertEqual(env["MPLOCK_TEST_PASSED"], "yes")
        self.assertEqual(env["USER"], "mplock-alice")
        self.assertEqual(env["LOGNAME"], "mplock-alice")
        self.assertEqual(env["HOME"], pwd.getpwnam("mplock-alice").pw_dir)
        self.assertEqual(env["PATH"], "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        # Nor mplockd's working directory (the test's, here).
        self.assertEqual(env["cwd"], "/")

    test_signals_to_the_runner_are_refused = None
    test_garbage_on_the_pipes_costs_only_its_item = None


if __name__ == "__main__":
    main()
