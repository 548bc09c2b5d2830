# SPDX-License-Identifier: MIT
"""Attacks through a shared output directory: job ids are predictable, so
another user can put a file under the name a job will use before it runs.
Each attack must leave the victim's results unread by the attacker, the
job ended with a clear reason (never hung), and nobody else affected.

Runs as root, as CI does: a system mplockd and real users (users.py)."""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from harness import EXAMPLES, main  # noqa: E402
from users import UsersTest, ids  # noqa: E402


@unittest.skipIf(os.geteuid() != 0, "needs root: real users and a system instance")
class SharedOutputDirectory(UsersTest):
    def setUp(self):
        super().setUp()
        # World-writable, not sticky: anybody may create and remove there.
        self.shared = self.path("shared")
        os.mkdir(self.shared)
        os.chmod(self.shared, 0o777)
        self.echo = self.module_for_all(os.path.join(EXAMPLES, "echo.so"))
        self.items = self.user_file("mplock-alice", "items.txt", b"secret-1\nsecret-2\n", 0o644)

    def alice_submit(self):
        p = self.as_user("mplock-alice", "submit", "--module", self.echo, "--input", self.items, "--output",
                         self.shared)
        return int(p.stdout)

    def next_id(self):
        job = self.alice_submit()
        self.as_user("mplock-alice", "wait", job)
        return job + 1

    def as_bob(self, fn):
        """Runs fn in a child with bob's identity (files he makes are his)."""
        uid, gid, groups = ids("mplock-bob")
        pid = os.fork()
        if pid == 0:
            try:
                os.setgroups(groups)
                os.setgid(gid)
                os.setuid(uid)
                os.umask(0)
                fn()
                os._exit(0)
            except BaseException as e:  # noqa: B902
                print("bob:", e, file=sys.stderr)
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        self.assertEqual(status, 0)

    def assert_failed_with(self, job, reason):
        p = self.as_user("mplock-alice", "--json", "wait", job, check=False, timeout=60)
        st = json.loads(p.stdout)
        self.assertEqual(st["state"], "failed", st)
        self.assertIn(reason, st["error"])
        return st

    def test_a_results_file_planted_by_another_user_is_not_used(self):
        job = self.next_id()
        planted = os.path.join(self.shared, "mplock-%d.results" % job)

        def plant():
            fd = os.open(planted, os.O_CREAT | os.O_WRONLY, 0o666)
            os.close(fd)
        self.as_bob(plant)
        self.assertEqual(self.alice_submit(), job)
        self.assert_failed_with(job, "exists and is not this job's (another user's file)")
        with open(planted, "rb") as f:
            self.assertEqual(f.read(), b"", "alice's results went into bob's file")
        # A log planted the same way is refused too, and nothing is in it.
        job = self.next_id()
        planted_log = os.path.join(self.shared, "mplock-%d.log" % job)
        self.as_bob(lambda: os.close(os.open(planted_log, os.O_CREAT | os.O_WRONLY, 0o666)))
        self.assertEqual(self.alice_submit(), job)
        self.assert_failed_with(job, "another user's file")
        self.assertEqual(os.path.getsize(planted_log), 0)

    def test_a_fifo_or_a_link_under_a_jobs_name_does_not_hang_it(self):
        job = self.next_id()
        fifo = os.path.join(self.shared, "mplock-%d.log" % job)
        self.as_bob(lambda: os.mkfifo(fifo, 0o666))
        self.assertEqual(self.alice_submit(), job)
        self.assert_failed_with(job, "not a regular file")
        # A hard link to one of alice's own files (bob can link what he
        # can read): refused, the file untouched.
        job = self.next_id()
        mine = self.user_file("mplock-alice", "precious.txt", b"keep me\n", 0o644)
        os.link(mine, os.path.join(self.shared, "mplock-%d.results" % job))
        self.assertEqual(self.alice_submit(), job)
        self.assert_failed_with(job, "a file with other links")
        with open(mine, "rb") as f:
            self.assertEqual(f.read(), b"keep me\n")

    def test_other_users_jobs_go_on(self):
        """While the attacks above fail alice's jobs, her own directory and
        carol's jobs are not affected."""
        job = self.next_id()
        self.as_bob(lambda: os.mkfifo(os.path.join(self.shared, "mplock-%d.log" % job), 0o666))
        self.assertEqual(self.alice_submit(), job)
        self.assert_failed_with(job, "not a regular file")
        items = self.user_file("mplock-carol", "items.txt", b"a\nb\n", 0o644)
        out = os.path.join(self.home["mplock-carol"], "out")
        other = int(self.as_user("mplock-carol", "submit", "--module", self.echo, "--input", items, "--output",
                                 out).stdout)
        p = self.as_user("mplock-carol", "--json", "wait", other)
        self.assertEqual(json.loads(p.stdout)["state"], "completed")


if __name__ == "__main__":
    main()
