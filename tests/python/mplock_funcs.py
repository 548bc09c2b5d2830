# SPDX-License-Identifier: MIT
"""Callbacks for tests/python/test_mp_lock.py, in a module of their own:
cloudpickle sends them by reference, so each worker imports this module
(through the caller's sys.path) rather than the test module and pytest.
Side effects go to files named in shared_data or beside output_filepath."""

import os
import time


def append(path, text):
    # O_APPEND writes of a line are atomic between processes.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def square(data, shared_data={}, init_values={}):
    return int(data) * int(data)


def square_batch(data_list, shared_data={}, init_values={}):
    return [square(x) for x in data_list]


def square_init(data, shared_data={}, init_values={}):
    dummy = init_values["dummy"]
    return int(data) * int(data) + dummy - dummy


def square_batch_init(data_list, shared_data={}, init_values={}):
    dummy = init_values["dummy"]
    return [square(x) + dummy - dummy for x in data_list]


def init_function(shared_data={}):
    """Returns the init_values; counts its calls, one line per worker."""
    if shared_data.get("init_log"):
        append(shared_data["init_log"], "%d\n" % os.getpid())
    return {"dummy": 42}


def save_sum(output_filepath, results, names):
    """As the library's own test: the sum of each batch, one line each, in
    <out_path>/data.txt. An O_EXCL marker fails a call made while another
    one runs."""
    out = os.path.dirname(output_filepath)
    marker = os.path.join(out, "saving")
    fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        time.sleep(0.001)
        append(os.path.join(out, "data.txt"), "%d\n" % sum(results))
        append(os.path.join(out, "save_calls.txt"),
               "%s\t%s\t%s\n" % (output_filepath, ",".join(names), ",".join(map(str, results))))
    finally:
        os.close(fd)
        os.unlink(marker)


def counted(data, shared_data={}, init_values={}):
    """Each call appends its item to shared_data["log"] first, then sleeps
    shared_data["sleep"] seconds; fails for items in shared_data["fail"]
    while the file shared_data["fail_flag"] exists."""
    append(shared_data["log"], data + "\n")
    if shared_data.get("sleep"):
        time.sleep(shared_data["sleep"])
    if data in shared_data.get("fail", ()) and os.path.exists(shared_data.get("fail_flag", "")):
        raise ValueError("item %s fails on purpose" % data)
    return int(data) * int(data)


def missing_import(data, shared_data={}, init_values={}):
    if data in shared_data.get("bad", [data]):
        import mplock_no_such_module  # noqa: F401
    return int(data)


def failing_save(output_filepath, results, names):
    if os.path.exists(os.path.join(os.path.dirname(output_filepath), "save-fails")):
        raise OSError("the save callback fails on purpose")
    append(os.path.join(os.path.dirname(output_filepath), "saved.txt"),
           "".join("%s %s\n" % (n, r) for n, r in zip(names, results)))


def numpy_row(data, shared_data={}, init_values={}):
    import numpy as np
    return np.arange(int(data), dtype=np.int64) * 2
