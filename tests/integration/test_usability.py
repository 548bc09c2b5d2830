# SPDX-License-Identifier: MIT
"""What a new user runs into: the list table, an ended job's rate, the
ETA, what status shows, building a module in the build tree, the
protocol's Python example, and waiting for several jobs."""

import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import BUILD, PROBE, DaemonTest, main, module  # noqa: E402

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def table(text):
    """The list table: the header's columns and each row's, as (start, end)
    spans of their cells; NAME (the last) may hold spaces."""
    lines = text.splitlines()
    spans = []
    for line in lines:
        cells = [m.span() for m in re.finditer(r"\S+", line)][:6]
        name_start = cells[-1][1] + 2 if len(cells) == 6 else None
        spans.append((cells, name_start, line))
    return spans


class List(DaemonTest):
    def test_columns_align_for_every_state_and_long_names(self):
        good = self.write_items("good.txt", [str(i) for i in range(12)])
        bad = self.write_items("bad.txt", ["1", "x", "2"])
        a = self.d.submit(module("square"), good, self.path("a"))
        b = self.d.submit(module("square"), bad, self.path("b"), "--max-attempts", 1,
                          "--name", "a rather long job name, with spaces")
        self.assertEqual(self.d.wait(a)[0], 0)
        self.assertEqual(self.d.wait(b)[0], 5)
        c = self.d.submit(module("square"), good, self.path("c"), "--shared", '{"sleep_us": 1000000}')
        self.d.ctl("cancel", c)
        rows = table(self.d.ctl("list").stdout.decode())
        header, header_name, _ = rows[0]
        self.assertEqual(len(rows), 4)
        for cells, name_start, line in rows[1:]:
            self.assertEqual(len(cells), 6, line)
            # ID, DONE/ITEMS, FAILED, RATE/s and TIME right-aligned, STATE left.
            self.assertEqual(cells[1][0], header[1][0], line)
            for k in (0, 2, 3, 4, 5):
                self.assertEqual(cells[k][1], header[k][1], line)
            self.assertEqual(name_start, header_name, line)
        states = [r[2].split()[1] for r in rows[1:]]
        self.assertEqual(states, ["completed", "completed_with_failures", "cancelled"])
        self.assertTrue(rows[2][2].endswith("a rather long job name, with spaces"))


class Rate(DaemonTest):
    daemon_args = ("--max-workers", "1")

    def test_an_ended_job_shows_its_average_rate_and_duration(self):
        path = self.write_items("items.txt", [str(i) for i in range(60)])
        job = self.d.submit(module("square"), path, self.path("out"), "--workers", 2,
                            "--shared", '{"sleep_us": 20000}')
        self.assertEqual(self.d.wait(job)[0], 0)
        st = self.d.status(job)
        self.assertEqual(st["rate"], 0.0)
        # 60 items of 20 ms on 2 workers: at least 0.6 s.
        self.assertGreaterEqual(st["duration_seconds"], 0.6)
        self.assertLess(st["duration_seconds"], 30)
        self.assertAlmostEqual(st["duration_seconds"], (st["finished_usec"] - st["started_usec"]) / 1e6, places=3)
        self.assertAlmostEqual(st["average_rate"], 60 / st["duration_seconds"], places=3)
        human = self.d.ctl("status", job).stdout.decode()
        m = re.search(r"ran: +([0-9.]+)s from start to end, ([0-9]+) items/s on average", human)
        self.assertTrue(m, human)
        self.assertEqual(int(m.group(2)), round(st["average_rate"]))
        row = self.d.ctl("list").stdout.decode().splitlines()[1].split()
        self.assertEqual(int(row[4]), round(st["average_rate"]))
        self.assertEqual(row[5], m.group(1) + "s")

    def test_a_job_cancelled_before_it_started_has_no_duration(self):
        path = self.write_items("items.txt", ["1"])
        self.d.submit(module("square"), path, self.path("a"), "--shared", '{"sleep_us": 2000000}')
        # With the only worker busy, the second job is still queued.
        job = self.d.submit(module("square"), path, self.path("b"))
        self.d.ctl("cancel", job)
        st = self.d.status(job)
        if "started_usec" in st:
            self.skipTest("the job started before it was cancelled")
        self.assertNotIn("duration_seconds", st)
        self.assertNotIn("average_rate", st)
        self.assertNotIn("ran:", self.d.ctl("status", job).stdout.decode())

    def test_eta_is_never_zero_with_items_left(self):
        """840 items left at 931/s is 1 s, not 0: the ETA rounds up."""
        path = self.write_items("items.txt", [str(i) for i in range(240)])
        job = self.d.submit(module("square"), path, self.path("out"), "--workers", 1,
                            "--shared", '{"sleep_us": 10000}')
        jobs = []
        deadline = time.monotonic() + 60
        while not jobs or jobs[-1]["state"] in ("queued", "running"):
            self.assertLess(time.monotonic(), deadline)
            jobs.append(self.d.varlink("io.mplock.Manager.Status", {"id": job})[0]["parameters"]["job"])
            time.sleep(0.05)
        self.assertEqual(jobs[-1]["state"], "completed")
        close = 0
        for j in jobs:
            left = j["items"] - j["processed"]
            if j["state"] != "running" or "eta_seconds" not in j:
                continue
            if left > 0:
                self.assertGreaterEqual(j["eta_seconds"], 1, j)
            self.assertGreaterEqual(j["eta_seconds"], left / j["rate"], j)
            close += 0 < left < j["rate"]
        # The case of the report: fewer items left than a second's worth.
        self.assertGreater(close, 0, jobs)


class Status(DaemonTest):
    def test_status_shows_what_was_given_at_submission(self):
        path = self.write_items("items.txt", ["1", "x", "3"])
        job = self.d.submit(module("square"), path, self.path("out"), "--max-attempts", 2, "--timeout", 30,
                            "--halt-on-failure", "50%", "--memory-max", "64M", "--batch-size", 2,
                            "--save-batch", 7, "--max-items-per-worker", 100, "--max-worker-memory", "1G",
                            "--tasks-max", 40, "--cpu-weight", 50, "--io-weight", 60, "--workers", 3)
        self.d.wait(job)
        human = self.d.ctl("status", job).stdout.decode()
        for text in ("workers:  3, batch size 2, save batch 7, timeout 30 s, 2 attempts per item",
                     "halt on failure 50%", "memory max 64M", "tasks max 40", "CPU weight 50", "IO weight 60",
                     "workers replaced after 100 items", "workers replaced past 1G resident"):
            self.assertIn(text, human)
        self.assertNotIn("retries:", human)
        self.assertNotIn("CPU quota", human)
        self.assertEqual(self.d.ctl("retry", job, check=False).returncode, 0)
        self.d.wait(job)
        self.assertIn("retries:  1\n", self.d.ctl("status", job).stdout.decode())

    def test_defaults_are_shown_too(self):
        path = self.write_items("items.txt", ["1"])
        job = self.d.submit(module("square"), path, self.path("out"), "--timeout", 0)
        self.d.wait(job)
        human = self.d.ctl("status", job).stdout.decode()
        self.assertIn("no timeout, %d attempts per item" % self.d.status(job)["max_attempts"], human)
        self.assertNotIn("limits:", human)


class Module(DaemonTest):
    def test_a_positive_return_from_process_counts_as_zero(self):
        path = self.write_items("items.txt", ["a", "b", "c", "d"])
        job = self.d.submit(PROBE, path, self.path("out"), "--batch-size", 4, "--max-attempts", 1,
                            "--shared", '{"return": 22}')
        self.assertEqual(self.d.wait(job)[0], 5)
        res = self.d.results_json(job)
        self.assertTrue(res[0]["result"].endswith("item=a"))
        self.assertTrue(res[2]["result"].endswith("item=c"))
        for r in (res[1], res[3]):
            self.assertEqual(r["error"]["code"], -1001)
            self.assertIn("returned 22 (positive: taken as 0)", r["error"]["message"])

    def test_a_module_builds_against_the_uninstalled_pkg_config_file(self):
        """build/meson-uninstalled: the headers of the source tree."""
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(BUILD, "meson-uninstalled"))
        cflags = subprocess.run(["pkg-config", "--cflags", "mplock-module"], env=env, check=True,
                                capture_output=True, text=True).stdout.split()
        self.assertIn("-I" + os.path.join(SRC, "include"), [os.path.normpath(f) for f in cflags])
        with open(os.path.join(SRC, "docs", "module.md")) as f:
            code = re.search(r"```c\n(.*?)```", f.read(), re.S).group(1)
        with open(self.path("upper.c"), "w") as f:
            f.write(code)
        subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-Wall", "-Werror"] + cflags +
                       [self.path("upper.c"), "-o", self.path("upper.so")], check=True)
        items = self.write_items("words.txt", ["hello", "mplock"])
        job = self.d.submit(self.path("upper.so"), items, self.path("out"))
        self.assertEqual(self.d.wait(job)[0], 0)
        self.assertEqual(self.d.ctl("results", job).stdout, b"HELLO\nMPLOCK\n")


class ProtocolExample(DaemonTest):
    def test_the_python_example_of_docs_protocol_runs(self):
        with open(os.path.join(SRC, "docs", "protocol.md")) as f:
            code = re.search(r"```python\n(.*?)```", f.read(), re.S).group(1)
        for old, new in (("/run/user/1000/mplockd/io.mplock.Manager", self.d.sock),
                         ("/usr/lib/mplock/examples/square.so", module("square")),
                         ("/tmp/out", self.path("out"))):
            self.assertIn(old, code)
            code = code.replace(old, new)
        # Small reads: a message comes in pieces, and several in one.
        code = code.replace("self.sock.recv(65536)", "self.sock.recv(7)")
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = p.stdout.splitlines()
        self.assertEqual(lines[-4:], ["completed 3", "0 1", "1 4", "2 9"])


class Wait(DaemonTest):
    daemon_args = ("--max-workers", "2")

    def submit(self, items, *extra):
        path = self.write_items("items-%d.txt" % time.monotonic_ns(), items)
        return self.d.submit(module("square"), path, self.path("out-%d" % time.monotonic_ns()), "--workers", 1,
                             "--max-attempts", 1, *extra)

    def test_any_returns_with_the_first_job_to_end(self):
        slow = self.submit([str(i) for i in range(50)], "--shared", '{"sleep_us": 200000}')
        self.d.ctl("pause", slow)  # waits, paused, until cancelled
        fast = self.submit(["1", "2"])
        t = time.monotonic()
        p = self.d.ctl("wait", "--any", slow, fast, check=False, timeout=60)
        self.assertLess(time.monotonic() - t, 20)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.decode(), "%d completed\n" % fast)
        self.assertIn("Job %d completed" % fast, p.stderr.decode())
        partial = self.submit(["1", "x"])
        p = self.d.ctl("--json", "wait", "--any", slow, partial, check=False, timeout=60)
        self.assertEqual(p.returncode, 5, p.stderr)
        job = json.loads(p.stdout)
        self.assertEqual((job["id"], job["state"]), (partial, "completed_with_failures"))
        # An unknown job is an error at once.
        p = self.d.ctl("wait", "--any", slow, 999, check=False, timeout=60)
        self.assertEqual(p.returncode, 6)
        self.d.ctl("cancel", slow)

    def test_several_jobs_without_any_wait_for_all_and_exit_with_the_worst(self):
        ok = self.submit(["1"])
        partial = self.submit(["x"])
        p = self.d.ctl("wait", ok, partial, check=False, timeout=60)
        self.assertEqual(p.returncode, 5, p.stderr)
        self.assertIn("Job %d completed:" % ok, p.stderr.decode())
        self.assertIn("Job %d completed_with_failures:" % partial, p.stderr.decode())
        slow = self.submit([str(i) for i in range(50)], "--shared", '{"sleep_us": 200000}')
        self.d.ctl("pause", slow)
        w = subprocess.Popen([os.path.join(BUILD, "mplockctl"), "--socket", self.d.sock, "--json", "wait", str(ok),
                              str(slow), str(partial)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1)
        self.assertIsNone(w.poll(), "wait returned before every job had ended")
        self.d.ctl("cancel", slow)
        out, err = w.communicate(timeout=60)
        self.assertEqual(w.returncode, 4, err)
        self.assertEqual([(j["id"], j["state"]) for j in map(json.loads, out.splitlines())],
                         [(ok, "completed"), (slow, "cancelled"), (partial, "completed_with_failures")])

    def test_bad_command_lines(self):
        self.assertEqual(self.d.ctl("wait", check=False).returncode, 2)
        self.assertEqual(self.d.ctl("wait", "--any", check=False).returncode, 2)
        self.assertEqual(self.d.ctl("wait", "1", "x", check=False).returncode, 2)
        self.assertEqual(self.d.ctl("wait", "--any", *range(1, 34), check=False).returncode, 2)


if __name__ == "__main__":
    main()
