#!/bin/sh
# The benchmarks: builds an optimized tree (build-bench), runs every
# workload of docs/performance.md with the peers (GNU parallel, xargs,
# Python's multiprocessing) in the same run, and prints the table.
# Installs what it needs on Debian (through sudo when not root).
set -eu
cd "$(dirname "$0")/.."
./scripts/deps.sh
if ! command -v parallel >/dev/null; then
        SUDO=""
        [ "$(id -u)" = 0 ] || SUDO=sudo
        $SUDO apt-get install -y -qq parallel >/dev/null
fi
[ -f build-bench/build.ninja ] || meson setup build-bench --buildtype=release -Db_ndebug=true -Dtests=false >/dev/null
ninja -C build-bench >/dev/null
exec python3 bench/run.py build-bench --json build-bench/bench.json "$@"
