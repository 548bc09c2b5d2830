# SPDX-License-Identifier: MIT
"""The mp_lock-compatible API, run by mplockd, and mplock.map.

    from mplock import mp_lock, mp_lock_batch, mp_lock_value, is_mp_lock_completed

    def process(data, shared_data, init_values):
        return int(data) ** 2

    mp_lock([str(i) for i in range(10)], process, None, 4, "out")

Each call is one mplockd job: the items go to the daemon, the functions
(pickled with cloudpickle) to mplock's Python bridge, which runs them in
the job's workers with the caller's Python, working directory, sys.path
and environment. The job is named after its output directory, its kind
and its items, so that the same call again finds it:

- still queued or running (the caller died): it is attached to;
- paused (Ctrl-C paused it): it is resumed, then attached to;
- completed: the call returns at once (mp_lock_value with the results);
- completed with failures, failed or cancelled: it is retried, so that
  only what failed or never ran runs again, with the current code;
- gone, or its output directory was deleted: a new job runs everything.

A job found keeps the options it was submitted with (num_procs,
save_batch, max_attempts); a different data_list is a different job, which
runs every item (mp_lock kept a list of the items done instead).

A call that finds its job writes the payload file first (a new small job
carries its payload in the Submit instead), so what runs from then on is
the code of the latest call."""

import functools
import hashlib
import importlib
import os
import pickle
import sys
import time
import types
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

from . import client as _client
from . import daemon as _daemon
from . import payload as _payload
from . import results as _results
from .progress import Progress

ACTIVE = ("queued", "running")
RETRYABLE = ("completed_with_failures", "failed", "cancelled")
FINAL = ("completed",) + RETRYABLE
# How long a call waits for a daemon that went away (killed, restarted by
# systemd) to answer again before it gives up.
RECONNECT_TIMEOUT = 60.0
ITEMS_FILE = "mplock-items"
# Items this small go in the Submit itself: mplockd writes its own copy and
# reads no file of the caller's (which it does in a process of the
# caller's); larger lists are a file.
ITEMS_INLINE_MAX = 64 * 1024
NUL_FREE = "list(str) > 0, without NUL characters"


class InvalidArgumentsError(Exception):
    """An argument of an mp_lock call is not valid; nothing was submitted.
    The message is "Invalid <argument>. Expected values: <what>"."""

    def __init__(self, argument: str, expected: str):
        self.argument = argument
        self.expected = expected
        super().__init__("Invalid %s. Expected values: %s" % (argument, expected))

    def __reduce__(self):
        return (type(self), (self.argument, self.expected))


# --- validation ---------------------------------------------------------------

def _is_int(value: Any) -> bool:
    # bool is an int to Python, not to mp_lock.
    return isinstance(value, int) and not isinstance(value, bool)


def _check_positive(name: str, value: Any) -> None:
    if not _is_int(value) or value <= 0:
        raise InvalidArgumentsError(name, "int > 0")


def _encode_items(name: str, items: Any, submits: bool = False) -> bytes:
    """The items as the daemon gets them: UTF-8, NUL-separated, as one
    bytes object (a million items are checked, hashed and written in a few
    passes of C, not a million calls of Python)."""
    if not isinstance(items, list) or not items:
        raise InvalidArgumentsError(name, "list(str) > 0")
    try:
        joined = "\0".join(items)  # only str (and its subclasses) join
    except TypeError:
        raise InvalidArgumentsError(name, "list(str) > 0") from None
    # A NUL inside an item: mplockd counts the items anyway, so the long
    # list of a call that submits is left to its count (Submit's
    # items_count); a short one, sent inline, is looked at here.
    if (not submits or len(joined) <= ITEMS_INLINE_MAX) and joined.count("\0") != len(items) - 1:
        raise InvalidArgumentsError(name, NUL_FREE)
    try:
        return joined.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgumentsError(name, "list(str) > 0, of valid Unicode (no lone surrogates)") from None


def _check_out_path(out_path: Any, name: str = "out_path") -> str:
    if not isinstance(out_path, str) or not out_path or "\0" in out_path:
        raise InvalidArgumentsError(name, "len(str) > 0")
    return os.path.abspath(out_path)


def _check_callable(name: str, value: Any, optional: bool) -> None:
    if value is None and optional:
        return
    if not callable(value):
        raise InvalidArgumentsError(name, "function or None" if optional else "function")


# --- one call ---------------------------------------------------------------

class _Call:
    """What a call runs: its items, output, job options and callbacks."""

    def __init__(self, kind: str, items: List[str], encoded: bytes, out_path: str, workers: int,
                 save_batch: int, batch_size: int, max_attempts: int, process: Callable,
                 init: Optional[Callable], save: Optional[Callable], shared: Any, batch: bool,
                 verbose: bool, socket: Optional[str]):
        self.kind = kind
        self.items = items
        self.encoded = encoded
        self.out_path = out_path
        self.workers = workers
        self.save_batch = save_batch
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.process, self.init, self.save, self.shared, self.batch = process, init, save, shared, batch
        self.verbose = verbose
        self.socket = socket  # None: connect() picks, and may start, the default instance
        self.name = job_name(out_path, kind, encoded)
        self.items_arg = "items" if kind == "map" else "data_list"  # its name in errors


def _joined(encoded: Any) -> bytes:
    """The items NUL-separated: as _encode_items made them, or a list of
    bytes (tests, older callers)."""
    return encoded if isinstance(encoded, bytes) else b"\0".join(encoded)


def _items_digest(out_path: str, kind: str, encoded: Any) -> "hashlib._Hash":
    h = hashlib.sha256()
    h.update(out_path.encode("utf-8", "surrogateescape") + b"\0" + kind.encode() + b"\0")
    h.update(_joined(encoded))
    return h


def job_name(out_path: str, kind: str, encoded: Any) -> str:
    """The job's name: "mp_lock-" and 24 hex digits of a SHA-256 of the
    absolute output path, the kind ("mp_lock", "mp_lock_batch:<size>",
    "map") and the items; the same call again finds its job by it."""
    return "mp_lock-" + _items_digest(out_path, kind, encoded).hexdigest()[:24]


def _is_ours(info: Dict[str, Any], name: str, out_path: str) -> bool:
    uid = os.getuid()
    return info.get("name") == name and info.get("output") == out_path and info.get("uid", uid) == uid


def _find_job(c: _client.Client, name: str, out_path: str) -> Optional[_client.Job]:
    """The newest of the caller's jobs with that name and output (root and
    the admin group are listed everybody's jobs)."""
    try:
        listed = c.jobs(name=name, output=out_path)
    except _client.InvalidParameter:
        listed = c.jobs()  # an mplockd from before List's filters
    found = [j for j in listed if _is_ours(j.info, name, out_path)]
    return max(found, key=lambda j: j.id) if found else None


def _drop(job: _client.Job) -> None:
    """Forgets a job whose output directory is gone: its results went with it."""
    try:
        if job.info.get("state") in ACTIVE + ("paused",):
            job.cancel()
    except _client.MplockError:
        pass
    try:
        job.remove()
    except _client.MplockError:
        pass


def _results_exist(info: Dict[str, Any]) -> bool:
    return os.path.isfile(info.get("results_path") or "")


def _write_items(out_path: str, encoded: bytes) -> str:
    """The items, each ended by NUL, in a file of the caller's only (0600)
    with a name of its own: the daemon snapshots it during Submit, so it
    needs no fsync, and it is removed once the job exists."""
    path = os.path.join(out_path, "%s.%d.%s" % (ITEMS_FILE, os.getpid(), os.urandom(4).hex()))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(encoded)
        f.write(b"\0")
    return path


def _write_payload(call: _Call) -> Dict[str, str]:
    _path, python = _payload.write_payload(call.out_path, call.process, call.init, call.save, call.shared,
                                           call.batch, call.name)
    return python


def _submit(c: _client.Client, call: _Call, sweep: bool = False) -> _client.Job:
    """A new job for the call. With sweep (its out_path did not exist), the
    jobs of the same name and output are listed in the same round trip,
    after the Submit, and dropped: their results went with the directory."""
    bridge = _payload.find_bridge()  # a Python without a bridge fails here, before anything is written
    made = not os.path.isdir(call.out_path)
    os.makedirs(call.out_path, exist_ok=True)
    data = _payload.build_payload(call.out_path, call.process, call.init, call.save, call.shared, call.batch)
    python = (_payload.inline_payload(call.out_path, call.name, data, call.save is not None) or
              _payload.store_payload(call.out_path, call.name, data)[1])
    inline = len(call.encoded) <= ITEMS_INLINE_MAX
    items = None if inline else _write_items(call.out_path, call.encoded)
    source = {"items": call.items} if inline else {"input": items, "separator": "nul",
                                                     "items_count": len(call.items)}
    try:
        try:
            try:
                job, stale = _send(c, call, bridge, source, python, sweep)
            except _client.InvalidParameter as e:
                if "inline" not in python or e.parameter != "shared":
                    raise
                python = _payload.store_payload(call.out_path, call.name, data)[1]  # a smaller max-shared-size
                job, stale = _send(c, call, bridge, source, python, sweep)
        except _client.InvalidParameter as e:
            if e.parameter != "items_count":
                raise
            # mplockd's count of a list too long to search here: an item
            # holds a NUL, and nothing of the call is left behind.
            _unmake(call, items, made)
            raise InvalidArgumentsError(call.items_arg, NUL_FREE) from None
    finally:
        if items is not None:
            try:
                os.unlink(items)
            except OSError:
                pass
    for old in stale:
        _drop(old)
    return job


def _unmake(call: _Call, items: Optional[str], made: bool) -> None:
    """What a call whose list was refused wrote: its items and payload
    files, and the output directory if the call made it (empty then)."""
    for path in (items, _payload.payload_path(call.out_path, call.name)):
        try:
            if path is not None:
                os.unlink(path)
        except OSError:
            pass
    if made:
        try:
            os.rmdir(call.out_path)
        except OSError:
            pass


def _send(c: _client.Client, call: _Call, bridge: str, source: Dict[str, Any], python: Dict[str, str],
          sweep: bool) -> Tuple[_client.Job, List[_client.Job]]:
    params = c.submit_parameters(module=bridge, output=call.out_path, workers=call.workers,
                                 save_batch=call.save_batch, batch_size=call.batch_size,
                                 max_attempts=call.max_attempts, name=call.name, shared={"python": python},
                                 **source)
    if not sweep:
        return c.job_of(c.call("Submit", params)), []
    submitted, listed = c.pipeline(("Submit", params), ("List", {"name": call.name, "output": call.out_path}))
    if isinstance(submitted, Exception):
        raise submitted
    job = c.job_of(submitted)
    if isinstance(listed, Exception):
        return job, []  # an mplockd from before List's filters: nothing swept
    stale = [_client.Job(c, info) for info in listed.get("jobs", [])
             if info.get("id") != job.id and _is_ours(info, call.name, call.out_path)]
    return job, stale


def _prepare(c: _client.Client, call: _Call) -> _client.Job:
    """The call's job: found and attached to, resumed or retried, or
    submitted anew (see the module's doc)."""
    if not os.path.isdir(call.out_path):
        return _submit(c, call, sweep=True)  # nothing of a job there to go on with
    job = _find_job(c, call.name, call.out_path)
    if job is None:
        return _submit(c, call)
    info = job.info
    if info.get("damaged"):
        raise RuntimeError("mplock job %d (%s) is damaged: %s; repair its state or remove it "
                           "(mplockctl remove %d)" % (job.id, call.out_path, info.get("error"), job.id))
    state = info["state"]
    if state == "completed":
        if _results_exist(info):
            return job
        _drop(job)  # its results file was deleted: run anew
        return _submit(c, call)
    _payload.check_job_module(info["module"])
    _write_payload(call)
    if state == "paused":
        try:
            job.resume()
        except _client.JobNotPaused:
            job.status()
    elif state in RETRYABLE:
        try:
            job.retry()
        except _client.NothingToRetry:
            job.status()
    return job


# --- waiting ----------------------------------------------------------------

def _reconnect(call: _Call, job_id: int, why: Exception) -> _client.Job:
    """mplockd went away mid-wait (killed, restarted): the job is durable,
    so wait for the daemon to answer again and go on with it."""
    if call.verbose:
        print("\nmplock: lost mplockd (%s); waiting for it to come back" % why, file=sys.stderr, flush=True)
    deadline = time.monotonic() + RECONNECT_TIMEOUT
    while True:
        c = None
        try:
            c = _client.Client(call.socket)
            return c.job(job_id)
        except (OSError, _client.ShuttingDown):
            if c is not None:
                c.close()
            if time.monotonic() > deadline:
                raise ConnectionError("mplockd at %s did not come back within %d s; job %d goes on when it does: "
                                      "run the same call again" % (call.socket, RECONNECT_TIMEOUT, job_id)) from why
            time.sleep(0.2)


def _await_fault(call: _Call, job: _client.Job, info: Dict[str, Any]) -> None:
    """A job paused by a fault (a full disk) goes on by itself later: say
    so once and wait for it to change."""
    if info.get("damaged"):
        raise RuntimeError("mplock job %d is damaged: %s" % (job.id, info.get("error")))
    print("\nmplock: job %d is paused by mplockd: %s; it resumes by itself (mplockctl resume %d to hurry it)" %
          (job.id, info.get("error"), job.id), file=sys.stderr, flush=True)
    while info["state"] == "paused" and info.get("error"):
        time.sleep(1.0)
        info = job.status()


def _wait(call: _Call, job: _client.Job) -> Dict[str, Any]:
    """The job's Job object once it has ended; Ctrl-C pauses it."""
    bar = Progress(call.verbose)
    first = job.client
    try:
        while True:
            try:
                info = job.wait(progress=bar if call.verbose else False)
            except (ConnectionError, OSError, _client.ShuttingDown) as e:
                job = _reconnect(call, job.id, e)
                continue
            if info["state"] in FINAL:
                return info
            _await_fault(call, job, info)
    except KeyboardInterrupt:
        bar.close()
        _pause_interrupted(call, job.id)
        raise
    finally:
        bar.close()
        if job.client is not first:  # a connection of _reconnect's
            job.client.close()


def _pause_interrupted(call: _Call, job_id: int) -> None:
    """Ctrl-C: pause the job (on a new connection: the old one is in the
    middle of a Wait) and say how to go on."""
    try:
        with _client.Client(call.socket) as c:
            info = c.job(job_id).pause()
        what = "paused" if info.get("state") == "paused" else info.get("state", "?")
    except _client.JobNotActive as e:
        what = "already %s" % e.parameters.get("state", "ended")
    except Exception as e:  # the interrupt is what matters; report, do not mask it
        what = "not paused (%s)" % e
    print("mplock: job %d is %s; run the same call again to resume it" % (job_id, what),
          file=sys.stderr, flush=True)


# --- outcomes ---------------------------------------------------------------

def _decode(data: bytes) -> Any:
    try:
        return _results.decode(data)
    except ModuleNotFoundError as e:
        # A result pickled by value (cloudpickle) needs cloudpickle to load.
        if not (e.name or "").startswith("cloudpickle"):
            raise
        _payload.cloudpickle()
        return _results.decode(data)


def _resolve(module: str, qualname: str) -> Optional[type]:
    try:
        obj = sys.modules["__main__"] if module == "__main__" else importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except Exception:
        return None
    return obj if isinstance(obj, type) else None


def item_exception(item: str, index: int, status: int, message: bytes, others: int = 0) -> BaseException:
    """The exception an item's error is raised as: the worker's exception
    type (the bridge's codes 1 and 2) with its traceback in the message,
    else a RuntimeError with mplock's code and message."""
    module, qualname, text = _results.split_error(message)
    more = "\n(%d more item%s failed)" % (others, "s" if others != 1 else "") if others else ""
    if status in (1, 2) and module:
        body = "item %r (index %d) failed:\n%s%s" % (item, index, text.rstrip("\n"), more)
        cls = _resolve(module, qualname)
        # Not KeyboardInterrupt or SystemExit from a worker: the caller would
        # take them for its own.
        if cls is not None and issubclass(cls, Exception):
            exc = _make(cls, body)
            if exc is not None:
                return exc
        return RuntimeError("%s (a %s:%s)" % (body, module, qualname))
    return RuntimeError("item %r (index %d) failed: mplock error %d: %s%s" % (item, index, status, text, more))


def _make(cls: type, text: str) -> Optional[BaseException]:
    try:
        exc = cls(text)
    except Exception:
        try:
            exc = cls.__new__(cls)
            exc.args = (text,)
        except Exception:
            return None
    try:
        str(exc)
    except Exception:
        return None
    return exc


def _read_records(info: Dict[str, Any]) -> Dict[int, _results.Record]:
    return _results.read_results(info["results_path"], info["results_committed"])


def _raise_failure(call: _Call, info: Dict[str, Any]) -> None:
    """An ended job that did not complete: the first failed item's
    exception, else the job's own error."""
    job_id = info["id"]
    if info["state"] == "cancelled":
        raise RuntimeError("mplock job %d was cancelled; run the same call again to run what it did not" % job_id)
    failed: List[_results.Record] = []
    if info.get("failed"):
        failed = sorted((r for r in _read_records(info).values() if r.status != 0), key=lambda r: r.index)
    if failed:
        r = failed[0]
        raise item_exception(call.items[r.index], r.index, r.status, r.data, len(failed) - 1)
    raise RuntimeError("mplock job %d %s: %s; see mplockctl logs %d" %
                       (job_id, info["state"].replace("_", " "), info.get("error") or "no reason given", job_id))


def _run(call: _Call) -> Dict[str, Any]:
    """Runs (or finds) the call's job to its end; its final Job object."""
    with _daemon.connect(call.socket) as c:
        call.socket = c.socket_path  # where a daemon was found, or started
        job = _prepare(c, call)
        info = job.info if job.info["state"] == "completed" else _wait(call, job)
    if info["state"] != "completed":
        _raise_failure(call, info)
    return info


def _values(call: _Call, info: Dict[str, Any]) -> List[Any]:
    records = _read_records(info)
    if len(records) != len(call.items):
        raise RuntimeError("mplock job %d completed, but its results file %s holds %d of %d results" %
                           (info["id"], info["results_path"], len(records), len(call.items)))
    return [_decode(records[i].data) for i in range(len(call.items))]


def _make_call(kind: str, data_list: Any, process: Any, save_callback: Any, num_procs: Any, out_path: Any,
               save_batch: Any, batch_size: Any, shared_data: Any, init_function: Any, verbose: bool,
               max_attempts: Any, socket: Optional[str]) -> _Call:
    """Validates every argument (in mp_lock's order) before anything is done."""
    encoded = _encode_items("data_list", data_list)
    _check_callable("process", process, optional=False)
    _check_callable("save_callback", save_callback, optional=True)
    _check_callable("init_function", init_function, optional=True)
    _check_positive("num_procs", num_procs)
    path = _check_out_path(out_path)
    _check_positive("save_batch", save_batch)
    _check_positive("batch_size", batch_size)
    _check_positive("max_attempts", max_attempts)
    if socket is not None and not isinstance(socket, str):
        raise InvalidArgumentsError("socket", "str or None")
    if kind == "mp_lock_batch":
        kind = "mp_lock_batch:%d" % batch_size
    return _Call(kind, data_list, encoded, path, num_procs, save_batch, batch_size, max_attempts, process,
                 init_function, save_callback, shared_data, kind != "mp_lock", bool(verbose), socket)


# --- the mp_lock API ----------------------------------------------------------

def mp_lock(data_list: List[str], process: Callable[[str, Any, Any], Any],
            save_callback: Optional[Callable[[str, List[Any], List[str]], None]], num_procs: int, out_path: str,
            save_batch: int = 10, shared_data: Any = {}, init_function: Optional[Callable[[Any], Any]] = None,
            verbose: bool = True, max_attempts: int = 1, socket: Optional[str] = None) -> None:
    """Runs process(data, shared_data, init_values) over every item of
    data_list in num_procs worker processes of mplockd, and returns once
    every item is done.

    - init_function(shared_data), if given, runs once in each worker; what
      it returns is the init_values that process gets there.
    - save_callback(output_filepath, data_results, data_names), if given,
      gets output_filepath = <out_path>/data and batches of about
      save_batch successful results with their items, in one process at a
      time, never concurrently. Every result reaches it at least once;
      after a crash the batch that was being saved may come again. (The
      results mplock keeps itself, which mp_lock_value returns, are
      exactly-once.)
    - An exception in process fails that item only; when the job ends, the
      call raises an exception of the type of the first failed item's (by
      index), with the worker's traceback in its message. Each item is
      tried max_attempts times.
    - The same call again (same data_list and out_path) continues the job
      and never runs a committed item again; once it has completed, it
      returns at once. Ctrl-C pauses the job and raises KeyboardInterrupt;
      after any other death of the caller the job goes on in mplockd.
      Deleting out_path makes the same call run anew.
    - verbose: a progress bar on stderr (tqdm if installed). What the
      callbacks print goes to the job's log (mplockctl logs JOB).
    - socket: the daemon's socket (default: $MPLOCK_SOCKET, else the
      user's instance, else the system's; none answering, a user instance
      is started, and a line on stderr says so).

    Raises InvalidArgumentsError, before anything is submitted, for an
    argument that is not valid."""
    call = _make_call("mp_lock", data_list, process, save_callback, num_procs, out_path, save_batch, 1,
                      shared_data, init_function, verbose, max_attempts, socket)
    _run(call)


def mp_lock_batch(data_list: List[str], process: Callable[[List[str], Any, Any], List[Any]],
                  save_callback: Optional[Callable[[str, List[Any], List[str]], None]], num_procs: int,
                  out_path: str, batch_size: int, save_batch: int = 10, shared_data: Any = {},
                  init_function: Optional[Callable[[Any], Any]] = None, verbose: bool = True,
                  max_attempts: int = 1, socket: Optional[str] = None) -> None:
    """mp_lock with process(data_batch, shared_data, init_values) given a
    list of up to batch_size items and returning a list of as many
    results, in the same order. An exception in process (or a return
    value of another length) fails every item of that batch. The job is
    another than mp_lock's over the same items and out_path."""
    call = _make_call("mp_lock_batch", data_list, process, save_callback, num_procs, out_path, save_batch,
                      batch_size, shared_data, init_function, verbose, max_attempts, socket)
    _run(call)


def mp_lock_value(data_list: List[str], process: Callable[[str, Any, Any], Any],
                  save_callback: Optional[Callable[[str, List[Any], List[str]], None]], num_procs: int,
                  out_path: str, save_batch: int = 10, shared_data: Any = {},
                  init_function: Optional[Callable[[Any], Any]] = None, verbose: bool = True,
                  max_attempts: int = 1, socket: Optional[str] = None) -> List[Any]:
    """mp_lock, returning the results of process in data_list's order (a
    duplicate item has a result of its own at each place). It is the same
    job as mp_lock's with these arguments: after a completed mp_lock it
    returns the results at once, read from out_path."""
    call = _make_call("mp_lock", data_list, process, save_callback, num_procs, out_path, save_batch, 1,
                      shared_data, init_function, verbose, max_attempts, socket)
    return _values(call, _run(call))


mp_lock_values = mp_lock_value


def is_mp_lock_completed(data_list: List[str], out_path: str, socket: Optional[str] = None) -> bool:
    """Whether an mp_lock, mp_lock_value or mp_lock_batch call over
    data_list and out_path has completed (every item without failure) and
    its results are still in out_path. No daemon answering: False (none
    is started for this)."""
    encoded = _encode_items("data_list", data_list)
    path = _check_out_path(out_path)
    if not os.path.isdir(path):
        return False
    try:
        c = _daemon.connect(socket, autostart=False)
    except OSError:
        return False
    with c:
        jobs = [j for j in c.jobs() if j.info.get("output") == path and j.info.get("uid", os.getuid()) == os.getuid()]
    names: Dict[str, str] = {}
    for j in sorted(jobs, key=lambda j: j.id):
        size = j.info.get("batch_size", 1)
        for kind in ("mp_lock", "mp_lock_batch:%d" % size):
            names.setdefault(kind, job_name(path, kind, encoded))
        if j.info.get("name") in (names["mp_lock"], names["mp_lock_batch:%d" % size]):
            if j.info.get("state") == "completed" and _results_exist(j.info):
                return True
    return False


# --- mplock.map ---------------------------------------------------------------

def _cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME")
    if not base or not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "mplock")


def _fingerprint(obj: Any, h: "hashlib._Hash", seen: set, depth: int = 0) -> None:
    """Feeds h with what makes a function compute what it does: its code,
    defaults, closure and the globals it names, recursively. Anything it
    cannot tell apart by value goes in by repr(), which may hold an
    address: then every run gets a new cache directory (no resume), never
    somebody else's."""
    if depth > 6 or id(obj) in seen:
        h.update(b"<seen>")
        return
    if isinstance(obj, (types.FunctionType, types.CodeType, functools.partial, types.MethodType)):
        seen.add(id(obj))
    if isinstance(obj, types.FunctionType):
        h.update(("%s:%s\0" % (obj.__module__, obj.__qualname__)).encode())
        _fingerprint(obj.__code__, h, seen, depth + 1)
        for value in (obj.__defaults__, obj.__kwdefaults__):
            _fingerprint(value, h, seen, depth + 1)
        for cell in obj.__closure__ or ():
            try:
                _fingerprint(cell.cell_contents, h, seen, depth + 1)
            except ValueError:  # an empty cell
                h.update(b"<empty>")
        for name in _global_names(obj.__code__):
            if name in obj.__globals__:
                h.update(name.encode() + b"=")
                _fingerprint(obj.__globals__[name], h, seen, depth + 1)
    elif isinstance(obj, types.CodeType):
        h.update(obj.co_code)
        h.update(repr(obj.co_names).encode())
        for const in obj.co_consts:
            _fingerprint(const, h, seen, depth + 1)
    elif isinstance(obj, functools.partial):
        _fingerprint(obj.func, h, seen, depth + 1)
        _fingerprint((obj.args, obj.keywords), h, seen, depth + 1)
    elif isinstance(obj, types.MethodType):
        _fingerprint(obj.__func__, h, seen, depth + 1)
        _fingerprint(obj.__self__, h, seen, depth + 1)
    elif isinstance(obj, types.ModuleType):
        h.update(("<module %s>" % obj.__name__).encode())
    elif isinstance(obj, type):
        h.update(("<class %s:%s>" % (obj.__module__, obj.__qualname__)).encode())
    else:
        try:
            h.update(pickle.dumps(obj, protocol=4))
        except Exception:
            h.update(repr(obj).encode("utf-8", "replace"))


def _global_names(code: types.CodeType) -> List[str]:
    names = list(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names += _global_names(const)
    return names


def _map_output(func: Callable, init: Optional[Callable], shared: Any, encoded: bytes) -> str:
    h = hashlib.sha256()
    seen: set = set()
    for part in (func, init, shared):
        _fingerprint(part, h, seen)
        h.update(b"\0")
    h.update(_joined(encoded))
    return os.path.join(_cache_dir(), "map-" + h.hexdigest()[:24])


def _map_process(func: Callable, with_init: bool) -> Callable[[str, Any, Any], Any]:
    """process(data, shared, init_values) for the bridge, calling func as
    map documents it. A closure: cloudpickle sends func by value or by
    reference, as it would send func itself."""
    if with_init:
        return lambda data, shared, init_values: func(data, init_values)
    return lambda data, shared, init_values: func(data)


def map(func: Callable[..., Any], items: Iterable[str], workers: Optional[int] = None,
        init: Optional[Callable[[Any], Any]] = None, shared: Any = None, output: Optional[str] = None, *,
        max_attempts: int = 1, verbose: bool = False, socket: Optional[str] = None) -> Iterator[Any]:
    """Like multiprocessing.Pool.imap: the results of func(item) for every
    item, in input order, each as soon as it and those before it are
    committed; but the work is an mplockd job, crash-safe and resumable.

    - items: str (an iterable; it is read to the end at once). workers:
      worker processes (default: the CPUs).
    - init(shared), if given, runs once in each worker, and func is then
      called as func(item, init_value) with what it returned.
    - output: the job's output directory. The same output and items
      attach to the same job: after any crash the same call goes on
      where the job is and yields every result, rerunning nothing
      committed. Default: $XDG_CACHE_HOME/mplock/map-<digest> (else
      ~/.cache/mplock/...), the digest of the items and of func, init and
      shared (their code, closures and the globals they use), so that a
      change of code runs anew; give output= to keep the results across
      code changes. Delete the directory to run anew; nothing removes
      these directories by itself.
    - A failed item raises its exception (as mp_lock does) when the
      iteration reaches it. Ctrl-C while waiting pauses the job and
      raises KeyboardInterrupt; an iterator closed (or dropped) before the
      end pauses the job too; the same call again resumes it.

    The job is submitted when map is called; arguments are checked first
    (InvalidArgumentsError)."""
    if not callable(func):
        raise InvalidArgumentsError("func", "function")
    items = list(items) if not isinstance(items, list) else items
    encoded = _encode_items("items", items, submits=True)
    _check_callable("init", init, optional=True)
    if workers is None:
        workers = os.cpu_count() or 1
    _check_positive("workers", workers)
    _check_positive("max_attempts", max_attempts)
    out = _check_out_path(output, "output") if output is not None else _map_output(func, init, shared, encoded)
    # No save callback: the bridge tells the runner so (MPLOCK_SAVE_NOTHING),
    # and results commit as they come, whatever save_batch says.
    call = _Call("map", items, encoded, out, workers, 10, 1, max_attempts, _map_process(func, init is not None),
                 init, None, shared if shared is not None else {}, False, bool(verbose), socket)
    with _daemon.connect(call.socket) as c:
        call.socket = c.socket_path
        job = _prepare(c, call)
    return _iterate(call, job.id)


def _iterate(call: _Call, job_id: int) -> Iterator[Any]:
    """Yields the job's results in input order as they are committed: polls
    Status and reads the results file's newly committed blocks."""
    c = _client.Client(call.socket)
    job = c.job(job_id)
    bar = Progress(call.verbose)
    reader = _results.ResultsReader(job.info["results_path"])
    pending: Dict[int, _results.Record] = {}
    nxt, n, delay, drawn = 0, len(call.items), 0.005, 0.0
    try:
        while nxt < n:
            try:
                info = job.status()
            except (ConnectionError, OSError, _client.ShuttingDown) as e:
                c.close()
                job = _reconnect(call, job_id, e)
                c = job.client
                continue
            if time.monotonic() - drawn >= 1.0 or info["state"] in FINAL:  # as often as Wait would
                bar(info)
                drawn = time.monotonic()
            for r in _read_new(reader, info):
                if r.index >= nxt:
                    pending[r.index] = r
            progressed = False
            while nxt in pending:
                r = pending.pop(nxt)
                if r.status != 0:
                    raise item_exception(call.items[nxt], nxt, r.status, r.data)
                value = _decode(r.data)
                nxt += 1
                progressed = True
                yield value
            if nxt >= n:
                break
            if info["state"] in FINAL and not progressed:
                _raise_failure(call, info)
            if info["state"] == "paused" and info.get("error"):
                _await_fault(call, job, info)
            delay = 0.005 if progressed else min(delay * 2, 0.25)
            time.sleep(delay)
    except KeyboardInterrupt:
        bar.close()
        _pause_interrupted(call, job_id)
        raise
    except GeneratorExit:
        # Dropped before the end: stop using the CPUs for results nobody
        # reads; the same call resumes.
        if nxt < n:
            try:
                job.pause()
            except Exception:
                pass
        raise
    finally:
        bar.close()
        c.close()


def _read_new(reader: _results.ResultsReader, info: Dict[str, Any]) -> List[_results.Record]:
    try:
        return reader.read(info.get("results_committed", 0))
    except FileNotFoundError:
        if info.get("results_committed", 0):
            raise
        return []  # a queued job's results file may not be there yet
