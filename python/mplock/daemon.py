# SPDX-License-Identifier: MIT
"""Finding mplockd, and starting one when none answers.

The socket is picked as mplockctl picks it: the socket argument, else
$MPLOCK_SOCKET, else the user's instance if its socket exists (root: the
system's), else the system's (mplock.client.default_socket). When nothing
answers there, connect() starts an instance and says so in one line on
stderr:

- a user's instance (root: the system instance) through systemd when a
  manager runs and mplockd's units are installed (`systemctl [--user] start
  mplockd.socket`), else as a transient unit (`systemd-run [--user] --unit
  mplockd-py`), else as a detached process in its own session (its output
  in mplockd.log beside the state directory);
- with $MPLOCK_SOCKET (or a socket argument) naming a socket nobody
  listens on: an mplockd of the caller's on it (`--user --socket PATH`, its
  default state directory), started the same way minus the installed units.

mplockd is $MPLOCK_BUILD/mplockd, else mplock._paths.BINDIR/mplockd (an
installed package), else the one on $PATH."""

import os
import shutil
import socket
import subprocess
import sys
import time
from typing import List, Optional

from . import client

START_TIMEOUT = 10.0
# The processes started here, kept so that they are not reported as leaked
# (and for tests, which stop them).
started: List[subprocess.Popen] = []


def socket_path(sock: Optional[str] = None) -> str:
    """The socket a call talks to: sock, $MPLOCK_SOCKET, or mplockctl's default."""
    return sock or os.environ.get("MPLOCK_SOCKET") or client.default_socket()


def reachable(path: str) -> bool:
    """Whether something accepts connections on path."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        s.settimeout(2)
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def find_mplockd() -> str:
    """The mplockd binary: $MPLOCK_BUILD, the installed package's BINDIR, $PATH."""
    build = os.environ.get("MPLOCK_BUILD")
    if build:
        path = os.path.join(os.path.abspath(build), "mplockd")
        if os.access(path, os.X_OK):
            return path
        raise RuntimeError("MPLOCK_BUILD is %s, but %s is not there: build mplock first (ninja -C %s)" %
                           (build, path, build))
    try:
        from . import _paths  # written by meson install
        path = os.path.join(_paths.BINDIR, "mplockd")
        if os.access(path, os.X_OK):
            return path
    except ImportError:
        pass
    path = shutil.which("mplockd")
    if path:
        return path
    raise RuntimeError("mplockd is not installed and no daemon answers: install mplock, or run from the "
                       "source tree with MPLOCK_BUILD=<build directory>")


def _is_root() -> bool:
    return os.geteuid() == 0


def _scope(system: bool) -> List[str]:
    return [] if system else ["--user"]


def _systemctl(system: bool, *args: str) -> Optional[subprocess.CompletedProcess]:
    """systemctl [--user] ARGS; None if there is no systemctl."""
    try:
        return subprocess.run(["systemctl"] + _scope(system) + list(args), capture_output=True, text=True,
                              timeout=15, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None


def _manager_runs(system: bool) -> bool:
    """Whether a systemd manager (the user's, or the system's) answers.
    is-system-running prints running, degraded, starting, ... then, and
    offline (or fails to connect) otherwise."""
    p = _systemctl(system, "is-system-running")
    state = p.stdout.strip() if p else ""
    return state in ("running", "degraded", "starting", "initializing", "maintenance")


def _units_installed(system: bool) -> bool:
    p = _systemctl(system, "show", "-p", "LoadState", "--value", "mplockd.socket")
    return bool(p) and p.returncode == 0 and p.stdout.strip() == "loaded"


def log_dir(system: bool) -> str:
    """Where a detached mplockd's output goes (mplockd.log): beside the
    instance's state directory."""
    if system:
        return "/var/log"
    base = os.environ.get("XDG_STATE_HOME")
    if not base or not base.startswith("/"):
        base = os.path.join(os.path.expanduser("~"), ".local", "state")
    return base


def _start_detached(argv: List[str], system: bool) -> subprocess.Popen:
    base = log_dir(system)
    os.makedirs(base, mode=0o700, exist_ok=True)
    log = open(os.path.join(base, "mplockd.log"), "ab")
    try:
        # Its own session: the terminal's Ctrl-C and hangup do not reach it.
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                             close_fds=True, cwd="/")
    finally:
        log.close()
    started.append(p)
    return p


def start(sock: Optional[str], system: bool) -> str:
    """Starts an mplockd: the instance's default one (sock None), which
    installed units serve, or one on sock. Returns how it was started."""
    argv = [find_mplockd(), "--system" if system else "--user"] + (["--socket", sock] if sock else [])
    if _manager_runs(system):
        if sock is None and _units_installed(system):
            p = _systemctl(system, "start", "mplockd.socket")
            if p and p.returncode == 0:
                return "systemd"
        # A transient unit: systemd keeps it running past this program,
        # and --collect lets the same name be used again after a failure.
        cmd = ["systemd-run"] + _scope(system) + ["--unit", "mplockd-py", "--collect", "--quiet",
                                                  "-p", "Type=notify", "-p", "NotifyAccess=main"]
        try:
            p = subprocess.run(cmd + argv, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
            if p.returncode == 0:
                return "systemd-run"
        except (OSError, subprocess.TimeoutExpired):
            pass
    _start_detached(argv, system)
    return "detached"


def _wait_listening(sock: str, system: bool, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.01
    while time.monotonic() < deadline:
        if reachable(sock):
            return
        for p in started:
            if p.poll() is not None:
                raise RuntimeError("mplockd exited with status %d at start; see %s" %
                                   (p.returncode, os.path.join(log_dir(system), "mplockd.log")))
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
    raise RuntimeError("mplockd was started but does not answer on %s after %d s" % (sock, timeout))


def connect(sock: Optional[str] = None, autostart: bool = True) -> client.Client:
    """A Client of the daemon for sock (see socket_path); with autostart,
    one is started first when nothing answers (see the module's doc)."""
    path = socket_path(sock)
    try:
        return client.Client(path)
    except OSError:
        if not autostart:
            raise
    if sock or os.environ.get("MPLOCK_SOCKET"):
        # A socket of the caller's choice: an instance of the caller's own
        # on it, with that instance's default state directory.
        system, own = False, path
    else:
        # mplockctl's default: the system instance for root, the user's
        # own otherwise (default_socket() names the system's socket when a
        # user has no instance yet).
        system, own = _is_root(), None
        path = _default_instance_socket(system)
        if not path:
            raise RuntimeError("no mplockd answers and a user instance has no place for its socket "
                               "(no $XDG_RUNTIME_DIR): set MPLOCK_SOCKET")
    if not reachable(path):
        start(own, system)
        _wait_listening(path, system, START_TIMEOUT)
        print("mplock: started mplockd (%s instance) at %s" % ("system" if system else "user", path),
              file=sys.stderr, flush=True)
    return client.Client(path)


def _default_instance_socket(system: bool) -> Optional[str]:
    """The socket mplockd picks by itself (--system, or --user)."""
    if system:
        return client.SYSTEM_SOCKET
    run = os.environ.get("XDG_RUNTIME_DIR")
    if not run or not run.startswith("/"):
        run = "/run/user/%d" % os.getuid()
        if not os.access(run, os.W_OK):
            return None
    return os.path.join(run, "mplockd", client.INTERFACE)
