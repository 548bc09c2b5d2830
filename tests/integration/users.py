# SPDX-License-Identifier: MIT
"""Real users for the tests that need several (as root): alice, bob and
carol (of the admin group), made once with useradd and left for next time,
and a system mplockd that serves them."""

import grp
import os
import pwd
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import BUILD, MPLOCKCTL, MPLOCKD, DaemonTest  # noqa: E402

# Users run what they can reach: not necessarily the build tree.
USER_PYTHON = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
USERS = ("mplock-alice", "mplock-bob", "mplock-carol")


def ensure_users():
    """Creates the test users and groups once (they are left for next time)."""
    for g in ("mplock-admins", "mplock-team"):
        try:
            grp.getgrnam(g)
        except KeyError:
            subprocess.run(["groupadd", g], check=True)
    extra = {"mplock-alice": "mplock-team", "mplock-carol": "mplock-admins"}
    for u in USERS:
        try:
            pwd.getpwnam(u)
        except KeyError:
            cmd = ["useradd", "-M", "-N", "-s", "/usr/sbin/nologin", u]
            if u in extra:
                cmd[1:1] = ["-G", extra[u]]
            subprocess.run(cmd, check=True)


def ids(user):
    pw = pwd.getpwnam(user)
    groups = sorted({g.gr_gid for g in grp.getgrall() if user in g.gr_mem} | {pw.pw_gid})
    return pw.pw_uid, pw.pw_gid, groups


@unittest.skipIf(os.geteuid() != 0, "needs root: real users and a system instance")
class UsersTest(DaemonTest):
    """A system mplockd as root, each user with a private home under the
    test's directory, and mplockctl run as any of them."""

    daemon_args = ("--admin-group", "mplock-admins", "--system")

    @classmethod
    def setUpClass(cls):
        if os.geteuid() == 0:
            ensure_users()

    def prepare(self):
        # The binaries where every user can run them (the runner runs as
        # the job's owner; mplockd finds it beside itself), and the socket
        # where every user can reach it.
        os.chmod(self.tmp, 0o755)
        self.bin = os.path.join(self.tmp, "bin")
        os.mkdir(self.bin, 0o755)
        for b in (MPLOCKD, MPLOCKCTL, os.path.join(BUILD, "mplock-runner")):
            shutil.copy2(b, self.bin)
        self.daemon_binary = os.path.join(self.bin, "mplockd")
        self.ctl_binary = os.path.join(self.bin, "mplockctl")

    def setUp(self):
        super().setUp()
        self.home = {}
        for u in USERS:
            uid, gid, _ = ids(u)
            d = self.path(u)
            os.mkdir(d, 0o700)
            os.chown(d, uid, gid)
            self.home[u] = d

    def as_user(self, user, *args, check=True, input=None, timeout=120, umask=0o022):
        uid, gid, groups = ids(user)
        p = subprocess.run([self.ctl_binary, "--socket", self.d.sock] + [str(a) for a in args], user=uid, group=gid,
                           extra_groups=groups, capture_output=True, input=input, timeout=timeout,
                           cwd=self.home[user], env={"PATH": "/usr/bin:/bin"}, umask=umask)
        if check and p.returncode != 0:
            raise AssertionError("%s: mplockctl %s failed (%d): %s\n%s" % (user, args, p.returncode,
                                                                          p.stderr.decode(), self.d.read_log()[-2000:]))
        return p

    def module_for_all(self, src):
        """A copy of the module src where every user can load it (the
        build tree may not be reachable): its path."""
        os.chmod(self.tmp, 0o755)
        path = os.path.join(self.bin, os.path.basename(src))
        shutil.copyfile(src, path)
        os.chmod(path, 0o755)
        return path

    def user_file(self, user, name, data, mode=0o600):
        uid, gid, _ = ids(user)
        path = os.path.join(self.home[user], name)
        with open(path, "wb") as f:
            f.write(data)
        os.chown(path, uid, gid)
        os.chmod(path, mode)
        return path
