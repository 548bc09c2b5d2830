#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""kill -9 torture: a 100,000-item square job; mplockd is SIGKILLed at random
moments and restarted, again and again. The results must be byte-identical
to an uninterrupted run: every index exactly once, every value right.

  kill9.py               CI's short version: 30 kills
  kill9.py --kills 200   the long version

Prints "kills N, lost 0, duplicated 0"."""

import argparse
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import seeded_rng, square_results, start_square_job, summary  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=30)
    ap.add_argument("--items", type=int, default=100000)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    args = ap.parse_args()
    rng = seeded_rng(args.seed)
    n = args.items
    # Long enough for the kills: about 0.3 s of work per kill.
    tmp, d, job = start_square_job("mplock-kill9-", n, args.kills * 0.3, 500)
    kills = 0
    t0 = time.monotonic()
    while kills < args.kills:
        time.sleep(rng.uniform(0.01, 0.3))
        d.kill()
        kills += 1
        d.start()
        if kills % 25 == 0:
            print("%d kills, %.0f s" % (kills, time.monotonic() - t0), flush=True)
        if d.status(job)["state"] != "running" and d.status(job)["state"] != "queued":
            break
    rc, st = d.wait(job, timeout=3600)
    lost, duplicated, wrong = square_results(d, job, n)
    # The save callback is at-least-once: every index, every value right.
    saved = set()
    with open(os.path.join(tmp, "out", "square.saved")) as f:
        for line in f:
            i, v = line.split("\t")
            saved.add(int(i))
            wrong += int(v) != int(i) ** 2
    missing_saves = n - len(saved)
    print("kills %d, lost %d, duplicated %d" % (kills, lost, duplicated))
    print("job %s in %.0f s; wrong values %d; items never saved %d; resumes logged %d" % (
        st["state"] if st else "?", time.monotonic() - t0, wrong, missing_saves, d.read_log().count("will resume")))
    ok = (rc == 0 and kills >= args.kills and lost == 0 and duplicated == 0 and wrong == 0 and missing_saves == 0)
    d.stop()
    if ok:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print("kept %s for a look" % tmp)
    summary(ok)


if __name__ == "__main__":
    main()
