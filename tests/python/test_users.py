# SPDX-License-Identifier: MIT
"""mp_lock against a root system instance: the callbacks run as the user
who called, with that user's directory and environment, and nothing of
root's or another user's reaches them."""

import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from harness import BUILD  # noqa: E402
from users import USER_PYTHON, UsersTest, ids  # noqa: E402

SCRIPT = r'''
import json, os, sys
from mplock import mp_lock_value

def init(shared):
    return {"init_uid": os.getuid()}

def process(data, shared, init_values):
    return {"uid": os.getuid(), "gid": os.getgid(), "init_uid": init_values["init_uid"], "cwd": os.getcwd(),
            "mark": os.environ.get("MPLOCK_TEST_MARK"), "secret": os.environ.get("MPLOCK_ROOT_SECRET"),
            "item": data}

def save(path, results, names):
    with open(path + ".saved", "a") as f:
        for r in results:
            f.write(json.dumps({"uid": os.getuid(), "item": r["item"]}) + "\n")

res = mp_lock_value(["a", "b", "c", "d"], process, save, 2, os.path.join(os.getcwd(), "out"),
                    init_function=init, verbose=False)
print(json.dumps(res))
'''


class CallbacksRunAsTheCaller(UsersTest):
    def prepare(self):
        super().prepare()
        # The package and the bridge where the users can read them.
        shutil.copytree(os.path.join(HERE, "..", "..", "python", "mplock"), os.path.join(self.bin, "mplock"),
                        ignore=shutil.ignore_patterns("__pycache__"))
        os.mkdir(os.path.join(self.bin, "python"), 0o755)
        for f in os.listdir(os.path.join(BUILD, "python")):
            if f.startswith("mplock-python") and f.endswith(".so"):
                shutil.copy2(os.path.join(BUILD, "python", f), os.path.join(self.bin, "python"))
        subprocess.run(["chmod", "-R", "a+rX", self.bin], check=True)
        os.environ["MPLOCK_ROOT_SECRET"] = "root's"  # in the daemon's environment

    def tearDown(self):
        os.environ.pop("MPLOCK_ROOT_SECRET", None)
        super().tearDown()

    def run_script(self, user, mark):
        uid, gid, groups = ids(user)
        script = self.user_file(user, "script.py", SCRIPT.encode())
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": self.bin, "MPLOCK_BUILD": self.bin, "MPLOCK_SOCKET": self.d.sock,
               "MPLOCK_TEST_MARK": mark, "HOME": self.home[user]}
        p = subprocess.run([USER_PYTHON, script], user=uid, group=gid, extra_groups=groups, capture_output=True,
                           cwd=self.home[user], env=env, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr.decode() + self.d.read_log()[-3000:])
        return json.loads(p.stdout.decode().strip().splitlines()[-1])

    def test_callbacks_run_as_the_caller_with_their_environment(self):
        for user in ("mplock-alice", "mplock-bob"):
            uid, gid, _ = ids(user)
            res = self.run_script(user, "mark of " + user)
            self.assertEqual([r["item"] for r in res], ["a", "b", "c", "d"])
            for r in res:
                self.assertEqual((r["uid"], r["gid"], r["init_uid"]), (uid, gid, uid))
                self.assertEqual(r["cwd"], self.home[user])
                self.assertEqual(r["mark"], "mark of " + user)  # theirs, not the other user's
                self.assertIsNone(r["secret"])  # nothing of the daemon's environment
            with open(os.path.join(self.home[user], "out", "data.saved")) as f:
                saved = [json.loads(line) for line in f]
            self.assertEqual(sorted(s["item"] for s in saved), ["a", "b", "c", "d"])
            self.assertEqual({s["uid"] for s in saved}, {uid})  # the save callback too
            st = os.stat(os.path.join(self.home[user], "out", "data.saved"))
            self.assertEqual(st.st_uid, uid)
