# SPDX-License-Identifier: MIT
"""The joblog of each item (attempts, worker, run time) in results and
failed, retries of some failed items only (--code, --items), and the job
log's lines about attempts and about what modules print."""

import json
import os
import re
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "python"))
from harness import PROBE, DaemonTest, main  # noqa: E402
from mplock import results as mres  # noqa: E402

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def failed_json(d, job, *extra):
    out = d.ctl("--json", "failed", job, *extra).stdout.decode()
    return [json.loads(line) for line in out.splitlines()]


class Joblog(DaemonTest):
    daemon_args = ("--retry-delay", "5")

    def runs(self, out, index):
        try:
            return os.path.getsize(os.path.join(out, "probe-run.%d" % index))
        except FileNotFoundError:
            return 0

    def test_attempts_worker_and_run_time_of_each_item(self):
        # Each item fails twice (503) and then succeeds: its record is the
        # third attempt's.
        out = self.path("out")
        items = self.write_items("items.txt", ["a", "b", "c", "d", "e", "f"])
        job = self.d.submit(PROBE, items, out, "--workers", 2, "--max-attempts", 3,
                            "--shared", '{"count_runs": true, "fail_times": 2}')
        rc, st = self.d.wait(job)
        self.assertEqual((rc, st["state"]), (0, "completed"))
        for via in ((), ("--via-daemon",)):
            res = self.d.results_json(job, *via)
            self.assertEqual([r["index"] for r in res], list(range(6)))
            for r in res:
                self.assertEqual(r["attempts"], 3, r)
                self.assertIn(r["worker"], (0, 1), r)
                self.assertLess(r["run_usec"], 5000000, r)
                # The probe's result names the worker that ran it.
                self.assertIn("|worker=%d|" % r["worker"], r["result"])
        for i in range(6):
            self.assertEqual(self.runs(out, i), 3)
        log = self.d.ctl("logs", job).stdout.decode()
        for i, name in enumerate("abcdef"):
            self.assertRegex(log, r"%s mplock: item %d attempt 1 failed \(503: probe fails run 1 of %s\), "
                                  r"again in 5 ms\n" % (STAMP, i, name))
            self.assertRegex(log, r"mplock: item %d attempt 2 failed \(503: probe fails run 2 of %s\), "
                                  r"again in 10 ms\n" % (i, name))
        self.assertNotIn("failed after", log)
        # The Python reader decodes the same.
        recs = mres.read_results(st["results_path"], st["results_committed"])
        self.assertEqual({r.index: (r.attempts, r.worker) for r in recs.values()},
                         {r["index"]: (r["attempts"], r["worker"]) for r in res})

    def test_failed_items_their_last_error_and_attempts(self):
        items = self.write_items("items.txt", ["ok", "fail:7", "ok2", "fail:42"])
        job = self.d.submit(PROBE, items, self.path("out"), "--workers", 1, "--max-attempts", 2)
        rc, st = self.d.wait(job)
        self.assertEqual((rc, st["failed"]), (5, 2))
        for via in ((), ("--via-daemon",)):
            failed = failed_json(self.d, job, *via)
            self.assertEqual([(f["index"], f["error"]["code"], f["attempts"], f["worker"]) for f in failed],
                             [(1, 7, 2, 0), (3, 42, 2, 0)])
            self.assertEqual(failed[0]["error"]["message"], "probe fails with 7")
            self.assertTrue(all(isinstance(f["run_usec"], int) for f in failed))
        log = self.d.ctl("logs", job).stdout.decode()
        self.assertIn("mplock: item 1 attempt 1 failed (7: probe fails with 7), again in 5 ms\n", log)
        self.assertIn("mplock: item 1 failed after 2 attempts (7: probe fails with 7)\n", log)
        self.assertIn("mplock: item 3 failed after 2 attempts (42: probe fails with 42)\n", log)

    def test_run_time_matches_a_sleeping_item(self):
        items = self.write_items("items.txt", ["x", "y"])
        job = self.d.submit(PROBE, items, self.path("out"), "--workers", 2, "--shared", '{"sleep_ms": 300}')
        self.assertEqual(self.d.wait(job)[0], 0)
        # The workers' clock is the TSC, its rate calibrated against
        # CLOCK_MONOTONIC: within 1% (a batch of 400 ms came out 199,994 us
        # an item once).
        for r in self.d.results_json(job):
            self.assertGreaterEqual(r["run_usec"], 297000, r)
            self.assertLess(r["run_usec"], 3000000, r)
        # A batch's time is shared out over its items.
        job = self.d.submit(PROBE, items, self.path("out2"), "--workers", 1, "--batch-size", 2,
                            "--shared", '{"sleep_ms": 400}')
        self.assertEqual(self.d.wait(job)[0], 0)
        for r in self.d.results_json(job):
            self.assertGreaterEqual(r["run_usec"], 198000, r)
            self.assertLess(r["run_usec"], 400000, r)

    def test_the_log_is_not_flooded_by_failures(self):
        n = 150
        items = self.write_items("items.txt", ["fail:3"] * n)
        job = self.d.submit(PROBE, items, self.path("out"), "--workers", 2, "--max-attempts", 2)
        self.assertEqual(self.d.wait(job)[0], 5)
        log = self.d.ctl("logs", job).stdout.decode()
        written = re.findall(r"mplock: item \d+ (?:attempt 1 failed|failed after 2 attempts)", log)
        self.assertEqual(len(written), 100, log[-2000:])
        held = [int(m) for m in re.findall(r"mplock: (\d+) more lines about items' attempts and failures were not "
                                           r"written", log)]
        self.assertEqual(sum(held), 2 * n - 100, log[-2000:])
        self.assertEqual(len(failed_json(self.d, job)), n)

    def test_module_prints_name_the_item(self):
        items = self.write_items("items.txt", [str(i) for i in range(8)])
        job = self.d.submit(PROBE, items, self.path("out"), "--workers", 2, "--batch-size", 4,
                            "--shared", '{"print": true}')
        self.assertEqual(self.d.wait(job)[0], 0)
        log = self.d.ctl("logs", job).stdout.decode().splitlines()
        seen = set()
        for line in log:
            m = re.fullmatch(r"%s worker ([01]) items (\d+)\.\.(\d+): probe (out|err) (\d+)" % STAMP, line)
            if not m:
                continue
            first, last, item = int(m.group(2)), int(m.group(3)), int(m.group(5))
            # A batch is named by its first and last index, and holds the item.
            self.assertEqual(last - first, 3, line)
            self.assertTrue(first <= item <= last, line)
            seen.add((item, m.group(4)))
        self.assertEqual(len(seen), 16, log)


class SubsetRetry(DaemonTest):
    daemon_args = ("--retry-delay", "1")

    def setUp(self):
        super().setUp()
        self.out = self.path("out")
        # 0..9: 2, 5, 8 fail with 7; 3, 6 with 9; the rest succeed.
        self.names = ["fail:7" if i % 3 == 2 else "fail:9" if i in (3, 6) else "ok%d" % i for i in range(10)]
        items = self.write_items("items.txt", self.names)
        self.job = self.d.submit(PROBE, items, self.out, "--workers", 2, "--max-attempts", 1,
                                 "--shared", '{"count_runs": true}')
        rc, st = self.d.wait(self.job)
        self.assertEqual((rc, st["failed"]), (5, 5))
        self.before = {r["index"]: r for r in self.d.results_json(self.job)}

    def runs(self):
        return [os.path.getsize(os.path.join(self.out, "probe-run.%d" % i)) for i in range(10)]

    def retried(self, *args):
        p = self.d.ctl("retry", self.job, *args)
        rc, st = self.d.wait(self.job)
        self.assertEqual((rc, st["state"], st["done"]), (5, "completed_with_failures", 10))
        return p, st

    def test_retry_by_code_runs_only_those(self):
        p, st = self.retried("--code", "7")
        self.assertIn(b"failed items with code 7", p.stdout)
        self.assertEqual(self.runs(), [2 if i % 3 == 2 else 1 for i in range(10)])
        self.assertEqual(st["failed"], 5)
        after = {r["index"]: r for r in self.d.results_json(self.job)}
        # The others, failed ones included, are kept as they were.
        for i in range(10):
            if i % 3 != 2:
                self.assertEqual(after[i], self.before[i])
            else:
                self.assertEqual(after[i]["error"]["code"], 7)
        self.assertIn("Retry: 2 failed items are not chosen", self.d.ctl("logs", self.job).stdout.decode())
        # Repeated and comma lists: both codes.
        self.retried("--code", "9,7", "--code", "7")
        self.assertEqual(self.runs(), [3 if i % 3 == 2 else 2 if i in (3, 6) else 1 for i in range(10)])

    def test_retry_by_items_runs_only_those(self):
        self.retried("--items", "2-4")
        # 2 and 3 failed and are in the range; 4 succeeded and is kept.
        self.assertEqual(self.runs(), [2 if i in (2, 3) else 1 for i in range(10)])
        self.assertEqual(len(failed_json(self.d, self.job)), 5)
        # Both: a failed item with code 7 at 5..9.
        self.retried("--code", "7", "--items", "5-9")
        self.assertEqual(self.runs(), [2 if i in (2, 3) else 2 if i in (5, 8) else 1 for i in range(10)])

    def test_a_choice_that_matches_nothing_is_refused(self):
        st = self.d.status(self.job)
        p = self.d.ctl("retry", self.job, "--code", "8", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stderr.decode(), "mplockctl retry: no failed item of job %d has code 8; nothing "
                                            "retried\n" % self.job)
        p = self.d.ctl("retry", self.job, "--items", "0-1", "--code", "7", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("has code 7 and an index in 0-1", p.stderr.decode())
        self.assertEqual(self.d.status(self.job)["retries"], st["retries"])
        self.assertEqual(self.runs(), [1] * 10)

    def test_bad_choices_are_refused(self):
        for args, why in ((("--items", "4-2"), "expected indices and ranges"),
                          (("--items", "1,,2"), "expected indices and ranges"),
                          (("--items", "x"), "expected indices and ranges"),
                          (("--code", "0"), "expected nonzero error codes"),
                          (("--code", "7,"), "expected nonzero error codes"),
                          (("--items", "10"), "job %d has 10 items (indices 0 to 9)" % self.job)):
            p = self.d.ctl("retry", self.job, *args, check=False)
            self.assertEqual(p.returncode, 2, (args, p.stderr))
            self.assertIn(why, p.stderr.decode(), args)
        # mplockd checks what it is given, whoever asks.
        for params, what in (({"items": [{"first": 4, "last": 2}]}, "after its last"),
                             ({"items": [{"first": 0, "last": 10}]}, "past the job's last item"),
                             ({"items": [{"first": 0}]}, "{first, last}"),
                             ({"items": [{"first": i % 10, "last": i % 10} for i in range(1025)]}, "more than 1024 ranges"),
                             ({"codes": [0]}, "nonzero"),
                             ({"codes": ["7"]}, "nonzero"),
                             ({"codes": [2 ** 31]}, "nonzero"),
                             ({"codes": list(range(1, 1026))}, "more than 1024 codes")):
            params["id"] = self.job
            r = self.d.varlink("io.mplock.Manager.Retry", params)[-1]
            self.assertEqual(r.get("error"), "io.mplock.Manager.InvalidParameter", (what, r))
            self.assertIn(what, r["parameters"]["reason"], what)
        self.assertEqual(self.d.status(self.job)["retries"], 0)
        self.assertEqual(self.runs(), [1] * 10)


class SubsetRetryHalt(DaemonTest):
    def test_kept_failures_do_not_count_toward_the_halt(self):
        names = ["fail:7"] * 3 + ["ok%d" % i for i in range(7)]
        job = self.d.submit(PROBE, self.write_items("items.txt", names), self.path("out"), "--workers", 1,
                            "--max-attempts", 1, "--halt-on-failure", 3)
        rc, st = self.d.wait(job)
        self.assertEqual((st["state"], st["failed"]), ("failed", 3), st)
        # Item 0 runs again and fails again: one failure of this run, two
        # kept; the items never done complete the job.
        self.d.ctl("retry", job, "--items", "0")
        rc, st = self.d.wait(job)
        self.assertEqual((rc, st["state"], st["done"], st["failed"]), (5, "completed_with_failures", 10, 3), st)


class Version1(DaemonTest):
    """A results file written before version 2 (by an earlier mplock) reads
    as before, a retry carries its records over, and a job resumed on one
    goes on in it."""
    daemon_args = ("--commit-interval", "20")

    def v1_of(self, path, pad_index):
        """The file rewritten in version 1's layout, as long as before (one
        result padded by what the smaller headers save)."""
        with open(path, "rb") as f:
            data = f.read()
        header = bytearray(data[:32])
        struct.pack_into("=I", header, 8, 1)
        struct.pack_into("=I", header, 28, crc32c(bytes(header[:28])))
        recs = sorted(mres.parse_blocks(data, 32), key=lambda r: r.index)
        self.assertEqual([r.index for r in recs], list(range(len(recs))))
        # One block of 12-byte item headers, where there were blocks of
        # 32-byte ones.
        pad = b"=" * (len(data) - 32 - 24 - sum(12 + len(r.item) + len(r.data) for r in recs))
        payload = b""
        for r in recs:
            res = r.data + (pad if r.index == pad_index else b"")
            payload += struct.pack("=IIi", len(r.item), len(res), r.status) + r.item + res
        bh = struct.pack("=IIQII", mres.BLOCK_MAGIC, len(recs), 0, len(payload), 0)
        bh = struct.pack("=IIQII", mres.BLOCK_MAGIC, len(recs), 0, len(payload), crc32c(bh + payload))
        v1 = bytes(header) + bh + payload
        self.assertEqual(len(v1), len(data))
        with open(path, "wb") as f:
            f.write(v1)
        return recs[pad_index].data + pad

    def test_a_version_1_file_reads_and_is_carried_over(self):
        items = self.write_items("items.txt", ["a", "fail:7", "b"])
        job = self.d.submit(PROBE, items, self.path("out"), "--workers", 1, "--max-attempts", 1)
        rc, st = self.d.wait(job)
        self.assertEqual(rc, 5)
        padded = self.v1_of(st["results_path"], 0).decode()
        for via in ((), ("--via-daemon",)):
            res = self.d.results_json(job, *via)
            self.assertEqual(res[0]["result"], padded)
            self.assertEqual(res[1]["error"]["code"], 7)
            # Version 1 has no joblog: the fields are absent, not made up.
            self.assertFalse(any("attempts" in r or "worker" in r or "run_usec" in r for r in res), res)
            self.assertNotIn("attempts", failed_json(self.d, job, *via)[0])
        self.assertEqual(mres.read_results(st["results_path"], st["results_committed"])[0].attempts, 0)
        # A retry reads the version-1 file aside: the success carried as
        # it was, the failure run again and recorded with its joblog.
        self.d.ctl("retry", job)
        rc, st = self.d.wait(job)
        self.assertEqual((rc, st["done"], st["failed"]), (5, 3, 1))
        res = self.d.results_json(job)
        self.assertEqual(res[0]["result"], padded)
        self.assertNotIn("attempts", res[0])
        self.assertEqual((res[1]["error"]["code"], res[1]["attempts"]), (7, 1))
        with open(st["results_path"], "rb") as f:
            self.assertEqual(struct.unpack_from("=I", f.read(12), 8)[0], 2)

    def test_a_job_resumed_on_a_version_1_file_goes_on_in_it(self):
        n = 200
        items = self.write_items("items.txt", ["i%d" % i for i in range(n)])
        job = self.d.submit(PROBE, items, self.path("out"), "--workers", 1, "--save-batch", 1,
                            "--shared", '{"sleep_ms": 5}')
        deadline = time.monotonic() + 60
        while self.d.status(job)["done"] < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
        st = json.loads(self.d.ctl("--json", "pause", job).stdout)
        self.assertEqual(st["state"], "paused")
        done = st["done"]
        self.assertLess(done, n)
        self.v1_of(st["results_path"], 0)
        self.d.ctl("resume", job)
        rc, st = self.d.wait(job)
        self.assertEqual((rc, st["done"]), (0, n))
        # The header says version 2 now; the records from before have no
        # joblog, the rest do; every index once.
        with open(st["results_path"], "rb") as f:
            self.assertEqual(struct.unpack_from("=I", f.read(12), 8)[0], 2)
        res = self.d.results_json(job)
        self.assertEqual([r["index"] for r in res], list(range(n)))
        self.assertEqual([i for i, r in enumerate(res) if "attempts" not in r], list(range(done)))
        self.assertTrue(res[0]["result"].endswith("="))
        self.assertEqual(mres.read_results(st["results_path"], st["results_committed"])[n - 1].attempts, 1)


if __name__ == "__main__":
    main()
