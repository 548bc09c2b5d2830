# SPDX-License-Identifier: MIT
"""A Varlink client for mplockd in standard-library Python.

    from mplock import Client
    c = Client()                      # $MPLOCK_SOCKET, the user's instance, or the system's
    job = c.submit(module="/usr/lib/mplock/square.so", items=["1", "2"], output="/tmp/out")
    job.wait()
    for r in job.results():           # input order, paged
        print(r["index"], r.get("result"))

Every method of io.mplock.Manager is here; a Varlink error is raised as
the exception of its name (NoSuchJob, PermissionDenied, InvalidParameter
with .parameter and .reason, ...). One connection per Client, one call at
a time on it (as the protocol has it); a Client is not for several threads
at once."""

import base64
import json
import os
import socket

INTERFACE = "io.mplock.Manager"
SYSTEM_SOCKET = "/run/mplockd/io.mplock.Manager"
# A reply past this is refused (the daemon's own message limit is 16 MiB by default).
REPLY_MAX = 256 << 20


class MplockError(Exception):
    """An error mplockd answered with: .error is its Varlink name, .parameters its fields."""

    def __init__(self, error, parameters=None):
        self.error = error
        self.parameters = parameters or {}
        detail = ", ".join("%s=%s" % (k, v) for k, v in sorted(self.parameters.items()))
        super().__init__("%s%s" % (error, ": " + detail if detail else ""))


class NoSuchJob(MplockError):
    pass


class PermissionDenied(MplockError):
    pass


class InvalidParameter(MplockError):
    @property
    def parameter(self):
        return self.parameters.get("parameter")

    @property
    def reason(self):
        return self.parameters.get("reason")


class JobNotActive(MplockError):
    pass


class JobActive(MplockError):
    pass


class JobNotPaused(MplockError):
    pass


class NothingToRetry(MplockError):
    pass


class TooManyJobs(MplockError):
    pass


class ResultsUnavailable(MplockError):
    pass


class SubmitFailed(MplockError):
    pass


class StorageError(MplockError):
    pass


class ShuttingDown(MplockError):
    pass


class InternalError(MplockError):
    pass


_ERRORS = {cls.__name__: cls for cls in (NoSuchJob, PermissionDenied, InvalidParameter, JobNotActive, JobActive,
                                         JobNotPaused, NothingToRetry, TooManyJobs, ResultsUnavailable, SubmitFailed,
                                         StorageError, ShuttingDown, InternalError)}


def default_socket():
    """As mplockctl picks it: $MPLOCK_SOCKET, else the user instance's
    socket if it exists (root: the system's), else the system instance's."""
    env = os.environ.get("MPLOCK_SOCKET")
    if env:
        return env
    if os.geteuid() != 0:
        run = os.environ.get("XDG_RUNTIME_DIR") or "/run/user/%d" % os.getuid()
        user = os.path.join(run, "mplockd", INTERFACE)
        if os.path.exists(user):
            return user
    return SYSTEM_SOCKET


def _bytes_fields(r):
    """item_base64 and result_base64 (bytes that are not UTF-8) as bytes
    in item and result."""
    for name in ("item", "result"):
        b = r.pop(name + "_base64", None)
        if b is not None:
            r[name] = base64.b64decode(b, validate=True)
    return r


class Job:
    """A job of mplockd's, by id; .info is the last Job object seen."""

    def __init__(self, client, info):
        self.client = client
        self.info = info
        self.id = info["id"]

    def __repr__(self):
        return "<mplock.Job %d %s>" % (self.id, self.info.get("state", "?"))

    def _update(self, reply):
        self.info = reply["job"]
        return self.info

    def status(self):
        return self._update(self.client.call("Status", {"id": self.id}))

    def wait(self, progress=False):
        """Until the job has ended (or was paused by a fault, which its
        error says). With progress, a callable given the Job object about
        once a second meanwhile."""
        if not progress:
            return self._update(self.client.call("Wait", {"id": self.id}))
        for reply in self.client.call_more("Wait", {"id": self.id}):
            self._update(reply)
            progress(self.info)
        return self.info

    def results(self, offset=0, limit=1000):
        """Committed results in input order: dicts with index, item and
        result, or error {code, message}, or too_large (bytes: read the
        results file). item and result are str when they are UTF-8, else
        bytes (sent base64-encoded). Paged; each page is one call."""
        while offset is not None:
            reply = self.client.call("Results", {"id": self.id, "offset": offset, "limit": limit})
            for r in reply.get("results", []):
                yield _bytes_fields(r)
            offset = reply.get("next")

    def cancel(self):
        return self._update(self.client.call("Cancel", {"id": self.id}))

    def pause(self):
        return self._update(self.client.call("Pause", {"id": self.id}))

    def resume(self):
        return self._update(self.client.call("Resume", {"id": self.id}))

    def retry(self, codes=None, items=None):
        """Runs the failed (and unfinished) items again; with codes (error
        codes) or items ((first, last) index pairs, both included), only
        the failed items that match (Retry in docs/protocol.md)."""
        params = {"id": self.id}
        if codes:
            params["codes"] = [int(c) for c in codes]
        if items:
            params["items"] = [{"first": int(a), "last": int(b)} for a, b in items]
        return self._update(self.client.call("Retry", params))

    def remove(self):
        self.client.call("Remove", {"id": self.id})


class Client:
    def __init__(self, socket_path=None, timeout=None):
        self.socket_path = socket_path or default_socket()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(self.socket_path)
        except OSError:
            self.sock.close()
            raise
        self.buf = b""

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- the wire: JSON objects ended by NUL ---------------------------------

    def _send(self, method, parameters, more=False):
        msg = {"method": "%s.%s" % (INTERFACE, method)}
        if parameters:
            msg["parameters"] = parameters
        if more:
            msg["more"] = True
        self.sock.sendall(json.dumps(msg, separators=(",", ":")).encode() + b"\0")

    def _receive(self):
        while b"\0" not in self.buf:
            data = self.sock.recv(1 << 20)
            if not data:
                raise ConnectionError("mplockd closed the connection")
            self.buf += data
            if len(self.buf) > REPLY_MAX:
                raise ConnectionError("reply from mplockd larger than %d bytes" % REPLY_MAX)
        msg, self.buf = self.buf.split(b"\0", 1)
        reply = json.loads(msg)
        if "error" in reply:
            name = reply["error"]
            short = name.rsplit(".", 1)[-1] if name.startswith(INTERFACE + ".") else name
            raise _ERRORS.get(short, MplockError)(name, reply.get("parameters"))
        return reply

    def call(self, method, parameters=None):
        """One call; its reply's parameters, or the error raised."""
        self._send(method, parameters)
        return self._receive().get("parameters", {})

    def call_more(self, method, parameters=None):
        """A call with "more": yields each reply's parameters, the last one
        included."""
        self._send(method, parameters, more=True)
        while True:
            reply = self._receive()
            yield reply.get("parameters", {})
            if not reply.get("continues"):
                return

    # --- the methods ----------------------------------------------------------

    def submit(self, module, output, input=None, items=None, **options):
        """A new job: module and output absolute paths, and either input (a
        file, read as the caller) or items (a list of str). Options are
        Submit's: workers, shared (a dict), save_batch, batch_size, name,
        timeout, memory_max, max_attempts, halt_on_failure, separator, umask
        (default: the caller's), on_end (a shell command run as the caller
        each time the job ends). Returns the Job, durable on disk."""
        return self.job_of(self.call("Submit", self.submit_parameters(module, output, input, items, **options)))

    def submit_parameters(self, module, output, input=None, items=None, **options):
        """Submit's parameters for submit()'s arguments (for pipeline())."""
        params = {"module": module, "output": output}
        if input is not None:
            params["input"] = input
        if items is not None:
            params["items"] = list(items)
        if "umask" not in options:
            mask = os.umask(0o022)
            os.umask(mask)
            options["umask"] = mask
        params.update({k: v for k, v in options.items() if v is not None})
        return params

    def job_of(self, reply):
        """The Job of Submit's reply."""
        # mplockd of before the reply carried it: ask.
        return Job(self, reply.get("job") or self.call("Status", {"id": reply["id"]})["job"])

    def pipeline(self, *calls):
        """Several calls, (method, parameters) each, sent at once and
        answered in order (Varlink's pipelining): one round trip. Returns
        each reply's parameters, or the MplockError it was, in that order."""
        for method, parameters in calls:
            self._send(method, parameters)
        out = []
        for _ in calls:
            try:
                out.append(self._receive().get("parameters", {}))
            except MplockError as e:
                out.append(e)
        return out

    def job(self, job_id):
        return Job(self, self.call("Status", {"id": job_id})["job"])

    def jobs(self, name=None, output=None):
        """The caller's jobs (everyone's for root and the admin group),
        oldest first; with name or output, only those of that name and
        output directory."""
        params = {k: v for k, v in (("name", name), ("output", output)) if v is not None}
        return [Job(self, info) for info in self.call("List", params or None).get("jobs", [])]

    def info(self):
        return self._call_service("GetInfo")

    def _call_service(self, method):
        self.sock.sendall(json.dumps({"method": "org.varlink.service." + method}).encode() + b"\0")
        return self._receive().get("parameters", {})
