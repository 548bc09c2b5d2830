#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The Python workloads of docs/performance.md, side by side with
multiprocessing in one run, for bench/run.py (which prints the table):

  W7 (Python)  a no-op process over N items on 2 workers, the whole
               mp_lock call, against multiprocessing.Pool(2).imap_unordered
               at chunksizes 10^3, 10^4, 10^5 (median of 3 each);
  W8 (Python)  360 mp_lock calls of 10 items each, one after another,
               against 360 times `with Pool(2) as p: p.starmap(...)`;
  memory       a bridge worker's RSS and PSS beside a bare `python3 -c`.

Usage: python.py BUILD ROOT [--items N]; prints one JSON object. Run with
Debian's python3: the bridge embeds that interpreter's libpython."""

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))

import mplock  # noqa: E402


def noop(data, shared_data, init_values):
    return None


def noop1(data):
    return None


def square(data, shared_data, init_values):
    return int(data) ** 2


def hold(data, shared_data, init_values):
    time.sleep(float(shared_data["hold"]))
    return None


def start_daemon(build, root):
    sock = os.path.join(root, "sock")
    log = open(os.path.join(root, "daemon.log"), "ab")
    p = subprocess.Popen([os.path.join(build, "mplockd"), "--socket", sock, "--state-dir",
                          os.path.join(root, "state")], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    for _ in range(500):
        try:
            mplock.Client(sock).close()
            return p, sock
        except OSError:
            time.sleep(0.01)
    raise RuntimeError("mplockd did not start")


def timed(f):
    t = time.monotonic()
    f()
    return time.monotonic() - t


def w7(root, n, reps=3):
    items = [str(i) for i in range(n)]
    runs = {"mplock": []}
    for rep in range(reps):
        out = os.path.join(root, "w7-%d" % rep)
        runs["mplock"].append(timed(lambda: mplock.mp_lock(items, noop, None, 2, out, verbose=False)))
        shutil.rmtree(out, ignore_errors=True)
        for cs in (10 ** 3, 10 ** 4, 10 ** 5):
            def pool():
                with multiprocessing.Pool(2) as p:
                    for _ in p.imap_unordered(noop1, items, chunksize=cs):
                        pass
            runs.setdefault("pool_%d" % cs, []).append(timed(pool))
    med = {k: statistics.median(v) for k, v in runs.items()}
    best = min(v for k, v in med.items() if k.startswith("pool"))
    return {"items": n, "median_s": med, "best_pool_s": best, "ratio": best / med["mplock"]}


def w8(root, calls=360):
    lists = [[str(10 * k + i) for i in range(10)] for k in range(calls)]

    def ours():
        for k, items in enumerate(lists):
            mplock.mp_lock(items, square, None, 2, os.path.join(root, "w8", str(k)), verbose=False)

    def pools():
        for items in lists:
            with multiprocessing.Pool(2) as p:
                p.starmap(square, [(i, {}, {}) for i in items])

    t_pool = timed(pools)
    t_ours = timed(ours)
    shutil.rmtree(os.path.join(root, "w8"), ignore_errors=True)
    return {"calls": calls, "mplock_s": t_ours, "pool_s": t_pool, "ratio": t_pool / t_ours}


def mem_kb(pid):
    out = {}
    for name, keys in (("status", ("VmRSS",)), ("smaps_rollup", ("Pss",))):
        with open("/proc/%d/%s" % (pid, name)) as f:
            for line in f:
                k = line.split(":")[0]
                if k in keys:
                    out[k] = int(line.split()[1])
    return out


def children(pid):
    return [int(k) for k in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()]


def memory(root, daemon_pid):
    """Workers of a job holding their item: the leaves of the runner's tree
    (agent -> runner -> workers) that run the bridge."""
    import threading
    out = os.path.join(root, "mem")
    t = threading.Thread(target=mplock.mp_lock, args=(["a", "b"], hold, None, 2, out),
                         kwargs={"shared_data": {"hold": 3}, "verbose": False})
    t.start()
    workers = []
    for _ in range(200):
        time.sleep(0.02)
        # mplockd -> the user's agent -> the job's runner -> its workers
        workers = [w for a in children(daemon_pid) for r in children(a) for w in children(r)]
        if len(workers) >= 2:
            break
    time.sleep(0.5)
    ws = [mem_kb(p) for p in workers[:2]]
    bare = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(2)"])
    time.sleep(0.5)
    b = mem_kb(bare.pid)
    bare.wait()
    t.join()
    return {"worker_rss_kb": max(w["VmRSS"] for w in ws), "worker_pss_kb": max(w["Pss"] for w in ws),
            "bare_rss_kb": b["VmRSS"], "bare_pss_kb": b["Pss"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("root")
    ap.add_argument("--items", type=int, default=10 ** 6)
    ap.add_argument("--calls", type=int, default=360)
    args = ap.parse_args()
    os.environ["MPLOCK_BUILD"] = os.path.abspath(args.build)
    root = os.path.join(args.root, "python")
    # A finished job left in ROOT by an earlier run would be returned at
    # once (resume) and time nothing: every run starts from an empty root.
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    d, sock = start_daemon(os.path.abspath(args.build), root)
    os.environ["MPLOCK_SOCKET"] = sock
    try:
        res = {"w7": w7(root, args.items), "w8": w8(root, args.calls), "memory": memory(root, d.pid)}
    finally:
        d.terminate()
        d.wait()
    print(json.dumps(res))


if __name__ == "__main__":
    main()
