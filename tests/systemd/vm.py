#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Boots Debian 12 in a virtual machine (qemu; KVM when it works, else
TCG) with a kernel of its own: cgroup v2 with every controller, which the
container of run.py cannot have on a host that keeps its v1 controllers.
Installs the build, runs tests/systemd/guest.py at the end of the boot
(the scope limits: MemoryMax and the OOM killer, TasksMax, CPUQuota, fair
share between users) and reports what it printed on the VM's second
serial port. Needs root, debootstrap, mke2fs and qemu-system-x86."""

import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import sh  # noqa: E402

PACKAGES = ("systemd,systemd-sysv,dbus,libpam-systemd,libjson-c5,procps,python3,libpython3.11,python3-cloudpickle,"
            "linux-image-amd64,util-linux")
CACHE = os.path.join(os.environ.get("MPLOCK_ROOTFS_CACHE", "/var/cache/mplock-test"),
                     "bookworm-vm-" + hashlib.sha256(PACKAGES.encode()).hexdigest()[:12])
BOOT_TIMEOUT = 1500
ONLY = sys.argv[2:]  # test names, all when none

UNIT = """[Unit]
Description=mplock's scope tests
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/usr/bin/python3 /usr/local/lib/mplock-vmtest/guest.py
StandardOutput=file:/dev/ttyS1
StandardError=inherit
ExecStopPost=/bin/systemctl poweroff --no-block

[Install]
WantedBy=multi-user.target
"""


def ensure_rootfs():
    common.ensure_rootfs(CACHE, PACKAGES, os.path.join("boot", "vmlinuz-*"))


def make_image(build, d):
    """The cached root file system with the build installed and the guest
    tests enabled, as an ext4 image (mke2fs -d: no loop mount needed)."""
    root = os.path.join(d, "root")
    for sub in ("upper", "work", "root"):
        os.mkdir(os.path.join(d, sub))
    sh("mount", "-t", "overlay", "overlay", "-o",
       "lowerdir=%s,upperdir=%s/upper,workdir=%s/work" % (CACHE, d, d), root)
    try:
        sh("meson", "install", "-C", build, "--destdir", root, "--no-rebuild", "--quiet")
        guest = os.path.join(root, "usr", "local", "lib", "mplock-vmtest")
        os.makedirs(guest, exist_ok=True)
        for f in ("guest.py", "common.py"):  # guest.py imports common
            shutil.copy(os.path.join(os.path.dirname(os.path.abspath(__file__)), f), guest)
        unit = os.path.join(root, "etc", "systemd", "system", "mplock-vmtest.service")
        with open(unit, "w") as f:
            f.write(UNIT)
        wants = os.path.join(root, "etc", "systemd", "system", "multi-user.target.wants")
        os.makedirs(wants, exist_ok=True)
        os.symlink("/etc/systemd/system/mplock-vmtest.service", os.path.join(wants, "mplock-vmtest.service"))
        with open(os.path.join(root, "etc", "fstab"), "w") as f:
            f.write("/dev/vda / ext4 rw 0 1\n")
        with open(os.path.join(root, "etc", "hostname"), "w") as f:
            f.write("mplock-vm\n")
        image = os.path.join(d, "root.img")
        sh("mke2fs", "-q", "-t", "ext4", "-d", root, "-F", image, "4G")
    finally:
        sh("umount", root)
    return image


def kvm_works():
    """Where KVM is nested (this machine's: a stock guest kernel hangs at
    boot under it), TCG; MPLOCK_VM_KVM=1 asks for KVM where it works."""
    return os.environ.get("MPLOCK_VM_KVM") == "1" and os.access("/dev/kvm", os.R_OK | os.W_OK)


def boot(image, d):
    kernel = sorted(glob.glob(os.path.join(CACHE, "boot", "vmlinuz-*")))[-1]
    initrd = sorted(glob.glob(os.path.join(CACHE, "boot", "initrd.img-*")))[-1]
    results, console = os.path.join(d, "results.txt"), os.path.join(d, "console.log")
    accel = ["-enable-kvm", "-cpu", "host,-arch-capabilities"] if kvm_works() else ["-accel", "tcg,thread=multi",
                                                                                    "-cpu", "max"]
    cmd = ["qemu-system-x86_64"] + accel + [
        "-m", "3G", "-smp", "2", "-kernel", kernel, "-initrd", initrd,
        "-append", "root=/dev/vda rw console=ttyS0 quiet systemd.show_status=0" + (
            " mplock.tests=" + ",".join(ONLY) if ONLY else ""),
        "-drive", "file=%s,format=raw,if=virtio" % image, "-serial", "file:" + console, "-serial", "file:" + results,
        "-display", "none", "-no-reboot", "-nic", "none"]
    t0 = time.monotonic()
    try:
        subprocess.run(cmd, check=False, timeout=BOOT_TIMEOUT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        print("the VM did not power off within %d s" % BOOT_TIMEOUT, flush=True)
    print("(the VM ran %.0f s)" % (time.monotonic() - t0), flush=True)
    out = open(results, errors="replace").read() if os.path.exists(results) else ""
    if "mplock-tests:" not in out and os.path.exists(console):
        print("--- console:\n" + open(console, errors="replace").read()[-6000:])
    return out


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
    need = ("debootstrap", "mke2fs", "qemu-system-x86_64")
    if os.geteuid() != 0 or not all(shutil.which(n) for n in need):
        print("skipped: needs root, %s" % ", ".join(need))
        return 77
    ensure_rootfs()
    d = tempfile.mkdtemp(prefix="mplock-vm-", dir="/var/tmp")
    try:
        out = boot(make_image(build, d), d)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    sys.stdout.write(out)
    last = [line for line in out.splitlines() if line.startswith("mplock-tests:")]
    if not last:
        print("mplock-tests: 0 passed, 1 failed")
        return 1
    return 0 if last[-1].endswith(" 0 failed") else 1


if __name__ == "__main__":
    sys.exit(main())
