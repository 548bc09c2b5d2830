#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A real single-node Slurm cluster for the tests, from Debian 12's
slurm-wlm (Slurm 22.05) and munge, on a machine where systemd is not PID 1.

The Slurm tests need sbatch job arrays that really run, as the users who
submit them. This script installs what is missing, then starts munged as
the munge user and slurmctld and slurmd as plain daemons, with a
slurm.conf written for this host: SlurmUser=root, auth/munge,
proctrack/linuxproc, task/none, select/cons_tres with CR_CPU (each 1-CPU
array task takes one CPU, so several run at once). cgroup.conf names
cgroup/v1; these plugins do not use it, but it must parse.

Usage: cluster.py start|stop|status
  start   install, configure, start; check that an array completes
          (a healthy cluster started here before is only checked)
  stop    cancel every job, stop the daemons this script started
  status  exit 0 if the cluster is healthy

The files it writes carry MARK; it overwrites no file without it. The pids
of the daemons it started are kept in RUN, and only those are stopped.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

MARK = "# written by mplock tests/slurm/cluster.py"
RUN = "/run/mplock-test-slurm"
CONF = "/etc/slurm/slurm.conf"
CGROUP_CONF = "/etc/slurm/cgroup.conf"
LOGS = "/var/log/slurm"
STATE = "/var/lib/slurm"
MUNGE_KEY = "/etc/munge/munge.key"
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
SLURMDS = ("slurmd", "slurmctld")  # in the order they are stopped
UP = ("idle", "mixed", "allocated")  # node states of a working cluster


def sh(*cmd, check=True, timeout=30):
    """Runs cmd quietly; a missing command or a timeout is a failure."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        p = subprocess.CompletedProcess(cmd, 127, "", str(e))
    if check and p.returncode != 0:
        raise SystemExit("%s failed (%d): %s" % (" ".join(cmd), p.returncode, (p.stderr or p.stdout).strip()))
    return p


def host():
    return socket.gethostname().split(".")[0]


def cpus():
    return os.cpu_count() or 1


# --- packages


def install():
    """Installs slurm-wlm and munge if missing; True if it installed."""
    if all(shutil.which(b, path=PATH) for b in ("slurmctld", "slurmd", "sbatch", "munged")):
        return False
    sudo = [] if os.geteuid() == 0 else ["sudo"]  # main() made us root if it could
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = sudo + ["apt-get", "install", "-y", "-q", "--no-install-recommends", "slurm-wlm", "munge"]
    if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
        subprocess.run(sudo + ["apt-get", "update", "-q"], env=env, capture_output=True)
        p = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit("apt-get install slurm-wlm munge failed:\n" + p.stdout[-2000:] + p.stderr[-2000:])
    return True


# --- configuration


def memory_mb():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 1024


def slurm_conf():
    mem = max(256, memory_mb() * 9 // 10 - 256)
    return "\n".join([
        "ClusterName=mplocktest",
        # Addresses given: the host's name need not resolve.
        "SlurmctldHost=%s(127.0.0.1)" % host(),
        "SlurmUser=root",
        "AuthType=auth/munge",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_CPU",
        "SchedulerType=sched/backfill",
        # Pending jobs tried every second, not every third (the default).
        "SchedulerParameters=batch_sched_delay=0",
        "StateSaveLocation=%s/slurmctld" % STATE,
        "SlurmdSpoolDir=%s/slurmd" % STATE,
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
        "MailProg=/bin/true",
        "NodeName=%s NodeAddr=127.0.0.1 CPUs=%d RealMemory=%d State=UNKNOWN" % (host(), cpus(), mem),
        "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
        ""])


def write_marked(path, text):
    """Writes MARK + text to path unless it is there already; True if written.
    A file without MARK is someone else's and is left alone."""
    text = MARK + "\n" + text
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
        if MARK not in old:
            raise SystemExit("%s exists and was not written by this script: not overwriting it" % path)
        if old == text:
            return False
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.chmod(path + ".tmp", 0o644)
    os.replace(path + ".tmp", path)
    return True


def configure():
    """Writes the configuration and makes the directories; True if changed."""
    changed = write_marked(CONF, slurm_conf())
    changed = write_marked(CGROUP_CONF, "CgroupPlugin=cgroup/v1\n") or changed
    for d in (STATE + "/slurmctld", STATE + "/slurmd", LOGS, RUN):
        os.makedirs(d, exist_ok=True)
    return changed


# --- processes


def comm(pid):
    """The command of a live pid; None for a zombie, which PID 1 here may
    be slow to reap, or for no process."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return None
    name, state = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:][:1]
    return None if state in ("Z", "X", "") else name


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def alive(name):
    """The pid of the daemon name recorded in RUN, if it still runs."""
    pid = read_pid(os.path.join(RUN, name + ".pid"))
    return pid if pid and comm(pid) == name[:15] else None


def named(name):
    """Pids whose command is exactly name, as pkill -x matches them."""
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and comm(int(p)) == name]


def kill(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def wait_gone(pids, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pids = [p for p in pids if comm(p) is not None]
        if not pids:
            return True
        time.sleep(0.1)
    return False


def end(pids, seconds=15):
    """SIGTERM, then SIGKILL for what still runs after seconds."""
    kill(pids, signal.SIGTERM)
    if not wait_gone(pids, seconds):
        kill(pids, signal.SIGKILL)
        wait_gone(pids, 5)


# --- munge


def munge_ok():
    return sh("munge", "-n", check=False, timeout=10).returncode == 0


def munge_key():
    if not os.path.exists(MUNGE_KEY):
        if shutil.which("mungekey", path=PATH):
            sh("mungekey", "--create", "--keyfile=" + MUNGE_KEY)
        else:
            sh("/usr/sbin/create-munge-key", "-f")
    shutil.chown(MUNGE_KEY, "munge", "munge")
    os.chmod(MUNGE_KEY, 0o400)


def munge_dirs():
    for d, mode in (("/etc/munge", 0o700), ("/run/munge", 0o755), ("/var/lib/munge", 0o711), ("/var/log/munge", 0o700)):
        os.makedirs(d, exist_ok=True)
        shutil.chown(d, "munge", "munge")
        os.chmod(d, mode)


def adopt_munged():
    """Records the running munged as ours (apt-get just started it)."""
    pid = read_pid("/run/munge/munged.pid")
    if pid and comm(pid) == "munged":
        with open(os.path.join(RUN, "munged.pid"), "w") as f:
            f.write("%d\n" % pid)


def start_munge(installed):
    if munge_ok():
        if installed and not alive("munged"):
            adopt_munged()
        return
    munge_key()
    munge_dirs()
    sh("runuser", "-u", "munge", "--", "/usr/sbin/munged")
    deadline = time.monotonic() + 15
    while not munge_ok():
        if time.monotonic() > deadline:
            raise SystemExit("munged did not come up: " + tail("/var/log/munge/munged.log"))
        time.sleep(0.1)
    adopt_munged()


# --- slurm


def node_state():
    return sh("sinfo", "-h", "-o", "%T", check=False, timeout=15).stdout.strip()


def start_slurm():
    for name in ("slurmctld", "slurmd"):
        if not alive(name):
            sh("/usr/sbin/" + name)


def wait_idle():
    t0 = time.monotonic()
    while time.monotonic() < t0 + 60:
        st = node_state()
        if st in UP:
            return
        dead = [n for n in SLURMDS if not alive(n)]
        if dead and time.monotonic() > t0 + 3:  # a daemon forks, then may fail
            raise SystemExit("%s exited (node %r)" % (" and ".join(dead), st))
        if st.startswith(("down", "drain")):
            sh("scontrol", "update", "nodename=" + host(), "state=resume", check=False)
        time.sleep(0.3)
    raise SystemExit("node %s not idle after 60 s: %r" % (host(), node_state()))


def job_states(jid):
    out = sh("scontrol", "show", "job", "-o", jid, check=False).stdout
    return [w.split("=", 1)[1] for w in out.split() if w.startswith("JobState=")], out


def probe():
    """Submits a 2-task array and waits for both tasks to complete."""
    jid = sh("sbatch", "--parsable", "--array=0-1", "--chdir=/tmp", "--output=/dev/null",
             "--wrap", "true").stdout.strip().split(";")[0]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        states, out = job_states(jid)
        if len(states) == 2 and all(s == "COMPLETED" for s in states):
            return
        if any(s in ("FAILED", "CANCELLED", "NODE_FAIL", "BOOT_FAIL", "OUT_OF_MEMORY", "TIMEOUT") for s in states):
            break
        time.sleep(0.2)
    raise SystemExit("the probe array %s did not complete:\n%s" % (jid, out))


def tail(path, n=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError as e:
        return str(e)


def show_logs():
    for name in ("slurmctld.log", "slurmd.log"):
        print("--- %s/%s\n%s" % (LOGS, name, tail(os.path.join(LOGS, name))), file=sys.stderr)


def stop_slurm():
    """Stops our slurmd and slurmctld; by name if their pid files are lost."""
    for name in SLURMDS:
        pid = alive(name)
        if pid:
            end([pid])
    for name in SLURMDS + ("slurmstepd",):
        end(named(name), 5)
    for name in SLURMDS:
        try:
            os.unlink(os.path.join(RUN, name + ".pid"))
        except OSError:
            pass


def cancel_all():
    """Cancels every job and waits (bounded) until none runs."""
    if not alive("slurmctld"):
        return
    ids = sh("squeue", "-h", "-o", "%A", check=False).stdout.split()
    if ids:
        sh("scancel", *sorted(set(ids)), check=False)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        p = sh("squeue", "-h", "-t", "PD,R,CG,S", "-o", "%A", check=False, timeout=10)
        if p.returncode != 0 or not p.stdout.strip():
            return
        time.sleep(0.2)


def stop_munge():
    pid = alive("munged")
    if pid:
        end([pid])
    try:
        os.unlink(os.path.join(RUN, "munged.pid"))
    except OSError:
        pass


# --- actions


def start():
    installed = install()
    os.makedirs(RUN, exist_ok=True)
    if configure() and any(alive(n) for n in SLURMDS):
        stop_slurm()  # running with an older configuration
    start_munge(installed)
    try:
        start_slurm()
        wait_idle()
        probe()
    except SystemExit as e:
        print(e, file=sys.stderr)
        show_logs()
        sys.exit(1)
    print("slurm cluster up: node %s, %d cpus" % (host(), cpus()))


def stop():
    cancel_all()
    stop_slurm()
    stop_munge()


def status():
    down = ([] if munge_ok() else ["munged"]) + [n for n in SLURMDS if not alive(n)]
    if down:  # sinfo would wait ~10 s for a slurmctld that is not there
        print("not healthy: not running: " + ", ".join(down))
        sys.exit(1)
    st = node_state()
    print("healthy" if st in UP else "not healthy: node %r" % st)
    sys.exit(0 if st in UP else 1)


def main():
    actions = {"start": start, "stop": stop, "status": status}
    if len(sys.argv) != 2 or sys.argv[1] not in actions:
        raise SystemExit(__doc__)
    if os.geteuid() != 0 and sys.argv[1] != "status" and shutil.which("sudo"):
        os.execvp("sudo", ["sudo", sys.executable] + sys.argv)
    actions[sys.argv[1]]()


if __name__ == "__main__":
    main()
