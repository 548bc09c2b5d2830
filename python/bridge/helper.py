# SPDX-License-Identifier: MIT
"""The Python half of mplock's bridge module (mplock-python*.so).

Embedded in the bridge and run in its interpreter, in the job runner and
in every worker forked from it: what is done once per job (loading the
payload, applying the caller's directory, sys.path and environment),
what is rare (pickling a result that is not None, str or bytes, formatting
an exception) and the save callback's batches. The per-item path (calling
process, encoding None/str/bytes) is C, in bridge.c.

The payload is the caller's: python/mplock writes it (see docs/python.md)
and this process runs as the caller, so unpickling it runs nothing the
caller could not run anyway. It is still only read from a regular file of
ours, not a link, and within a size limit."""

import os
import pickle
import sys

import _mplock_bridge as _c

FORMAT = 1
PAYLOAD_MAX = 1 << 30
MESSAGE_MAX = 60000


_SITE_PACKAGES = None


def _site_packages():
    """This Python's site directories (site imported without running it:
    the bridge starts Python without site), found once, in the warm-up."""
    global _SITE_PACKAGES
    if _SITE_PACKAGES is None:
        import site
        _SITE_PACKAGES = site.getsitepackages()
    return list(_SITE_PACKAGES)


def _read_payload(path):
    import stat
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("%s is not a regular file" % path)
        if st.st_uid != os.getuid():
            raise ValueError("%s belongs to uid %d, not to the job's owner" % (path, st.st_uid))
        if st.st_size > PAYLOAD_MAX:
            raise ValueError("%s is larger than %d bytes" % (path, PAYLOAD_MAX))
        chunks, left = [], st.st_size
        while left > 0:
            b = os.read(fd, min(left, 1 << 24))
            if not b:
                break
            chunks.append(b)
            left -= len(b)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _apply_path(caller_path):
    """The interpreter's own standard library first (the caller may be
    another build of the same version, whose stdlib would not match this
    libpython), then the caller's entries, then this Python's site
    directories (where Debian's python3-cloudpickle is, for a caller of
    another build that found it there)."""
    stdlib = list(sys.path)
    rest = _site_packages()
    new = []
    for p in stdlib + [p for p in caller_path if isinstance(p, str)] + rest:
        if p not in new:
            new.append(p)
    sys.path[:] = new


def _payload(path, inline):
    """The payload file, else (none was written since the job's Submit)
    the payload sent inline in the job's shared data."""
    try:
        return _read_payload(path)
    except FileNotFoundError:
        if inline is None:
            raise
    import binascii
    return binascii.a2b_base64(inline)


def load(path, version, inline=None):
    """Reads the payload, applies the caller's context; returns (process,
    init, save, shared, batch, output_filepath)."""
    outer = pickle.loads(_payload(path, inline))
    if not isinstance(outer, dict) or outer.get("format") != FORMAT:
        raise ValueError("%s is not an mplock Python payload of format %d" % (path, FORMAT))
    if outer.get("version") != version:
        raise ValueError("the job was submitted from Python %s; this bridge runs Python %s" %
                         (outer.get("version"), version))
    os.chdir(outer["cwd"])
    _apply_path([os.getcwd() if p == "" else p for p in outer.get("sys_path", [])])
    env = outer.get("env", {})
    os.environ.clear()
    os.environ.update({k: v for k, v in env.items() if isinstance(k, str) and isinstance(v, str)
                       and k and "=" not in k and "\0" not in k + v})
    cb = pickle.loads(outer["callbacks"])
    if not callable(cb.get("process")):
        raise ValueError("the payload's process is not callable")
    return (cb["process"], cb.get("init"), cb.get("save"), cb.get("shared", {}), bool(cb.get("batch")),
            outer["output_filepath"])


def encode(value):
    """A result that is not None, str or bytes: b"P" and its pickle."""
    try:
        return b"P" + pickle.dumps(value, protocol=5)
    except Exception:
        pass  # cloudpickle's error, if it fails too, is the one to show
    import cloudpickle
    return b"P" + cloudpickle.dumps(value, protocol=5)


def decode(data):
    """The inverse of encode() and of bridge.c's tags; python/mplock's
    results.decode() reads the same format in the caller (this module
    cannot import the caller's package)."""
    tag, body = data[:1], data[1:]
    if tag == b"N":
        return None
    if tag == b"S":
        return body.decode("utf-8", "surrogatepass")
    if tag == b"B":
        return body
    if tag == b"P":
        return pickle.loads(body)
    raise ValueError("a result of an unknown form (tag %r)" % tag)


def describe(exc):
    """An exception as the caller's side reads it: "module:qualname" on the
    first line, then the traceback."""
    import traceback
    t = type(exc)
    text = "".join(traceback.format_exception(t, exc, exc.__traceback__))
    head = "%s:%s\n" % (t.__module__, t.__qualname__)
    out = head + text
    if len(out) > MESSAGE_MAX:
        out = head + "...\n" + text[-(MESSAGE_MAX - len(head) - 4):]
    return out


def batch_results(value, n):
    """process's return in a batch job: a list or tuple of n results."""
    if not isinstance(value, (list, tuple)) or len(value) != n:
        got = "a %s of %d" % (type(value).__name__, len(value)) if isinstance(value, (list, tuple)) else \
            "a %s" % type(value).__name__
        raise TypeError("process was given %d items and must return a list of %d results; it returned %s" %
                        (n, n, got))
    return value


def save(callback, output_filepath, entries):
    """entries: (item, result bytes) of the batch's successful items."""
    names = [e[0] for e in entries]
    results = [decode(e[1]) for e in entries]
    callback(output_filepath, results, names)


class LogWriter:
    """sys.stdout and sys.stderr in the runner: lines to the job log."""

    def __init__(self, level):
        self.level = level
        self.buf = ""

    def writable(self):
        return True

    def isatty(self):
        return False

    def write(self, s):
        self.buf += s
        if "\n" in self.buf:
            *lines, self.buf = self.buf.split("\n")
            for line in lines:
                _c.log(self.level, line)
        if len(self.buf) > 4096:
            self.flush()
        return len(s)

    def flush(self):
        if self.buf:
            _c.log(self.level, self.buf)
            self.buf = ""


def runner_output():
    sys.stdout = LogWriter(6)
    sys.stderr = LogWriter(4)


def worker_output():
    """A worker's own stdout and stderr are captured into the job log
    with its number; unbuffered, so that a crash loses no line."""
    for w in (sys.stdout, sys.stderr):
        if isinstance(w, LogWriter):
            w.flush()
    sys.stdout = sys.__stdout__
    sys.stderr = sys.__stderr__


def warm():
    """In the user's agent, once: what every job's callbacks will import,
    so that the runners forked from it have it already. Failing is fine:
    a job then imports it itself."""
    import binascii  # noqa: F401 (an inline payload)
    import stat  # noqa: F401 (_read_payload)
    site = _site_packages()
    sys.path.extend(p for p in site if p not in sys.path)
    try:
        import cloudpickle  # noqa: F401
        import traceback  # noqa: F401
    except ImportError:
        pass
    sys.path[:] = [p for p in sys.path if p not in site]


def flush():
    for w in (sys.stdout, sys.stderr):
        try:
            w.flush()
        except Exception:
            pass
