# SPDX-License-Identifier: MIT
"""What a Python job hands the bridge (python/bridge/, the C module that
runs Python callbacks in mplock's workers): where the bridge is, and the
payload file with the caller's callbacks, working directory, sys.path and
environment, which the bridge loads in every worker and in the saver."""

import base64
import glob
import importlib.util
import os
import pickle
import sys
import types
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

DEBIAN_CLOUDPICKLE = "/usr/lib/python3/dist-packages/cloudpickle"
# <out_path>/mplock-python-<job name>.pickle: one per call, so that two
# calls with different lists in one out_path keep their own callbacks.
PAYLOAD_PREFIX = "mplock-python"
PAYLOAD_FORMAT = 1


def python_version(version: Optional[Sequence[int]] = None) -> str:
    """"3.11": the major.minor the bridge must have been built for."""
    major, minor = (version or sys.version_info)[:2]
    return "%d.%d" % (major, minor)


def bridge_dir() -> str:
    """Where the bridge modules are: $MPLOCK_BUILD/python, else the installed
    package's BRIDGE_DIR, else the source tree's build/python."""
    build = os.environ.get("MPLOCK_BUILD")
    if build:
        return os.path.join(os.path.abspath(build), "python")
    try:
        from . import _paths  # written by meson install
        return _paths.BRIDGE_DIR
    except ImportError:
        here = os.path.dirname(os.path.abspath(__file__))
        return os.path.normpath(os.path.join(here, "..", "..", "build", "python"))


def bridge_name(version: Optional[Sequence[int]] = None) -> str:
    """mplock-python3.11.so: the bridge's file name for a major.minor."""
    return "mplock-python%s.so" % python_version(version)


def find_bridge(version: Optional[Sequence[int]] = None, directory: Optional[str] = None) -> str:
    """The bridge module for this Python's major.minor (or version's). A
    bridge built for another Python only is a RuntimeError saying which."""
    directory = directory or bridge_dir()
    path = os.path.join(directory, bridge_name(version))
    if os.path.exists(path):
        return path
    others = sorted(glob.glob(os.path.join(directory, "mplock-python*.so")))
    if others:
        built = ", ".join(os.path.basename(p)[len("mplock-python"):-len(".so")] for p in others)
        raise RuntimeError("mplock's Python bridge here is built for Python %s (%s); this is Python %s (%s): "
                           "run the script with python%s or build mplock for it" %
                           (built, ", ".join(others), python_version(version), sys.executable,
                            os.path.basename(others[0])[len("mplock-python"):-len(".so")]))
    raise RuntimeError("mplock's Python bridge is not at %s: build mplock with its Python bridge, or set "
                       "MPLOCK_BUILD to the build directory" % path)


def check_job_module(module: str, version: Optional[Sequence[int]] = None) -> None:
    """A job to resume must run under this Python's bridge: its module is
    fixed at submission."""
    want = bridge_name(version)
    if os.path.basename(module) != want:
        raise RuntimeError("this job was submitted from another Python (its bridge is %s); this is Python %s (%s): "
                           "run the script with the Python it was started with, or delete its output directory "
                           "to start over" % (module, python_version(version), sys.executable))


_cloudpickle = None


def cloudpickle() -> types.ModuleType:
    """The cloudpickle module: importable, else Debian's python3-cloudpickle
    loaded by path (a Python of its own, such as pyenv's, does not see
    Debian's dist-packages; only that one package is loaded from there)."""
    global _cloudpickle
    if _cloudpickle is not None:
        return _cloudpickle
    try:
        import cloudpickle as cp
    except ImportError:
        cp = _load_debian_cloudpickle()
    _cloudpickle = cp
    return cp


def _load_debian_cloudpickle() -> types.ModuleType:
    init = os.path.join(DEBIAN_CLOUDPICKLE, "__init__.py")
    if not os.path.exists(init):
        raise RuntimeError("mplock needs cloudpickle to send your functions to its workers: install Debian's "
                           "python3-cloudpickle (apt-get install python3-cloudpickle)")
    spec = importlib.util.spec_from_file_location("cloudpickle", init,
                                                  submodule_search_locations=[DEBIAN_CLOUDPICKLE])
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs: it imports its own submodules by name.
    sys.modules["cloudpickle"] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules["cloudpickle"]
        raise RuntimeError("Debian's cloudpickle (%s) does not load in this Python (%s): %s" %
                           (DEBIAN_CLOUDPICKLE, sys.executable, e)) from e
    return module


def caller_sys_path() -> List[str]:
    """sys.path as the callbacks must see it: '' (and any relative entry)
    made absolute, since the bridge's working directory is set apart."""
    cwd = os.getcwd()
    return [p if os.path.isabs(p) else cwd if p == "" else os.path.abspath(p) for p in sys.path if isinstance(p, str)]


def build_payload(out_path: str, process: Callable, init: Optional[Callable], save: Optional[Callable],
                  shared: Any, batch: bool) -> bytes:
    """The payload file's bytes (format 1)."""
    try:
        callbacks = cloudpickle().dumps({"process": process, "init": init, "save": save, "shared": shared,
                                         "batch": batch}, protocol=5)
    except Exception as e:
        msg = "mplock cannot pickle the callbacks and shared_data for its workers (with cloudpickle): %s" % e
        try:
            err = type(e)(msg)  # the same type, as a caller may catch it
        except Exception:
            err = TypeError(msg)
        raise err from e
    cwd = os.getcwd()
    outer: Dict[str, Any] = {
        "format": PAYLOAD_FORMAT,
        "version": python_version(),
        "cwd": cwd,
        "sys_path": caller_sys_path(),
        "env": dict(os.environ),
        "output_filepath": os.path.join(out_path, "data"),
        "callbacks": callbacks,
    }
    return pickle.dumps(outer, protocol=4)


def write_atomic(path: str, data: bytes, mode: int = 0o600) -> None:
    """Replaces path with data, all or nothing, durably: a temporary file in
    the same directory (O_EXCL), fsync, rename, fsync of the directory."""
    directory = os.path.dirname(path)
    tmp = "%s.tmp-%d-%s" % (path, os.getpid(), os.urandom(4).hex())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb", closefd=True) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(directory)


def fsync_dir(directory: str) -> None:
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


# A payload this small travels in the job's shared data (mplockd makes it
# durable with the job) instead of a file of its own, which costs two
# fsyncs before the Submit; larger ones, and any payload of a resumed job,
# are the file. The default max-shared-size (1 MiB) leaves room for it.
INLINE_MAX = 48 * 1024


def payload_path(out_path: str, name: str) -> str:
    return os.path.join(out_path, "%s-%s.pickle" % (PAYLOAD_PREFIX, name))


def write_payload(out_path: str, process: Callable, init: Optional[Callable], save: Optional[Callable],
                  shared: Any, batch: bool, name: str) -> Tuple[str, Dict[str, str]]:
    """Writes <out_path>/mplock-python-<name>.pickle; returns its path and
    the job's shared object's "python" entry."""
    return store_payload(out_path, name, build_payload(out_path, process, init, save, shared, batch))


def store_payload(out_path: str, name: str, data: bytes) -> Tuple[str, Dict[str, str]]:
    """write_payload for a payload built already."""
    path = payload_path(out_path, name)
    write_atomic(path, data)
    return path, {"payload": path, "version": python_version()}


def inline_payload(out_path: str, name: str, data: bytes, saves: bool) -> Optional[Dict[str, str]]:
    """The job's shared object's "python" entry with the payload data in it
    ("inline", base64), or None when it is too large for that. The bridge
    reads the file when there is one (a later call wrote it), else this:
    a file left by an earlier job of the same name is removed first."""
    if len(data) > INLINE_MAX:
        return None
    path = payload_path(out_path, name)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    else:
        fsync_dir(out_path)  # the removal durable, as the job will be
    return {"payload": path, "version": python_version(), "inline": base64.b64encode(data).decode("ascii"),
            "saves": saves}
