# SPDX-License-Identifier: MIT
"""mplock.Client against every method of io.mplock.Manager and its errors,
on a real mplockd from the build tree."""

import json
import os

import pytest

import mplock
from harness import module


def items_file(d, name, items):
    path = os.path.join(d.tmp, name)
    with open(path, "w") as f:
        f.write("".join(i + "\n" for i in items))
    return path


def test_submit_wait_and_results_in_input_order(daemon):
    with mplock.Client(daemon.sock) as c:
        job = c.submit(module("square"), os.path.join(daemon.tmp, "out"), items=[str(i) for i in range(2500)],
                       workers=2, name="sq")
        assert job.info["name"] == "sq" and job.info["items"] == 2500
        assert job.wait()["state"] == "completed"
        res = list(job.results(limit=1000))  # three pages
        assert [r["index"] for r in res] == list(range(2500))
        assert [r["result"] for r in res] == [str(i * i) for i in range(2500)]
        assert job.status()["done"] == 2500
        assert [j.id for j in c.jobs()] == [job.id]
        assert c.job(job.id).info["state"] == "completed"
        assert job.info["umask"] == (lambda m: (os.umask(m), m)[1])(os.umask(0o022))


def test_an_input_file_and_progress(daemon):
    seen = []
    with mplock.Client(daemon.sock) as c:
        path = items_file(daemon, "items.txt", [str(i) for i in range(3000)])
        job = c.submit(module("square"), os.path.join(daemon.tmp, "out"), input=path, shared={"sleep_us": 500})
        final = job.wait(progress=seen.append)
        assert final["state"] == "completed"
        assert seen and seen[-1]["state"] == "completed"
        assert len(seen) >= 2  # at least one progress reply before the end


def test_failed_items_come_back_as_errors(daemon):
    with mplock.Client(daemon.sock) as c:
        job = c.submit(module("flaky"), os.path.join(daemon.tmp, "out"), items=[str(i) for i in range(20)],
                       shared={"fail": ["3"]}, max_attempts=1)
        assert job.wait()["state"] == "completed_with_failures"
        errors = [r for r in job.results() if "error" in r]
        assert [r["index"] for r in errors] == [3]
        assert errors[0]["error"]["code"] == 42


def test_pause_resume_cancel_retry_remove(daemon):
    with mplock.Client(daemon.sock) as c:
        out = os.path.join(daemon.tmp, "out")
        job = c.submit(module("burn"), out, items=[str(i) for i in range(200)], shared={"ms": 20}, workers=1)
        assert job.pause()["state"] == "paused"
        assert job.resume()["state"] in ("queued", "running")
        with pytest.raises(mplock.JobNotPaused) as e:
            job.resume()
        assert e.value.parameters["id"] == job.id
        assert job.cancel()["state"] == "cancelled"
        with pytest.raises(mplock.JobNotActive) as e:
            job.cancel()
        assert e.value.parameters["state"] == "cancelled"
        assert job.retry()["state"] in ("queued", "running")
        assert job.cancel()["state"] == "cancelled"
        job.remove()
        with pytest.raises(mplock.NoSuchJob) as e:
            job.status()
        assert e.value.parameters["id"] == job.id


def test_retry_of_some_failed_items(daemon):
    with mplock.Client(daemon.sock) as c:
        job = c.submit(module("flaky"), os.path.join(daemon.tmp, "o"), items=["a", "b", "c"],
                       shared={"fail": ["b"]}, max_attempts=1)
        assert job.wait()["state"] == "completed_with_failures"
        with pytest.raises(mplock.InvalidParameter) as e:
            job.retry(items=[(0, 3)])
        assert e.value.parameter == "items"
        with pytest.raises(mplock.InvalidParameter) as e:
            job.retry(codes=[0])
        assert e.value.parameter == "codes"
        assert job.retry(codes=[42], items=[(1, 1)])["state"] in ("queued", "running")
        info = job.wait()
        assert (info["state"], info["failed"], info["retries"]) == ("completed_with_failures", 1, 1)
        failed = [r for r in job.results() if "error" in r]
        assert [(r["index"], r["error"]["code"], r["attempts"]) for r in failed] == [(1, 42, 1)]


def test_errors_are_raised_by_name(daemon):
    with mplock.Client(daemon.sock) as c:
        with pytest.raises(mplock.InvalidParameter) as e:
            c.submit("relative.so", "/tmp/x", items=["a"])
        assert e.value.parameter == "module" and "absolute" in e.value.reason
        with pytest.raises(mplock.InvalidParameter) as e:
            c.submit(module("echo"), os.path.join(daemon.tmp, "o"), items=["a"], workers=0)
        assert e.value.parameter == "workers"
        with pytest.raises(mplock.NoSuchJob):
            c.job(12345)
        done = c.submit(module("echo"), os.path.join(daemon.tmp, "o"), items=["a"])
        done.wait()
        with pytest.raises(mplock.NothingToRetry):
            done.retry()
        with pytest.raises(mplock.JobNotActive):
            done.pause()
        # Three active jobs at most in this daemon.
        jobs = [c.submit(module("burn"), os.path.join(daemon.tmp, "b%d" % i), items=["1"] * 50, shared={"ms": 50})
                for i in range(3)]
        with pytest.raises(mplock.TooManyJobs) as e:
            c.submit(module("echo"), os.path.join(daemon.tmp, "o2"), items=["a"])
        assert e.value.parameters["limit"] == 3
        with pytest.raises(mplock.JobActive):
            jobs[0].remove()
        for j in jobs:
            j.cancel()
        # A module that does not load is refused before anything is stored.
        bad = os.path.join(daemon.tmp, "bad.so")
        with open(bad, "w") as f:
            f.write("not an ELF")
        with pytest.raises(mplock.InvalidParameter) as e:
            c.submit(bad, os.path.join(daemon.tmp, "o3"), items=["a"])
        assert e.value.parameter == "module"


def test_results_too_large_for_a_page_are_reported_by_size(daemon):
    daemon.stop()
    daemon.args = ["--max-message-size", "65536"]
    daemon.start()
    with mplock.Client(daemon.sock) as c:
        job = c.submit(module("echo"), os.path.join(daemon.tmp, "out"), items=["x" * 10000, "y"])
        job.wait()
        res = list(job.results())
        assert {k: res[0][k] for k in ("index", "too_large", "attempts")} == {"index": 0, "too_large": 20000,
                                                                                  "attempts": 1}
        assert res[1]["result"] == "y"


def test_get_info_and_default_socket(daemon, monkeypatch):
    with mplock.Client(daemon.sock) as c:
        info = c.info()
        assert "io.mplock.Manager" in info["interfaces"]
    monkeypatch.setenv("MPLOCK_SOCKET", daemon.sock)
    with mplock.Client() as c:
        assert c.socket_path == daemon.sock
        assert c.jobs() == []


def test_list_filters_by_name_and_output(daemon):
    with mplock.Client(daemon.sock) as c:
        o1, o2 = os.path.join(daemon.tmp, "o1"), os.path.join(daemon.tmp, "o2")
        a = c.submit(module("echo"), o1, items=["a"], name="alpha")
        b = c.submit(module("echo"), o2, items=["b"], name="alpha")
        d = c.submit(module("echo"), o1, items=["c"], name="beta")
        for j in (a, b, d):
            j.wait()
        assert [j.id for j in c.jobs()] == [a.id, b.id, d.id]
        assert [j.id for j in c.jobs(name="alpha")] == [a.id, b.id]
        assert [j.id for j in c.jobs(output=o1)] == [a.id, d.id]
        assert [j.id for j in c.jobs(name="alpha", output=o1)] == [a.id]
        assert c.jobs(name="gamma") == []
        with pytest.raises(mplock.InvalidParameter) as e:
            c.call("List", {"name": 7})
        assert e.value.parameter == "name"


def test_bytes_that_are_not_utf8_come_base64_encoded(daemon):
    """JSON is text: a pickle or an image as a result must not break the
    page (the results reader's reply was refused whole before)."""
    path = os.path.join(daemon.tmp, "bytes.txt")
    with open(path, "wb") as f:
        f.write(b"caf\xc3\xa9\n\xff\xfeA\n\xed\xa0\x80\nplain\n")
    with mplock.Client(daemon.sock) as c:
        job = c.submit(module("echo"), os.path.join(daemon.tmp, "out"), input=path)
        assert job.wait()["state"] == "completed"
        res = list(job.results())
    assert [r["item"] for r in res] == ["caf\u00e9", b"\xff\xfeA", b"\xed\xa0\x80", "plain"]
    assert [r["result"] for r in res] == ["caf\u00e9", b"\xff\xfeA", b"\xed\xa0\x80", "plain"]
    for via in ([], ["--via-daemon"]):
        out = daemon.ctl("results", "--json", *via, job.id).stdout.decode("utf-8", "strict")
        lines = [json.loads(line) for line in out.splitlines()]
        joblog = {k: lines[1].pop(k) for k in ("attempts", "worker", "run_usec")}
        assert lines[1] == {"index": 1, "item_base64": "//5B", "result_base64": "//5B"}
        assert joblog["attempts"] == 1
        assert lines[0]["result"] == "caf\u00e9" and lines[3]["item"] == "plain"


def test_pipeline_answers_in_order_and_errors_in_place(daemon):
    # Several calls in one round trip: each reply where its call was, an
    # error as its exception in its place, and the connection still good.
    with mplock.Client(daemon.sock) as c:
        out = os.path.join(daemon.tmp, "pipe")
        good = c.submit_parameters(module=module("echo"), output=out, items=["a", "b"], name="piped")
        bad = c.submit_parameters(module=module("echo"), output=out, items=["a"], workers=0)
        submitted, refused, listed, missing = c.pipeline(
            ("Submit", good), ("Submit", bad), ("List", {"name": "piped", "output": out}), ("Status", {"id": 999}))
        job = c.job_of(submitted)
        assert job.info["name"] == "piped" and job.info["items"] == 2
        assert isinstance(refused, mplock.InvalidParameter) and refused.parameter == "workers"
        assert [j["id"] for j in listed["jobs"]] == [job.id]
        assert isinstance(missing, mplock.NoSuchJob)
        assert job.wait()["state"] == "completed"
        assert c.pipeline() == []
