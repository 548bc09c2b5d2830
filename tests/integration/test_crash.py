# SPDX-License-Identifier: MIT
"""Crashes, kills, cancels and concurrency: nothing lost, nothing twice."""

import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import PROBE, DaemonTest, children, job_processes, main, module  # noqa: E402


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


class KillDaemon(DaemonTest):
    daemon_args = ("--commit-interval", "20")

    def wait_done(self, job, at_least, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.d.status(job)
            if st["done"] >= at_least or st["state"] != "running" and st["state"] != "queued":
                return st
            time.sleep(0.01)
        self.fail("job %d did not reach %d items" % (job, at_least))

    def test_100k_square_survives_repeated_kill_9(self):
        n = 100000
        items = self.write_items("items.txt", [str(i) for i in range(n)])
        out = self.path("out")
        job = self.d.submit(module("square"), items, out, "--workers", 2, "--save-batch", 500,
                            "--shared", '{"sleep_us": 40}')
        kills = 0
        for target in (8000, 22000, 37000, 51000, 66000, 80000, 93000):
            st = self.wait_done(job, target)
            if st["state"] != "running":
                break
            self.d.kill()
            kills += 1
            self.d.start()
        self.assertGreaterEqual(kills, 5, "the job ended before it could be killed 5 times")
        rc, st = self.d.wait(job)
        self.assertEqual(rc, 0, self.d.read_log()[-3000:])
        self.assertEqual((st["done"], st["failed"]), (n, 0))

        # Each index exactly once, and the same bytes as an uninterrupted run.
        res = self.d.results_json(job)
        self.assertEqual([r["index"] for r in res], list(range(n)))
        self.assertEqual([r["result"] for r in res], [str(i * i) for i in range(n)])
        ref = self.d.submit(module("square"), items, self.path("ref"), "--workers", 2)
        self.assertEqual(self.d.wait(ref)[0], 0)
        self.assertEqual(self.d.ctl("results", job).stdout, self.d.ctl("results", ref).stdout)

        # The save callback is at-least-once: every index, maybe some twice.
        with open(os.path.join(out, "square.saved")) as f:
            saved = [line.split("\t") for line in f.read().splitlines()]
        self.assertEqual({int(i) for i, _ in saved}, set(range(n)))
        self.assertTrue(all(int(v) == int(i) ** 2 for i, v in saved))
        log = self.d.read_log()
        self.assertGreaterEqual(log.count("will resume"), 5)

    def test_sigterm_stops_gracefully_and_the_job_resumes(self):
        n = 4000
        items = self.write_items("items.txt", [str(i) for i in range(n)])
        job = self.d.submit(module("square"), items, self.path("out"), "--workers", 2,
                            "--shared", '{"sleep_us": 1000}')
        self.wait_done(job, 500)
        t0 = time.monotonic()
        self.d.stop()
        self.assertEqual(self.d.proc.returncode, 0)
        self.assertLess(time.monotonic() - t0, 10)
        self.assertIn("Stopping", self.d.read_log())
        self.d.start()
        rc, st = self.d.wait(job)
        self.assertEqual(rc, 0)
        res = self.d.results_json(job)
        self.assertEqual([r["result"] for r in res], [str(i * i) for i in range(n)])


class Workers(DaemonTest):
    daemon_args = ("--max-workers", "4")

    def runner_and_workers(self, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for pid in job_processes(self.d.proc.pid):
                try:
                    with open("/proc/%d/cmdline" % pid, "rb") as f:
                        cmd = f.read().split(b"\0")
                except OSError:
                    continue
                if len(cmd) > 1 and cmd[1] == b"run":
                    workers = children(pid)
                    if workers:
                        return pid, workers
            time.sleep(0.01)
        self.fail("no runner with workers found")

    def test_a_killed_worker_is_replaced_and_its_item_redone(self):
        n = 300
        items = self.write_items("items.txt", [str(i) for i in range(n)])
        job = self.d.submit(PROBE, items, self.path("out"), "--workers", 2, "--shared", '{"sleep_ms": 10}')
        runner, workers = self.runner_and_workers()
        time.sleep(0.3)
        os.kill(workers[0], signal.SIGKILL)
        rc, st = self.d.wait(job)
        self.assertEqual(rc, 0, st)
        self.assertEqual((st["done"], st["failed"]), (n, 0))
        res = self.d.results_json(job)
        self.assertEqual([r["index"] for r in res], list(range(n)))
        pids = {r["result"].split("|")[2] for r in res}
        self.assertIn("pid=%d" % workers[0], pids, "the killed worker had done some items")
        self.assertGreaterEqual(len(pids), 3, "a replacement worker did the rest")
        with open(self.path("out", "mplock-%d.log" % job)) as f:
            self.assertIn("killed by signal", f.read())

    def test_an_item_that_always_crashes_fails_after_max_attempts(self):
        items = self.write_items("items.txt", [str(i) for i in range(200)])
        job = self.d.submit(module("flaky"), items, self.path("out"), "--workers", 2,
                            "--shared", '{"segv": ["13"], "abort": ["150"], "once": ["77"]}')
        rc, st = self.d.wait(job)
        self.assertEqual(rc, 5)
        self.assertEqual((st["done"], st["failed"]), (200, 2))
        res = {r["index"]: r for r in self.d.results_json(job)}
        # The reason names how the worker died: a signal, or (under ASan,
        # which catches the SIGSEGV itself) an exit status.
        self.assertRegex(res[13]["error"]["message"],
                         r"^worker died on this item 3 times \(last: (killed by signal Segmentation fault|exited with status 1)\)$")
        self.assertIn("3 times", res[150]["error"]["message"])
        self.assertEqual(res[77]["result"], "77")  # crashed once, then done
        self.assertEqual(sorted(res), list(range(200)))

    def test_worker_exit_inside_process_is_a_crash_too(self):
        items = self.write_items("items.txt", [str(i) for i in range(20)])
        job = self.d.submit(module("flaky"), items, self.path("out"), "--shared", '{"exit": ["5"]}')
        rc, st = self.d.wait(job)
        self.assertEqual((rc, st["failed"]), (5, 1))
        res = self.d.results_json(job)
        self.assertIn("exited with status 0", res[5]["error"]["message"])

    def test_a_hanging_item_times_out_and_fails_after_max_attempts(self):
        items = self.write_items("items.txt", [str(i) for i in range(100)])
        t0 = time.monotonic()
        job = self.d.submit(module("flaky"), items, self.path("out"), "--workers", 2, "--timeout", 1,
                            "--shared", '{"hang": ["42"]}')
        self.assertEqual(self.d.status(job)["timeout"], 1)
        rc, st = self.d.wait(job)
        self.assertEqual((rc, st["done"], st["failed"]), (5, 100, 1))
        res = {r["index"]: r for r in self.d.results_json(job)}
        self.assertEqual(res[42]["error"]["code"], -1002)
        self.assertEqual(res[42]["error"]["message"], "worker died on this item 3 times (last: timed out after 1 s)")
        self.assertEqual(sorted(res), list(range(100)))
        self.assertTrue(all(res[i]["result"] == str(i) for i in range(100) if i != 42))
        # Four hangs at most (one inside a chunk, three alone), a second each.
        self.assertLess(time.monotonic() - t0, 15)

    def test_cancel_stops_all_workers_within_a_second(self):
        items = self.write_items("items.txt", [str(i) for i in range(2000)])
        job = self.d.submit(module("burn"), items, self.path("out"), "--workers", 3, "--shared", '{"ms": 20}')
        runner, workers = self.runner_and_workers()
        time.sleep(0.5)
        t0 = time.monotonic()
        p = self.d.ctl("cancel", job)
        elapsed = time.monotonic() - t0
        self.assertLess(elapsed, 1.0)
        self.assertIn(b"cancelled", p.stdout)
        time.sleep(0.05)
        self.assertEqual([w for w in workers + [runner] if alive(w)], [])
        rc, st = self.d.wait(job)
        self.assertEqual((rc, st["state"]), (4, "cancelled"))
        self.assertLess(st["done"], 2000)
        # Cancelling a queued job works too, and it never starts.
        blocker = self.d.submit(module("burn"), items, self.path("b"), "--workers", 4, "--shared", '{"ms": 20}')
        queued = self.d.submit(module("echo"), items, self.path("q"))
        self.assertEqual(self.d.status(queued)["state"], "queued")
        self.d.ctl("cancel", queued)
        self.d.ctl("cancel", blocker)
        self.assertEqual(self.d.status(queued)["state"], "cancelled")
        self.assertFalse(os.path.exists(self.path("q")))

    def test_two_jobs_run_side_by_side_and_queue_beyond_the_cap(self):
        items = self.write_items("items.txt", [str(i) for i in range(400)])
        shared = '{"sleep_ms": 10, "tag": "%s"}'
        a = self.d.submit(PROBE, items, self.path("a"), "--workers", 2, "--shared", shared % "a")
        b = self.d.submit(PROBE, items, self.path("b"), "--workers", 2, "--shared", shared % "b")
        c = self.d.submit(PROBE, items, self.path("c"), "--workers", 2, "--shared", shared % "c")
        seen_both, seen_c_queued = False, False
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            # One List call: the three states at the same moment.
            jobs = {j["id"]: j["state"] for j in
                    (json.loads(line) for line in self.d.ctl("--json", "list").stdout.splitlines())}
            if jobs[a] == jobs[b] == "running":
                seen_both = True
                seen_c_queued |= jobs[c] == "queued"
            if jobs[c] != "queued":
                break
            time.sleep(0.01)
        self.assertTrue(seen_both, "the two jobs never ran at the same time")
        self.assertTrue(seen_c_queued, "the third job did not wait for room under --max-workers 4")
        for job, tag in ((a, "a"), (b, "b"), (c, "c")):
            rc, st = self.d.wait(job)
            self.assertEqual(rc, 0)
            res = self.d.results_json(job)
            self.assertEqual([r["index"] for r in res], list(range(400)))
            self.assertTrue(all(r["result"].startswith("tag=%s|" % tag) for r in res))


class KillDuringCheckpoints(DaemonTest):
    """The journal's checkpoint runs in a thread while Submits append to
    the journal: every job acknowledged before a kill -9 is there after it,
    with its items, and its results once it has run."""

    def test_every_acknowledged_job_survives_a_kill_amid_submissions(self):
        import threading
        acked, stop = [], threading.Event()

        def submitter(k):
            n = 0
            while not stop.is_set() and n < 40:
                try:
                    r = self.d.varlink("io.mplock.Manager.Submit", {
                        "module": module("square"), "output": self.path("o%d-%d" % (k, n)),
                        "items": [str(i) for i in range(k + 1)], "workers": 1})
                except OSError:
                    return  # the daemon is gone: what was not answered was not acknowledged
                if r and "error" not in r[-1]:
                    acked.append((r[-1]["parameters"]["id"], k + 1))
                n += 1

        threads = [threading.Thread(target=submitter, args=(k,)) for k in range(3)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(acked) < 30 and time.monotonic() < deadline:
            time.sleep(0.002)
        self.d.kill()
        stop.set()
        for t in threads:
            t.join()
        self.assertGreaterEqual(len(acked), 30)
        self.d.start()
        for job, n in acked:
            rc, st = self.d.wait(job)
            self.assertEqual(rc, 0, st)
            self.assertEqual(st["items"], n)
            self.assertEqual([r["result"] for r in self.d.results_json(job)], [str(i * i) for i in range(n)])


if __name__ == "__main__":
    main()
