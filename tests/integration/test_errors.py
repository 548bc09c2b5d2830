# SPDX-License-Identifier: MIT
"""Bad input is refused with an error that names the field, and nothing is
left half-created on disk."""

import json
import os
import shutil
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import TESTMODULES, Daemon, DaemonTest, main, module  # noqa: E402


class Refusals(DaemonTest):
    def assert_nothing_created(self):
        jobs = os.listdir(os.path.join(self.d.state, "jobs"))
        self.assertEqual(jobs, [], "a refused submission left files behind")
        self.assertEqual(json.loads(b"[" + b",".join(self.d.ctl("--json", "list").stdout.splitlines()) + b"]"), [])

    def refused(self, *args, expect):
        p = self.d.ctl("submit", *args, check=False)
        self.assertEqual(p.returncode, 1, p.stderr)
        err = p.stderr.decode()
        self.assertIn(expect, err)
        self.assertEqual(err.count("\n"), 1, "one clear line on stderr: %r" % err)
        return err

    def setUp(self):
        super().setUp()
        self.items = self.write_items("items.txt", ["1", "2"])
        self.out = self.path("out")

    def test_missing_module(self):
        err = self.refused("--module", self.path("nope.so"), "--input", self.items, "--output", self.out,
                           expect="invalid module")
        self.assertIn("No such file", err)
        self.assert_nothing_created()

    def test_module_that_is_not_a_shared_object(self):
        text = self.write_items("fake.so", ["not an ELF file"])
        err = self.refused("--module", text, "--input", self.items, "--output", self.out, expect="invalid module")
        self.assertIn("cannot load module", err)
        self.assert_nothing_created()

    def test_module_without_entry_symbol(self):
        err = self.refused("--module", os.path.join(TESTMODULES, "test-nosym.so"), "--input", self.items,
                           "--output", self.out, expect="invalid module")
        self.assertIn("not an mplock module", err)
        self.assert_nothing_created()

    def test_module_of_another_abi_version(self):
        err = self.refused("--module", os.path.join(TESTMODULES, "test-badabi.so"), "--input", self.items,
                           "--output", self.out, expect="invalid module")
        self.assertIn("ABI version 999", err)
        self.assert_nothing_created()

    def test_unreadable_input(self):
        self.refused("--module", module("echo"), "--input", self.path("missing.txt"), "--output", self.out,
                     expect="invalid input: cannot open")
        self.refused("--module", module("echo"), "--input", self.tmp, "--output", self.out,
                     expect="is a directory")
        self.assert_nothing_created()

    def test_unreadable_input_for_an_unprivileged_user(self):
        if os.geteuid() == 0:
            # root reads everything; the shared-machine tests cover other users.
            self.skipTest("needs an unprivileged user")
        os.chmod(self.items, 0)
        self.refused("--module", module("echo"), "--input", self.items, "--output", self.out,
                     expect="Permission denied")

    def test_nul_bytes_in_a_newline_separated_list(self):
        p = self.path("bin.txt")
        with open(p, "wb") as f:
            f.write(b"a\nb\0c\n")
        err = self.refused("--module", module("echo"), "--input", p, "--output", self.out, expect="invalid input")
        self.assertIn("--null", err)
        self.assert_nothing_created()

    def test_output_that_cannot_be_a_directory(self):
        blocker = self.write_items("file", ["x"])
        self.refused("--module", module("echo"), "--input", self.items, "--output", blocker,
                     expect="is not a directory")
        self.refused("--module", module("echo"), "--input", self.items, "--output", os.path.join(blocker, "sub"),
                     expect="invalid output")
        # Kernel file systems pass a write check (root's, at least) and
        # fail only when the job runs: refused at submission.
        for pseudo in ("/proc/mplock-x", "/sys/mplock-x", "/proc/self/mplock-x/y"):
            self.refused("--module", module("echo"), "--input", self.items, "--output", pseudo,
                         expect="is a kernel file system")
        self.assert_nothing_created()
        self.assertFalse(os.path.exists(self.out))

    def test_an_output_directory_is_made_with_its_parents(self):
        out = self.path("a", "b", "c")
        job = self.d.submit(module("echo"), self.items, out)
        self.assertEqual(self.d.wait(job)[0], 0)
        self.assertEqual(self.d.ctl("results", job).stdout.decode().splitlines(), ["1", "2"])
        self.assertTrue(os.path.isfile(os.path.join(out, "mplock-%d.results" % job)))

    def test_bad_numbers_on_the_command_line(self):
        for args in (("--workers", "0"), ("--workers", "x"), ("--save-batch", "-1"), ("--batch-size", "")):
            p = self.d.ctl("submit", "--module", module("echo"), "--input", self.items, "--output", self.out, *args,
                           check=False)
            self.assertEqual(p.returncode, 2, args)
        p = self.d.ctl("submit", "--module", module("echo"), "--input", self.items, "--output", self.out,
                       "--shared", "[1]", check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("must be a JSON object", p.stderr.decode())
        p = self.d.ctl("submit", "--module", module("echo"), "--output", self.out, check=False)
        self.assertEqual(p.returncode, 2)
        self.assert_nothing_created()

    def test_limits_from_the_daemon(self):
        p = self.d.ctl("submit", "--module", module("echo"), "--input", self.items, "--output", self.out,
                       "--workers", "100000", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("invalid workers", p.stderr.decode())
        self.assert_nothing_created()

    def test_input_limits_hold_while_the_list_is_copied(self):
        """A list past a limit is refused as it arrives, not after it was
        stored: a FIFO that never ends fills nothing."""
        self.d.stop()
        self.d.args += ["--max-input-size", "1M", "--max-input-per-uid", "2500K"]
        self.d.start()
        fifo = self.path("endless")
        os.mkfifo(fifo)
        written = [0]

        def feed():
            try:
                with open(fifo, "wb") as f:
                    for _ in range(2000):  # 200 MB if nobody stopped us
                        f.write(b"x\n" * 50000)
                        written[0] += 100000
            except OSError:
                pass

        t = threading.Thread(target=feed, daemon=True)
        t.start()
        # The check stops at the limit (mplockd would too: see the next
        # case, which only mplockd can see).
        err = self.refused("--module", module("echo"), "--input", fifo, "--output", self.out,
                           expect="invalid input: ")
        self.assertIn("larger than the limit of 1048576 bytes", err)
        t.join(30)
        self.assertFalse(t.is_alive())
        self.assertLess(written[0], 20 << 20, err)
        self.assert_nothing_created()
        # The user's limit counts the jobs they have: two of 1 MB fit, a
        # third would pass 2500 KiB.
        big = self.write_items("big.txt", ["x" * 1000] * 1000)
        a = self.d.submit(module("burn"), big, self.path("a"), "--shared", '{"ms": 1000}', "--workers", 1)
        b = self.d.submit(module("burn"), big, self.path("b"), "--shared", '{"ms": 1000}', "--workers", 1)
        self.refused("--module", module("echo"), "--input", big, "--output", self.out,
                     expect="your active jobs' input lists would total more than the limit of 2560000 bytes")
        for job in (a, b):
            self.d.ctl("cancel", job)

    def test_unknown_job(self):
        for cmd in ("status", "cancel", "wait", "results"):
            p = self.d.ctl(cmd, "4242", check=False)
            self.assertEqual(p.returncode, 6, cmd)
            self.assertIn("no such job: 4242", p.stderr.decode())
        p = self.d.ctl("status", "abc", check=False)
        self.assertEqual(p.returncode, 2)

    def test_cancel_of_a_finished_job(self):
        job = self.d.submit(module("echo"), self.items, self.out)
        self.d.wait(job)
        p = self.d.ctl("cancel", job, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("already ended (completed)", p.stderr.decode())

    def test_unreachable_daemon(self):
        p = Daemon(self.path("nowhere")).ctl("list", check=False)
        self.assertEqual(p.returncode, 7)
        self.assertIn("cannot reach mplockd", p.stderr.decode())


class Protocol(DaemonTest):
    daemon_args = ("--max-message-size", "65536", "--max-active-jobs", "2")

    def submit_params(self, **over):
        p = {"module": module("echo"), "input": self.write_items("items.txt", ["1", "2"]),
             "output": self.path("out")}
        p.update(over)
        return {k: v for k, v in p.items() if v is not None}

    def assert_invalid(self, params, field, method="io.mplock.Manager.Submit"):
        r = self.d.varlink(method, params)[0]
        self.assertEqual(r.get("error"), "io.mplock.Manager.InvalidParameter", r)
        self.assertEqual(r["parameters"]["parameter"], field, r)
        self.assertTrue(r["parameters"]["reason"])
        return r["parameters"]["reason"]

    def test_results_pages_are_bounded_in_bytes(self):
        """With 64 KiB messages a page holds 8 KiB of items and results:
        it stops early and says where to go on, and a result too large for
        any page is given by its size, to be read from the file."""
        items = ["a" * 3000] * 5 + ["b" * 5000] + ["c"] * 3
        job = self.d.submit(module("echo"), self.write_items("big.txt", items), self.path("out"))
        self.assertEqual(self.d.wait(job)[0], 0)
        got, pages, offset = {}, 0, 0
        while offset is not None:
            r = self.d.varlink("io.mplock.Manager.Results", {"id": job, "offset": offset, "limit": 100})[0]
            self.assertNotIn("error", r)
            pages += 1
            for res in r["parameters"]["results"]:
                got[res["index"]] = res
            offset = r["parameters"].get("next")
        self.assertEqual(sorted(got), list(range(len(items))))
        for i, item in enumerate(items):
            if i == 5:
                # By its size, with its joblog.
                self.assertEqual(sorted(got[i]), ["attempts", "index", "run_usec", "too_large", "worker"])
                self.assertEqual((got[i]["too_large"], got[i]["attempts"]), (10000, 1))
            else:
                self.assertEqual((got[i]["item"], got[i]["result"]), (item, item))
        self.assertEqual(pages, 5)  # a 3000-byte item and its result fill a page each; the rest, small, join the last
        # mplockctl says which results it could not get that way; read
        # directly, the file has them all.
        p = self.d.ctl("results", "--via-daemon", job, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("result of item 5 is too large for mplockd's messages", p.stderr.decode())
        # Its line stays, empty, so that line N is still item N.
        self.assertEqual(p.stdout.decode().splitlines(), [x if i != 5 else "" for i, x in enumerate(items)])
        self.assertEqual(self.d.ctl("results", job).stdout.decode().splitlines(), items)

    def test_every_submit_field_is_validated(self):
        self.assertEqual(self.assert_invalid(self.submit_params(module=None), "module"), "missing")
        self.assertEqual(self.assert_invalid(self.submit_params(output=None), "output"), "missing")
        self.assertEqual(self.assert_invalid(self.submit_params(colour="blue"), "colour"), "unknown field")
        self.assertIn("string", self.assert_invalid(self.submit_params(module=5), "module"))
        self.assertIn("integer", self.assert_invalid(self.submit_params(workers="2"), "workers"))
        self.assertIn("integer", self.assert_invalid(self.submit_params(workers=1.5), "workers"))
        self.assertIn("integer", self.assert_invalid(self.submit_params(workers=-1), "workers"))
        self.assert_invalid(self.submit_params(workers=0), "workers")
        self.assert_invalid(self.submit_params(workers=2 ** 40), "workers")
        self.assert_invalid(self.submit_params(batch_size=0), "batch_size")
        self.assert_invalid(self.submit_params(save_batch=10 ** 9), "save_batch")
        self.assertIn("absolute", self.assert_invalid(self.submit_params(module="echo.so"), "module"))
        self.assertIn("absolute", self.assert_invalid(self.submit_params(output="out"), "output"))
        self.assertIn("absolute", self.assert_invalid(self.submit_params(input="items.txt"), "input"))
        self.assertIn("exactly one", self.assert_invalid(self.submit_params(input=None), "input"))
        self.assertIn("exactly one", self.assert_invalid(self.submit_params(items=["a"]), "input"))
        self.assert_invalid(self.submit_params(separator="comma"), "separator")
        self.assertIn("object", self.assert_invalid(self.submit_params(shared=[1, 2]), "shared"))
        self.assert_invalid(self.submit_params(name="tab\there"), "name")
        self.assert_invalid(self.submit_params(name="x" * 500), "name")
        self.assertIn("NUL", self.assert_invalid(self.submit_params(module="/a\u0000b"), "module"))
        # A newline in a path would forge a line of the log.
        forged = "/tmp/x\nmplockd: job 1: Removed by uid 0."
        for field in ("module", "output", "input"):
            self.assertIn("control", self.assert_invalid(self.submit_params(**{field: forged}), field))
        self.assert_invalid(self.submit_params(input=None, items=["a", 5]), "items")
        self.assert_invalid(self.submit_params(input=None, items=["a\u0000b"]), "items")
        self.assert_invalid(self.submit_params(input=None, items=["a"], separator="nul"), "separator")
        self.assertIn("string", self.assert_invalid(self.submit_params(on_end=5), "on_end"))
        self.assertIn("NUL", self.assert_invalid(self.submit_params(on_end="true\u0000rm"), "on_end"))
        self.assertIn("control", self.assert_invalid(self.submit_params(on_end="true\rfalse"), "on_end"))
        self.assertIn("4096", self.assert_invalid(self.submit_params(on_end="x" * 4097), "on_end"))
        self.assertEqual(os.listdir(os.path.join(self.d.state, "jobs")), [])

    def test_every_field_at_its_extremes_survives_a_restart(self):
        """A job submitted with each number at the largest value the daemon
        accepts is the same job after a restart, and one past it is refused
        naming the field: nothing is accepted that job.json cannot hold
        (a halt count of 2^63 once made the job vanish at the next start)."""
        limit = 2 ** 40
        for bad in (str(limit + 1), "9223372036854775808", "18446744073709551616", "0"):
            self.assert_invalid(self.submit_params(halt_on_failure=bad), "halt_on_failure")
        self.assert_invalid(self.submit_params(timeout=604801), "timeout")
        self.assert_invalid(self.submit_params(max_attempts=1001), "max_attempts")
        self.assert_invalid(self.submit_params(memory_max=2 ** 50 + 1), "memory_max")
        for field, bad in (("tasks_max", 7), ("tasks_max", 4194305), ("cpu_weight", 10001), ("io_weight", 10001),
                           ("cpu_quota", 102401), ("cpu_weight", -1), ("max_worker_memory", 1000),
                           ("max_items_per_worker", 2 ** 40 + 1)):
            self.assert_invalid(self.submit_params(**{field: bad}), field)
        self.assertEqual(os.listdir(os.path.join(self.d.state, "jobs")), [])
        extremes = {"workers": 256, "batch_size": 65536, "save_batch": 1000000, "timeout": 604800,
                    "max_attempts": 1000, "memory_max": 2 ** 50, "halt_on_failure": str(limit), "name": "n" * 128,
                    "tasks_max": 4194304, "cpu_weight": 10000, "cpu_quota": 102400, "io_weight": 10000,
                    "max_items_per_worker": 2 ** 40, "max_worker_memory": 2 ** 50, "on_end": "#" * 4096}
        r = self.d.varlink("io.mplock.Manager.Submit", self.submit_params(**extremes))[0]
        self.assertNotIn("error", r, r)
        job = r["parameters"]["id"]
        rc, before = self.d.wait(job)
        self.assertEqual((rc, before["state"]), (0, "completed"), before)
        self.d.stop()
        self.d.start()
        after = self.d.status(job)
        for key in ("workers", "batch_size", "save_batch", "timeout", "max_attempts", "memory_max",
                    "halt_on_failure", "name", "state", "done", "tasks_max", "cpu_weight", "cpu_quota", "io_weight",
                    "max_items_per_worker", "max_worker_memory", "on_end"):
            self.assertEqual(after.get(key), before.get(key), key)
        self.assertEqual(after["on_end"], "#" * 4096)
        self.assertEqual(after["halt_on_failure"], str(limit))
        self.assertEqual(after["memory_max"], 2 ** 50)
        self.assertEqual(after["tasks_max"], 4194304)
        # Without a service manager (this test's daemon, started by hand
        # where systemd is not PID 1), none of it applies, and it says so.
        self.assertNotIn("usage", after)

    def test_items_count(self):
        """Submit's items_count: a list of another count (an item that
        holds its separator, as the Python package leaves to this count) is
        refused naming it, before any job exists; the right count is taken."""
        nul = self.path("nul.bin")
        with open(nul, "wb") as f:
            f.write(b"a\0b\0c\0")
        for params, bad in ((self.submit_params(items_count=3), "items_count"),
                            (self.submit_params(input=nul, separator="nul", items_count=2), "items_count"),
                            (self.submit_params(items=["x", "y"], input=None, items_count=1), "items_count"),
                            (self.submit_params(items_count=0), "items_count")):
            reason = self.assert_invalid(params, bad)
            if params["items_count"]:
                self.assertIn("items_count says %d" % params["items_count"], reason)
        self.assertEqual(os.listdir(os.path.join(self.d.state, "jobs")), [])
        for params in (self.submit_params(items_count=2), self.submit_params(input=nul, separator="nul", items_count=3)):
            r = self.d.varlink("io.mplock.Manager.Submit", params)[0]
            self.assertNotIn("error", r, r)
            rc, st = self.d.wait(r["parameters"]["id"])
            self.assertEqual((rc, st["state"], st["items"]), (0, "completed", params["items_count"]), st)

    def test_the_daemons_bounds_on_scope_limits(self):
        self.d.stop()
        self.d.args += ["--max-memory-per-job", "1G", "--max-tasks-per-job", "100", "--max-cpu-quota", "200"]
        self.d.start()
        base = {"memory_max": 1 << 30, "tasks_max": 100, "cpu_quota": 200}
        for field, bad in (("memory_max", 2 << 30), ("memory_max", 0), ("tasks_max", 101), ("tasks_max", 0),
                           ("cpu_quota", 201), ("cpu_quota", 0)):
            self.assert_invalid(self.submit_params(**dict(base, **{field: bad})), field)
        r = self.d.varlink("io.mplock.Manager.Submit", self.submit_params(**base))[0]
        self.assertNotIn("error", r, r)
        # A job that asks for none gets the bounds: none is unbounded.
        r = self.d.varlink("io.mplock.Manager.Submit", self.submit_params())[0]
        st = self.d.status(r["parameters"]["id"])
        self.assertEqual((st["memory_max"], st["tasks_max"], st["cpu_quota"]), (1 << 30, 100, 200), st)

    def test_other_methods_validate_their_parameters(self):
        for method in ("Status", "Cancel", "Wait", "Results"):
            self.assertEqual(self.assert_invalid({}, "id", "io.mplock.Manager." + method), "missing")
            self.assert_invalid({"id": "1"}, "id", "io.mplock.Manager." + method)
            self.assert_invalid({"id": 1, "extra": 1}, "extra", "io.mplock.Manager." + method)
            # Past int64 (once saturated, and echoed back as id -1).
            for big in (2 ** 63, 2 ** 64 - 1, 2 ** 64):
                self.assert_invalid({"id": big}, "id", "io.mplock.Manager." + method)
        self.assert_invalid({"x": 1}, "x", "io.mplock.Manager.List")
        r = self.d.varlink("io.mplock.Manager.Status", {"id": 77})[0]
        self.assertEqual(r["error"], "io.mplock.Manager.NoSuchJob")
        self.assertEqual(r["parameters"]["id"], 77)

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(self.d.sock)
        return s

    def assert_alive(self):
        r = self.d.varlink("io.mplock.Manager.List", {})[0]
        self.assertIn("jobs", r["parameters"])

    def test_malformed_messages_drop_only_that_client(self):
        for raw in (b"{not json}\0", b"[1,2]\0", b"\"just a string\"\0", b"{\"method\": 1}\0",
                    b"{\"method\": \"x.Y\", \"parameters\": []}\0", b"{\"method\":\"a.B\"} trailing\0",
                    b"{\"method\": \"a.B\", \"more\": true, \"oneway\": true}\0", b"\0",
                    b"{" * 100 + b"\0", b"\xff\xfe\0"):
            s = self.connect()
            s.sendall(raw)
            self.assertEqual(s.recv(100), b"", raw)  # closed, no reply
            s.close()
            self.assert_alive()

    def test_oversized_message_is_refused_before_it_is_buffered(self):
        s = self.connect()
        try:
            s.sendall(b"{\"method\": \"io.mplock.Manager.List\", \"parameters\": {\"x\": \"" + b"a" * 200000)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            self.assertEqual(s.recv(100), b"")
        except ConnectionResetError:
            pass
        s.close()
        self.assert_alive()

    def test_pipelined_calls_are_answered_in_order(self):
        s = self.connect()
        calls = [{"method": "io.mplock.Manager.List"}, {"method": "org.varlink.service.GetInfo"},
                 {"method": "io.mplock.Manager.Status", "parameters": {"id": 9}},
                 {"method": "io.mplock.Manager.List", "oneway": True},
                 {"method": "io.mplock.Manager.List"}]
        s.sendall(b"".join(json.dumps(c).encode() + b"\0" for c in calls))
        buf = b""
        while buf.count(b"\0") < 4:
            chunk = s.recv(65536)
            self.assertTrue(chunk)
            buf += chunk
        replies = [json.loads(m) for m in buf.split(b"\0")[:4]]
        self.assertIn("jobs", replies[0]["parameters"])
        self.assertIn("interfaces", replies[1]["parameters"])
        self.assertEqual(replies[2]["error"], "io.mplock.Manager.NoSuchJob")
        self.assertIn("jobs", replies[3]["parameters"])  # the oneway call got none
        s.close()

    def test_too_many_active_jobs(self):
        items = self.write_items("slow.txt", [str(i) for i in range(100)])
        ids = [self.d.submit(module("burn"), items, self.path("o%d" % i), "--shared", '{"ms": 50}')
               for i in range(2)]
        r = self.d.varlink("io.mplock.Manager.Submit", self.submit_params())[0]
        self.assertEqual(r["error"], "io.mplock.Manager.TooManyJobs")
        self.assertEqual(r["parameters"]["limit"], 2)
        p = self.d.ctl("submit", "--module", module("echo"), "--input", items, "--output", self.path("o9"),
                       check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("too many jobs", p.stderr.decode())
        for i in ids:
            self.d.ctl("cancel", i)
        # Room again.
        r = self.d.varlink("io.mplock.Manager.Submit", self.submit_params())[0]
        self.assertIn("id", r["parameters"])
        self.assertEqual(self.d.wait(r["parameters"]["id"])[0], 0)
        # A retry makes a job active again: within the same limits.
        third = self.d.submit(module("burn"), items, self.path("o3"), "--shared", '{"ms": 50}')
        fourth = self.d.submit(module("burn"), items, self.path("o4"), "--shared", '{"ms": 50}')
        r = self.d.varlink("io.mplock.Manager.Retry", {"id": ids[0]})[0]
        self.assertEqual(r.get("error"), "io.mplock.Manager.TooManyJobs", r)
        self.assertEqual(self.d.status(ids[0])["state"], "cancelled")
        self.d.ctl("cancel", third)
        r = self.d.varlink("io.mplock.Manager.Retry", {"id": ids[0]})[0]
        self.assertNotIn("error", r, r)
        for i in (ids[0], fourth):
            self.d.ctl("cancel", i)


    def test_a_module_that_passed_is_checked_again_once_changed(self):
        """The user's agent remembers a module that passed a check of
        inline items and then answers without loading it again; any change
        to the file is noticed, and the output is checked every time."""
        mod = self.path("m.so")
        shutil.copy(module("echo"), mod)

        def submit(**over):
            p = {"module": mod, "items": ["a", "b"], "output": self.path("out")}
            p.update(over)
            r = self.d.varlink("io.mplock.Manager.Submit", p)[0]
            if "error" not in r:
                self.assertEqual(self.d.wait(r["parameters"]["id"])[0], 0)
            return r

        for _ in range(3):
            self.assertIn("id", submit()["parameters"])
        # Overwritten in place: same path, same inode.
        shutil.copyfile(os.path.join(TESTMODULES, "test-badabi.so"), mod)
        r = submit()
        self.assertEqual(r.get("error"), "io.mplock.Manager.InvalidParameter", r)
        self.assertEqual(r["parameters"]["parameter"], "module")
        self.assertIn("ABI version 999", r["parameters"]["reason"])
        # Replaced by a rename, with a good module again.
        shutil.copy(module("echo"), mod + ".new")
        os.rename(mod + ".new", mod)
        self.assertIn("id", submit()["parameters"])
        job = submit()["parameters"]["id"]
        self.assertEqual(sorted(r["item"] for r in self.d.results_json(job)), ["a", "b"])
        # The module is known, the output is not: refused all the same.
        with open(self.path("file"), "w") as f:
            f.write("x")
        r = submit(output=self.path("file"))
        self.assertEqual(r["parameters"]["parameter"], "output", r)
        self.assertIn("not a directory", r["parameters"]["reason"])


class CorruptState(DaemonTest):
    def test_unknown_entries_in_the_state_directory_are_ignored(self):
        items = self.write_items("items.txt", ["1", "2", "3"])
        job = self.d.submit(module("square"), items, self.path("out"))
        self.d.wait(job)
        self.d.stop()
        jobs = os.path.join(self.d.state, "jobs")
        os.mkdir(os.path.join(jobs, "junk"))
        os.mkdir(os.path.join(jobs, "77"))  # a job directory without job.json
        os.mkdir(os.path.join(jobs, ".new-leftover"))  # a submission cut short
        self.d.start()
        lines = self.d.ctl("--json", "list").stdout.splitlines()
        # The broken job is not dropped: it is shown, paused, with why.
        self.assertEqual([json.loads(x)["id"] for x in lines], [job, 77])
        st = self.d.status(77)
        self.assertEqual(st["state"], "paused")
        self.assertIn("cannot load job.json", st["error"])
        self.assertFalse(os.path.exists(os.path.join(jobs, ".new-leftover")))
        # Ids are never reused, even the broken one's.
        job2 = self.d.submit(module("square"), items, self.path("out2"))
        self.assertEqual(job2, 78)
        self.assertIn("77", self.d.read_log())
        self.d.ctl("remove", 77)
        self.assertFalse(os.path.exists(os.path.join(jobs, "77")))

    def test_a_job_whose_state_does_not_load_is_kept_and_reported(self):
        """An unfinished job whose state.json or job.json cannot be read at
        start is listed, paused with the reason, its files untouched; only
        Remove acts on it. Repaired, it runs on where it stopped."""
        items = self.write_items("items.txt", [str(i) for i in range(2000)])
        job = self.d.submit(module("square"), items, self.path("out"), "--shared", '{"sleep_us": 500}')
        deadline = time.monotonic() + 30
        while self.d.status(job)["done"] < 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.d.stop()
        d = os.path.join(self.d.state, "jobs", str(job))
        with open(os.path.join(d, "job.json"), "rb") as f:
            good = f.read()
        with open(os.path.join(d, "job.json"), "wb") as f:
            f.write(good.replace(b'"workers":', b'"workers":-'))
        files = {n: open(os.path.join(d, n), "rb").read() for n in os.listdir(d)}
        self.d.start()
        st = self.d.status(job)
        self.assertEqual(st["state"], "paused", st)
        self.assertIn("cannot load job.json", st["error"])
        listed = [json.loads(x) for x in self.d.ctl("--json", "list").stdout.splitlines()]
        self.assertEqual([x["id"] for x in listed], [job])
        rc, w = self.d.wait(job)
        self.assertNotEqual(rc, 0)
        for cmd in ("resume", "cancel", "pause", "retry", "results"):
            p = self.d.ctl(cmd, job, check=False)
            self.assertNotEqual(p.returncode, 0, cmd)
            self.assertIn("cannot load job.json", p.stderr.decode(), cmd)
        self.d.stop()
        self.assertEqual({n: open(os.path.join(d, n), "rb").read() for n in os.listdir(d)}, files,
                         "a damaged job's files were changed")
        # Repaired by hand: it goes on, and nothing committed is lost.
        with open(os.path.join(d, "job.json"), "wb") as f:
            f.write(good)
        self.d.start()
        rc, st = self.d.wait(job)
        self.assertEqual((rc, st["state"]), (0, "completed"), st)
        self.assertEqual(self.d.ctl("results", job).stdout.decode().splitlines(), [str(i * i) for i in range(2000)])

    def test_checkpoint_with_a_torn_tail_recovers(self):
        items = self.write_items("items.txt", [str(i) for i in range(3000)])
        job = self.d.submit(module("square"), items, self.path("out"), "--shared", '{"sleep_us": 500}')
        deadline = time.monotonic() + 30
        while self.d.status(job)["done"] < 500 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.d.kill()
        log = os.path.join(self.d.state, "jobs", str(job), "ckpt.log")
        with open(log, "ab") as f:
            f.write(b"MPLC\x07garbage")  # a record cut short by a crash
        self.d.start()
        rc, st = self.d.wait(job)
        self.assertEqual(rc, 0, self.d.read_log())
        self.assertEqual(self.d.ctl("results", job).stdout.decode().splitlines(), [str(i * i) for i in range(3000)])
        self.assertIn("torn tail", self.d.read_log())


if __name__ == "__main__":
    main()
