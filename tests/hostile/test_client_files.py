# SPDX-License-Identifier: MIT
"""mplockctl run by root or an admin reads a job's log and results from
the owner's directory, where the owner can put anything under their
names: a symlink to /etc/shadow, a FIFO, a link to /dev/zero. None of it
may be read, block or stream; the error says why.

Runs as root, as CI does: a system mplockd and real users (users.py)."""

import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from harness import EXAMPLES, MPLOCKCTL, main  # noqa: E402
from users import UsersTest, ids  # noqa: E402

SECRET = b"root-only-secret\n"


@unittest.skipIf(os.geteuid() != 0, "needs root: real users and a system instance")
class RootReadsWhatTheOwnerPlanted(UsersTest):
    def setUp(self):
        super().setUp()
        self.echo = self.module_for_all(os.path.join(EXAMPLES, "echo.so"))
        self.secret = self.path("secret")
        with open(self.secret, "wb") as f:
            f.write(SECRET)
        os.chmod(self.secret, 0o600)
        items = self.user_file("mplock-alice", "items.txt", b"a\nb\n", 0o644)
        self.out = os.path.join(self.home["mplock-alice"], "out")
        self.job = int(self.as_user("mplock-alice", "submit", "--module", self.echo, "--input", items, "--output",
                                    self.out).stdout)
        st = json.loads(self.as_user("mplock-alice", "--json", "wait", self.job).stdout)
        self.assertEqual(st["state"], "completed")

    def as_alice(self, *cmd):
        uid, gid, groups = ids("mplock-alice")
        subprocess.run(cmd, user=uid, group=gid, extra_groups=groups, check=True)

    def root_ctl(self, *args):
        return subprocess.run([MPLOCKCTL, "--socket", self.d.sock] + [str(a) for a in args], capture_output=True,
                              timeout=20)

    def test_a_log_replaced_by_a_symlink_fifo_or_device_is_not_read(self):
        log = os.path.join(self.out, "mplock-%d.log" % self.job)
        for plant in (["ln", "-s", self.secret, log], ["mkfifo", log], ["ln", "-s", "/dev/zero", log]):
            self.as_alice("rm", "-f", log)
            self.as_alice(*plant)
            p = self.root_ctl("logs", self.job)  # a FIFO would block, /dev/zero stream: the timeout says
            self.assertEqual(p.returncode, 1, (plant, p.stderr))
            self.assertNotIn(SECRET, p.stdout)
            self.assertEqual(p.stdout, b"")
            self.assertIn(b"not a regular file of the job's owner", p.stderr)

    def test_results_replaced_by_a_symlink_are_not_read_by_root(self):
        results = os.path.join(self.out, "mplock-%d.results" % self.job)
        self.as_alice("rm", "-f", results)
        self.as_alice("ln", "-s", self.secret, results)
        p = self.root_ctl("results", self.job)
        self.assertNotIn(SECRET, p.stdout + p.stderr)
        self.assertIn(b"not a regular file of the job's owner", p.stderr)
        self.assertNotEqual(p.returncode, 0)


if __name__ == "__main__":
    main()
