#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Module ABI 1.1 and 1.2, as a module author uses it: final errors, the attempt
number, logging, init's reason, nested shared data and its keys, the save
state and numbered, flagged batches; and a module built against the 1.0
header still runs."""

import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import BUILD, TESTMODULES, DaemonTest, main  # noqa: E402

V11 = os.path.join(BUILD, "tests", "integration", "v11.so")
V10 = os.path.join(TESTMODULES, "test-v10.so")


def saves(out):
    """The batches v11's save_batch wrote: [(seq, n, flags, [indices])],
    and its other lines."""
    batches, other = [], []
    with open(os.path.join(out, "v11.saves")) as f:
        for line in f.read().splitlines():
            w = line.split()
            if w[0] == "batch":
                batches.append((int(w[1]), int(w[2]), int(w[3]), []))
            elif w[0] == "item":
                batches[-1][3].append(int(w[1]))
            else:
                other.append(line)
    return batches, other


class Abi11(DaemonTest):
    daemon_args = ("--retry-delay", "10")

    def test_final_errors_attempts_logs_and_saving(self):
        items = ["a", "perm", "retry", "log", "b"]
        out = self.path("out")
        job = self.d.submit(V11, self.write_items("items.txt", items), out, "--workers", 1, "--save-batch", 2,
                            "--max-attempts", 3, "--shared", '{"weights": [1, 2.5]}')
        rc, st = self.d.wait(job)
        self.assertEqual((rc, st["state"], st["failed"]), (5, "completed_with_failures", 1), st)
        res = {r["index"]: r for r in self.d.results_json(job)}
        self.assertEqual(res[0]["result"], "a:3.5")
        self.assertEqual(res[1]["error"], {"code": 9, "message": "permanent"})
        self.assertEqual(res[2]["result"], "attempt=3")
        self.assertEqual(res[4]["result"], "b:3.5")
        log = self.d.ctl("logs", job).stdout.decode()
        # A final error is tried once; the retried item three times, told
        # which attempt each was.
        self.assertEqual(log.count("attempt 1 of perm"), 1, log)
        self.assertNotIn("attempt 2 of perm", log)
        for k in (1, 2, 3):
            self.assertIn("attempt %d of retry" % k, log)
        # A module's log line names its worker and the item of the call.
        self.assertIn("module (worker 0): item 0: attempt 1 of a", log)
        self.assertIn("module (saver): saved batch 1", log)
        # One save state; batches numbered from 1; the last one says so; a
        # first run is not a resumed one.
        batches, other = saves(out)
        self.assertEqual(other, ["open", "fini"])
        self.assertEqual([b[0] for b in batches], list(range(1, len(batches) + 1)))
        self.assertEqual(sorted(i for b in batches for i in b[3]), list(range(5)))
        self.assertTrue(all(b[1] <= 2 for b in batches))
        self.assertEqual([b[2] for b in batches], [0] * (len(batches) - 1) + [1])

    def test_a_job_is_complete_once_its_callbacks_have_returned(self):
        """Wait answers as soon as the runner says the job is done, before
        it exits; by then every worker's fini and save_fini have returned.
        The job can be removed while its runner exits, and its workers are
        given back."""
        out = self.path("out")
        items = self.write_items("items.txt", ["a", "b", "c", "d"])
        job = self.d.submit(V11, items, out, "--workers", 2, "--shared", '{"fini_sleep_ms": 700}')
        rc, st = self.d.wait(job)
        self.assertEqual((rc, st["state"]), (0, "completed"), st)
        with open(os.path.join(out, "v11.fini")) as f:
            self.assertEqual(f.read(), "worker\n" * 2)
        self.assertEqual(saves(out)[1][-1], "fini")
        self.d.ctl("remove", job)
        # Every worker of the daemon (2 here) is free again for the next.
        job = self.d.submit(V11, items, self.path("out2"), "--workers", 2)
        self.assertEqual(self.d.wait(job, timeout=60)[1]["state"], "completed")

    def test_init_says_why_it_failed(self):
        job = self.d.submit(V11, self.write_items("items.txt", ["a"]), self.path("out"),
                            "--shared", '{"weights": [1], "wieghts": [2]}')
        rc, st = self.d.wait(job)
        self.assertEqual((rc, st["state"]), (3, "failed"), st)
        self.assertIn('init failed in worker 0: unknown shared key "wieghts"', st["error"])

    def test_a_resumed_run_says_so(self):
        out = self.path("out")
        n = 60
        job = self.d.submit(V11, self.write_items("items.txt", [str(i) for i in range(n)]), out, "--workers", 1,
                            "--save-batch", 2, "--shared", '{"sleep_ms": 20}')
        deadline = time.monotonic() + 60
        while self.d.status(job)["done"] < 6 and time.monotonic() < deadline:
            time.sleep(0.02)
        self.d.kill(signal.SIGKILL)
        time.sleep(0.2)
        self.d.start()
        rc, st = self.d.wait(job)
        self.assertEqual((rc, st["state"]), (0, "completed"), st)
        batches, other = saves(out)
        # Two runs, two save states (the first killed before its end).
        self.assertEqual(other.count("open"), 2)
        self.assertEqual(other[-1], "fini")
        first = batches[:[b[0] for b in batches].index(1, 1)]
        second = batches[len(first):]
        self.assertTrue(first and second)
        self.assertTrue(all(b[2] & 2 == 0 for b in first), first)
        self.assertTrue(all(b[2] & 2 for b in second), second)
        self.assertEqual(second[-1][2] & 1, 1)
        # Every item saved at least once; exactly once in the results.
        self.assertEqual(set(i for b in batches for i in b[3]), set(range(n)))
        self.assertEqual([r["index"] for r in self.d.results_json(job)], list(range(n)))

    def test_save_init_may_say_the_job_saves_nothing(self):
        """1.2: MPLOCK_SAVE_NOTHING from save_init: no batch at all, items
        commit without waiting for one, save_fini still comes."""
        n = 3000
        job = self.d.submit(V11, self.write_items("items.txt", [str(i) for i in range(n)]), self.path("out"),
                            "--save-batch", 1, "--shared", json.dumps({"save_nothing": True}))
        rc, st = self.d.wait(job)
        self.assertEqual((rc, st["state"], st["done"]), (0, "completed", n), st)
        with open(self.path("out", "v11.saves")) as f:
            self.assertEqual(f.read().split("\n"), ["open", "fini", ""])
        self.assertEqual([r["index"] for r in self.d.results_json(job)], list(range(n)))

    def test_a_module_built_against_the_1_0_header_runs(self):
        job = self.d.submit(V10, self.write_items("items.txt", ["x", "y"]), self.path("out"), "--save-batch", 1)
        rc, st = self.d.wait(job)
        self.assertEqual((rc, st["state"]), (0, "completed"), st)
        self.assertEqual([r["result"] for r in self.d.results_json(job)], ["v10:x", "v10:y"])


class CallbackBounds(DaemonTest):
    """--timeout bounds process; every other callback has a bound too
    (callback-timeout): a hanging init or save once kept a job running
    forever, holding its worker slots."""
    daemon_args = ("--callback-timeout", "1")

    def run_hanging(self, shared):
        t0 = time.monotonic()
        job = self.d.submit(V11, self.write_items("items.txt", ["a", "b", "c"]), self.path("out"), "--workers", 1,
                            "--save-batch", 1, "--shared", json.dumps(shared))
        rc, st = self.d.wait(job, timeout=60)
        self.assertEqual((rc, st["state"]), (3, "failed"), st)
        self.assertLess(time.monotonic() - t0, 30)
        return st

    def test_a_hanging_init_fails_the_job(self):
        st = self.run_hanging({"init_sleep_ms": 600000})
        self.assertIn("took longer than 1 s in init (callback-timeout)", st["error"])

    def test_a_hanging_save_fails_the_job(self):
        st = self.run_hanging({"save_sleep_ms": 600000})
        self.assertIn("the save callback took longer than 1 s (callback-timeout)", st["error"])
        # Nothing of the job is left running.
        self.assertEqual(st["live_workers"], 0)


if __name__ == "__main__":
    main()
