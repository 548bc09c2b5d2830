# SPDX-License-Identifier: MIT
"""Shared by the systemd tests: run.py (a container), vm.py (a VM) and
guest.py (inside that VM, where vm.py installs this file beside it). The
standard library only: the guest has nothing else."""

import glob
import os
import shutil
import subprocess
import time


def sh(*cmd, check=True, **kw):
    return subprocess.run(cmd, check=check, capture_output=True, text=True, **kw)


def run(cmd, prefix=(), check=True, timeout=120, input=None):
    """cmd after prefix (nsenter, runuser): an AssertionError naming cmd,
    with its output, when check and it fails."""
    p = subprocess.run(list(prefix) + [str(c) for c in cmd], capture_output=True, text=True, timeout=timeout,
                       input=input)
    if check and p.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s%s" % (" ".join(map(str, cmd)), p.returncode, p.stdout, p.stderr))
    return p


def wait_for(what, cond, timeout, interval):
    """cond's first true value, asked every interval seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError("timed out waiting for " + what)


def ensure_rootfs(cache, packages, marker):
    """Debian 12 with packages, made with debootstrap once into cache
    (through cache.tmp, so that an interrupted run leaves nothing that
    looks made) and found there later: made means that the glob marker,
    in cache, matches ("usr/", "boot/vmlinuz-*")."""
    if glob.glob(os.path.join(cache, marker)):
        return
    tmp = cache + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.dirname(cache), exist_ok=True)
    print("debootstrap into %s (once; cached for later runs)" % cache, flush=True)
    subprocess.run(["debootstrap", "--variant=minbase", "--include=" + packages, "bookworm", tmp], check=True,
                   stdout=subprocess.DEVNULL)
    os.rename(tmp, cache)
