# SPDX-License-Identifier: MIT
"""Jobs as a user runs them: submit, wait, results, with the real binaries."""

import glob
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import BUILD, PROBE, DaemonTest, main, module  # noqa: E402

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


class Square285(DaemonTest):
    # Up to 8 workers per job even on a small machine.
    daemon_args = ("--max-workers", "8")

    def test_285_for_every_worker_count_and_save_batch(self):
        """The Python library's own test: items 0..9, squares sum to 285,
        for workers 1..8 and save batches 1, 2, 3, 50."""
        items = self.write_items("items.txt", [str(i) for i in range(10)])
        jobs = {}
        for workers in range(1, 9):
            for save_batch in (1, 2, 3, 50):
                out = self.path("out-w%d-s%d" % (workers, save_batch))
                job = self.d.submit(module("square"), items, out, "--workers", workers, "--save-batch", save_batch)
                jobs[job] = (workers, save_batch, out)
        self.assertEqual(len(set(jobs)), 32)
        for job, (workers, save_batch, out) in jobs.items():
            rc, st = self.d.wait(job)
            self.assertEqual(rc, 0, st)
            self.assertEqual(st["state"], "completed")
            self.assertEqual((st["items"], st["done"], st["failed"]), (10, 10, 0))
            lines = self.d.ctl("results", job).stdout.decode().splitlines()
            self.assertEqual(lines, [str(i * i) for i in range(10)], (workers, save_batch))
            self.assertEqual(sum(map(int, lines)), 285)
            # The save callback saw every result exactly once (no crash here).
            with open(os.path.join(out, "square.saved")) as f:
                saved = [line.split("\t") for line in f.read().splitlines()]
            self.assertEqual(sorted(int(i) for i, _ in saved), list(range(10)), (workers, save_batch))
            self.assertEqual(sum(int(v) for _, v in saved), 285)


class Items(DaemonTest):
    def test_duplicates_and_empty_items_keep_every_line(self):
        items = ["a", "", "a", "b", "", "", "b", "a b", " ", "a"]
        path = self.write_items("items.txt", items)
        job = self.d.submit(module("echo"), path, self.path("out"), "--workers", 2)
        rc, st = self.d.wait(job)
        self.assertEqual(rc, 0)
        self.assertEqual(st["items"], len(items))
        res = self.d.results_json(job)
        self.assertEqual([r["index"] for r in res], list(range(len(items))))
        self.assertEqual([r["item"] for r in res], items)
        self.assertEqual([r["result"] for r in res], items)
        plain = self.d.ctl("results", job).stdout.decode()
        self.assertEqual(plain, "".join(i + "\n" for i in items))

    def test_last_line_without_newline_and_crlf_kept(self):
        path = self.path("items.txt")
        with open(path, "wb") as f:
            f.write(b"one\r\ntwo\nthree")
        job = self.d.submit(module("echo"), path, self.path("out"))
        self.assertEqual(self.d.wait(job)[0], 0)
        self.assertEqual([r["item"] for r in self.d.results_json(job)], ["one\r", "two", "three"])

    def test_nul_separated_items_may_hold_newlines(self):
        items = ["multi\nline", "", "tab\there", "last"]
        path = self.write_items("items.bin", items, sep="\0")
        job = self.d.submit(module("echo"), path, self.path("out"), "--null")
        self.assertEqual(self.d.wait(job)[0], 0)
        res = self.d.results_json(job)
        self.assertEqual([r["result"] for r in res], items)
        self.assertEqual(self.d.ctl("results", "--null", job).stdout, b"".join(i.encode() + b"\0" for i in items))

    def test_empty_input_completes_with_no_results(self):
        path = self.write_items("empty.txt", [])
        job = self.d.submit(module("echo"), path, self.path("out"))
        rc, st = self.d.wait(job)
        self.assertEqual((rc, st["state"], st["items"]), (0, "completed", 0))
        self.assertEqual(self.d.ctl("results", job).stdout, b"")

    def test_input_snapshot_is_taken_at_submission(self):
        """Changing the file after submit does not change the job."""
        path = self.write_items("items.txt", [str(i) for i in range(2000)])
        job = self.d.submit(module("square"), path, self.path("out"), "--workers", 1, "--shared",
                            '{"sleep_us": 200}')
        with open(path, "w") as f:
            f.write("garbage\n")
        self.assertEqual(self.d.wait(job)[0], 0)
        lines = self.d.ctl("results", job).stdout.decode().splitlines()
        self.assertEqual(lines, [str(i * i) for i in range(2000)])

    def test_stdin_input(self):
        data = "".join("%d\n" % i for i in range(100)).encode()
        out = self.path("out")
        p = self.d.ctl("submit", "--module", module("square"), "--input", "-", "--output", out, input=data)
        job = int(p.stdout)
        self.assertEqual(self.d.wait(job)[0], 0)
        self.assertEqual(self.d.ctl("results", job).stdout.decode().splitlines(), [str(i * i) for i in range(100)])
        # The temporary copy of stdin is gone once the snapshot is taken.
        self.assertEqual([f for f in os.listdir(out) if f.startswith(".mplock-stdin")], [])

    def test_a_killed_submit_from_stdin_leaves_nothing_behind(self):
        """mplockctl killed while it copies stdin (kill -9: no handler can
        run) leaves no temporary file in the output directory."""
        out = self.path("out")
        os.mkdir(out)
        p = subprocess.Popen([os.path.join(BUILD, "mplockctl"), "--socket", self.d.sock, "submit", "--module",
                              module("square"), "--input", "-", "--output", out], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        p.stdin.write(b"1\n2\n" * 100000)
        p.stdin.flush()
        time.sleep(0.3)  # it is blocked reading the rest of stdin
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        p.stdin.close()
        self.assertEqual(os.listdir(out), [])
        self.assertEqual(self.d.ctl("--json", "list").stdout, b"")

    def test_relative_paths_are_resolved_against_the_callers_directory(self):
        os.mkdir(self.path("work"))
        self.write_items(os.path.join("work", "items.txt"), ["1", "2", "3"])
        rel_module = os.path.relpath(module("square"), self.path("work"))
        p = self.d.ctl("submit", "--module", rel_module, "--input", "items.txt", "--output", "../out",
                       cwd=self.path("work"))
        job = int(p.stdout)
        self.assertEqual(self.d.wait(job)[0], 0)
        st = self.d.status(job)
        self.assertEqual(st["input"], self.path("work", "items.txt"))
        self.assertEqual(st["output"], self.path("out"))
        self.assertEqual(st["module"], os.path.realpath(module("square")) if os.path.islink(module("square"))
                         else os.path.normpath(module("square")))
        self.assertTrue(os.path.exists(self.path("out", "mplock-%d.results" % job)))


class Callbacks(DaemonTest):
    daemon_args = ("--max-workers", "4")

    def test_init_and_shared_data_reach_every_worker(self):
        path = self.write_items("items.txt", [str(i) for i in range(400)])
        out = self.path("out")
        job = self.d.submit(PROBE, path, out, "--workers", 3, "--shared", '{"tag": "hello", "sleep_ms": 2}')
        self.assertEqual(self.d.wait(job)[0], 0)
        res = self.d.results_json(job)
        self.assertEqual(len(res), 400)
        fields = [dict(kv.split("=", 1) for kv in r["result"].split("|")) for r in res]
        self.assertTrue(all(f["tag"] == "hello" for f in fields))
        # init ran exactly once in each worker process...
        self.assertTrue(all(f["inits"] == "1" for f in fields))
        self.assertTrue(all(f["item"] == r["item"] for f, r in zip(fields, res)))
        pids = {f["pid"] for f in fields}
        workers = {f["worker"] for f in fields}
        self.assertTrue(workers <= {"0", "1", "2"}, workers)
        self.assertGreaterEqual(len(pids), 2, "work was not spread over workers")
        # ... and fini ran in each worker that did work.
        fini = {f.split(".")[-1] for f in os.listdir(out) if f.startswith("probe-fini.")}
        self.assertTrue(pids <= fini, (pids, fini))

    def test_workers_are_recycled_after_max_items_per_worker(self):
        out = self.path("out")
        path = self.write_items("items.txt", [str(i) for i in range(1000)])
        job = self.d.submit(PROBE, path, out, "--workers", "2", "--max-items-per-worker", "100")
        self.assertEqual(self.d.wait(job)[0], 0)
        fields = [dict(kv.split("=", 1) for kv in r["result"].split("|")) for r in self.d.results_json(job)]
        per_pid = {}
        for f in fields:
            per_pid[f["pid"]] = per_pid.get(f["pid"], 0) + 1
        # Every worker process ran init once and got at most 100 items: 10
        # processes or more for 1000 items.
        self.assertGreaterEqual(len(per_pid), 10, per_pid)
        self.assertLessEqual(max(per_pid.values()), 100, per_pid)
        self.assertTrue(all(f["inits"] == "1" for f in fields))
        self.assertEqual(sorted(int(f["item"]) for f in fields), list(range(1000)))
        with open(self.d.status(job)["log_path"]) as f:
            self.assertIn("(--max-items-per-worker)", f.read())

    def test_a_leaking_worker_is_replaced_past_max_worker_memory(self):
        out = self.path("out")
        path = self.write_items("items.txt", [str(i) for i in range(300)])
        job = self.d.submit(PROBE, path, out, "--workers", "2", "--max-worker-memory", "24M", "--shared",
                            '{"leak_kb": 1024, "sleep_ms": 5}')
        self.assertEqual(self.d.wait(job)[0], 0)
        fields = [dict(kv.split("=", 1) for kv in r["result"].split("|")) for r in self.d.results_json(job)]
        pids = {f["pid"] for f in fields}
        # 300 MB leaked in all, a worker replaced every 24 MB or so (5 ms
        # items come in chunks of about one: it is checked between them).
        self.assertGreaterEqual(len(pids), 8, len(pids))
        self.assertEqual(len(fields), 300)
        with open(self.d.status(job)["log_path"]) as f:
            self.assertIn("MB (--max-worker-memory)", f.read())

    def test_init_failure_fails_the_job_with_its_reason(self):
        path = self.write_items("items.txt", ["a", "b"])
        job = self.d.submit(PROBE, path, self.path("out"), "--shared", '{"fail_init": true}')
        rc, st = self.d.wait(job)
        self.assertEqual(rc, 3)
        self.assertEqual(st["state"], "failed")
        self.assertIn("init failed", st["error"])

    def test_batch_mode_hands_out_up_to_batch_size_consecutive_items(self):
        path = self.write_items("items.txt", [str(i) for i in range(1000)])
        job = self.d.submit(PROBE, path, self.path("out"), "--workers", 2, "--batch-size", 4)
        self.assertEqual(self.d.wait(job)[0], 0)
        res = self.d.results_json(job)
        self.assertEqual([r["index"] for r in res], list(range(1000)))
        sizes = []
        for r in res:
            f = dict(kv.split("=", 1) for kv in r["result"].split("|"))
            batch, first = int(f["batch"]), int(f["first"])
            self.assertLessEqual(batch, 4)
            self.assertTrue(first <= r["index"] < first + batch, (r, f))
            self.assertEqual(f["item"], r["item"])
            sizes.append(batch)
        self.assertEqual(max(sizes), 4)
        self.assertGreater(sizes.count(4), len(sizes) // 2, "most calls should get a full batch")

    def test_batch_mode_results_match_single_items(self):
        path = self.write_items("items.txt", [str(i) for i in range(5000)])
        a = self.d.submit(module("square"), path, self.path("a"), "--batch-size", 7)
        b = self.d.submit(module("square"), path, self.path("b"))
        self.assertEqual(self.d.wait(a)[0], 0)
        self.assertEqual(self.d.wait(b)[0], 0)
        self.assertEqual(self.d.ctl("results", a).stdout, self.d.ctl("results", b).stdout)

    def test_save_gets_batches_of_save_batch_one_at_a_time(self):
        path = self.write_items("items.txt", [str(i) for i in range(100)])
        out = self.path("out")
        job = self.d.submit(PROBE, path, out, "--workers", 3, "--save-batch", 7)
        rc, st = self.d.wait(job)
        self.assertEqual(rc, 0, st)
        with open(os.path.join(out, "probe.saved")) as f:
            saved = [line.split("\t") for line in f.read().splitlines()]
        self.assertEqual(sorted(int(s[0]) for s in saved), list(range(100)))
        self.assertTrue(all(s[1] == "0" and s[2] == str(int(s[0])) for s in saved))

    def test_per_item_errors_are_recorded_and_the_job_completes(self):
        items = [str(i) for i in range(50)]
        path = self.write_items("items.txt", items)
        job = self.d.submit(module("flaky"), path, self.path("out"), "--workers", 2,
                            "--shared", '{"fail": ["3", "17", "49"]}')
        rc, st = self.d.wait(job)
        self.assertEqual(rc, 5, "completed with failed items has its own exit code")
        self.assertEqual((st["state"], st["done"], st["failed"]), ("completed_with_failures", 50, 3))
        res = self.d.results_json(job)
        failed = {r["index"]: r["error"] for r in res if "error" in r}
        self.assertEqual(sorted(failed), [3, 17, 49])
        self.assertEqual(failed[17], {"code": 42, "message": "flaky refuses item 17"})
        p = self.d.ctl("results", job)
        lines = p.stdout.decode().split("\n")[:-1]
        self.assertEqual(len(lines), 50)
        self.assertEqual(lines[3], "")
        self.assertEqual(lines[4], "4")
        self.assertIn(b"3 items failed", p.stderr)
        self.assertIn(b"mplockctl failed %d" % job, p.stderr)

    def test_results_of_a_cancelled_job_keep_one_line_per_item(self):
        """Line N is item N even for items never done (once they were
        left out, and `paste items.txt <(mplockctl results J)` misaligned
        silently): their lines are empty, stderr says how many, and the
        exit status is 9."""
        items = [str(i) for i in range(3000)]
        path = self.write_items("items.txt", items)
        job = self.d.submit(module("square"), path, self.path("out"), "--workers", 2,
                            "--shared", '{"sleep_us": 3000}')
        deadline = time.monotonic() + 30
        while self.d.status(job)["done"] < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
        self.d.ctl("cancel", job)
        st = self.d.status(job)
        self.assertEqual(st["state"], "cancelled")
        self.assertLess(st["done"], 3000)
        for extra in ((), ("--via-daemon",)):
            p = self.d.ctl("results", job, *extra, check=False)
            self.assertEqual(p.returncode, 9, p.stderr)
            lines = p.stdout.decode().split("\n")[:-1]
            self.assertEqual(len(lines), 3000)
            done = [i for i, line in enumerate(lines) if line]
            self.assertEqual(len(done), st["done"])
            for i in done:
                self.assertEqual(lines[i], str(i * i))
            self.assertIn(b"%d of 3000 items have no committed result" % (3000 - st["done"]), p.stderr)
        p = self.d.ctl("--json", "results", job, check=False)
        self.assertEqual(p.returncode, 9)
        self.assertEqual(len(p.stdout.splitlines()), st["done"])

    def test_sha256_module_hashes_files(self):
        files = []
        for i in range(20):
            p = self.path("f%d" % i)
            with open(p, "wb") as f:
                f.write(os.urandom(1000 * i))
            files.append(p)
        files.append(self.path("missing"))
        path = self.write_items("files.txt", files)
        job = self.d.submit(module("sha256"), path, self.path("out"), "--workers", 2)
        rc, st = self.d.wait(job)
        self.assertEqual((rc, st["failed"]), (5, 1))
        res = self.d.results_json(job)
        for r in res[:-1]:
            with open(r["item"], "rb") as f:
                self.assertEqual(r["result"], hashlib.sha256(f.read()).hexdigest())
        self.assertEqual(res[-1]["error"]["code"], 2)  # ENOENT
        self.assertIn("No such file", res[-1]["error"]["message"])


class Protocol(DaemonTest):
    def test_get_info_and_interface_description(self):
        r = self.d.varlink("org.varlink.service.GetInfo")[0]
        self.assertIn("io.mplock.Manager", r["parameters"]["interfaces"])
        self.assertEqual(r["parameters"]["product"], "mplockd")
        r = self.d.varlink("org.varlink.service.GetInterfaceDescription", {"interface": "io.mplock.Manager"})[0]
        desc = r["parameters"]["description"]
        self.assertIn("interface io.mplock.Manager", desc)
        for m in ("Submit", "Status", "List", "Cancel", "Wait", "Results"):
            self.assertIn("method %s(" % m, desc)
        src = os.path.join(os.path.dirname(__file__), "..", "..", "daemon", "io.mplock.Manager.varlink")
        with open(src) as f:
            self.assertEqual(desc, f.read())
        r = self.d.varlink("org.varlink.service.GetInterfaceDescription", {"interface": "org.example.Nope"})[0]
        self.assertEqual(r["error"], "org.varlink.service.InterfaceNotFound")
        r = self.d.varlink("io.mplock.Manager.Frobnicate", {})[0]
        self.assertEqual(r["error"], "org.varlink.service.MethodNotFound")
        r = self.d.varlink("org.example.Nope.Frobnicate", {})[0]
        self.assertEqual(r["error"], "org.varlink.service.InterfaceNotFound")

    def test_inline_items_and_results_method_paging(self):
        items = ["x%d" % i for i in range(2500)] + ["", "x0"]
        r = self.d.varlink("io.mplock.Manager.Submit", {
            "module": module("echo"), "items": items, "output": self.path("out"), "workers": 2})[0]
        job = r["parameters"]["id"]
        self.assertEqual(self.d.wait(job)[0], 0)
        got, offset = [], 0
        while True:
            r = self.d.varlink("io.mplock.Manager.Results", {"id": job, "offset": offset, "limit": 1000})[0]
            page = r["parameters"]["results"]
            self.assertLessEqual(len(page), 1000)
            got += page
            if "next" not in r["parameters"]:
                break
            offset = r["parameters"]["next"]
        self.assertEqual([g["index"] for g in got], list(range(len(items))))
        self.assertEqual([g["result"] for g in got], items)
        # mplockctl through the daemon gives the same as from the file.
        a = self.d.ctl("--json", "results", "--via-daemon", job).stdout
        b = self.d.ctl("--json", "results", job).stdout
        self.assertEqual(a, b)

    def test_wait_with_more_streams_progress(self):
        path = self.write_items("items.txt", [str(i) for i in range(300)])
        job = self.d.submit(module("square"), path, self.path("out"), "--workers", 1,
                            "--shared", '{"sleep_us": 10000}')
        replies = self.d.varlink("io.mplock.Manager.Wait", {"id": job}, more=True)
        self.assertGreaterEqual(len(replies), 2)
        self.assertTrue(all(r.get("continues") for r in replies[:-1]))
        self.assertFalse(replies[-1].get("continues", False))
        self.assertEqual(replies[-1]["parameters"]["job"]["state"], "completed")
        done = [r["parameters"]["job"]["done"] for r in replies]
        self.assertEqual(done, sorted(done))

    def test_list_and_status(self):
        path = self.write_items("items.txt", ["1"])
        a = self.d.submit(module("square"), path, self.path("a"), "--name", "first job")
        b = self.d.submit(module("square"), path, self.path("b"))
        self.d.wait(a)
        self.d.wait(b)
        lines = [json.loads(line) for line in self.d.ctl("--json", "list").stdout.splitlines()]
        self.assertEqual([j["id"] for j in lines], [a, b])
        self.assertEqual(lines[0]["name"], "first job")
        self.assertEqual(lines[1]["name"], "square")
        table = self.d.ctl("list").stdout.decode()
        self.assertIn("first job", table)
        st = self.d.status(a)
        for key in ("id", "state", "items", "done", "failed", "module", "input", "output", "results_path",
                    "log_path", "created_usec", "started_usec", "finished_usec"):
            self.assertIn(key, st)
        human = self.d.ctl("status", a).stdout.decode()
        self.assertIn("completed", human)
        self.assertIn("1 done of 1", human)


class ModuleBuild(DaemonTest):
    def test_the_documented_module_builds_with_pkg_config_and_runs(self):
        """docs/module.md's first example, built the documented way against
        an installed tree: cc -shared -fPIC $(pkg-config --cflags mplock-module)."""
        dest = self.path("dest")
        subprocess.run(["meson", "install", "-C", BUILD, "--destdir", dest, "--no-rebuild", "--quiet"],
                       check=True, capture_output=True)
        pcs = glob.glob(os.path.join(dest, "**", "mplock-module.pc"), recursive=True)
        self.assertEqual(len(pcs), 1, pcs)
        self.assertTrue(glob.glob(os.path.join(dest, "**", "include", "mplock", "module.h"), recursive=True))
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.dirname(pcs[0]), PKG_CONFIG_SYSROOT_DIR=dest)
        cflags = subprocess.run(["pkg-config", "--cflags", "mplock-module"], env=env, check=True,
                                capture_output=True, text=True).stdout.split()
        with open(os.path.join(SRC, "docs", "module.md")) as f:
            code = re.search(r"```c\n(.*?)```", f.read(), re.S).group(1)
        with open(self.path("upper.c"), "w") as f:
            f.write(code)
        subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-Wall", "-Werror"] + cflags +
                       [self.path("upper.c"), "-o", self.path("upper.so")], check=True)
        items = self.write_items("words.txt", ["hello", "World", "", "mplock"])
        job = self.d.submit(self.path("upper.so"), items, self.path("out"), "--workers", 2)
        self.assertEqual(self.d.wait(job)[0], 0)
        self.assertEqual(self.d.ctl("results", job).stdout, b"HELLO\nWORLD\n\nMPLOCK\n")


class Logs(DaemonTest):
    def test_worker_output_goes_to_the_job_log(self):
        n = 30
        items = self.write_items("items.txt", [str(i) for i in range(n)])
        job = self.d.submit(PROBE, items, self.path("out"), "--workers", 2, "--shared", '{"print": true}')
        # Follow while it runs: returns once the job has ended, with everything.
        followed = self.d.ctl("logs", "-f", job).stdout.decode()
        self.assertEqual(self.d.status(job)["state"], "completed")
        with open(self.path("out", "mplock-%d.log" % job)) as f:
            log = f.read()
        self.assertEqual(followed, log)
        self.assertEqual(self.d.ctl("logs", job).stdout.decode(), log)
        lines = log.splitlines()
        # Each line the module prints says when, which worker, and which
        # item it was printed for.
        printed = {}
        for line in lines:
            m = re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z worker ([01]) item (\d+): probe (out|err) (\d+)",
                             line)
            if m:
                self.assertEqual(m.group(2), m.group(4), line)
                printed[(int(m.group(4)), m.group(3))] = line
            else:
                self.assertRegex(line, r" mplock: ", "a line neither the runner's nor prefixed")
        self.assertEqual(sorted(printed), sorted((i, s) for i in range(n) for s in ("out", "err")))
        # The runner's own lines carry a UTC timestamp.
        self.assertTrue(any(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z mplock: All %d items done "
                                         r"\(0 failed\)\." % n, line) for line in lines), lines[-3:])
        self.assertTrue(any(line.endswith("mplock: First items handed out (from item 0).") for line in lines))


class Config(DaemonTest):
    def setUp(self):
        super().setUp()
        self.d.stop()
        self.conf = self.path("mplockd.conf")

    def distinct_workers(self, job):
        res = self.d.results_json(job)
        return {r["result"].split("|")[2] for r in res}

    def test_settings_from_the_file_and_reload_on_sighup(self):
        with open(self.conf, "w") as f:
            f.write("# one worker for everybody\nmax-workers = 1\n  commit-interval=50  # ms\n")
        self.d.args = ["--config", self.conf]
        self.d.start()
        items = self.write_items("items.txt", [str(i) for i in range(60)])
        a = self.d.submit(PROBE, items, self.path("a"), "--workers", 2, "--shared", '{"sleep_ms": 3}')
        self.assertEqual(self.d.wait(a)[0], 0)
        self.assertEqual(len(self.distinct_workers(a)), 1)

        with open(self.conf, "w") as f:
            f.write("max-workers = 2\n")
        self.d.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "Reloaded" not in self.d.read_log() and time.monotonic() < deadline:
            time.sleep(0.05)
        b = self.d.submit(PROBE, items, self.path("b"), "--workers", 2, "--shared", '{"sleep_ms": 3}')
        self.assertEqual(self.d.wait(b)[0], 0)
        self.assertEqual(len(self.distinct_workers(b)), 2)

        # A file that does not parse changes nothing, and says where.
        with open(self.conf, "w") as f:
            f.write("max-workers = 1\nmax-wrokers = 2\n")
        self.d.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "does not load" not in self.d.read_log() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertIn('mplockd.conf:2: unknown setting "max-wrokers"', self.d.read_log())
        c = self.d.submit(PROBE, items, self.path("c"), "--workers", 2, "--shared", '{"sleep_ms": 3}')
        self.assertEqual(self.d.wait(c)[0], 0)
        self.assertEqual(len(self.distinct_workers(c)), 2)

    def test_item_timeout_default_from_the_file(self):
        with open(self.conf, "w") as f:
            f.write("item-timeout = 7\n")
        self.d.args = ["--config", self.conf]
        self.d.start()
        items = self.write_items("items.txt", ["1"])
        a = self.d.submit(module("square"), items, self.path("a"))
        b = self.d.submit(module("square"), items, self.path("b"), "--timeout", 0)
        self.assertEqual(self.d.status(a)["timeout"], 7)
        self.assertEqual(self.d.status(b)["timeout"], 0)
        self.assertIn("timeout 7 s", self.d.ctl("status", a).stdout.decode())

    def test_the_command_line_wins_over_the_file(self):
        with open(self.conf, "w") as f:
            f.write("max-workers = 1\n")
        self.d.args = ["--config", self.conf, "--max-workers", "2"]
        self.d.start()
        items = self.write_items("items.txt", [str(i) for i in range(60)])
        a = self.d.submit(PROBE, items, self.path("a"), "--workers", 2, "--shared", '{"sleep_ms": 3}')
        self.assertEqual(self.d.wait(a)[0], 0)
        self.assertEqual(len(self.distinct_workers(a)), 2)

    def test_a_bad_file_stops_the_start_with_its_line(self):
        with open(self.conf, "w") as f:
            f.write("max-workers = 0\n")
        self.d.args = ["--config", self.conf]
        with self.assertRaises(RuntimeError) as cm:
            self.d.start()
        self.assertIn("mplockd.conf:1: invalid max-workers", str(cm.exception))
        self.d.proc = subprocess.Popen(["true"])  # for tearDown
        self.d.proc.wait()


class Remove(DaemonTest):
    def test_remove_forgets_an_ended_job_and_ids_are_never_reused(self):
        items = self.write_items("items.txt", [str(i) for i in range(3)])
        a = self.d.submit(module("square"), items, self.path("a"))
        self.assertEqual(self.d.wait(a)[0], 0)
        slow = self.d.submit(module("burn"), items, self.path("s"), "--shared", '{"ms": 2000}')
        p = self.d.ctl("remove", slow, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("still", p.stderr.decode())
        self.d.ctl("cancel", slow)
        self.d.ctl("remove", slow)
        self.d.ctl("remove", a)
        self.assertEqual(self.d.ctl("status", a, check=False).returncode, 6)
        self.assertEqual(self.d.ctl("list").stdout.decode().count("\n"), 1)  # the header only
        self.assertEqual(os.listdir(os.path.join(self.d.state, "jobs")), [])
        # The output stays: it is the user's.
        self.assertTrue(os.path.exists(self.path("a", "mplock-%d.results" % a)))
        # After a restart, the next id is still new.
        self.d.stop()
        self.d.start()
        b = self.d.submit(module("square"), items, self.path("b"))
        self.assertEqual(b, slow + 1)


if __name__ == "__main__":
    main()
