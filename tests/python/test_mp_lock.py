# SPDX-License-Identifier: MIT
"""The mp_lock-compatible API and mplock.map on a real mplockd of the build
and its Python bridge: the library's documented behaviours (the 285 test,
batches, init_function, save_callback, errors, argument checks) and what
mplock adds (resume after Ctrl-C or kill -9 of the caller or of mplockd,
results in order, no committed item run twice)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import mplock
import mplock_funcs as F
from harness import BUILD, module
from mplock import InvalidArgumentsError, api, daemon as mdaemon, payload, progress, results

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "python"))
DATA = [str(x) for x in range(10)]
NUM_PROCS = [1, 2, 3, 4, 5, 6, 7, 8, 16]
SAVE_BATCHES = [1, 2, 3, 4, 5, 6, 50]


@pytest.fixture
def env(daemon, monkeypatch):
    """The test's daemon as the default one ($MPLOCK_SOCKET), the build's
    bridge and binaries ($MPLOCK_BUILD)."""
    monkeypatch.setenv("MPLOCK_SOCKET", daemon.sock)
    monkeypatch.setenv("MPLOCK_BUILD", BUILD)
    return daemon


@pytest.fixture
def bridge(env):
    # No skip: meson defines this suite only where it builds the bridge.
    return payload.find_bridge()


def out(d, name="out"):
    return os.path.join(d.tmp, name)


def lines(path):
    try:
        with open(path) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def jobs(d):
    with mplock.Client(d.sock) as c:
        return [j.info for j in c.jobs()]


def data_txt_sum(path):
    return sum(int(x) for x in lines(os.path.join(path, "data.txt")))


# --- the library's own tests -----------------------------------------------------

@pytest.mark.parametrize("num_procs", NUM_PROCS)
@pytest.mark.parametrize("save_batch", SAVE_BATCHES)
def test_285_mp_lock(bridge, env, num_procs, save_batch):
    path = out(env)
    mplock.mp_lock(DATA, F.square, F.save_sum, num_procs, path, save_batch=save_batch, verbose=False)
    assert data_txt_sum(path) == 285
    calls = [line.split("\t") for line in lines(os.path.join(path, "save_calls.txt"))]
    # output_filepath is <out_path>/data; batches of at most save_batch,
    # every item once, each result beside its item.
    assert {c[0] for c in calls} == {path + "/data"}
    names = [n for c in calls for n in c[1].split(",")]
    assert sorted(names, key=int) == DATA
    for c in calls:
        assert len(c[1].split(",")) <= save_batch
        assert [int(r) for r in c[2].split(",")] == [int(n) ** 2 for n in c[1].split(",")]
    assert not os.path.exists(os.path.join(path, "saving"))  # never two save calls at once


@pytest.mark.parametrize("num_procs", NUM_PROCS)
def test_285_mp_lock_value(bridge, env, num_procs):
    res = mplock.mp_lock_value(DATA, F.square, None, num_procs, out(env),
                               save_batch=SAVE_BATCHES[num_procs % len(SAVE_BATCHES)], verbose=False)
    assert res == [int(x) ** 2 for x in DATA] and sum(res) == 285
    assert mplock.mp_lock_values is mplock.mp_lock_value


@pytest.mark.parametrize("batch_size", [2, 4, 7, 15])
@pytest.mark.parametrize("num_procs", [1, 2, 3, 8, 16])
def test_285_mp_lock_batch(bridge, env, num_procs, batch_size):
    path = out(env)
    save_batch = SAVE_BATCHES[(num_procs + batch_size) % len(SAVE_BATCHES)]
    mplock.mp_lock_batch(DATA, F.square_batch, F.save_sum, num_procs, path, batch_size, save_batch=save_batch,
                         verbose=False)
    assert data_txt_sum(path) == 285
    assert jobs(env)[0]["batch_size"] == batch_size


@pytest.mark.parametrize("num_procs", NUM_PROCS)
def test_285_init_function(bridge, env, num_procs):
    path = out(env)
    init_log = os.path.join(env.tmp, "init.log")
    mplock.mp_lock(DATA, F.square_init, F.save_sum, num_procs, path, shared_data={"init_log": init_log},
                   init_function=F.init_function, verbose=False)
    assert data_txt_sum(path) == 285
    pids = lines(init_log)
    # Once per worker process: never twice in one, never more than workers.
    assert 1 <= len(pids) <= num_procs and len(set(pids)) == len(pids)
    assert jobs(env)[0]["workers"] == num_procs


@pytest.mark.parametrize("batch_size", [2, 4, 7, 15])
def test_285_batch_init_function(bridge, env, batch_size):
    path = out(env)
    mplock.mp_lock_batch(DATA, F.square_batch_init, F.save_sum, 3, path, batch_size, init_function=F.init_function,
                         verbose=False)
    assert data_txt_sum(path) == 285


def test_user_exception_has_its_type_and_traceback(bridge, env):
    path = out(env)
    with pytest.raises(ModuleNotFoundError) as e:
        mplock.mp_lock(DATA, F.missing_import, None, 2, path, 2, shared_data={"bad": ["3", "7"]}, verbose=False)
    msg = str(e.value)
    assert msg.startswith("item '3' (index 3) failed:\n")
    assert "Traceback (most recent call last)" in msg and "mplock_no_such_module" in msg
    assert "1 more item failed" in msg
    # The other items went on and are done.
    info = jobs(env)[0]
    assert info["state"] == "completed_with_failures" and info["done"] == 10 and info["failed"] == 2
    recs = results.read_results(info["results_path"], info["results_committed"])
    assert sorted(i for i, r in recs.items() if r.ok) == [0, 1, 2, 4, 5, 6, 8, 9]


def test_user_exception_in_every_item(bridge, env):
    # The library's own test: an import of a missing module in process.
    with pytest.raises(ModuleNotFoundError):
        mplock.mp_lock(DATA, F.missing_import, None, 2, out(env), 2, verbose=False)


def _args(**over):
    a = dict(data_list=DATA, process=F.square, save_callback=None, num_procs=2, out_path="/tmp/mplock-never",
             save_batch=2)
    a.update(over)
    return a


BAD = [
    ("data_list", [], "list(str) > 0"),
    ("data_list", None, "list(str) > 0"),
    ("data_list", "element", "list(str) > 0"),
    ("data_list", ("1", "2"), "list(str) > 0"),
    ("data_list", ["1", 2], "list(str) > 0"),
    ("data_list", ["1", b"2"], "list(str) > 0"),
    ("data_list", ["1", "a\0b"], "list(str) > 0, without NUL characters"),
    ("process", None, "function"),
    ("process", "fun", "function"),
    ("save_callback", "fun", "function or None"),
    ("init_function", 42, "function or None"),
    ("num_procs", 0, "int > 0"),
    ("num_procs", 1.2, "int > 0"),
    ("num_procs", -2, "int > 0"),
    ("num_procs", "2", "int > 0"),
    ("num_procs", True, "int > 0"),
    ("num_procs", 2.0, "int > 0"),
    ("out_path", "", "len(str) > 0"),
    ("out_path", None, "len(str) > 0"),
    ("out_path", 234, "len(str) > 0"),
    ("save_batch", 0, "int > 0"),
    ("save_batch", 2.2, "int > 0"),
    ("save_batch", -4, "int > 0"),
    ("save_batch", None, "int > 0"),
    ("save_batch", False, "int > 0"),
    ("max_attempts", 0, "int > 0"),
]


@pytest.mark.parametrize("argument,value,what", BAD, ids=["%s=%r" % (a, v) for a, v, _ in BAD])
def test_invalid_arguments(env, argument, value, what):
    for fn in (mplock.mp_lock, mplock.mp_lock_value):
        with pytest.raises(InvalidArgumentsError) as e:
            fn(**_args(**{argument: value}))
        assert str(e.value) == "Invalid %s. Expected values: %s" % (argument, what)
        assert isinstance(e.value, Exception) and e.value.argument == argument
    with pytest.raises(InvalidArgumentsError) as e:
        mplock.mp_lock_batch(batch_size=3, **_args(**{argument: value}))
    assert str(e.value) == "Invalid %s. Expected values: %s" % (argument, what)
    assert jobs(env) == [] and not os.path.exists("/tmp/mplock-never")


@pytest.mark.parametrize("value", [0, -1, 1.5, True, None, "3"])
def test_invalid_batch_size(env, value):
    with pytest.raises(InvalidArgumentsError) as e:
        mplock.mp_lock_batch(batch_size=value, **_args())
    assert str(e.value) == "Invalid batch_size. Expected values: int > 0"
    assert jobs(env) == []


def test_nul_in_a_long_list(bridge, env):
    # A list too long to go inline is counted by mplockd (Submit's
    # items_count), not searched here: the same error, nothing left behind.
    long = ["item-%06d" % i for i in range(20000)]
    long[12345] = "a\0b"
    path = out(env, "nul")
    for fn in (mplock.mp_lock, mplock.mp_lock_value):
        with pytest.raises(InvalidArgumentsError) as e:
            fn(long, F.square, None, 2, path, verbose=False)
        assert str(e.value) == "Invalid data_list. Expected values: list(str) > 0, without NUL characters"
        assert jobs(env) == [] and not os.path.exists(path)
    with pytest.raises(InvalidArgumentsError) as e:
        list(mplock.map(F.square, long, workers=2, output=path, verbose=False))
    assert str(e.value) == "Invalid items. Expected values: list(str) > 0, without NUL characters"
    assert jobs(env) == [] and not os.path.exists(path)
    # An output directory that was there stays, and holds nothing new.
    os.makedirs(path)
    with pytest.raises(InvalidArgumentsError):
        mplock.mp_lock(long, F.square, None, 2, path, verbose=False)
    assert jobs(env) == [] and os.listdir(path) == []
    assert not mplock.is_mp_lock_completed(["x"], path)
    with pytest.raises(InvalidArgumentsError):
        mplock.is_mp_lock_completed(long, path)


def test_invalid_arguments_error_pickles():
    import pickle
    e = pickle.loads(pickle.dumps(InvalidArgumentsError("num_procs", "int > 0")))
    assert str(e) == "Invalid num_procs. Expected values: int > 0"


# --- results, functions, order ------------------------------------------------------

def test_numpy_results(bridge, env):
    np = pytest.importorskip("numpy")
    res = mplock.mp_lock_value(DATA, F.numpy_row, None, 2, out(env), verbose=False)
    assert all(isinstance(r, np.ndarray) for r in res)
    for x, r in zip(DATA, res):
        assert np.array_equal(r, np.arange(int(x)) * 2) and r.dtype == np.int64


def test_lambdas_closures_and_any_result(bridge, env):
    k = 3
    table = {"0": None, "1": "one", "2": b"two", "3": {"x": [1, 2.5]}, "4": (1, "a")}

    def nested(data, shared_data, init_values):
        return table.get(data, int(data) * k + shared_data["add"])

    res = mplock.mp_lock_value(DATA, nested, None, 2, out(env, "a"), shared_data={"add": 1}, verbose=False)
    assert res == [None, "one", b"two", {"x": [1, 2.5]}, (1, "a")] + [int(x) * 3 + 1 for x in DATA[5:]]
    res = mplock.mp_lock_value(DATA, lambda d, s, i: int(d) * k, None, 3, out(env, "b"), verbose=False)
    assert res == [int(x) * 3 for x in DATA]


def test_duplicates_keep_their_order(bridge, env):
    items = ["3", "1", "3", "2", "1", "3"]
    assert mplock.mp_lock_value(items, F.square, None, 2, out(env), verbose=False) == [9, 1, 9, 4, 1, 9]


# --- resume --------------------------------------------------------------------------

def test_completed_call_returns_at_once_and_out_path_deletion_reruns(bridge, env):
    path = out(env)
    log = os.path.join(env.tmp, "calls.log")
    shared = {"log": log}
    assert not mplock.is_mp_lock_completed(DATA, path)
    mplock.mp_lock(DATA, F.counted, None, 2, path, shared_data=shared, verbose=False)
    assert sorted(lines(log), key=int) == DATA
    assert mplock.is_mp_lock_completed(DATA, path)
    assert not mplock.is_mp_lock_completed(DATA[:5], path)
    # Again: nothing runs; mp_lock_value is the same job and reads its results.
    t = time.monotonic()
    mplock.mp_lock(DATA, F.counted, None, 2, path, shared_data=shared, verbose=False)
    assert mplock.mp_lock_value(DATA, F.counted, None, 2, path, shared_data=shared, verbose=False) == \
        [int(x) ** 2 for x in DATA]
    assert time.monotonic() - t < 2 and len(lines(log)) == 10 and len(jobs(env)) == 1
    # out_path deleted: the same call runs anew (the stale job is removed).
    shutil.rmtree(path)
    assert not mplock.is_mp_lock_completed(DATA, path)
    mplock.mp_lock(DATA, F.counted, None, 2, path, shared_data=shared, verbose=False)
    assert len(lines(log)) == 20 and len(jobs(env)) == 1
    assert mplock.is_mp_lock_completed(DATA, path)


def test_two_lists_in_one_out_path_keep_their_own_callbacks(bridge, env):
    d = out(env)
    a = mplock.mp_lock_value(DATA, F.square, None, 2, d, verbose=False)
    b = mplock.mp_lock_value(["x", "yy"], lambda s, sh, iv: len(s), None, 2, d, verbose=False)
    assert a == [i * i for i in range(10)] and b == [1, 2]
    assert mplock.mp_lock_value(DATA, F.square, None, 2, d, verbose=False) == a  # at once, from its own job
    # Each job carries its own callbacks (inline: no payload file).
    assert not [f for f in os.listdir(d) if f.startswith("mplock-python-") and f.endswith(".pickle")]


def test_unpicklable_callbacks_results_and_too_large_results(bridge, env):
    import threading
    lock = threading.Lock()

    def holds_a_lock(data, shared, init):
        with lock:
            return data
    with pytest.raises(TypeError, match="mplock cannot pickle the callbacks"):
        mplock.mp_lock(DATA, holds_a_lock, None, 2, out(env, "a"), verbose=False)
    assert jobs(env) == []  # nothing submitted
    # A result that cannot be pickled fails its item with the pickler's error.
    with pytest.raises(TypeError, match=r"(?s)item '1' \(index 1\) failed.*cannot pickle"):
        mplock.mp_lock_value(["0", "1"], lambda d, s, i: threading.Lock() if d == "1" else d, None, 1,
                             out(env, "b"), verbose=False)
    with pytest.raises(RuntimeError, match="larger than mplock's 16 MiB limit"):
        mplock.mp_lock_value(["0"], lambda d, s, i: "x" * (17 << 20), None, 1, out(env, "c"), verbose=False)


def test_is_mp_lock_completed_without_a_daemon_starts_none(tmp_path, monkeypatch):
    sock = str(tmp_path / "nobody")
    monkeypatch.setenv("MPLOCK_SOCKET", sock)
    os.mkdir(tmp_path / "out")
    assert mplock.is_mp_lock_completed(DATA, str(tmp_path / "out")) is False
    assert not os.path.exists(sock)


def test_a_fixed_bug_reruns_only_the_failed_items(bridge, env):
    path = out(env)
    log, flag = os.path.join(env.tmp, "calls.log"), os.path.join(env.tmp, "fail-flag")
    open(flag, "w").close()
    shared = {"log": log, "fail": ["4", "8"], "fail_flag": flag}
    with pytest.raises(ValueError, match="item '4' \\(index 4\\) failed"):
        mplock.mp_lock_value(DATA, F.counted, None, 2, path, shared_data=shared, verbose=False)
    assert not mplock.is_mp_lock_completed(DATA, path)
    os.unlink(flag)  # "the bug is fixed"
    assert mplock.mp_lock_value(DATA, F.counted, None, 2, path, shared_data=shared, verbose=False) == \
        [int(x) ** 2 for x in DATA]
    counts = {x: lines(log).count(x) for x in DATA}
    assert counts == {x: 2 if x in ("4", "8") else 1 for x in DATA}
    info = jobs(env)[0]
    assert info["retries"] == 1 and len(jobs(env)) == 1


def test_max_attempts_retries_an_item(bridge, env):
    path = out(env)
    log, flag = os.path.join(env.tmp, "calls.log"), os.path.join(env.tmp, "fail-flag")
    open(flag, "w").close()
    shared = {"log": log, "fail": ["2"], "fail_flag": flag}
    with pytest.raises(ValueError):
        mplock.mp_lock(DATA, F.counted, None, 1, path, shared_data=shared, verbose=False, max_attempts=3)
    assert lines(log).count("2") == 3 and jobs(env)[0]["max_attempts"] == 3


def test_a_failing_save_callback_fails_the_job_and_a_rerun_saves(bridge, env):
    path = out(env)
    os.makedirs(path)
    open(os.path.join(path, "save-fails"), "w").close()
    with pytest.raises(RuntimeError) as e:
        mplock.mp_lock(DATA, F.square, F.failing_save, 2, path, save_batch=3, verbose=False)
    info = jobs(env)[0]
    assert info["state"] == "failed"
    assert "mplockctl logs %d" % info["id"] in str(e.value)
    os.unlink(os.path.join(path, "save-fails"))
    mplock.mp_lock(DATA, F.square, F.failing_save, 2, path, save_batch=3, verbose=False)
    saved = dict(line.split() for line in lines(os.path.join(path, "saved.txt")))
    assert saved == {x: str(int(x) ** 2) for x in DATA}


# --- the caller's context, subprocesses, crashes ----------------------------------------------

SCRIPT = """
import json, os, sys, time
from mplock import mp_lock_value

def process(data, shared_data, init_values):
    fd = os.open(shared_data["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.write(fd, (data + "\\n").encode())
    os.close(fd)
    time.sleep(shared_data["sleep"])
    return int(data) * 3

items = [str(i) for i in range(int(sys.argv[2]))]
res = mp_lock_value(items, process, None, 2, sys.argv[1], shared_data={"log": sys.argv[3], "sleep": 0.03},
                    verbose=False)
print(json.dumps(res))
"""


def script_env(d):
    e = dict(os.environ)
    e.update(PYTHONPATH=os.pathsep.join([PYTHON_DIR, HERE]), MPLOCK_SOCKET=d.sock, MPLOCK_BUILD=BUILD)
    return e


def start_script(d, text, *args, cwd=None, name="script.py"):
    path = os.path.join(d.tmp, name)
    with open(path, "w") as f:
        f.write(textwrap.dedent(text))
    return subprocess.Popen([sys.executable, path] + [str(a) for a in args], cwd=cwd or d.tmp,
                            env=script_env(d), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_lines(path, n, proc=None, timeout=60):
    deadline = time.monotonic() + timeout
    while len(lines(path)) < n:
        assert time.monotonic() < deadline, "no progress in %s" % path
        if proc is not None and proc.poll() is not None:
            raise AssertionError("the script ended early: %s" % (proc.communicate(),))
        time.sleep(0.01)


def finish(proc, timeout=120):
    stdout, stderr = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, stderr
    return json.loads(stdout)


N_SLOW = 60
EXPECTED = [i * 3 for i in range(N_SLOW)]


def test_kill_9_of_the_caller_then_the_same_call(bridge, env):
    path, log = out(env), os.path.join(env.tmp, "calls.log")
    p = start_script(env, SCRIPT, path, N_SLOW, log)
    wait_lines(log, 6, p)
    p.kill()
    p.wait()
    assert [j["state"] for j in jobs(env)] in (["running"], ["completed"])  # it goes on in mplockd
    assert finish(start_script(env, SCRIPT, path, N_SLOW, log)) == EXPECTED
    # Nothing ran twice: the job went on without its caller.
    assert sorted(lines(log), key=int) == [str(i) for i in range(N_SLOW)]
    assert len(jobs(env)) == 1


def committed_indices(d, at_least=4, timeout=60):
    """The indices committed so far, once there are at least at_least."""
    deadline = time.monotonic() + timeout
    with mplock.Client(d.sock) as c:
        while True:
            info = c.jobs()[0].status()
            if info["results_committed"]:
                done = set(results.read_results(info["results_path"], info["results_committed"]))
                if len(done) >= at_least:
                    return done
            assert time.monotonic() < deadline, "nothing committed"
            time.sleep(0.01)


def test_kill_9_of_mplockd_then_the_same_call(bridge, env):
    path, log = out(env), os.path.join(env.tmp, "calls.log")
    p = start_script(env, SCRIPT, path, N_SLOW, log)
    wait_lines(log, 1, p)
    committed = committed_indices(env)
    assert len(committed) < N_SLOW
    env.kill()
    time.sleep(0.3)
    env.start()
    # The caller waits for the daemon to come back and gets every result.
    assert finish(p) == EXPECTED
    assert finish(start_script(env, SCRIPT, path, N_SLOW, log)) == EXPECTED
    calls = lines(log)
    assert set(calls) == {str(i) for i in range(N_SLOW)}
    # Committed before the kill: never run again; in flight: may be.
    assert all(calls.count(str(i)) == 1 for i in committed), committed


def test_kill_9_of_mplockd_with_the_caller_gone_too(bridge, env):
    path, log = out(env), os.path.join(env.tmp, "calls.log")
    p = start_script(env, SCRIPT, path, N_SLOW, log)
    wait_lines(log, 1, p)
    committed = committed_indices(env)
    p.kill()
    p.wait()
    env.kill()
    env.start()
    assert finish(start_script(env, SCRIPT, path, N_SLOW, log)) == EXPECTED
    calls = lines(log)
    assert set(calls) == {str(i) for i in range(N_SLOW)}
    assert all(calls.count(str(i)) == 1 for i in committed)


def test_ctrl_c_pauses_and_the_rerun_resumes(bridge, env):
    path, log = out(env), os.path.join(env.tmp, "calls.log")
    p = start_script(env, SCRIPT, path, N_SLOW, log)
    wait_lines(log, 6, p)
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode != 0 and "KeyboardInterrupt" in stderr and stdout == ""
    info = jobs(env)[0]
    assert info["state"] == "paused"
    assert "job %d is paused; run the same call again to resume it" % info["id"] in stderr
    with mplock.Client(env.sock) as c:
        assert c.job(info["id"]).status()["state"] == "paused"  # and it stays so
    assert finish(start_script(env, SCRIPT, path, N_SLOW, log)) == EXPECTED
    # A pause lets the items in flight commit: nothing runs twice.
    assert sorted(lines(log), key=int) == [str(i) for i in range(N_SLOW)]
    assert jobs(env)[0]["state"] == "completed"


CONTEXT_SCRIPT = """
import json, os, sys
from mplock import mp_lock_value

def process(data, shared_data, init_values):
    import besides  # a module beside the script, through the caller's sys.path
    return [os.getcwd(), besides.VALUE, os.environ.get("MPLOCK_TEST_VAR"), data]

os.environ["MPLOCK_TEST_VAR"] = "set by the caller"
print(json.dumps(mp_lock_value(["a", "b"], process, None, 2, "out", verbose=False)))
"""


def test_callbacks_see_the_callers_cwd_sys_path_and_environment(bridge, env):
    proj, work = os.path.join(env.tmp, "proj"), os.path.join(env.tmp, "work")
    os.makedirs(proj)
    os.makedirs(work)
    with open(os.path.join(proj, "besides.py"), "w") as f:
        f.write("VALUE = 'imported from beside the script'\n")
    p = start_script(env, CONTEXT_SCRIPT, cwd=work, name="proj/script.py")
    res = finish(p)
    assert res == [[work, "imported from beside the script", "set by the caller", x] for x in "ab"]
    # out_path is relative to the caller's cwd.
    assert jobs(env)[0]["output"] == os.path.join(work, "out")


def test_a_small_payload_travels_in_the_submit_a_large_one_in_a_file(bridge, env):
    """The callbacks of a small call go inline in the job's shared data
    (no file, no fsyncs before the Submit); a payload over INLINE_MAX is
    the file beside the results. Both run the same."""
    small, large = out(env, "small"), out(env, "large")
    assert mplock.mp_lock_value(DATA, F.square, None, 2, small, verbose=False) == [i * i for i in range(10)]
    assert not [f for f in os.listdir(small) if f.endswith(".pickle")]
    blob = "x" * (payload.INLINE_MAX + 1)
    assert mplock.mp_lock_value(DATA, lambda d, sh, iv: len(sh["blob"]) + int(d), None, 2, large,
                                shared_data={"blob": blob}, verbose=False) == [len(blob) + i for i in range(10)]
    assert len([f for f in os.listdir(large) if f.endswith(".pickle")]) == 1


def test_a_rerun_runs_the_latest_code_of_an_inline_job(bridge, env):
    """A job submitted with its payload inline, failed, then called again
    with the bug fixed: the retry runs the new code (the call writes the
    payload file, which the bridge takes over the inline one)."""
    path = out(env)

    def buggy(data, shared_data, init_values):
        if data == "3":
            raise KeyError(data)
        return int(data)

    def fixed(data, shared_data, init_values):
        return -int(data)

    with pytest.raises(KeyError):
        mplock.mp_lock_value(DATA, buggy, None, 2, path, verbose=False)
    assert not [f for f in os.listdir(path) if f.endswith(".pickle")]
    values = mplock.mp_lock_value(DATA, fixed, None, 2, path, verbose=False)
    assert values == [int(x) for x in DATA[:3]] + [-3] + [int(x) for x in DATA[4:]]
    assert len(jobs(env)) == 1 and jobs(env)[0]["retries"] == 1


def test_runners_fork_from_an_agent_with_python_running(bridge, env):
    """The user's agent starts Python once, for the first job of the
    bridge, and every runner of it is forked with the interpreter running;
    a C module's job leaves the agent without it."""
    from harness import children

    def agent_maps():
        agents = children(env.proc.pid)
        assert len(agents) == 1, agents
        with open("/proc/%d/maps" % agents[0]) as f:
            return f.read()

    with mplock.Client(env.sock) as c:
        c.submit(module("square"), out(env, "c"), items=DATA).wait()
    assert "libpython" not in agent_maps()
    # With a save_callback the runner takes Python over and its workers
    # fork from it; without one each worker takes it over itself.
    for k, save in enumerate((F.save_sum, None)):
        assert sum(mplock.mp_lock_value(DATA, F.square, save, 2, out(env, str(k)), verbose=False)) == 285
    assert "libpython" in agent_maps()
    took = "Python %d.%d taken over from the agent" % sys.version_info[:2]
    saver, workers = jobs(env)[1:]
    with open(saver["log_path"]) as f:
        text = f.read()
    assert "module (saver): " + took in text and "module (worker" not in text
    with open(workers["log_path"]) as f:
        text = f.read()
    assert "left to the workers" in text and "module (saver): " + took not in text
    assert "module (worker 0): " + took in text


def test_what_the_callbacks_print_goes_to_the_jobs_log(bridge, env, capfd):
    def init(shared):
        print("init of a worker")
        return {}

    def process(data, shared, init_values):
        print("processing", data)
        sys.stderr.write("warning about %s\n" % data)
        return data

    def save(path, results, names):
        print("saving", ",".join(names))

    mplock.mp_lock(["a", "b"], process, save, 2, out(env), init_function=init, verbose=False)
    job = jobs(env)[0]
    log = env.ctl("logs", job["id"]).stdout.decode()
    for line in ("init of a worker", "processing a", "processing b", "warning about b"):
        assert line in log, log
    saved = [x for line in log.splitlines() if "saving " in line for x in line.split("saving ", 1)[1].split(",")]
    assert sorted(saved) == ["a", "b"], log  # the save callback's prints, from the runner
    captured = capfd.readouterr()
    assert "processing" not in captured.out + captured.err  # not on the caller's terminal


# --- mplock.map -------------------------------------------------------------------------------

def test_map_yields_in_order_as_results_commit(bridge, env):
    log = os.path.join(env.tmp, "calls.log")
    shared = {"log": log, "sleep": 0.02}
    items = [str(i) for i in range(80)]
    path = out(env)

    def f(x):
        return F.counted(x, shared)

    it = mplock.map(f, items, workers=2, output=path)
    first = next(it)
    assert first == 0
    assert jobs(env)[0]["state"] in ("running", "queued")  # streamed, not at the end
    assert [first] + list(it) == [int(x) ** 2 for x in items]
    # The same call again: the same job, nothing rerun.
    assert list(mplock.map(f, items, workers=2, output=path)) == [int(x) ** 2 for x in items]
    assert sorted(lines(log), key=int) == items and len(jobs(env)) == 1


def test_map_with_init_and_default_output(bridge, env, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    res = list(mplock.map(lambda x, init: int(x) + init["dummy"], DATA, init=F.init_function, shared={}))
    assert res == [int(x) + 42 for x in DATA]
    outputs = [j["output"] for j in jobs(env)]
    assert len(outputs) == 1 and outputs[0].startswith(str(tmp_path / "cache" / "mplock" / "map-"))
    # Same function and items: the same directory; other code: another.
    assert list(mplock.map(lambda x, init: int(x) + init["dummy"], DATA, init=F.init_function, shared={})) == res
    assert len(jobs(env)) == 1
    k = 2
    assert list(mplock.map(lambda x: int(x) * k, DATA)) == [int(x) * 2 for x in DATA]
    k = 5
    assert list(mplock.map(lambda x: int(x) * k, DATA)) == [int(x) * 5 for x in DATA]
    assert len({j["output"] for j in jobs(env)}) == 3


def test_map_raises_a_failed_item_in_its_place(bridge, env):
    got = []
    with pytest.raises(ZeroDivisionError) as e:
        for r in mplock.map(lambda x: 10 // int(x), ["5", "2", "0", "1"], output=out(env)):
            got.append(r)
    assert got == [2, 5] and "item '0' (index 2) failed" in str(e.value)


def test_map_closed_early_pauses_and_the_same_call_resumes(bridge, env):
    log = os.path.join(env.tmp, "calls.log")
    items = [str(i) for i in range(100)]
    path = out(env)

    def f(x):
        return F.counted(x, {"log": log, "sleep": 0.02})

    it = mplock.map(f, items, workers=2, output=path)
    assert next(it) == 0
    it.close()
    assert jobs(env)[0]["state"] == "paused"
    assert list(mplock.map(f, items, workers=2, output=path)) == [int(x) ** 2 for x in items]
    assert sorted(lines(log), key=int) == items


def test_map_checks_its_arguments(env):
    with pytest.raises(InvalidArgumentsError, match="Invalid func. Expected values: function"):
        mplock.map(None, DATA)
    with pytest.raises(InvalidArgumentsError, match="Invalid items"):
        mplock.map(str, [1, 2])
    with pytest.raises(InvalidArgumentsError, match="Invalid workers"):
        mplock.map(str, DATA, workers=0)
    assert jobs(env) == []
    assert "map" not in mplock.__all__  # `from mplock import *` keeps the built-in map


# --- the pieces, without the bridge ------------------------------------------------------------

def test_version_mismatch_is_a_clear_error(tmp_path, monkeypatch):
    d = tmp_path / "python"
    d.mkdir()
    (d / "mplock-python3.11.so").write_bytes(b"")
    with pytest.raises(RuntimeError) as e:
        payload.find_bridge(version=(3, 12), directory=str(d))
    assert str(e.value) == (
        "mplock's Python bridge here is built for Python 3.11 (%s/mplock-python3.11.so); this is Python 3.12 (%s): "
        "run the script with python3.11 or build mplock for it" % (d, sys.executable))
    assert payload.find_bridge(version=(3, 11), directory=str(d)) == str(d / "mplock-python3.11.so")
    # Through $MPLOCK_BUILD, as the calls find it.
    monkeypatch.setenv("MPLOCK_BUILD", str(tmp_path))
    with pytest.raises(RuntimeError, match="built for Python 3.11 .* this is Python 3.99"):
        payload.find_bridge(version=(3, 99))
    (d / "mplock-python3.11.so").unlink()
    with pytest.raises(RuntimeError, match="bridge is not at .*mplock-python3.99.so"):
        payload.find_bridge(version=(3, 99))
    with pytest.raises(RuntimeError, match="submitted from another Python"):
        payload.check_job_module("/x/mplock-python3.10.so")
    payload.check_job_module("/x/" + payload.bridge_name())


def test_the_payload_file(tmp_path, monkeypatch):
    monkeypatch.setenv("MPLOCK_TEST_VAR", "v")
    monkeypatch.syspath_prepend("")
    path, python = payload.write_payload(str(tmp_path), F.square, None, F.save_sum, {"a": 1}, False, "mp_lock-x")
    assert path == str(tmp_path / "mplock-python-mp_lock-x.pickle")
    assert python == {"payload": path, "version": "%d.%d" % sys.version_info[:2]}
    assert os.stat(path).st_mode & 0o777 == 0o600
    import pickle
    with open(path, "rb") as f:
        outer = pickle.load(f)
    assert outer["format"] == 1 and outer["version"] == python["version"]
    assert outer["cwd"] == os.getcwd() and outer["env"]["MPLOCK_TEST_VAR"] == "v"
    assert "" not in outer["sys_path"] and outer["sys_path"][0] == os.getcwd()
    assert outer["output_filepath"] == str(tmp_path / "data")
    cb = pickle.loads(outer["callbacks"])
    assert cb["process"] is F.square and cb["save"] is F.save_sum and cb["init"] is None
    assert cb["shared"] == {"a": 1} and cb["batch"] is False
    assert [p.name for p in tmp_path.iterdir()] == ["mplock-python-mp_lock-x.pickle"]  # no temporary left


DEBIAN_CP_SCRIPT = """
import sys
from mplock import mp_lock_value
print(mp_lock_value(["1", "2"], lambda d, s, i: int(d) + 1, None, 1, sys.argv[1], verbose=False),
      sys.modules["cloudpickle"].__file__)
"""


def test_a_python_without_cloudpickle_loads_debians_by_path(bridge, env):
    # python -S: no site-packages, no dist-packages, as a Python of its own
    # (pyenv's, a venv's) would be; mplock loads Debian's cloudpickle alone.
    if not os.path.exists(os.path.join(payload.DEBIAN_CLOUDPICKLE, "__init__.py")):
        pytest.skip("no Debian python3-cloudpickle")
    path = os.path.join(env.tmp, "script.py")
    with open(path, "w") as f:
        f.write(DEBIAN_CP_SCRIPT)
    p = subprocess.run([sys.executable, "-S", path, out(env)], env=script_env(env), capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "[2, 3] %s/__init__.py\n" % payload.DEBIAN_CLOUDPICKLE


def test_no_cloudpickle_at_all_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(payload, "DEBIAN_CLOUDPICKLE", str(tmp_path / "none"))
    with pytest.raises(RuntimeError, match="install Debian's python3-cloudpickle"):
        payload._load_debian_cloudpickle()


def test_a_callback_that_kills_its_interpreter_fails_its_item(bridge, env):
    def process(data, shared_data, init_values):
        if data == "5":
            os._exit(3)
        return int(data)

    with pytest.raises(RuntimeError) as e:
        mplock.mp_lock_value(DATA, process, None, 2, out(env), verbose=False)
    assert str(e.value).startswith("item '5' (index 5) failed: mplock error -")
    info = jobs(env)[0]
    assert info["state"] == "completed_with_failures" and info["failed"] == 1 and info["done"] == 10


def square_job(d, items, **kw):
    with mplock.Client(d.sock) as c:
        job = c.submit(module("square"), out(d), items=items, **kw)
        return job.wait()


def test_results_reader_parses_a_real_results_file(env):
    items = [str(i) for i in range(3000)]
    info = square_job(env, items, workers=2, shared={"sleep_us": 20})
    recs = results.read_results(info["results_path"], info["results_committed"])
    assert sorted(recs) == list(range(3000))
    assert all(r.ok and r.item == items[i].encode() and r.data == str(i * i).encode() for i, r in recs.items())
    with mplock.Client(env.sock) as c:
        via_varlink = list(c.job(info["id"]).results())
    assert [(r["index"], r["item"], r["result"]) for r in via_varlink] == \
        [(i, recs[i].item.decode(), recs[i].data.decode()) for i in range(3000)]
    # Only the committed prefix is read: a shorter length that is not on a
    # block boundary is refused, never misread.
    with pytest.raises(results.ResultsFormatError):
        results.read_results(info["results_path"], info["results_committed"] - 1)
    assert results.read_results(info["results_path"], 32) == {}


def test_results_reader_is_incremental(env):
    items = [str(i) for i in range(400)]
    with mplock.Client(env.sock) as c:
        job = c.submit(module("square"), out(env), items=items, workers=2, shared={"sleep_us": 2000},
                       save_batch=10)
        reader = results.ResultsReader(job.info["results_path"])
        seen, reads = {}, 0
        while True:
            info = job.status()
            try:
                new = reader.read(info["results_committed"])
            except FileNotFoundError:
                new = []
            reads += bool(new)
            for r in new:
                assert r.index not in seen
                seen[r.index] = r.data
            if info["state"] == "completed" and len(seen) == 400:
                break
            time.sleep(0.02)
    assert seen == {i: str(i * i).encode() for i in range(400)} and reads >= 2


def test_results_with_errors_and_the_exception_made_of_them(env):
    info = square_job(env, [str(i) for i in range(20)], workers=1, max_attempts=1)
    assert info["state"] == "completed"
    with mplock.Client(env.sock) as c:
        job = c.submit(module("flaky"), out(env, "f"), items=[str(i) for i in range(20)], shared={"fail": ["3"]},
                       max_attempts=1)
        info = job.wait()
    recs = results.read_results(info["results_path"], info["results_committed"])
    assert [i for i, r in recs.items() if not r.ok] == [3] and recs[3].status == 42
    e = api.item_exception("3", 3, recs[3].status, recs[3].data)
    assert type(e) is RuntimeError and str(e).startswith("item '3' (index 3) failed: mplock error 42: ")
    # The bridge's form: "<module>:<qualname>\n<traceback>".
    e = api.item_exception("x", 1, 1, b"builtins:KeyError\nTraceback (most recent call last):\nKeyError: 'k'\n")
    assert type(e) is KeyError and "item 'x' (index 1) failed:\nTraceback" in e.args[0]
    e = api.item_exception("x", 1, 1, b"json.decoder:JSONDecodeError\nTraceback ...\n")
    assert type(e).__name__ == "JSONDecodeError" and "Traceback ..." in str(e)
    e = api.item_exception("x", 1, 2, b"no_such_mod:Err\ntb\n")
    assert type(e) is RuntimeError and "no_such_mod:Err" in str(e)
    e = api.item_exception("x", 1, 1, b"builtins:KeyboardInterrupt\ntb\n")
    assert type(e) is RuntimeError  # never taken for the caller's own Ctrl-C
    assert results.decode(b"N") is None and results.decode(b"Sab") == "ab" and results.decode(b"Bab") == b"ab"
    import pickle
    assert results.decode(b"P" + pickle.dumps({"a": (1, 2)}, protocol=5)) == {"a": (1, 2)}
    with pytest.raises(results.ResultsFormatError):
        results.decode(b"9")


def test_job_names_and_lookup(env):
    enc = [x.encode() for x in DATA]
    a = api.job_name("/o", "mp_lock", enc)
    assert a.startswith("mp_lock-") and len(a) == len("mp_lock-") + 24
    assert a == api.job_name("/o", "mp_lock", enc)
    assert len({a, api.job_name("/p", "mp_lock", enc), api.job_name("/o", "mp_lock_batch:2", enc),
                api.job_name("/o", "map", enc), api.job_name("/o", "mp_lock", enc[:-1])}) == 5
    path = out(env)
    with mplock.Client(env.sock) as c:
        def submit(output, name):
            job = c.submit(module("square"), output, items=DATA, name=name)
            job.wait()  # the daemon of the tests runs 3 jobs at most
            return job

        j1 = submit(path, a)
        submit(out(env, "other"), a)
        j3 = submit(path, a)
        submit(path, "something else")
        assert api._find_job(c, a, path).id == j3.id > j1.id
        assert api._find_job(c, "mp_lock-none", path) is None


def test_daemon_autostart(tmp_path, monkeypatch, capfd):
    sock = str(tmp_path / "run" / "sock")
    os.makedirs(os.path.dirname(sock))
    monkeypatch.setenv("MPLOCK_SOCKET", sock)
    monkeypatch.setenv("MPLOCK_BUILD", BUILD)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.setattr(mdaemon, "_manager_runs", lambda system: False)  # the detached way, even under systemd
    assert mdaemon.find_mplockd() == os.path.join(BUILD, "mplockd")
    n = len(mdaemon.started)
    try:
        with mdaemon.connect() as c:
            assert c.jobs() == []
        assert capfd.readouterr().err == "mplock: started mplockd (user instance) at %s\n" % sock
        assert len(mdaemon.started) == n + 1
        p = mdaemon.started[-1]
        assert os.getsid(p.pid) == p.pid  # a session of its own: Ctrl-C does not reach it
        assert os.path.isdir(tmp_path / "state" / "mplockd")  # the user instance's default state directory
        # Now it answers: nothing more is started, nothing said.
        with mdaemon.connect() as c:
            c.jobs()
        assert len(mdaemon.started) == n + 1 and capfd.readouterr().err == ""
        try:
            bridge_ok = bool(payload.find_bridge())
        except RuntimeError:
            bridge_ok = False
        if bridge_ok:
            res = mplock.mp_lock_value(DATA, F.square, None, 2, str(tmp_path / "out"), verbose=False)
            assert res == [int(x) ** 2 for x in DATA]
    finally:
        for p in mdaemon.started[n:]:
            p.terminate()
            p.wait(timeout=30)
        del mdaemon.started[n:]


def test_daemon_autostart_of_the_users_own_instance(tmp_path, monkeypatch, capfd):
    # No $MPLOCK_SOCKET and nothing listening: the user's instance, at its
    # default socket in $XDG_RUNTIME_DIR, is started.
    monkeypatch.delenv("MPLOCK_SOCKET", raising=False)
    monkeypatch.setenv("MPLOCK_BUILD", BUILD)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    os.makedirs(tmp_path / "run")
    monkeypatch.setattr(mdaemon, "_manager_runs", lambda system: False)
    monkeypatch.setattr(mdaemon, "_is_root", lambda: False)  # a user, even when the tests run as root
    if mdaemon.reachable(mplock.client.default_socket()):
        pytest.skip("an mplockd answers at %s" % mplock.client.default_socket())
    sock = str(tmp_path / "run" / "mplockd" / "io.mplock.Manager")
    n = len(mdaemon.started)
    try:
        with mdaemon.connect() as c:
            assert c.socket_path == sock and c.jobs() == []
        assert capfd.readouterr().err == "mplock: started mplockd (user instance) at %s\n" % sock
        assert os.path.isdir(tmp_path / "state" / "mplockd")
        assert os.path.exists(tmp_path / "state" / "mplockd.log")  # its output, beside its state
    finally:
        for p in mdaemon.started[n:]:
            p.terminate()
            p.wait(timeout=30)
        del mdaemon.started[n:]


def test_no_mplockd_binary_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MPLOCK_BUILD", str(tmp_path))
    with pytest.raises(RuntimeError, match="MPLOCK_BUILD is .*/mplockd is not there"):
        mdaemon.find_mplockd()


def test_socket_rules(monkeypatch):
    monkeypatch.setenv("MPLOCK_SOCKET", "/x/env")
    assert mdaemon.socket_path("/x/arg") == "/x/arg"
    assert mdaemon.socket_path() == "/x/env"
    monkeypatch.delenv("MPLOCK_SOCKET")
    assert mdaemon.socket_path() == mplock.client.default_socket()


# --- progress -------------------------------------------------------------------------------

def test_progress_lines_and_silence(bridge, env, capfd):
    mplock.mp_lock(DATA, F.square, None, 2, out(env, "quiet"), verbose=False)
    assert capfd.readouterr() == ("", "")
    mplock.mp_lock(DATA, F.square, None, 2, out(env, "loud"), verbose=True)
    o, e = capfd.readouterr()
    assert o == ""  # stdout is the caller's
    last = e.strip().splitlines()[-1]
    assert "10/10" in last and "100%" in last


def test_tqdm_bar_when_tqdm_is_there():
    import io
    made = []

    class FakeTqdm:
        def __init__(self, total, initial, file, **kw):
            self.total, self.n, self.file, self.postfix, self.closed = total, initial, file, None, False
            made.append(self)

        def update(self, n):
            self.n += n

        def set_postfix(self, refresh=True, **kw):
            self.postfix = kw

        def close(self):
            self.closed = True

    s = io.StringIO()
    bar = progress.Progress(True, s)
    bar.impl = progress.TqdmBar(FakeTqdm, s)
    bar({"id": 1, "items": 100, "done": 30, "failed": 0})  # a resumed job starts at 30
    bar({"id": 1, "items": 100, "done": 100, "failed": 2})
    bar.close()
    assert len(made) == 1 and made[0].total == 100 and made[0].n == 100 and made[0].file is s
    assert made[0].postfix == {"failed": 2} and made[0].closed


def test_plain_bar_on_a_terminal_and_off_it():
    import io

    class Tty(io.StringIO):
        def isatty(self):
            return True

    info = {"id": 3, "items": 200, "done": 50, "failed": 2, "rate": 25.0, "eta_seconds": 6, "state": "running"}
    s = io.StringIO()
    bar = progress.Progress(True, s, use_tqdm=False)
    bar(info)
    bar(dict(info, done=100))
    bar.close()
    assert s.getvalue() == ("mplock job 3: 50/200 items (25%), 25.0/s, ETA 0:06, 2 failed\n"
                            "mplock job 3: 100/200 items (50%), 25.0/s, ETA 0:06, 2 failed\n")
    t = Tty()
    bar = progress.Progress(True, t, use_tqdm=False)
    bar(info)
    bar(dict(info, done=200, state="completed", eta_seconds=None))
    bar.close()
    assert t.getvalue().startswith("\rmplock job 3: 50/200") and "\rmplock job 3: 200/200" in t.getvalue()
    assert t.getvalue().endswith("[completed]\n")
