#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""submit --reuse JOB: the items of a new list whose text equals an item
of an earlier ended job (same owner, module and shared data) take that
job's result instead of running; the rest runs. Counted by a side effect
(each command that runs appends its item to a file)."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import DaemonTest, PROBE, main  # noqa: E402


class Reuse(DaemonTest):
    def setUp(self):
        super().setUp()
        self.count = self.path("ran")
        # Shell syntax: run by sh, the item quoted; its result depends on
        # the item alone, so a fresh run gives the same.
        self.cmd = "echo {} >> %s; echo r-{}; test {} != bad" % self.count

    def exec_job(self, items, *extra, out="out", check=True):
        p = self.d.ctl("submit", "--exec", self.cmd, "--input", self.write_items("items-%s" % out, items),
                       "--output", self.path(out), "--max-attempts", 1, *extra, check=check)
        if not check and p.returncode != 0:
            return p
        job = int(p.stdout.split()[0])
        self.d.wait(job)
        return job

    def ran(self):
        try:
            with open(self.count) as f:
                return f.read().split()
        except FileNotFoundError:
            return []

    def results(self, job):
        return [(r["index"], r.get("item"), r.get("result"), "error" in r) for r in self.d.results_json(job)]

    def test_only_the_new_items_run_and_the_results_equal_a_fresh_run(self):
        first = ["i%d" % i for i in range(200)]
        a = self.exec_job(first, out="a")
        self.assertEqual(len(self.ran()), 200)
        # 90% shared, in another order, with 20 new items among them.
        second = ["n%d" % i for i in range(10)] + first[:180][::-1] + ["m%d" % i for i in range(10)]
        b = self.exec_job(second, "--reuse", a, out="b")
        new = self.ran()[200:]
        self.assertEqual(sorted(new), sorted(["n%d" % i for i in range(10)] + ["m%d" % i for i in range(10)]))
        st = self.d.status(b)
        self.assertEqual((st["state"], st["reused"], st["reuse_job"]), ("completed", 180, a))
        self.assertIn("reused:   180 results of job %d" % a, self.d.ctl("status", b).stdout.decode())
        fresh = self.exec_job(second, out="c")
        self.assertEqual(len(self.ran()), 200 + 20 + 200)
        self.assertEqual(self.results(b), self.results(fresh))
        self.assertIn("Reused 180 results of job %d" % a, open(st["log_path"]).read())

    def test_failed_items_run_again_and_duplicates_each_take_the_result(self):
        a = self.exec_job(["x", "bad", "y", "y"], out="a")
        self.assertEqual(self.d.status(a)["state"], "completed_with_failures")
        b = self.exec_job(["bad", "y", "x", "y", "x", "z"], "--reuse", a, out="b")
        self.assertEqual(sorted(self.ran()[4:]), ["bad", "z"])
        st = self.d.status(b)
        self.assertEqual((st["reused"], st["failed"]), (4, 1))
        res = self.results(b)
        self.assertEqual([r[2] for r in res], [None, "r-y\n", "r-x\n", "r-y\n", "r-x\n", "r-z\n"])
        # A retry carries the reused results over, and their count.
        self.d.ctl("retry", b)
        self.d.wait(b)
        self.assertEqual(sorted(self.ran()[6:]), ["bad"])
        self.assertEqual(self.d.status(b)["reused"], 4)

    def test_refusals_say_why_and_submit_nothing(self):
        a = self.exec_job(["x"], out="a")
        running = int(self.d.ctl("submit", "--exec", "sleep 30", "--output", self.path("s"), ":::", "1")
                      .stdout.split()[0])
        cases = [
            (("--reuse", 999), "no job 999 of yours"),
            (("--reuse", running), "job %d has not ended" % running),
        ]
        for extra, why in cases:
            p = self.exec_job(["x"], *extra, out="r", check=False)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn("invalid reuse: " + why, p.stderr.decode())
        # Another command is other shared data; another module, another job.
        p = self.d.ctl("submit", "--exec", "echo {}", "--output", self.path("r2"), "--reuse", a, ":::", "x",
                       check=False)
        self.assertIn("other shared data", p.stderr.decode())
        p = self.d.ctl("submit", "--module", PROBE, "--input", self.write_items("p", ["x"]), "--output",
                       self.path("r3"), "--reuse", a, check=False)
        self.assertIn("ran another module", p.stderr.decode())
        p = self.d.ctl("submit", "--exec", self.cmd, "--output", self.path("r4"), "--reuse", "x", ":::", "x",
                       check=False)
        self.assertEqual(p.returncode, 2)
        self.d.ctl("cancel", running)
        jobs = [line for line in self.d.ctl("list").stdout.decode().splitlines()[1:] if line.strip()]
        self.assertEqual(len(jobs), 2, jobs)

    def test_a_results_file_gone_or_replaced_means_the_items_run(self):
        a = self.exec_job(["x", "y"], out="a")
        os.rename(self.path("a", "mplock-%d.results" % a), self.path("a", "kept"))
        b = self.exec_job(["x", "y"], "--reuse", a, out="b")
        self.assertEqual(self.ran(), ["x", "y", "x", "y"])
        st = self.d.status(b)
        self.assertEqual((st["state"], st["reused"]), ("completed", 0))
        self.assertIn("Reuse of job %d: cannot open" % a, open(st["log_path"]).read())
        # Another job's file under its name (of another generation or job).
        with open(self.path("a", "kept"), "rb") as f, open(self.path("a", "mplock-%d.results" % a), "wb") as g:
            data = bytearray(f.read())
            data[16:24] = (12345).to_bytes(8, sys.byteorder)  # the header's job id
            g.write(bytes(data))
        c = self.exec_job(["x", "y"], "--reuse", a, out="c")
        self.assertEqual(len(self.ran()), 6)
        self.assertIn("no longer the one of the ended job", open(self.d.status(c)["log_path"]).read())

    def test_reused_results_reach_save(self):
        a = self.d.submit(PROBE, self.write_items("items-pa", ["p%d" % i for i in range(20)]), self.path("pa"))
        self.d.wait(a)
        b = self.d.submit(PROBE, self.write_items("items-pb", ["p%d" % i for i in range(25)]), self.path("pb"),
                          "--reuse", a)
        self.assertEqual(self.d.wait(b)[1]["state"], "completed")
        self.assertEqual(self.d.status(b)["reused"], 20)
        with open(self.path("pb", "probe.saved")) as f:
            saved = sorted(line.split("\t")[2] for line in f)
        self.assertEqual(saved, sorted("p%d" % i for i in range(25)))
        # The reused results are a's, the new ones b's own.
        res = {r["item"]: r["result"] for r in self.d.results_json(b)}
        old = {r["item"]: r["result"] for r in self.d.results_json(a)}
        self.assertTrue(all(res["p%d" % i] == old["p%d" % i] for i in range(20)))


if __name__ == "__main__":
    main()
