# SPDX-License-Identifier: MIT
"""pytest glue: the package from the source tree, a daemon per test, and
the summary line that .ci/run adds up ("mplock-tests: N passed, M failed")."""

import os
import shutil
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from harness import Daemon  # noqa: E402


@pytest.fixture
def daemon():
    tmp = tempfile.mkdtemp(prefix="mplock-pytest-")
    d = Daemon(tmp, ("--max-active-jobs", "3")).start()
    d.tmp = tmp
    yield d
    d.stop()
    shutil.rmtree(tmp, ignore_errors=True)


def pytest_terminal_summary(terminalreporter):
    stats = terminalreporter.stats
    passed = len(stats.get("passed", []))
    failed = len(stats.get("failed", [])) + len(stats.get("error", []))
    terminalreporter.write_line("mplock-tests: %d passed, %d failed" % (passed, failed))
