#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Fault injection: the Nth write, pwrite, writev, fsync, fdatasync,
ftruncate, rename, open or openat of mplockd (or of mplock-runner: the job
runner, its workers and the submission check) fails with ENOSPC or EIO,
for every N a small job reaches (with --every 1; CI takes a stride).

Each run: a fresh mplockd with the shim (faultinject.so) preloaded, one job
submitted and waited for. mplockd must never crash; the submission is
either refused with a clear one-line error (nothing left behind) or the job
ends completed, or paused with its reason and then completes once resumed
(the shim fails one call per run). The results must be exact.

  faults.py                 CI: about 60 runs per program (every N while a
                            clean run makes fewer calls than that)
  faults.py --every 1 --both   the long version: every N, with each errno"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import FAULTINJECT, Daemon, module, square_results, summary  # noqa: E402

N_ITEMS = 300


class Run:
    def __init__(self, prog, at, errno_name):
        self.tmp = tempfile.mkdtemp(prefix="mplock-fault-")
        self.env = {"LD_PRELOAD": FAULTINJECT, "MPLOCK_FAULT_PROG": prog, "MPLOCK_FAULT_AT": str(at),
                    "MPLOCK_FAULT_ERRNO": errno_name, "MPLOCK_FAULT_ONCE": os.path.join(self.tmp, "fired"),
                    # The users' processes get none of mplockd's
                    # environment but what is named (mplockd(8)).
                    "MPLOCKD_PASS_ENV": "LD_PRELOAD MPLOCK_FAULT_PROG MPLOCK_FAULT_AT MPLOCK_FAULT_ERRNO "
                                        "MPLOCK_FAULT_ONCE MPLOCK_FAULT_COUNT"}
        self.d = Daemon(self.tmp, ["--commit-interval", "10", "--retry-delay", "10"])

    def items(self):
        p = os.path.join(self.tmp, "items.txt")
        with open(p, "w") as f:
            f.write("".join("%d\n" % i for i in range(N_ITEMS)))
        return p

    def start(self):
        old = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        try:
            self.d.start()
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def cleanup(self):
        self.d.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


def one_run(prog, at, errno_name, count_file=None):
    """Returns (outcome, problem or None)."""
    r = Run(prog, at, errno_name)
    if count_file:
        r.env["MPLOCK_FAULT_COUNT"] = count_file
    try:
        try:
            r.start()
        except RuntimeError as e:
            # Refusing to start is fine if it is a clean exit with a reason.
            if r.d.proc.returncode is not None and r.d.proc.returncode > 0 and "mplockd:" in r.d.read_log():
                return "start refused", None
            return None, "mplockd did not start cleanly: %s" % e
        items = r.items()
        p = r.d.ctl("submit", "--module", module("square"), "--input", items, "--output",
                    os.path.join(r.tmp, "out"), "--workers", 2, "--save-batch", 20, check=False)
        if p.returncode != 0:
            err = p.stderr.decode()
            if p.returncode == 1 and err.count("\n") == 1 and err.startswith("mplockctl: "):
                leftovers = [f for f in os.listdir(os.path.join(r.d.state, "jobs")) if f.startswith(".new-")]
                if leftovers:
                    return None, "a refused submission left %s" % leftovers
                return "submit refused", None
            return None, "submission failed badly (%d): %r" % (p.returncode, err)
        job = int(p.stdout)
        outcome = "completed"
        for _ in range(3):
            try:
                rc, st = r.d.wait(job, timeout=60)  # returns on a pause by a fault too
            except subprocess.TimeoutExpired:
                ps = subprocess.run(["ps", "-eo", "pid,ppid,stat,wchan:24,args"], capture_output=True,
                                    text=True).stdout
                ps = "\n".join(line for line in ps.splitlines() if "mplock" in line)
                try:
                    with open(os.path.join(r.tmp, "out", "mplock-%d.log" % job)) as f:
                        joblog = f.read()[-1500:]
                except OSError:
                    joblog = ""
                return None, "job stuck in %s:\n%s\n--- job log:\n%s\n--- processes:\n%s" % (
                    r.d.status(job)["state"], r.d.read_log()[-1500:], joblog, ps)
            if st and st["state"] == "paused":
                if not st.get("error"):
                    return None, "paused without a reason"
                outcome = "paused, resumed"
                r.d.ctl("resume", job)
                continue
            break
        if r.d.proc.poll() is not None:
            return None, "mplockd died (%s)" % r.d.proc.returncode
        if not st or st["state"] != "completed":
            return None, "job ended %s: %s" % (st and st["state"], st and st.get("error"))
        lost, dup, wrong = square_results(r.d, job, N_ITEMS)
        if lost or dup or wrong:
            return None, "results: lost %d, duplicated %d, wrong %d" % (lost, dup, wrong)
        r.d.stop()
        if r.d.proc.returncode != 0:
            return None, "mplockd exited %s on SIGTERM" % r.d.proc.returncode
        return outcome, None
    finally:
        r.cleanup()


def calls_of(prog):
    """How many interposed calls a clean run of the job makes in prog."""
    tmp = tempfile.mkdtemp(prefix="mplock-count-")
    count = os.path.join(tmp, "count")
    outcome, problem = one_run(prog, 0, "ENOSPC", count_file=count)
    if problem:
        raise RuntimeError("the clean run failed: " + problem)
    with open(count) as f:
        total = max(int(line.split()[1]) for line in f)
    shutil.rmtree(tmp, ignore_errors=True)
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--every", type=int, default=0, help="stride over N (default: about 60 runs per program)")
    ap.add_argument("--prog", choices=("mplockd", "mplock-runner"), help="only this program")
    ap.add_argument("--at", type=int, help="only this N")
    ap.add_argument("--both", action="store_true", help="each N with ENOSPC and with EIO (the long version)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    if not os.path.exists(FAULTINJECT):
        print("no %s; build the tests first" % FAULTINJECT)
        summary(False)
    problems, counts, runs = [], {}, 0
    t0 = time.monotonic()
    for prog in (args.prog,) if args.prog else ("mplockd", "mplock-runner"):
        total = calls_of(prog)
        step = args.every or max(1, total // 60)
        print("%s: %d calls in a clean run; failing every %d-th N" % (prog, total, step), flush=True)
        for at in [args.at] if args.at else range(1, total + 2, step):
            errnos = ("ENOSPC", "EIO") if args.both else (("ENOSPC", "EIO")[(at // step) % 2],)
            for errno_name in errnos:
                outcome, problem = one_run(prog, at, errno_name)
                if args.verbose:
                    print("  %s %d %s: %s" % (prog, at, errno_name, outcome or problem), flush=True)
                runs += 1
                if problem:
                    problems.append("%s call %d (%s): %s" % (prog, at, errno_name, problem))
                    print("  PROBLEM " + problems[-1], flush=True)
                else:
                    counts[outcome] = counts.get(outcome, 0) + 1
    print("injections %d in %.0f s: %s; problems %d" % (
        runs, time.monotonic() - t0, ", ".join("%s %d" % kv for kv in sorted(counts.items())), len(problems)))
    summary(not problems)


if __name__ == "__main__":
    main()
