#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Runs one libFuzzer target for a while, from a copy of its seed corpus,
and reports how many inputs it ran. A crash (or any sanitizer report) fails
it; the input that did it is kept in the build directory.

Usage: run-fuzzer.py FUZZER CORPUS_DIR SECONDS"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

fuzzer, corpus, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3])
name = os.path.basename(fuzzer)
tmp = tempfile.mkdtemp(prefix="mplock-fuzz-")
work = os.path.join(tmp, "corpus")
shutil.copytree(corpus, work)
artifacts = os.path.join(os.path.dirname(os.path.abspath(fuzzer)), "artifacts") + "/"
os.makedirs(artifacts, exist_ok=True)
# What a target writes per input (a checkpoint, a 2 MiB journal) goes to
# memory where it can: syncs to a disk would be most of each run.
scratch = tempfile.mkdtemp(prefix="mplock-fuzz-scratch-", dir="/dev/shm" if os.path.isdir("/dev/shm") else tmp)
env = dict(os.environ, TMPDIR=scratch, UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1",
           ASAN_OPTIONS="detect_leaks=1")
p = subprocess.run([fuzzer, "-max_total_time=%d" % seconds, "-close_fd_mask=2", "-max_len=65536",
                    "-artifact_prefix=" + artifacts, work], capture_output=True, text=True, env=env)
out = p.stdout + p.stderr
done = re.findall(r"Done (\d+) runs in (\d+) second", out)
corpus_size = len(os.listdir(work))
shutil.rmtree(scratch, ignore_errors=True)
shutil.rmtree(tmp, ignore_errors=True)
if p.returncode != 0 or not done:
    print(out[-6000:])
    print("%s: FAILED (exit %d); the input is in %s" % (name, p.returncode, artifacts))
    print("mplock-tests: 0 passed, 1 failed")
    sys.exit(1)
runs, secs = done[-1]
print("%s: %s runs in %s s, corpus %d inputs, no crash" % (name, runs, secs, corpus_size))
print("mplock-tests: 1 passed, 0 failed")
