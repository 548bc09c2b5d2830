#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A single-node Slurm cluster for the tests, from Debian's slurm-wlm and
munge, on a machine where systemd is not PID 1: munged as the munge user,
slurmctld and slurmd as plain daemons, a slurm.conf written for this host
(SlurmUser=root, auth/munge, proctrack/linuxproc, task/none,
select/cons_tres; cgroup.conf with cgroup/v1, which is not used by these
plugins but must parse).

Usage: cluster.py start|stop|status. Files it writes carry MARK and are
only ever overwritten by it; pids are kept in RUN."""

import os
import shutil
import socket
import subprocess
import sys
import time

MARK = "# written by mplock tests/slurm/cluster.py"
RUN = "/run/mplock-test-slurm"
CONF = "/etc/slurm/slurm.conf"
CGROUP_CONF = "/etc/slurm/cgroup.conf"
LOGS = "/var/log/slurm"


def sh(*cmd, check=True, **kw):
    return subprocess.run(cmd, check=check, capture_output=True, text=True, **kw)


def install():
    if shutil.which("slurmctld", path="/usr/sbin:/usr/bin") and shutil.which("munged", path="/usr/sbin:/usr/bin"):
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = sudo + ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "slurm-wlm", "munge"]
    if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
        subprocess.run(sudo + ["apt-get", "update", "-qq"], env=env, check=True, capture_output=True)
        subprocess.run(cmd, env=env, check=True, capture_output=True)


def write_marked(path, text):
    if os.path.exists(path):
        with open(path) as f:
            if MARK not in f.read():
                raise SystemExit("%s exists and is not ours: not overwriting it" % path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(MARK + "\n" + text)


def memory_mb():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 1024


def configure(host):
    cpus = os.cpu_count() or 1
    mem = max(256, memory_mb() - 1024)
    write_marked(CONF, "\n".join([
        "ClusterName=mplocktest",
        # Addresses given: the host's name need not resolve.
        "SlurmctldHost=%s(127.0.0.1)" % host,
        "SlurmUser=root",
        "AuthType=auth/munge",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_CPU",
        "SchedulerType=sched/backfill",
        "StateSaveLocation=/var/lib/slurm/slurmctld",
        "SlurmdSpoolDir=/var/lib/slurm/slurmd",
        "SlurmctldPidFile=%s/slurmctld.pid" % RUN,
        "SlurmdPidFile=%s/slurmd.pid" % RUN,
        "SlurmctldLogFile=%s/slurmctld.log" % LOGS,
        "SlurmdLogFile=%s/slurmd.log" % LOGS,
        "MinJobAge=3600",
        "ReturnToService=2",
        "MaxArraySize=10001",
        "KillWait=5",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "MpiDefault=none",
        "NodeName=%s NodeAddr=127.0.0.1 CPUs=%d RealMemory=%d State=UNKNOWN" % (host, cpus, mem),
        "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
        ""]))
    write_marked(CGROUP_CONF, "CgroupPlugin=cgroup/v1\n")
    for d in ("/var/lib/slurm/slurmctld", "/var/lib/slurm/slurmd", LOGS, RUN):
        os.makedirs(d, exist_ok=True)


def alive(name):
    try:
        with open(os.path.join(RUN, name + ".pid")) as f:
            pid = int(f.read().split()[0])
        os.kill(pid, 0)
        with open("/proc/%d/comm" % pid) as f:
            return pid if f.read().strip().startswith(name[:15]) else None
    except (OSError, ValueError, IndexError):
        return None


def start_munge():
    if sh("munge", "-n", check=False).returncode == 0:
        return
    if not os.path.exists("/etc/munge/munge.key"):
        sh("mungekey", "--create", "--keyfile=/etc/munge/munge.key")
    shutil.chown("/etc/munge/munge.key", "munge", "munge")
    os.chmod("/etc/munge/munge.key", 0o400)
    for d in ("/run/munge", "/var/lib/munge", "/var/log/munge"):
        os.makedirs(d, exist_ok=True)
        shutil.chown(d, "munge", "munge")
    sh("runuser", "-u", "munge", "--", "/usr/sbin/munged")
    deadline = time.monotonic() + 20
    while sh("munge", "-n", check=False).returncode != 0:
        if time.monotonic() > deadline:
            raise SystemExit("munged did not come up")
        time.sleep(0.2)


def node_state():
    return sh("sinfo", "-h", "-o", "%T", check=False).stdout.strip()


def wait_idle(host):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        st = node_state()
        if st.startswith("idle") or st.startswith("mixed") or st.startswith("alloc"):
            return
        if st.startswith(("down", "drain")):
            sh("scontrol", "update", "nodename=%s" % host, "state=resume", check=False)
        time.sleep(0.5)
    raise SystemExit("node not idle: %r" % node_state())


def probe():
    jid = sh("sbatch", "--parsable", "--array=0-1", "--output=/dev/null", "--wrap", "true").stdout.strip()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        out = sh("scontrol", "show", "job", "-o", jid, check=False).stdout
        states = [w.split("=", 1)[1] for w in out.split() if w.startswith("JobState=")]
        if len(states) == 2 and all(s == "COMPLETED" for s in states):
            return
        if any(s in ("FAILED", "CANCELLED", "NODE_FAIL") for s in states):
            break
        time.sleep(0.3)
    raise SystemExit("a probe array did not complete: %s" % out)


def logs():
    for name in ("slurmctld.log", "slurmd.log"):
        try:
            with open(os.path.join(LOGS, name)) as f:
                print("--- %s\n%s" % (name, "".join(f.readlines()[-30:])), file=sys.stderr)
        except OSError:
            pass


def start():
    install()
    host = socket.gethostname().split(".")[0]
    os.makedirs(RUN, exist_ok=True)
    configure(host)
    start_munge()
    if not alive("slurmctld"):
        sh("/usr/sbin/slurmctld")
    if not alive("slurmd"):
        sh("/usr/sbin/slurmd")
    try:
        wait_idle(host)
        probe()
    except SystemExit:
        logs()
        raise
    print("slurm cluster up: node %s, %d cpus" % (host, os.cpu_count() or 1))


def stop():
    sh("scancel", "--full", "--user=root", check=False)
    for u in sh("squeue", "-h", "-o", "%u", check=False).stdout.split():
        sh("scancel", "--user=%s" % u, check=False)
    for name in ("slurmd", "slurmctld"):
        pid = alive(name)
        if pid:
            os.kill(pid, 15)
    deadline = time.monotonic() + 20
    while (alive("slurmd") or alive("slurmctld")) and time.monotonic() < deadline:
        time.sleep(0.2)
    for name in ("slurmd", "slurmctld"):
        sh("pkill", "-x", name, check=False)


def main():
    action = sys.argv[1] if len(sys.argv) > 1 else ""
    if action == "start":
        start()
    elif action == "stop":
        stop()
    elif action == "status":
        sys.exit(0 if alive("slurmctld") and alive("slurmd") and node_state() else 1)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
