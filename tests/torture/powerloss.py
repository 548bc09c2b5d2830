#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Power-loss torture: kill mplockd, then damage what a power cut could have
left half-written, restart, and repeat. After each kill, at random:

  ckpt.log     cut inside its last record, or garbage appended after it
  results      garbage appended, or cut anywhere after the committed length
               (what the checkpoint, as damaged, says is committed)
  job dir      stale temporary files from interrupted atomic writes

Recovery must succeed every time and the finished job's results must be
exact: every index once, every value right. (An fsynced record cannot be
lost to a power cut; cutting the last record is a harsher test than that,
and must only cost redoing its items.)

  powerloss.py              CI: 15 rounds
  powerloss.py --rounds 100 the long version"""

import argparse
import os
import shutil
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import seeded_rng, square_results, start_square_job, summary  # noqa: E402

LOG_HEADER = 32
RECORD = 48


def log_records(path):
    """(offset, length, results_len) of each record, as written."""
    with open(path, "rb") as f:
        data = f.read()
    out, off = [], LOG_HEADER
    while off + RECORD <= len(data):
        magic, n_ranges, seq, results_len = struct.unpack_from("<IIQQ", data, off)
        if magic != 0x434c504d:
            break
        length = RECORD + 16 * n_ranges
        if off + length > len(data):
            break
        out.append((off, length, results_len))
        off += length
    return out


def snapshot_results_len(jobdir):
    try:
        with open(os.path.join(jobdir, "ckpt.snap"), "rb") as f:
            return struct.unpack_from("<Q", f.read(40), 32)[0]
    except (OSError, struct.error):
        return 0


def damage(rng, jobdir, results, log):
    """Damages the tails; returns what was done, for the log."""
    what = []
    ckpt = os.path.join(jobdir, "ckpt.log")
    recs = log_records(ckpt)
    if recs and rng.random() < 0.5:
        off, length, _ = recs[-1]
        cut = off + rng.randrange(1, length)
        os.truncate(ckpt, cut)
        recs = recs[:-1]
        what.append("log cut at %d" % cut)
    else:
        with open(ckpt, "ab") as f:
            f.write(os.urandom(rng.randrange(1, 200)))
        what.append("log garbage")
    committed = recs[-1][2] if recs else snapshot_results_len(jobdir)
    if os.path.exists(results):
        size = os.path.getsize(results)
        if size > committed and rng.random() < 0.5:
            cut = rng.randrange(committed, size + 1)
            os.truncate(results, cut)
            what.append("results cut at %d (committed %d)" % (cut, committed))
        else:
            with open(results, "ab") as f:
                f.write(os.urandom(rng.randrange(1, 5000)))
            what.append("results garbage")
    for name in ("state.json", "ckpt.snap"):
        with open(os.path.join(jobdir, ".#%s.%06x" % (name, rng.randrange(1 << 24))), "wb") as f:
            f.write(os.urandom(rng.randrange(0, 100)))
    what.append("stale temp files")
    print("  " + ", ".join(what), file=log, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--items", type=int, default=30000)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    args = ap.parse_args()
    rng = seeded_rng(args.seed)
    n = args.items
    tmp, d, job = start_square_job("mplock-powerloss-", n, args.rounds * 0.4, 50)
    out = os.path.join(tmp, "out")
    jobdir = os.path.join(d.state, "jobs", str(job))
    results = os.path.join(out, "mplock-%d.results" % job)
    rounds = 0
    while rounds < args.rounds:
        time.sleep(rng.uniform(0.05, 0.4))
        d.kill()
        rounds += 1
        damage(rng, jobdir, results, sys.stdout)
        d.start()
        st = d.status(job)
        if st["state"] not in ("running", "queued"):
            break
    rc, st = d.wait(job, timeout=3600)
    lost, duplicated, wrong = square_results(d, job, n)
    stale = [f for f in os.listdir(jobdir) if f.startswith(".#")]
    if stale:
        print("stale temporary files left: %s" % stale)
    torn = d.read_log().count("torn tail")
    print("rounds %d, lost %d, duplicated %d, wrong %d; torn log tails cut %d" % (rounds, lost, duplicated, wrong,
                                                                                    torn))
    ok = rc == 0 and rounds >= args.rounds and lost == 0 and duplicated == 0 and wrong == 0 and not stale
    if not ok:
        print("state %s; kept %s\n%s" % (st and st["state"], tmp, d.read_log()[-3000:]))
    d.stop()
    if ok:
        shutil.rmtree(tmp, ignore_errors=True)
    summary(ok)


if __name__ == "__main__":
    main()
