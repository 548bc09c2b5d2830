# SPDX-License-Identifier: MIT
"""Slurm job arrays (docs/slurm.md) on a real single-node cluster that
cluster.py starts from Debian's slurm-wlm and munge: a job's shards run as
array tasks, a lost task's shard runs again from its checkpoint, and the
results are those of a local run, each item exactly once.

Needs root (slurmctld, slurmd, munged, and users)."""

import json
import os
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from harness import BUILD, DaemonTest, module  # noqa: E402
from users import UsersTest, ids  # noqa: E402

EXEC = os.path.join(BUILD, "exec", "mplock-exec.so")


def cluster(action):
    p = subprocess.run([sys.executable, os.path.join(HERE, "cluster.py"), action], capture_output=True, text=True,
                       timeout=600)
    if p.returncode != 0:
        raise RuntimeError("cluster.py %s failed:\n%s%s" % (action, p.stdout, p.stderr))
    return p.stdout


def setUpModule():
    if os.geteuid() == 0:
        print(cluster("start").strip())


def tearDownModule():
    if os.geteuid() == 0:
        cluster("stop")


def squeue(name_prefix):
    out = subprocess.run(["squeue", "-h", "-r", "-o", "%i %j %T"], capture_output=True, text=True).stdout
    return [line.split() for line in out.splitlines() if line.split()[1].startswith(name_prefix)]


class SlurmCase:
    def wait_for(self, what, cond, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            v = cond()
            if v:
                return v
            time.sleep(0.2)
        self.fail("timed out waiting for %s; daemon log:\n%s" % (what, self.d.read_log()[-3000:]))

    def slurm_job(self, items, out, *extra, mod=None, **kw):
        path = self.write_items("items-%d.txt" % time.monotonic_ns(), items)
        return self.d.submit(mod or module("square"), path, out, "--slurm", *extra, **kw)

    def results(self, job):
        return [(r["index"], r.get("result"), r.get("error")) for r in self.d.results_json(job)]

    def local_results(self, items, out):
        job = self.d.submit(module("square"), self.write_items("local-%d.txt" % time.monotonic_ns(), items), out,
                            "--workers", "2")
        rc, st = self.d.wait(job)
        self.assertEqual(st["state"], "completed", st)
        return self.results(job)


@unittest.skipIf(os.geteuid() != 0, "needs root: a Slurm cluster")
class Arrays(SlurmCase, DaemonTest):
    def test_285_on_slurm_is_the_local_285(self):
        items = [str(i) for i in range(10)]
        job = self.slurm_job(items, self.path("out"), "--shards", "3", "--workers", "1")
        rc, st = self.d.wait(job)
        self.assertEqual((rc, st["state"]), (0, "completed"), st)
        res = self.results(job)
        self.assertEqual(sum(int(r[1]) for r in res), 285)
        self.assertEqual(res, self.local_results(items, self.path("local")))
        shards = st["cluster"]["shards"]
        self.assertEqual([s["state"] for s in shards], ["done"] * 3, shards)
        self.assertEqual([s["items"] for s in shards], [3, 3, 4])
        self.assertTrue(all(s["task"].startswith(st["cluster"]["array"] + "_") for s in shards), shards)
        self.assertEqual(squeue("mplock-%d-" % job), [])

    def test_default_shards_are_4_per_node_and_status_shows_them(self):
        job = self.slurm_job([str(i) for i in range(10)], self.path("out"), "--workers", "1")
        rc, st = self.d.wait(job)
        self.assertEqual(st["state"], "completed", st)
        nodes = int(subprocess.run(["sinfo", "-h", "-o", "%D"], capture_output=True, text=True).stdout.split()[0])
        self.assertEqual(len(st["cluster"]["shards"]), 4 * nodes)
        text = self.d.ctl("status", job).stdout.decode()
        self.assertIn("slurm:    array %s, %d shards" % (st["cluster"]["array"], 4 * nodes), text)
        self.assertRegex(text, r"shard 0 +done +2/2 items, 0 failed, task %s_0 on \S+, attempt 1" %
                         st["cluster"]["array"])

    def test_200000_items_in_8_shards(self):
        items = [str(i) for i in range(200000)]
        job = self.slurm_job(items, self.path("out"), "--shards", "8", "--workers", "1")
        rc, st = self.d.wait(job, timeout=600)
        self.assertEqual((rc, st["state"], st["done"]), (0, "completed", 200000), st)
        self.assertEqual(len(st["cluster"]["shards"]), 8)
        self.assertEqual(self.results(job), self.local_results(items, self.path("local")))

    def side_effect_job(self, n, side):
        cmd = "sh -c 'echo $1 >> %s; sleep 0.03; echo $1' sh {}" % side
        p = self.d.ctl("submit", "--slurm", "--shards", "2", "--workers", "1", "--exec", cmd, "--output",
                       self.path("out"), "--input", self.write_items("side.txt", [str(i) for i in range(n)]))
        return int(p.stdout)

    def committed(self, job):
        """What is committed now (exit 9: not every item yet)."""
        p = self.d.ctl("--json", "results", job, check=False)
        return [json.loads(line)["index"] for line in p.stdout.decode().splitlines()]

    def check_exact(self, job, n, side, committed_before):
        rc, st = self.d.wait(job, timeout=300)
        self.assertEqual((st["state"], st["done"], st["failed"]), ("completed", n, 0), st)
        res = self.d.results_json(job)
        self.assertEqual([(r["index"], r["result"]) for r in res], [(i, "%d\n" % i) for i in range(n)])
        with open(side) as f:
            runs = [int(x) for x in f.read().split()]
        self.assertEqual(set(runs), set(range(n)))
        twice = [i for i in committed_before if runs.count(i) != 1]
        self.assertEqual(twice, [], "committed items run again")
        return st

    def test_scancel_of_one_task_resubmits_its_shard(self):
        n, side = 300, self.path("side-effects")
        job = self.side_effect_job(n, side)
        st = self.wait_for("shard 0 running with commits",
                           lambda: (lambda s: s if s.get("cluster") and s["cluster"]["shards"][0]["done"] >= 20
                                    else None)(self.d.status(job)))
        task = st["cluster"]["shards"][0]["task"]
        committed = self.committed(job)
        subprocess.run(["scancel", task], check=True)
        st = self.check_exact(job, n, side, committed)
        self.assertEqual(st["cluster"]["shards"][0]["attempts"], 2, st["cluster"])
        self.assertNotEqual(st["cluster"]["shards"][0]["task"], task)
        self.assertIn("submitted again", open(self.path("out", "mplock-%d.log" % job)).read())

    def test_mplockd_killed_while_the_array_runs(self):
        n, side = 200, self.path("side-effects")
        job = self.side_effect_job(n, side)
        st = self.wait_for("commits", lambda: (lambda s: s if s["done"] >= 10 else None)(self.d.status(job)))
        array = st["cluster"]["array"]
        committed = self.committed(job)
        self.d.kill()
        self.d.start()
        st = self.check_exact(job, n, side, committed)
        self.assertEqual(st["cluster"]["array"], array)
        self.assertIn("Following Slurm array %s" % array, open(self.path("out", "mplock-%d.log" % job)).read())

    def test_cancel_leaves_no_task(self):
        job = self.side_effect_job(400, self.path("side-effects"))
        self.wait_for("a running shard", lambda: any(s[2] == "RUNNING" for s in squeue("mplock-%d-" % job)))
        rc = self.d.ctl("--json", "cancel", job)
        self.assertEqual(json.loads(rc.stdout)["state"], "cancelled")
        self.assertEqual(squeue("mplock-%d-" % job), [])

    def test_pause_holds_and_resume_finishes(self):
        n, side = 300, self.path("side-effects")
        job = self.side_effect_job(n, side)
        self.wait_for("commits", lambda: self.d.status(job)["done"] >= 10)
        self.assertEqual(json.loads(self.d.ctl("--json", "pause", job).stdout)["state"], "paused")
        committed = self.committed(job)
        self.wait_for("the tasks stopped", lambda: squeue("mplock-%d-" % job) == [] or
                      all(s[2] == "PENDING" for s in squeue("mplock-%d-" % job)), timeout=60)
        self.d.ctl("resume", job)
        self.check_exact(job, n, side, committed)

    def test_a_shared_directory_the_node_cannot_reach_fails_the_job_saying_so(self):
        # The tasks wait 4 s to begin; meanwhile shard 1's directory goes,
        # as on a node that does not mount the output directory.
        job = self.slurm_job([str(i) for i in range(10)], self.path("out"), "--shards", "2", "--workers", "1",
                             "--slurm-opt", "--begin=now+4")
        d = self.path("out", "mplock-%d.slurm" % job)
        self.wait_for("the shards' files", lambda: os.path.exists(os.path.join(d, "slurm.json")))
        os.rename(os.path.join(d, "shard-1"), self.path("elsewhere"))
        rc, st = self.d.wait(job)
        self.assertEqual(st["state"], "failed", st)
        self.assertIn("is not reachable from node", st["error"])
        self.assertIn(d, st["error"])
        self.assertEqual(squeue("mplock-%d-" % job), [])  # the other shard's task went with it
        p = self.d.ctl("retry", job, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("retry of a Slurm job is not supported", p.stderr.decode())

    def test_bad_slurm_options_are_refused_before_anything_runs(self):
        path = self.write_items("i.txt", ["1"])
        for opt, why in (("--array=0-3", "set by mplock"), ("-t 10", "form --name"), ("--wrap=id", "set by mplock")):
            p = self.d.ctl("submit", "--module", module("square"), "--input", path, "--output", self.path("o"),
                           "--slurm", "--slurm-opt", opt, check=False)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn(why, p.stderr.decode())
        p = self.d.ctl("submit", "--module", module("square"), "--input", path, "--output", self.path("o"),
                       "--shards", "2", check=False)
        self.assertIn("for --slurm", p.stderr.decode())


@unittest.skipIf(os.geteuid() != 0, "needs root: a Slurm cluster and users")
class AsTheOwner(SlurmCase, UsersTest):
    def test_sbatch_runs_as_the_submitting_user(self):
        mod = self.module_for_all(module("square"))
        items = self.user_file("mplock-alice", "items.txt", b"".join(b"%d\n" % i for i in range(10)))
        out = os.path.join(self.home["mplock-alice"], "out")
        job = int(self.as_user("mplock-alice", "submit", "--slurm", "--shards", "2", "--workers", "1", "--module",
                               mod, "--input", items, "--output", out).stdout)
        st = json.loads(self.as_user("mplock-alice", "--json", "wait", job, timeout=300).stdout)
        self.assertEqual(st["state"], "completed", st)
        array = st["cluster"]["array"]
        show = subprocess.run(["scontrol", "show", "job", "-o", array], capture_output=True, text=True).stdout
        uid = ids("mplock-alice")[0]
        self.assertIn("UserId=mplock-alice(%d)" % uid, show)
        for root, dirs, files in os.walk(out):
            for f in files:
                self.assertEqual(os.stat(os.path.join(root, f)).st_uid, uid, f)
        res = [json.loads(x) for x in self.as_user("mplock-alice", "--json", "results", job).stdout.splitlines()]
        self.assertEqual(sum(int(r["result"]) for r in res), 285)


if __name__ == "__main__":
    from harness import main
    main()
