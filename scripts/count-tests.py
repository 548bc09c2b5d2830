#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Adds up test cases over meson test logs. Integration test programs print
"mplock-tests: N passed, M failed", Check programs their own
"NN%: Checks: N, Failures: F, Errors: E"; a program that died before
printing either counts as one failed test. Prints "N passed, M failed"."""

import json
import re
import sys

passed = failed = skipped = 0
for build in sys.argv[1:]:
    try:
        with open(build + "/meson-logs/testlog.json") as f:
            runs = [json.loads(line) for line in f if line.strip()]
    except OSError:
        print("no test log in %s" % build, file=sys.stderr)
        failed += 1
        continue
    for run in runs:
        if run.get("result") == "SKIP":
            skipped += 1
            print("skipped: %s" % run.get("name"), file=sys.stderr)
            continue
        out = (run.get("stdout", "") or "") + (run.get("stderr", "") or "")
        counts = re.findall(r"mplock-tests: (\d+) passed, (\d+) failed", out)
        counts += [(int(n) - int(f) - int(e), int(f) + int(e))
                   for n, f, e in re.findall(r"\d+%: Checks: (\d+), Failures: (\d+), Errors: (\d+)", out)]
        ok = run.get("result") == "OK"
        if counts:
            p = sum(int(c[0]) for c in counts)
            f = sum(int(c[1]) for c in counts)
            passed += p
            failed += f
            if not ok and f == 0:
                failed += 1  # the program failed after its tests (leaks, crash)
        elif ok:
            passed += 1
        else:
            failed += 1
print("%d passed, %d failed" % (passed, failed))
