#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The command adapter (exec/mplock-exec.so) through the Submit method, as
mplockctl submit --exec will give it: replacement strings on hostile
items, failures, signals, timeouts that leave nothing running, output
limits, the submitter's directory and environment, stderr in the log."""

import base64
import json
import os
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import BUILD, DaemonTest, main  # noqa: E402
from users import UsersTest, ids  # noqa: E402

ADAPTER = os.path.join(BUILD, "exec", "mplock-exec.so")
HOSTILE = ["a b; rm -rf x", "'quote'", '"dq"', "$(id)", "`id`", "$HOME", ";", "*", "-n", "caf\u00e9", "", "x=1",
           "back\\slash", "~", "#c", "{}", "a\tb", "dir/sub.d/f.tar.gz", "/abs", ".hidden"]


def parallel_parts(item, seq, slot):
    """GNU parallel's meanings of {} {.} {/} {//} {/.} {#} {%}."""
    base = item.rsplit("/", 1)[-1]

    def noext(s):
        dot, slash = s.rfind("."), s.rfind("/")
        return s[:dot] if dot > slash else s
    d = item.rstrip("/") if len(item) > 1 else item
    d = d[:d.rfind("/")].rstrip("/") or "/" if "/" in d else "."
    return [item, noext(item), base, d, noext(base), str(seq), str(slot)]


class Exec(DaemonTest):
    def submit(self, command, items, workers=1, **exec_opts):
        job_opts = {"max_attempts": 1, "workers": workers}
        if "timeout" in exec_opts:
            job_opts["timeout"] = exec_opts["timeout"] + 10  # the adapter's own comes first
        env = exec_opts.pop("env", dict(os.environ))
        shared = {"exec": dict({"command": command, "env": ["%s=%s" % kv for kv in env.items()],
                                "cwd": exec_opts.pop("cwd", self.tmp)}, **exec_opts)}
        out = self.path("out-%d" % time.monotonic_ns())
        params = dict({"module": ADAPTER, "output": out, "items": items, "shared": shared}, **job_opts)
        reply = self.d.varlink("io.mplock.Manager.Submit", params)[-1]
        self.assertIn("parameters", reply, reply)
        job = reply["parameters"]["id"]
        rc, st = self.d.wait(job)
        return st, (self.d.results_json(job) if st["state"] != "failed" else [])

    @staticmethod
    def result(r):
        if "result_base64" in r:
            return base64.b64decode(r["result_base64"])
        return r["result"].encode()

    def test_every_replacement_string_is_literal_direct_and_through_sh(self):
        # A program that prints its arguments NUL-separated, run directly
        # (no shell syntax) and through sh (a quote makes it a script).
        args = self.path("args")
        with open(args, "w") as f:
            f.write("#!/bin/sh\nfor a; do printf '%s\\0' \"$a\"; done\n")
        os.chmod(args, 0o755)
        repls = "{} {.} {/} {//} {/.} {#} {%}"
        for command, shell in ((args + " " + repls, False), (args + " " + repls + " | cat", True),
                               ("printf '%s\\0' " + repls, True)):
            st, res = self.submit(command, HOSTILE)
            self.assertEqual(st["state"], "completed", (command, st, res[:3]))
            for k, r in enumerate(res):
                want = b"".join(p.encode() + b"\0" for p in parallel_parts(HOSTILE[k], k + 1, 1))
                self.assertEqual(self.result(r), want, (command, HOSTILE[k]))

    def test_the_item_is_appended_without_a_replacement(self):
        st, res = self.submit("printf [%s]", ["a b", "$(id)"])
        self.assertEqual([r["result"] for r in res], ["[a b]", "[$(id)]"])

    def test_a_failing_command_and_one_killed_by_a_signal(self):
        st, res = self.submit("sh -c 'echo first >&2; echo the reason >&2; exit 3' {}", ["x"])
        self.assertEqual(st["state"], "completed_with_failures")
        self.assertEqual(res[0]["error"], {"code": 3, "message": "exit status 3: the reason"})
        with open(st["log_path"]) as f:
            log = f.read()
        self.assertIn("item 0: first", log)  # stderr in the job log, the item named
        st, res = self.submit("kill -9 $$; echo {}", ["x"])
        self.assertEqual(res[0]["error"]["code"], 128 + 9)
        self.assertIn("killed by signal", res[0]["error"]["message"])
        st, res = self.submit("no-such-command-here {}", ["x"])
        self.assertEqual(res[0]["error"]["code"], 127)

    def test_a_timeout_kills_the_command_and_its_children(self):
        pids = self.path("pids")
        t0 = time.monotonic()
        st, res = self.submit("sh -c 'sleep 60 & echo $! >> %s; echo $$ >> %s; sleep 60' {}" % (pids, pids), ["x"],
                              timeout=1)
        self.assertLess(time.monotonic() - t0, 20)
        self.assertEqual(res[0]["error"]["code"], 124)
        time.sleep(0.5)
        with open(pids) as f:
            left = [int(p) for p in f.read().split()]
        self.assertEqual(len(left), 2)
        for pid in left:
            self.assertFalse(os.path.exists("/proc/%d" % pid) and
                             open("/proc/%d/stat" % pid).read().split()[2] != "Z", "pid %d survived" % pid)

    def test_a_command_ends_and_what_it_left_in_its_group_goes(self):
        pid = self.path("pid")
        st, res = self.submit("sh -c 'sleep 60 > /dev/null 2>&1 & echo $! > %s; echo done' {}" % pid, ["x"])
        self.assertEqual(res[0]["result"], "done\n")
        time.sleep(0.3)
        with open(pid) as f:
            p = int(f.read())
        self.assertFalse(os.path.exists("/proc/%d" % p) and open("/proc/%d/stat" % p).read().split()[2] != "Z")

    def test_a_command_that_leaves_a_detached_process_holding_its_output_ends(self):
        # setsid -f: a sleeper in a session of its own keeps the command's
        # stdout open; the item ends with the command, not with it.
        t0 = time.monotonic()
        st, res = self.submit("sh -c 'setsid -f sleep 31.25; echo done' {}", ["x"])
        try:
            self.assertEqual((st["state"], res[0]["result"]), ("completed", "done\n"), st)
            self.assertLess(time.monotonic() - t0, 20)
        finally:
            subprocess.run(["pkill", "-f", "sleep 31.25"], check=False)

    def test_output_past_the_limit_fails_the_item(self):
        st, res = self.submit("sh -c 'head -c 10000000 /dev/zero' {}", ["x"])  # 10 MB against the 1 MiB default
        self.assertIn("printed more than 1048576 bytes", res[0]["error"]["message"])
        st, res = self.submit("sh -c 'head -c 10000000 /dev/zero' {}", ["x"], max_output=12 << 20)
        self.assertEqual(st["state"], "completed", res)
        self.assertEqual(st["results_committed"] > 10000000, True)

    def test_the_submitters_directory_and_environment_stdin_from_dev_null(self):
        work = self.path("work")
        os.mkdir(work)
        st, res = self.submit("sh -c 'pwd; echo $MARK; cat; echo end' {}", ["x"], cwd=work,
                              env={"PATH": "/usr/bin:/bin", "MARK": "the caller's"})
        self.assertEqual(res[0]["result"], "%s\nthe caller's\nend\n" % work)
        # A PATH of the command's own finds argv[0].
        bindir = self.path("bin")
        os.mkdir(bindir)
        with open(os.path.join(bindir, "hello"), "w") as f:
            f.write("#!/bin/sh\necho hello \"$1\"\n")
        os.chmod(os.path.join(bindir, "hello"), 0o755)
        st, res = self.submit("hello {}", ["you"], env={"PATH": bindir + ":/usr/bin:/bin"})
        self.assertEqual(res[0]["result"], "hello you\n")

    def test_commands_start_with_default_signals_and_only_three_descriptors(self):
        # The runner ignores SIGPIPE; a command must not inherit that (a
        # `yes | head` would spin), nor a blocked signal, nor a descriptor.
        st, res = self.submit("cat /proc/self/status {}", ["/dev/null", "/dev/null"])
        self.assertEqual(st["state"], "completed", st)
        for r in res:
            fields = dict(line.split(":\t", 1) for line in r["result"].splitlines() if ":\t" in line)
            self.assertEqual((fields["SigBlk"], fields["SigIgn"]), ("0" * 16, "0" * 16))
        st, res = self.submit("ls {}", ["/proc/self/fd"])
        # 0 1 2 and the one ls opens to list them.
        self.assertEqual(res[0]["result"].split(), ["0", "1", "2", "3"])

    def test_a_bad_template_fails_the_job_with_the_reason(self):
        st, res = self.submit("echo '{}'", ["x"])
        self.assertEqual(st["state"], "failed")
        self.assertIn("inside quotes", st["error"])

    def test_two_workers_and_the_slot(self):
        st, res = self.submit("printf %s {%}", [str(i) for i in range(40)], workers=2)
        self.assertEqual(st["state"], "completed")
        self.assertLessEqual({r["result"] for r in res}, {"1", "2"})


class Mplockctl(DaemonTest):
    """mplockctl submit --exec, as a parallel line in a script becomes."""

    def test_inline_items_after_three_colons_and_wait(self):
        out = self.path("out")
        p = self.d.ctl("submit", "--wait", "--exec", "printf [%s] {}", "--output", out, ":::", "a b", "$(id)", "-n",
                       "--help")
        job = int(p.stdout.split()[0])
        self.assertEqual([r["result"] for r in self.d.results_json(job)], ["[a b]", "[$(id)]", "[-n]", "[--help]"])
        p = self.d.ctl("submit", "--wait", "--exec", "sh -c 'exit 4' {}", "--output", self.path("o2"), ":::", "x",
                       check=False)
        self.assertEqual(p.returncode, 5)  # wait's code: completed with failed items

    def test_an_input_file_with_nul_separated_items_holding_newlines(self):
        items = self.path("items")
        with open(items, "wb") as f:
            f.write(b"one\ntwo\0three\0")
        p = self.d.ctl("submit", "--wait", "--null", "--exec", "printf [%s] {}", "--input", items, "--output",
                       self.path("out"))
        job = int(p.stdout.split()[0])
        self.assertEqual([r["result"] for r in self.d.results_json(job)], ["[one\ntwo]", "[three]"])

    def test_the_default_output_directory(self):
        env_home = self.path("home")
        os.mkdir(env_home)
        p = subprocess.run([os.path.join(BUILD, "mplockctl"), "--socket", self.d.sock, "submit", "--wait", "--exec",
                            "echo {}", ":::", "x"], capture_output=True, env={"HOME": env_home, "PATH": "/usr/bin:/bin"})
        self.assertEqual(p.returncode, 0, p.stderr)
        st = self.d.status(int(p.stdout.split()[0]))
        self.assertTrue(st["output"].startswith(env_home + "/.local/state/mplock/exec-"), st["output"])

    def test_wrong_combinations_are_usage_errors(self):
        for args in (["--exec", "echo", "--module", "/x.so", ":::", "a"], ["--exec", "echo", ":::"],
                     ["--exec", "echo", "--output", self.path("o"), "--input", "/dev/null", ":::", "a"],
                     ["--max-output", "1M", "--module", "/x.so", "--input", "/dev/null", "--output", self.path("o")]):
            p = self.d.ctl("submit", *args, check=False)
            self.assertEqual(p.returncode, 2, (args, p.stderr))

    def test_kill_9_of_mplockd_mid_job_redoes_only_what_was_in_flight(self):
        n = 5000
        side = self.path("side")
        items = self.write_items("items.txt", [str(i) for i in range(n)])
        p = self.d.ctl("submit", "--exec", "sh -c 'echo $0 >> %s' {}" % side, "--input", items, "--output",
                       self.path("out"), "--workers", 2)
        job = int(p.stdout)
        deadline = time.monotonic() + 60
        while self.d.status(job)["done"] < n // 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        # What was committed just before the kill (a subset of what was
        # at the kill): none of it may run again.
        partial = self.d.ctl("--json", "results", job, check=False)  # exit 9: not every item yet
        committed = {json.loads(line)["index"] for line in partial.stdout.decode().splitlines()}
        before = len(committed)
        self.d.kill()
        self.d.start()
        rc, st = self.d.wait(job)
        self.assertEqual((rc, st["done"], st["failed"]), (0, n, 0), st)
        self.assertTrue(0 < before < n, before)
        res = self.d.results_json(job)
        self.assertEqual([r["result"] for r in res], [""] * n)
        with open(side) as f:
            ran = f.read().split()
        counts = {}
        for x in ran:
            counts[x] = counts.get(x, 0) + 1
        self.assertEqual(set(counts), {str(i) for i in range(n)})  # every command ran
        twice = sum(c - 1 for c in counts.values())
        self.assertEqual([i for i in committed if counts[str(i)] > 1], [])
        # Only what was in flight at the kill runs again: the chunks the
        # workers had and what ran since the last group commit (200 ms).
        print("ran twice: %d, committed before the kill: %d" % (twice, before), file=sys.stderr)
        self.assertLess(twice, 200, twice)


@unittest.skipIf(os.geteuid() != 0, "needs root: real users and a system instance")
class ExecUsers(UsersTest):
    """Under a root system instance, commands run as the submitter, with
    the submitter's environment; another user's is never seen."""

    def prepare(self):
        super().prepare()
        os.mkdir(os.path.join(self.bin, "exec"), 0o755)
        shutil.copy2(ADAPTER, os.path.join(self.bin, "exec"))
        os.chmod(os.path.join(self.bin, "exec", "mplock-exec.so"), 0o755)
        os.environ["MPLOCK_ROOT_SECRET"] = "root's"  # in mplockd's environment

    def tearDown(self):
        os.environ.pop("MPLOCK_ROOT_SECRET", None)
        super().tearDown()

    def run_as(self, user, mark):
        uid, gid, groups = ids(user)
        p = subprocess.run([self.ctl_binary, "--socket", self.d.sock, "submit", "--wait", "--exec",
                            "sh -c 'id -u; pwd; echo \"$MARK|$MPLOCK_ROOT_SECRET|$OTHER\"' {}", "--output",
                            os.path.join(self.home[user], "out"), ":::", "x"],
                           user=uid, group=gid, extra_groups=groups, capture_output=True, cwd=self.home[user],
                           env={"PATH": "/usr/bin:/bin", "MARK": mark, "HOME": self.home[user]}, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr.decode() + self.d.read_log()[-2000:])
        job = int(p.stdout.split()[0])
        return [r["result"] for r in self.d.results_json(job)][0]

    def test_commands_run_as_the_submitter_with_their_environment(self):
        for user in ("mplock-alice", "mplock-bob"):
            uid, _, _ = ids(user)
            self.assertEqual(self.run_as(user, "mark of " + user),
                             "%d\n%s\nmark of %s||\n" % (uid, self.home[user], user))


if __name__ == "__main__":
    main()
