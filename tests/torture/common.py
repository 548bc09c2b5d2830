# SPDX-License-Identifier: MIT
"""Shared by the torture scripts: the integration harness, and checks of a
finished square job's results."""

import json
import os
import random
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from harness import BUILD, Daemon, module  # noqa: E402,F401

FAULTINJECT = os.path.join(BUILD, "tests", "torture", "faultinject.so")


def seeded_rng(seed):
    print("seed %d" % seed, flush=True)
    return random.Random(seed)


def start_square_job(prefix, n, seconds, save_batch):
    """A daemon committing every 20 ms, and a square job over 0..n-1 slowed
    down to last about `seconds` on 2 workers. Returns (tmp, daemon, job)."""
    tmp = tempfile.mkdtemp(prefix=prefix)
    d = Daemon(tmp, ["--commit-interval", "20"]).start()
    items = os.path.join(tmp, "items.txt")
    with open(items, "w") as f:
        f.write("".join("%d\n" % i for i in range(n)))
    sleep_us = max(20, int(seconds * 2 * 1e6 / n))
    job = d.submit(module("square"), items, os.path.join(tmp, "out"), "--workers", 2, "--save-batch", save_batch,
                   "--shared", '{"sleep_us": %d}' % sleep_us)
    return tmp, d, job


def square_results(d, job, n):
    """Returns (lost, duplicated, wrong) for a square job over 0..n-1, from
    the results as mplockctl prints them."""
    out = d.ctl("--json", "results", job).stdout.decode()
    res = [json.loads(line) for line in out.splitlines()]
    idx = [r["index"] for r in res]
    distinct = set(idx)
    lost = n - len(distinct & set(range(n)))
    duplicated = len(idx) - len(distinct)
    wrong = sum(1 for r in res if r.get("result") != str(r["index"] ** 2))
    plain = d.ctl("results", job).stdout
    if plain != "".join("%d\n" % (i * i) for i in range(n)).encode():
        wrong += 1
    return lost, duplicated, wrong


def summary(ok):
    print("mplock-tests: %d passed, %d failed" % (1 if ok else 0, 0 if ok else 1))
    sys.exit(0 if ok else 1)
