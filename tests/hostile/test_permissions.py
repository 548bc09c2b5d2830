# SPDX-License-Identifier: MIT
"""What another user can read of a job's files: what the owner's umask
lets them, as for any command of the owner's (the runner once forced 022,
so a user with umask 077 still got a 0755 output directory and 0644
results readable by everyone).

Runs as root, as CI does: a system mplockd and real users (users.py)."""

import json
import os
import stat
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from harness import EXAMPLES, main  # noqa: E402
from users import UsersTest, ids  # noqa: E402


@unittest.skipIf(os.geteuid() != 0, "needs root: real users and a system instance")
class OwnersUmask(UsersTest):
    def setUp(self):
        super().setUp()
        # Alice's home readable by all: only the umask can protect her files.
        os.chmod(self.home["mplock-alice"], 0o755)
        self.echo = self.module_for_all(os.path.join(EXAMPLES, "echo.so"))
        self.items = self.user_file("mplock-alice", "items.txt", b"secret-1\nsecret-2\n", 0o600)

    def run_job(self, umask, out):
        out = os.path.join(self.home["mplock-alice"], out)
        job = int(self.as_user("mplock-alice", "submit", "--module", self.echo, "--input", self.items, "--output",
                               out, umask=umask).stdout)
        st = json.loads(self.as_user("mplock-alice", "--json", "wait", job).stdout)
        self.assertEqual(st["state"], "completed", st)
        self.assertEqual(st["umask"], umask)
        return job, out

    def mode(self, path):
        return stat.S_IMODE(os.stat(path).st_mode)

    def bob_reads(self, path):
        uid, gid, groups = ids("mplock-bob")
        return subprocess.run(["cat", path], user=uid, group=gid, extra_groups=groups,
                              capture_output=True).returncode == 0

    def test_a_private_umask_keeps_the_results_private(self):
        job, out = self.run_job(0o077, "private")
        results = os.path.join(out, "mplock-%d.results" % job)
        self.assertEqual(self.mode(out), 0o700)
        self.assertEqual(self.mode(results), 0o600)
        self.assertEqual(self.mode(os.path.join(out, "mplock-%d.log" % job)), 0o600)
        self.assertFalse(self.bob_reads(results), "bob read alice's results")

    def test_the_usual_umask_gives_the_usual_modes(self):
        job, out = self.run_job(0o022, "shared")
        self.assertEqual(self.mode(out), 0o755)
        self.assertEqual(self.mode(os.path.join(out, "mplock-%d.results" % job)), 0o644)
        job, out = self.run_job(0o027, "group")
        self.assertEqual(self.mode(out), 0o750)
        self.assertEqual(self.mode(os.path.join(out, "mplock-%d.results" % job)), 0o640)

    def test_a_umask_out_of_range_is_refused(self):
        r = self.d.varlink("io.mplock.Manager.Submit", {"module": self.echo, "items": ["a"], "output": self.path("o"),
                                                        "umask": 0o1000})[0]
        self.assertEqual(r.get("error"), "io.mplock.Manager.InvalidParameter", r)
        self.assertEqual(r["parameters"]["parameter"], "umask")


if __name__ == "__main__":
    main()
