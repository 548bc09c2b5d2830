#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The daemon's layers form a tree (docs/architecture.md): each file may
include the headers of its own layer and of the layers below it, never
above. The build's include directories keep the daemon, the runner and the
client apart; this keeps the daemon's layers apart. Fails, naming the
include, when a file reaches up or sideways."""

import os
import re
import sys

# layer: (its files' stems, the layers it may use)
LAYERS = {
    "main": ({"main"}, {"control", "api", "submit", "jobs", "runners", "scopes", "store", "config"}),
    "control": ({"control"}, {"config"}),
    "api": ({"api", "api-internal", "api-job", "api-submit", "api-results", "api-stats"},
            {"control", "submit", "jobs", "runners", "scopes", "config"}),
    "submit": ({"submit", "spares"}, {"jobs", "runners", "store", "config"}),
    "jobs": ({"jobs", "job", "job-persist", "job-scope", "job-stats", "jobs-journal"}, {"runners", "scopes", "store", "config"}),
    "runners": ({"runner-proc", "agents", "agent-env", "results-reader", "notifier"}, set()),
    "scopes": ({"scope"}, set()),
    "store": ({"store", "snapshot", "journal", "syncer"}, set()),
    "config": ({"config"}, set()),
}


def layer_of(stem):
    for name, (stems, _) in LAYERS.items():
        if stem in stems:
            return name
    return None


def main():
    daemon = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "daemon")
    problems = []
    for fn in sorted(os.listdir(daemon)):
        if not fn.endswith((".c", ".h")):
            continue
        stem = fn.rsplit(".", 1)[0]
        layer = layer_of(stem)
        if layer is None:
            problems.append("%s: in no layer (add it to tests/unit/check-layers.py)" % fn)
            continue
        allowed = LAYERS[layer][1] | {layer}
        with open(os.path.join(daemon, fn)) as f:
            for n, line in enumerate(f, 1):
                m = re.match(r'#include "([^"/]+)\.h"', line)
                if not m or not os.path.exists(os.path.join(daemon, m.group(1) + ".h")):
                    continue  # common/ and generated headers are below everything
                target = layer_of(m.group(1))
                if target not in allowed:
                    problems.append("daemon/%s:%d: the %s layer includes %s.h of the %s layer" %
                                    (fn, n, layer, m.group(1), target))
    for p in problems:
        print(p)
    print("%d problems" % len(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
