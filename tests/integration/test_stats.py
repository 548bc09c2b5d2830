# SPDX-License-Identifier: MIT
"""mplockctl stats: where a job's time went, per worker and in all, its
rate over time and its slowest items, from a module whose items take 1 ms
and 20 ms by turns."""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import BUILD, MPLOCKCTL, DaemonTest, main  # noqa: E402

BURN = os.path.join(BUILD, "examples", "burn.so")
PER_ITEM = ("--shared", '{"per_item": true}')  # an item's text is its milliseconds
N = 100


class Stats(DaemonTest):
    def run_burn(self):
        # Odd items take 20 ms of CPU, even ones 1 ms.
        items = self.write_items("items", ["20" if i % 2 else "1" for i in range(N)])
        os.mkdir(self.path("out"))
        job = self.d.submit(BURN, items, self.path("out"), "--workers", "2", *PER_ITEM)
        rc, st = self.d.wait(job)
        self.assertEqual((rc, st["state"]), (0, "completed"), st)
        return job

    def stats(self, job):
        return json.loads(self.d.ctl("stats", "--json", job).stdout)

    def check_stats(self, s):
        self.assertFalse(s["running"])
        self.assertEqual(s["items"], N)
        # The ten slowest are 20 ms items, the odd ones, slowest first.
        slow = s["slowest"]
        self.assertEqual(len(slow), 10, slow)
        for x in slow:
            self.assertEqual(x["index"] % 2, 1, slow)
            self.assertEqual(x["item"], "20")
            self.assertFalse(x["item_truncated"])
            self.assertGreaterEqual(x["duration_usec"], 18000, slow)
        self.assertEqual([x["duration_usec"] for x in slow],
                         sorted((x["duration_usec"] for x in slow), reverse=True))
        self.assertEqual(len({x["index"] for x in slow}), 10)
        # Nearly all of the workers' time is process.
        total = s["total"]
        self.assertGreater(total["processing_share"], 0.9, total)
        self.assertGreaterEqual(total["processing_usec"], (N // 2) * 20000 + (N // 2) * 1000)
        shares = total["init_share"] + total["processing_share"] + total["waiting_share"] + total["saving_share"]
        self.assertAlmostEqual(shares, 1.0, places=6)
        self.assertEqual(total["saving_usec"], 0)  # burn saves nothing
        # A row per worker, their items adding up.
        self.assertEqual([w["worker"] for w in s["workers"]], [0, 1])
        self.assertEqual(sum(w["items"] for w in s["workers"]), N)
        for w in s["workers"]:
            self.assertEqual(w["processes"], 1)
            self.assertGreater(w["processing_usec"], 0)
            self.assertGreaterEqual(w["life_usec"], w["init_usec"] + w["processing_usec"] + w["waiting_usec"])
        # The rate over the run: every item in some bucket.
        rate = s["rate"]
        self.assertGreater(max(rate["counts"]), 0)
        self.assertEqual(sum(rate["counts"]), N)
        self.assertLessEqual(len(rate["counts"]), 120)
        self.assertGreater(rate["max_per_second"], 0)
        self.assertGreaterEqual(rate["bucket_usec"] * len(rate["counts"]), s["elapsed_usec"] - rate["bucket_usec"])

    def test_stats_of_alternating_items(self):
        job = self.run_burn()
        s = self.stats(job)
        self.check_stats(s)
        # The text form has its sections, the chart in blocks in UTF-8...
        env = dict(os.environ, LC_ALL="C.UTF-8")
        text = subprocess.run([MPLOCKCTL, "--socket", self.d.sock, "stats", str(job)], env=env,
                              capture_output=True, check=True).stdout.decode()
        for want in ("Time", "init", "processing", "waiting", "saving", "worker 0", "worker 1", "all",
                     "Items per second", "Slowest items"):
            self.assertIn(want, text)
        chart = text.split("Items per second")[1].splitlines()[1]
        self.assertTrue(set(chart) <= set(" ▁▂▃▄▅▆▇█") and set(chart) - {" "}, chart)
        self.assertIn("█", chart)  # the highest column
        self.assertIn("%d " % slow_index(s), text)
        # ... and in ASCII otherwise, without '#'.
        env = dict(os.environ, LC_ALL="C")
        text = subprocess.run([MPLOCKCTL, "--socket", self.d.sock, "stats", str(job)], env=env,
                              capture_output=True, check=True).stdout.decode()
        chart = text.split("Items per second")[1].splitlines()[1]
        self.assertTrue(chart.isascii() and "#" not in chart and chart.strip(), chart)
        self.assertIn("@", chart)

    def test_stats_survive_a_restart(self):
        job = self.run_burn()
        before = self.stats(job)
        self.d.stop()
        self.d.start()
        self.assertEqual(self.stats(job), before)
        with open(os.path.join(self.d.state, "jobs", str(job), "stats"), "rb") as f:
            self.assertGreater(len(f.read()), 0)

    def test_stats_while_it_runs(self):
        # The runner tells every 2 s: a job of 10 s of work, asked until
        # the first word comes.
        items = self.write_items("items", ["50"] * 400)
        os.mkdir(self.path("out"))
        job = self.d.submit(BURN, items, self.path("out"), "--workers", "2", *PER_ITEM)
        deadline = time.monotonic() + 30
        while True:
            s = json.loads(self.d.ctl("stats", "--json", job).stdout)
            if s or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertTrue(s.get("running"), s)
        self.assertGreater(s["elapsed_usec"], 1500000)
        self.assertLess(s["items"], 400)
        self.assertEqual(len(s["workers"]), 2)
        self.d.ctl("cancel", job)
        # What it had told is kept, not running any more.
        s = self.stats(job)
        self.assertFalse(s["running"])
        self.assertLess(s["items"], 400)

    def test_unknown_job(self):
        p = self.d.ctl("stats", 999, check=False)
        self.assertEqual(p.returncode, 6)
        self.assertIn(b"no such job", p.stderr)
        r = self.d.varlink("io.mplock.Manager.Stats", {"id": 999})
        self.assertEqual(r[0]["error"], "io.mplock.Manager.NoSuchJob")

    def test_a_job_that_has_not_run(self):
        # The first job takes every worker of the daemon (the cap is the
        # CPUs): the second waits in the queue, without stats.
        os.mkdir(self.path("out"))
        slots = os.cpu_count()
        busy = self.d.submit(BURN, self.write_items("busy", ["3000"] * slots), self.path("out"), "--workers",
                             str(slots), *PER_ITEM)
        job = self.d.submit(BURN, self.write_items("items", ["1"]), self.path("out"), *PER_ITEM)
        self.assertEqual(self.d.status(job)["state"], "queued")
        r = self.d.varlink("io.mplock.Manager.Stats", {"id": job})
        self.assertEqual(r[0].get("parameters"), {}, r)
        self.assertEqual(json.loads(self.d.ctl("stats", "--json", job).stdout), {})
        self.assertIn(b"has not run yet", self.d.ctl("stats", job).stdout)
        # Once it has run, it has them.
        self.d.ctl("cancel", busy)
        rc, st = self.d.wait(job)
        self.assertEqual((rc, st["state"]), (0, "completed"), st)
        s = self.stats(job)
        self.assertEqual((s["items"], len(s["workers"]), s["slowest"][0]["index"]), (1, 1, 0), s)


def slow_index(s):
    return s["slowest"][0]["index"]


if __name__ == "__main__":
    main()
