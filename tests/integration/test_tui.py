#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""mplockctl watch and top on a real terminal (a tmux pane, read back with
capture-pane) and off one (a pipe): the bar moves and watch ends with the
job, several jobs keep a line each, a pipe gets no escape codes, top's
keys pause, resume and cancel, and the terminal is left as it was found."""

import os
import pwd
import re
import shlex
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import MPLOCKCTL, DaemonTest, main  # noqa: E402


class Pane:
    """A shell in a tmux pane of 120x30, on a server of its own (its socket
    in the test's directory, so that it goes with it)."""

    def __init__(self, env, sock):
        self.tmux = ["tmux", "-S", sock, "-f", "/dev/null"]
        subprocess.run(self.tmux + ["new-session", "-d", "-x", "120", "-y", "30", "-s", "t", "sh"], env=env,
                       check=True)

    def run(self, line):
        """Types line into the shell; a marker in it should be written
        "AB""CD", so that only its output shows ABCD."""
        subprocess.run(self.tmux + ["send-keys", "-t", "t", "-l", line], check=True)
        self.keys("Enter")

    def keys(self, *keys):
        subprocess.run(self.tmux + ["send-keys", "-t", "t"] + list(keys), check=True)

    def screen(self):
        return subprocess.run(self.tmux + ["capture-pane", "-p", "-t", "t"], capture_output=True, check=True,
                              text=True).stdout

    def wait_for(self, what, timeout=30):
        """The screen once what(screen) holds (a string: once it shows it)."""
        test = what if callable(what) else (lambda s: what in s)
        deadline = time.monotonic() + timeout
        while True:
            s = self.screen()
            if test(s):
                return s
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for %r; the screen:\n%s" % (what, s))
            time.sleep(0.1)

    def close(self):
        subprocess.run(self.tmux + ["kill-server"], capture_output=True)


class Tui(DaemonTest):
    daemon_args = ("--max-workers", "4")

    def setUp(self):
        super().setUp()
        env = dict(os.environ, LANG="C.UTF-8", LC_ALL="C.UTF-8", PS1="$ ", HOME=self.tmp)
        env.pop("TMUX", None)
        self.pane = Pane(env, self.path("tmux"))
        self.addCleanup(self.pane.close)
        self.ctl = "%s --socket %s" % (shlex.quote(MPLOCKCTL), shlex.quote(self.d.sock))

    def slow_job(self, n, secs=0.25, name=None):
        """n items of `sleep secs`, one worker: about n*secs seconds."""
        args = ["submit", "--workers", 1, "--exec", "sleep {}", "--output", self.path("out-%d" % time.monotonic_ns())]
        if name:
            args += ["--name", name]
        return int(self.d.ctl(*args, ":::", *[str(secs)] * n).stdout)

    def wait_running(self, job):
        deadline = time.monotonic() + 30
        while self.d.status(job)["state"] != "running":
            self.assertLess(time.monotonic(), deadline, self.d.status(job))
            time.sleep(0.05)

    @staticmethod
    def lines_of(screen, job):
        return [line for line in screen.splitlines() if line.startswith("job %d " % job)]

    def test_watch_draws_a_bar_that_moves_and_ends_with_the_job(self):
        job = self.slow_job(20)
        self.pane.run('%s watch %d; echo "r""c=$?"' % (self.ctl, job))
        seen = []
        deadline = time.monotonic() + 60
        while "rc=" not in self.pane.screen():
            self.assertLess(time.monotonic(), deadline, self.pane.screen())
            for line in self.lines_of(self.pane.screen(), job):
                m = re.search(r"\] +([0-9.]+)% ", line)
                if m and "running" in line:
                    self.assertIn("\u2588" if float(m.group(1)) >= 5 else "[", line)  # blocks: a UTF-8 locale
                    seen.append(float(m.group(1)))
            time.sleep(0.3)
        screen = self.pane.screen()
        self.assertIn("rc=0", screen)
        self.assertEqual(sorted(seen), seen)
        self.assertGreater(len(set(seen)), 1, seen)  # it moved
        done = self.lines_of(screen, job)
        self.assertEqual(len(done), 1, screen)  # redrawn in place, not one line per update
        self.assertIn("completed", done[0])
        self.assertIn("100.0% 20/20", done[0])
        self.assertIn("Job %d completed: 20 of 20 items done" % job, screen)

    def test_watch_without_a_job_follows_the_active_ones_a_line_each(self):
        ended = self.slow_job(1, 0)
        self.assertEqual(self.d.wait(ended)[0], 0)
        a, b = self.slow_job(12), self.slow_job(16)
        self.wait_running(a)
        self.wait_running(b)
        self.pane.run('%s watch; echo "r""c=$?"' % self.ctl)
        screen = self.pane.wait_for(lambda s: self.lines_of(s, a) and self.lines_of(s, b))
        rows = screen.splitlines()
        la, lb = rows.index(self.lines_of(screen, a)[0]), rows.index(self.lines_of(screen, b)[0])
        self.assertEqual(lb, la + 1, screen)
        self.assertIn("running", rows[la])
        self.assertIn("running", rows[lb])
        self.assertEqual(self.lines_of(screen, ended), [], screen)  # ended before: not followed
        screen = self.pane.wait_for("rc=", 60)
        self.assertIn("rc=0", screen)
        self.assertEqual(len(self.lines_of(screen, a)), 1, screen)
        self.assertEqual(len(self.lines_of(screen, b)), 1, screen)
        self.assertIn("completed", self.lines_of(screen, b)[0])

    def test_watch_off_a_terminal_prints_plain_lines(self):
        job = self.slow_job(8)
        p = self.d.ctl("watch", job)
        out = p.stdout.decode()
        self.assertNotIn("\x1b", out)
        self.assertNotIn("\r", out)
        lines = out.splitlines()
        self.assertGreater(len(lines), 1, out)
        for line in lines:
            self.assertTrue(line.startswith("[job %d " % job), line)
        self.assertTrue(lines[-1].startswith("[job %d completed] 8/8 items (100.0%%)" % job), lines[-1])
        # Once it has ended, its average rate, not the last seconds' 0/s.
        self.assertNotIn(" 0/s", lines[-1])
        self.assertRegex(lines[-1], r", [0-9.]+k?/s")
        self.assertIn(b"Job %d completed" % job, p.stderr)

    def test_watch_of_several_exits_with_the_worst_code(self):
        good, doomed = self.slow_job(6), self.slow_job(200)
        p = subprocess.Popen([MPLOCKCTL, "--socket", self.d.sock, "watch", str(good), str(doomed)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.wait_running(doomed)
        time.sleep(1)
        self.d.ctl("cancel", doomed)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 4, err)  # cancelled beats completed
        self.assertNotIn(b"\x1b", out)
        self.assertIn(b"[job %d completed]" % good, out)
        self.assertIn(b"[job %d cancelled]" % doomed, out)
        # A job that is not there: 6, as for one.
        p = self.d.ctl("watch", good, 999, check=False)
        self.assertEqual(p.returncode, 6, p.stderr)
        self.assertIn(b"no such job", p.stderr)

    def start_top(self):
        """top from the shell, after a marker and the terminal's settings;
        the screen once its table is up. (One command a line: a shell drops
        the rest of a line whose command died of SIGINT.)"""
        self.pane.run('clear; stty -g > %s; echo "BEFORE""-TOP"' % self.path("stty.before"))
        self.pane.wait_for(lambda s: "BEFORE-TOP" in s.splitlines())
        self.pane.run("%s top" % self.ctl)
        return self.pane.wait_for("mplock top:")

    def assert_restored(self, rc):
        """After top: the shell's screen is back, the marker on it, and the
        terminal's settings are as they were."""
        screen = self.pane.wait_for(lambda s: "mplock top:" not in s)
        # The marker is on the shell's screen again (the echo of a line
        # typed while top ran may share its line, under a slow build).
        self.assertTrue(any("BEFORE-TOP" in line for line in screen.splitlines()), screen)
        after = self.path("stty.after")
        self.pane.run('echo "r""c=$?"; stty -g > %s' % after)
        codes = re.findall(r"rc=(\d+)", self.pane.wait_for(lambda s: re.search(r"rc=\d+", s)))
        self.assertEqual(codes[-1:], [str(rc)])
        deadline = time.monotonic() + 10
        while not os.path.exists(after) and time.monotonic() < deadline:
            time.sleep(0.05)
        with open(self.path("stty.before")) as f, open(after) as g:
            self.assertEqual(f.read(), g.read())
        os.unlink(after)

    def row_of(self, screen, job):
        rows = [line for line in screen.splitlines() if re.match(r"^[> ] +%d " % job, line)]
        self.assertEqual(len(rows), 1, screen)
        return rows[0]

    def test_top_pauses_resumes_and_cancels_the_selected_job(self):
        ended = self.slow_job(1, 0, name="short")
        self.assertEqual(self.d.wait(ended)[0], 0)
        job = self.slow_job(400, name="long-one")
        self.wait_running(job)
        screen = self.start_top()
        self.assertIn("OWNER", screen)
        row = self.row_of(self.pane.wait_for(lambda s: "running" in s), job)
        self.assertTrue(row.startswith(">"), screen)  # the first job still active is selected
        self.assertIn("long-one", row)
        self.assertIn(" %s " % pwd.getpwuid(os.getuid()).pw_name, row)
        self.assertRegex(row, r"\[[\u2588-\u258f ]+\]")
        self.assertTrue(self.row_of(screen, ended).startswith(" "))
        # Up selects the ended job, down comes back.
        self.pane.keys("Up")
        self.pane.wait_for(lambda s: self.row_of(s, ended).startswith(">"))
        self.pane.keys("j")
        self.pane.wait_for(lambda s: self.row_of(s, job).startswith(">"))

        self.pane.keys("p")
        self.pane.wait_for("Job %d paused." % job)
        self.assertEqual(self.d.status(job)["state"], "paused")
        self.pane.wait_for(lambda s: "paused" in self.row_of(s, job))
        self.pane.keys("r")
        self.pane.wait_for("Job %d resumed." % job)
        self.assertEqual(self.d.status(job)["state"], "running")
        # A refusal is told on the status line and top goes on.
        self.pane.keys("r")
        self.pane.wait_for("is not paused (running)")
        self.pane.keys("c")
        self.pane.wait_for("Cancel job %d (long-one)? y/n" % job)
        self.pane.keys("n")
        self.pane.wait_for("Job %d not cancelled." % job)
        self.assertEqual(self.d.status(job)["state"], "running")
        self.pane.keys("c")
        self.pane.wait_for("? y/n")
        self.pane.keys("y")
        self.pane.wait_for("Job %d cancelled." % job)
        self.assertEqual(self.d.status(job)["state"], "cancelled")
        self.pane.wait_for(lambda s: "cancelled" in self.row_of(s, job))
        self.pane.keys("q")
        self.assert_restored(0)

    def test_top_restores_the_terminal_on_ctrl_c_and_sigterm(self):
        self.slow_job(400)
        self.start_top()
        self.pane.keys("C-c")
        self.assert_restored(128 + signal.SIGINT)
        self.start_top()
        pids = subprocess.run(["pgrep", "-f", "%s top" % self.d.sock], capture_output=True,
                              text=True).stdout.split()
        self.assertEqual(len(pids), 1, pids)
        os.kill(int(pids[0]), signal.SIGTERM)
        self.assert_restored(128 + signal.SIGTERM)

    def test_top_refuses_without_a_terminal(self):
        p = self.d.ctl("top", check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"needs a terminal", p.stderr)
        self.assertEqual(p.stdout, b"")


if __name__ == "__main__":
    main()
