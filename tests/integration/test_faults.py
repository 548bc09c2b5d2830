# SPDX-License-Identifier: MIT
"""Pause and resume, full disks, and modules that misbehave: the job ends
completed or paused with a clear reason, never with a wrong result, and
other jobs are not affected."""

import json
import os
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import DaemonTest, job_processes, main, module  # noqa: E402

SANITIZED = os.environ.get("MPLOCK_SANITIZED") == "1"


def session_members(sid):
    """Processes whose session is sid (a runner is its session's leader)."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(d))
    return pids


def runner_of(daemon_pid, output):
    """The runner of the job writing into output: it holds its results file."""
    for pid in job_processes(daemon_pid):
        try:
            for fd in os.listdir("/proc/%s/fd" % pid):
                if os.readlink("/proc/%s/fd/%s" % (pid, fd)).startswith(output + "/mplock-"):
                    return int(pid)
        except OSError:
            continue
    return None


def wait_until(what, cond, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


class PauseResume(DaemonTest):
    # Two workers in all, whatever the machine: the "queued" job must not fit
    # beside the blocker.
    daemon_args = ("--commit-interval", "20", "--max-workers", "2")

    def test_pause_holds_across_a_restart_and_resume_finishes(self):
        n = 4000
        items = self.write_items("items.txt", [str(i) for i in range(n)])
        job = self.d.submit(module("square"), items, self.path("out"), "--workers", 2, "--shared",
                            '{"sleep_us": 1000}')
        wait_until("progress", lambda: self.d.status(job)["done"] >= 300)
        p = self.d.ctl("--json", "pause", job)
        st = json.loads(p.stdout)
        self.assertEqual(st["state"], "paused")
        done = st["done"]
        self.assertLess(done, n)
        time.sleep(0.5)
        self.assertEqual(self.d.status(job)["done"], done, "a paused job went on")
        # Paused survives SIGKILL and a restart: it does not resume by itself.
        self.d.kill()
        self.d.start()
        time.sleep(0.5)
        st = self.d.status(job)
        self.assertEqual((st["state"], st["done"]), ("paused", done))
        self.assertIn("paused", self.d.ctl("list").stdout.decode())
        self.d.ctl("resume", job)
        rc, st = self.d.wait(job)
        self.assertEqual(rc, 0)
        self.assertEqual(self.d.ctl("results", job).stdout.decode().splitlines(), [str(i * i) for i in range(n)])

    def test_pause_and_resume_refusals(self):
        items = self.write_items("items.txt", ["1", "2"])
        blocker = self.d.submit(module("burn"), items, self.path("b"), "--workers", 2, "--shared", '{"ms": 3000}')
        queued = self.d.submit(module("square"), items, self.path("q"), "--workers", 2)
        self.assertEqual(self.d.status(queued)["state"], "queued")
        self.d.ctl("pause", queued)  # a queued job pauses at once
        self.assertEqual(self.d.status(queued)["state"], "paused")
        p = self.d.ctl("resume", blocker, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("is not paused (running)", p.stderr.decode())
        self.d.ctl("cancel", blocker)
        p = self.d.ctl("pause", blocker, check=False)
        self.assertIn("already ended (cancelled)", p.stderr.decode())
        self.d.ctl("resume", queued)
        self.assertEqual(self.d.wait(queued)[0], 0)
        # A paused job can be cancelled.
        many = self.write_items("many.txt", [str(i) for i in range(40)])
        again = self.d.submit(module("burn"), many, self.path("a"), "--shared", '{"ms": 200}')
        st = json.loads(self.d.ctl("--json", "pause", again).stdout)
        self.assertEqual(st["state"], "paused")
        self.assertLess(st["done"], 40)
        self.d.ctl("cancel", again)
        self.assertEqual(self.d.status(again)["state"], "cancelled")


class SmallDisks(DaemonTest):
    """Helpers: small file systems to fill (no tests of its own)."""

    def setUp(self):
        self.mounts = []
        super().setUp()

    def tearDown(self):
        # Stop the daemon (it holds files there) and unmount before the
        # directory is removed.
        self.d.stop()
        for path in reversed(self.mounts):
            subprocess.run(["umount", path])
        super().tearDown()

    def mount_tmpfs(self, path, size):
        os.makedirs(path, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", path], check=True)
        self.mounts.append(path)

    def fill(self, path):
        """Fills the file system of path to the last page; returns the
        filler to remove. Unbuffered: every byte that fits is written."""
        filler = os.path.join(path, "filler")
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            for size in (1 << 20, 65536, 4096, 1):
                while True:
                    try:
                        if os.write(fd, b"\0" * size) == 0:
                            break
                    except OSError:
                        break
        finally:
            os.close(fd)
        self.assertEqual(os.statvfs(path).f_bavail, 0)
        return filler

    def free_and_resume(self, filler, job, n):
        """Frees the space, resumes the square job over 0..n-1, and checks
        that it completes with every result exactly once."""
        os.unlink(filler)
        self.d.ctl("resume", job)
        rc, st = self.d.wait(job)
        self.assertEqual((rc, st["state"]), (0, "completed"))
        res = self.d.results_json(job)
        self.assertEqual([r["index"] for r in res], list(range(n)))
        self.assertEqual([r["result"] for r in res], [str(i * i) for i in range(n)])

    def job_on_a_full_output(self, n=20000):
        """A square job over n items whose output file system fills up
        once it has committed 1000: (job, the filler to remove)."""
        out = self.path("out")
        self.mount_tmpfs(out, "4m")
        items = self.write_items("items.txt", [str(i) for i in range(n)])
        job = self.d.submit(module("square"), items, out, "--workers", 2, "--shared", '{"sleep_us": 100}')
        wait_until("progress", lambda: self.d.status(job)["done"] >= 1000)
        return job, self.fill(out)

    def run_until_paused(self, out, job):
        st = wait_until("the job to pause", lambda: (lambda s: s if s["state"] != "running" else None)(
            self.d.status(job)))
        self.assertEqual(st["state"], "paused", st)
        self.assertIn("No space left on device", st["error"])
        return st


@unittest.skipIf(os.geteuid() != 0, "needs root to mount a small file system")
class FullDisk(SmallDisks):
    # Tried again by itself only after a minute: the tests resume by hand.
    daemon_args = ("--commit-interval", "20", "--fault-resume-delay", "60")

    def test_a_full_output_file_system_pauses_the_job_until_resumed(self):
        n = 20000
        out = self.path("out")
        job, filler = self.job_on_a_full_output(n)
        st = self.run_until_paused(out, job)
        self.assertIn("results file", st["error"])
        human = self.d.ctl("status", job).stdout.decode()
        self.assertIn("paused", human)
        self.assertIn("No space left on device", human)
        self.free_and_resume(filler, job, n)

    def test_a_full_state_file_system_pauses_the_job_until_resumed(self):
        self.d.stop()
        self.mount_tmpfs(self.d.state, "8m")
        self.d.start()
        # Long enough (about 6 s) for the log to cross into a new page after
        # the fill even on a loaded machine: a record is 64-80 bytes and
        # commits come at about 40 a second, so a page lasts up to 2 s.
        n = 60000
        items = self.write_items("items.txt", [str(i) for i in range(n)])
        # Small save batches: many commits, so the checkpoint log grows past
        # its last page soon after the disk is full.
        job = self.d.submit(module("square"), items, self.path("out"), "--workers", 2, "--save-batch", 5,
                            "--shared", '{"sleep_us": 200}')
        wait_until("progress", lambda: self.d.status(job)["done"] >= 1000)
        filler = self.fill(self.d.state)
        st = self.run_until_paused(self.path("out"), job)
        self.assertIn("checkpoint", st["error"])
        self.free_and_resume(filler, job, n)


@unittest.skipIf(os.geteuid() != 0, "needs root to mount a small file system")
class UnwrittenStateChanges(SmallDisks):
    def test_a_cancel_that_cannot_be_written_is_not_acknowledged(self):
        """With the state file system full, cancel once said "cancelled"
        and exited 0 while state.json still said running, and after a
        restart the job ran again. Now the caller hears that it is not on
        disk, mplockd writes it once there is room, and the job stays
        cancelled across a restart."""
        self.d.stop()
        self.mount_tmpfs(self.d.state, "8m")
        self.d.start()
        items = self.write_items("items.txt", [str(i) for i in range(100000)])
        job = self.d.submit(module("square"), items, self.path("out"), "--workers", 2,
                            "--shared", '{"sleep_us": 1000}')
        wait_until("progress", lambda: self.d.status(job)["done"] >= 100)
        filler = self.fill(self.d.state)
        p = self.d.ctl("cancel", job, check=False)
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("could not be written", p.stderr.decode())
        self.assertEqual(self.d.status(job)["state"], "cancelled")
        os.unlink(filler)
        state = os.path.join(self.d.state, "jobs", str(job), "state.json")
        wait_until("state.json to say cancelled",
                   lambda: os.path.exists(state) and json.load(open(state))["state"] == "cancelled", 30)
        self.d.kill()
        self.d.start()
        self.assertEqual(self.d.status(job)["state"], "cancelled")


@unittest.skipIf(os.geteuid() != 0, "needs root to mount a small file system")
class FullDiskResumesByItself(SmallDisks):
    """A job paused by a full disk tries again by itself, so it goes on
    once room is made without anybody's help; one its owner then pauses
    stays paused."""
    daemon_args = ("--commit-interval", "20", "--fault-resume-delay", "1")

    def test_the_job_goes_on_by_itself_once_there_is_room(self):
        n = 20000
        out = self.path("out")
        job, filler = self.job_on_a_full_output(n)
        self.run_until_paused(out, job)
        time.sleep(2.5)  # tries again, and pauses again: still full
        st = self.d.status(job)
        self.assertIn(st["state"], ("paused", "queued", "running"))
        self.assertIn("Trying again after a fault", self.d.read_log())
        os.unlink(filler)
        # Wait still returns at each pause by a fault: poll instead.
        st = wait_until("the job to complete by itself",
                        lambda: (lambda s: s if s["state"] == "completed" else None)(self.d.status(job)), 60)
        self.assertEqual(st["done"], n)
        res = self.d.results_json(job)
        self.assertEqual([r["index"] for r in res], list(range(n)))

    def test_a_job_paused_on_purpose_does_not_go_on(self):
        n = 20000
        out = self.path("out")
        job, filler = self.job_on_a_full_output(n)
        self.run_until_paused(out, job)
        self.d.ctl("pause", job)
        os.unlink(filler)
        time.sleep(3)
        self.assertEqual(self.d.status(job)["state"], "paused")
        self.d.ctl("resume", job)
        self.assertEqual(self.d.wait(job)[0], 0)


class ModuleReplaced(DaemonTest):
    def test_a_job_resumes_only_with_the_module_it_was_submitted_with(self):
        """The input list is snapshotted, the module is not: a job resumed
        after its .so was replaced once finished with results of two
        modules in one file, completed, exit 0. It pauses instead, saying
        why, and goes on once the same module is back."""
        n = 3000
        mod = self.path("m.so")
        shutil.copy(module("square"), mod)
        items = self.write_items("items.txt", [str(i) for i in range(n)])
        job = self.d.submit(mod, items, self.path("out"), "--workers", 2, "--shared", '{"sleep_us": 1000}')
        wait_until("progress", lambda: self.d.status(job)["done"] >= 200)
        self.d.stop()
        shutil.copy(module("echo"), mod)
        self.d.start()
        st = wait_until("the job to pause", lambda: (lambda s: s if s["state"] == "paused" else None)(
            self.d.status(job)))
        self.assertIn("is not the file the job was submitted with", st["error"])
        self.assertLess(st["done"], n)
        # Put back as it was (a copy: another inode, other times, the same
        # content): the job goes on, and every result is square's.
        shutil.copy(module("square"), mod)
        self.d.ctl("resume", job)
        rc, st = self.d.wait(job)
        self.assertEqual((rc, st["state"]), (0, "completed"), st)
        self.assertEqual([r["result"] for r in self.d.results_json(job)], [str(i * i) for i in range(n)])


class OutputGone(DaemonTest):
    def test_an_output_directory_removed_under_a_job_fails_it(self):
        """The results are gone with it: the job must not end "completed"
        (it once did, and wait exited 0)."""
        n = 4000
        out = self.path("out")
        items = self.write_items("items.txt", [str(i) for i in range(n)])
        job = self.d.submit(module("burn"), items, out, "--workers", 2, "--shared", '{"ms": 1}')
        wait_until("progress", lambda: self.d.status(job)["done"] >= 200)
        shutil.rmtree(out)
        rc, st = self.d.wait(job)
        self.assertEqual((rc, st["state"]), (3, "failed"), st)
        self.assertIn("results file was deleted while the job ran", st["error"])


class Retries(DaemonTest):
    daemon_args = ("--retry-delay", "300")

    def test_failures_are_retried_with_growing_delays(self):
        items = self.write_items("items.txt", [str(i) for i in range(40)])
        t0 = time.monotonic()
        job = self.d.submit(module("flaky"), items, self.path("out"), "--workers", 2,
                            "--shared", '{"failonce": ["5", "6"], "once": ["7"], "fail": ["9"]}')
        rc, st = self.d.wait(job)
        elapsed = time.monotonic() - t0
        # 5, 6 and 7 succeed on their second attempt; 9 fails all three.
        self.assertEqual((rc, st["state"], st["failed"], st["max_attempts"]), (5, "completed_with_failures", 1, 3))
        res = {r["index"]: r for r in self.d.results_json(job)}
        self.assertEqual([res[i]["result"] for i in (5, 6, 7)], ["5", "6", "7"])
        self.assertEqual(res[9]["error"], {"code": 42, "message": "flaky refuses item 9"})
        # Item 9 waited 300 ms, then 600 ms, before its last attempt.
        self.assertGreaterEqual(elapsed, 0.9)

    def test_one_attempt_means_no_retry(self):
        items = self.write_items("items.txt", [str(i) for i in range(40)])
        job = self.d.submit(module("flaky"), items, self.path("a"), "--max-attempts", 1,
                            "--shared", '{"failonce": ["5"]}')
        rc, st = self.d.wait(job)
        self.assertEqual((rc, st["failed"], st["max_attempts"]), (5, 1, 1))
        self.assertEqual(self.d.results_json(job)[5]["error"]["code"], 43)
        # A crash counts once the crashing item is alone in its chunk.
        job = self.d.submit(module("flaky"), items, self.path("b"), "--max-attempts", 1,
                            "--shared", '{"segv": ["7"]}')
        rc, st = self.d.wait(job)
        self.assertEqual((rc, st["failed"]), (5, 1))
        self.assertIn("worker died on this item 1 times", self.d.results_json(job)[7]["error"]["message"])
        p = self.d.ctl("submit", "--module", module("flaky"), "--input", items, "--output", self.path("o2"),
                       "--max-attempts", "0", check=False)
        self.assertEqual(p.returncode, 2)
        r = self.d.varlink("io.mplock.Manager.Submit", {"module": module("flaky"), "input": items,
                                                         "output": self.path("o3"), "max_attempts": 1001})[0]
        self.assertEqual(r["parameters"]["parameter"], "max_attempts")


class Halt(DaemonTest):
    daemon_args = ("--commit-interval", "20")

    def halting_job(self, halt, out):
        n = 2000
        items = self.write_items("items.txt", [str(i) for i in range(n)])
        # Every 10th item fails, for good; the items are slow enough that
        # the job is far from done when the limit is reached.
        fail = [str(i) for i in range(0, n, 10)]
        job = self.d.submit(module("flaky"), items, self.path(out), "--workers", 2, "--max-attempts", 1,
                            "--halt-on-failure", halt, "--shared", json.dumps({"fail": fail, "sleep_ms": 2}))
        rc, st = self.d.wait(job)
        return n, rc, st

    def test_halt_after_n_failed_items(self):
        n, rc, st = self.halting_job("5", "a")
        self.assertEqual((rc, st["state"], st["halt_on_failure"]), (3, "failed", "5"))
        self.assertIn("halted after", st["error"])
        self.assertIn("--halt-on-failure 5", st["error"])
        self.assertGreaterEqual(st["failed"], 5)
        self.assertLess(st["done"], n)

    def test_halt_after_a_share_of_the_items(self):
        n, rc, st = self.halting_job("1%", "b")  # 20 of 2000
        self.assertEqual((rc, st["state"]), (3, "failed"))
        self.assertGreaterEqual(st["failed"], 20)
        self.assertLess(st["done"], n)
        self.assertIn("--halt-on-failure 1%", st["error"])

    def test_a_halt_stops_retries_too(self):
        """Once the limit is reached nothing more is handed out, retries
        waiting for their backoff included, and the chunks in flight end
        after the call they are in: a third of the items fail here, and
        finishing the chunks (two of about 25 items per worker) once ran
        the job to 43 failures of 5. What was done before the runner saw
        the limit still counts."""
        n = 2000
        items = self.write_items("items.txt", [str(i) for i in range(n)])
        fail = [str(i) for i in range(0, n, 3)]
        job = self.d.submit(module("flaky"), items, self.path("r"), "--workers", 2, "--max-attempts", 3,
                            "--halt-on-failure", "5", "--shared", json.dumps({"fail": fail, "sleep_ms": 2}))
        rc, st = self.d.wait(job)
        self.assertEqual((rc, st["state"]), (3, "failed"), st)
        self.assertGreaterEqual(st["failed"], 5)
        self.assertLessEqual(st["failed"], 12, st)
        # The runner halts at the limit itself, not a commit later.
        log = self.d.ctl("logs", job).stdout.decode()
        self.assertIn("Halting: 5 items failed (--halt-on-failure)", log)

    def test_bad_halt_values(self):
        items = self.write_items("items.txt", ["1"])
        for bad in ("0", "x", "101%", "0%", "-3", "5%%"):
            p = self.d.ctl("submit", "--module", module("echo"), "--input", items, "--output", self.path("o"),
                           "--halt-on-failure", bad, check=False)
            self.assertEqual(p.returncode, 1, bad)
            self.assertIn("invalid halt_on_failure", p.stderr.decode())


class Retry(DaemonTest):
    daemon_args = ("--commit-interval", "20", "--retry-delay", "1")

    def test_retry_runs_only_the_failed_items(self):
        n = 500
        items = self.write_items("items.txt", [str(i) for i in range(n)])
        out = self.path("out")
        os.makedirs(out)
        open(os.path.join(out, "flaky-gate"), "w").close()
        gated = [3, 77, 250, 499]
        job = self.d.submit(module("flaky"), items, out, "--workers", 2, "--max-attempts", 2,
                            "--shared", json.dumps({"gate": [str(i) for i in gated], "fail": ["100"]}))
        rc, st = self.d.wait(job)
        self.assertEqual((rc, st["state"], st["failed"], st["retries"]), (5, "completed_with_failures", 5, 0))
        before = {r["index"]: r for r in self.d.results_json(job)}
        # Open the gate and retry: only the five failed items run again.
        os.unlink(os.path.join(out, "flaky-gate"))
        p = self.d.ctl("retry", job)
        self.assertIn(b"queued again", p.stdout)
        rc, st = self.d.wait(job)
        self.assertEqual((rc, st["state"], st["failed"], st["done"], st["retries"]), (5, "completed_with_failures", 1,
                                                                                      n, 1))
        after = {r["index"]: r for r in self.d.results_json(job)}
        self.assertEqual(sorted(after), list(range(n)))
        for i in gated:
            self.assertEqual(after[i]["result"], str(i))
        self.assertEqual((after[100]["error"]["code"], after[100]["attempts"]), (42, 2))
        # The others' records, their joblog included, are carried as they
        # were; 100 ran again (its worker and time are this run's).
        rerun = gated + [100]
        self.assertEqual({i: r for i, r in after.items() if i not in rerun}, {i: r for i, r in before.items()
                                                                                if i not in rerun})
        # Every index once in the file, and the previous one is gone.
        self.assertEqual(sorted(os.listdir(out)), ["mplock-%d.log" % job, "mplock-%d.results" % job])
        self.assertIn("Retry: %d results carried over" % (n - 5), self.d.ctl("logs", job).stdout.decode())
        # Nothing left but a permanent failure: still retryable, and the
        # same failure comes back.
        self.d.ctl("retry", job)
        rc, st = self.d.wait(job)
        self.assertEqual((st["failed"], st["retries"]), (1, 2))
        # A job without failures has nothing to retry.
        ok = self.d.submit(module("echo"), items, self.path("ok"))
        self.d.wait(ok)
        p = self.d.ctl("retry", ok, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("nothing to retry (completed)", p.stderr.decode())

    def test_retry_of_a_cancelled_job_finishes_it_and_survives_kill_9(self):
        n = 20000
        items = self.write_items("items.txt", [str(i) for i in range(n)])
        job = self.d.submit(module("square"), items, self.path("out"), "--workers", 2, "--save-batch", 50,
                            "--shared", '{"sleep_us": 300}')
        wait_until("progress", lambda: self.d.status(job)["done"] >= 4000)
        self.d.ctl("cancel", job)
        done = self.d.status(job)["done"]
        self.d.ctl("retry", job)
        # Kill it while it carries results over and runs the rest.
        for target in (done // 2, done + 3000):
            wait_until("progress", lambda: self.d.status(job)["done"] >= target)
            self.d.kill()
            self.d.start()
        rc, st = self.d.wait(job)
        self.assertEqual((rc, st["state"], st["done"]), (0, "completed", n))
        self.assertEqual(self.d.ctl("results", job).stdout.decode().splitlines(), [str(i * i) for i in range(n)])
        res = self.d.results_json(job)
        self.assertEqual([r["index"] for r in res], list(range(n)))
        self.assertFalse(os.path.exists(self.path("out", "mplock-%d.prev.results" % job)))


class ModuleFaults(DaemonTest):
    daemon_args = ("--max-workers", "4")

    def test_misbehaving_modules_are_contained(self):
        n = 300
        items = self.write_items("items.txt", [str(i) for i in range(n)])
        # A healthy job beside the bad one must not notice anything.
        good = self.d.submit(module("square"), items, self.path("good"), "--workers", 2,
                             "--shared", '{"sleep_us": 2000}')
        t0 = time.monotonic()
        misdeeds = {"segv": ["10"], "abort": ["20"], "exit": ["30"], "hang": ["40"], "bigalloc": ["50"],
                    "closefds": ["60"], "fork": ["70"], "fail": ["80"]}
        cap = ["--memory-max", "256M"]
        if SANITIZED:
            # ASan's allocator cannot live under RLIMIT_DATA: no cap, and
            # no 10 GiB allocation without one.
            cap, misdeeds["bigalloc"] = [], []
        bad = self.d.submit(module("flaky"), items, self.path("bad"), "--workers", 2, "--timeout", 2, *cap,
                            "--shared", json.dumps(misdeeds))
        runner = wait_until("the bad job's runner", lambda: runner_of(self.d.proc.pid, self.path("bad")))
        rc, st = self.d.wait(bad)
        self.assertEqual((rc, st["state"]), (5, "completed_with_failures"), st)
        self.assertLess(time.monotonic() - t0, 60, "the forked child held the job up")
        res = {r["index"]: r for r in self.d.results_json(bad)}
        self.assertEqual(sorted(res), list(range(n)))
        failed = {i: r["error"] for i, r in res.items() if "error" in r}
        expected = [10, 20, 30, 40, 60, 80] if SANITIZED else [10, 20, 30, 40, 50, 60, 80]
        self.assertEqual(sorted(failed), expected, failed)
        for i in (10, 20, 30, 40, 60):
            self.assertEqual(failed[i]["code"], -1002, (i, failed[i]))
            self.assertIn("worker died on this item 3 times", failed[i]["message"])
        self.assertIn("timed out after 2 s", failed[40]["message"])
        self.assertIn("exited with status 0", failed[30]["message"])
        # The memory cap made the 10 GiB allocation fail in the module (or,
        # under ASan, kill the worker), not the machine.
        if not SANITIZED:
            self.assertEqual(failed[50]["code"], 12)
            self.assertEqual(failed[50]["message"], "cannot allocate 10 GiB")
        self.assertEqual(res[70]["result"], "70")
        self.assertEqual(failed[80]["code"], 42)
        # The failed items, listed.
        lines = self.d.ctl("failed", bad).stdout.decode().splitlines()
        self.assertEqual([int(line.split("\t")[0]) for line in lines], expected)
        self.assertEqual(lines[-1], "80\t42\tflaky refuses item 80\t80")
        fj = [json.loads(x) for x in self.d.ctl("--json", "failed", bad).stdout.splitlines()]
        self.assertEqual([f["index"] for f in fj], expected)

        rc, st = self.d.wait(good)
        self.assertEqual((rc, st["failed"]), (0, 0))
        self.assertEqual(self.d.ctl("results", good).stdout.decode().splitlines(), [str(i * i) for i in range(n)])
        # Nothing of the bad job is left running, the forked child included:
        # the runner's session is empty.
        wait_until("the bad job's processes to go", lambda: not session_members(runner), timeout=5)


if __name__ == "__main__":
    main()
