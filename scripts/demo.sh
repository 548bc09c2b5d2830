#!/bin/sh
# Builds mplock, starts an mplockd for the current user, submits a sample
# job (the square module over 0..199), watches it, and shows its results;
# then the same daemon runs the mp_lock library's own example from Python.
set -eu
cd "$(dirname "$0")/.."
./scripts/deps.sh

[ -f build/build.ninja ] || meson setup build >/dev/null
# Only what the demo runs (the tests are built by scripts/test.sh).
# The Python bridge is named after the Python it embeds (Debian's).
PYV=$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
ninja -C build mplockd mplockctl mplock-runner examples/square.so "python/mplock-python$PYV.so" >/dev/null || {
        echo "build failed; rerun: ninja -C build" >&2
        exit 1
}

DEMO="$PWD/build/demo"
rm -rf "$DEMO"
mkdir -p "$DEMO"
seq 0 199 > "$DEMO/items.txt"
export MPLOCK_SOCKET="$DEMO/mplockd.sock"

echo "== Starting mplockd (socket $MPLOCK_SOCKET, log $DEMO/mplockd.log)"
./build/mplockd --socket "$MPLOCK_SOCKET" --state-dir "$DEMO/state" >"$DEMO/mplockd.log" 2>&1 &
DAEMON=$!
trap 'kill $DAEMON 2>/dev/null; wait $DAEMON 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -S "$MPLOCK_SOCKET" ] && break; sleep 0.1; done

echo "== Submitting: square over 200 items, 2 workers, 20 ms each"
JOB=$(./build/mplockctl submit --module build/examples/square.so --input "$DEMO/items.txt" \
        --output "$DEMO/out" --workers 2 --save-batch 50 --shared '{"sleep_us": 20000}')
echo "job $JOB"

echo "== Watching"
./build/mplockctl watch "$JOB"

echo "== Status"
./build/mplockctl status "$JOB"

echo "== Results (first 10 of 200, in input order)"
./build/mplockctl results "$JOB" | head -n 10
echo "sum of the first 10: $(./build/mplockctl results "$JOB" | head -n 10 | awk '{s+=$1} END {print s}') (the mp_lock test: 285)"
echo "sum of all 200:      $(./build/mplockctl results "$JOB" | awk '{s+=$1} END {print s}')"

echo "== From Python: mp_lock_value, as the mp_lock library's users call it"
cat > "$DEMO/squares.py" <<'PY'
from mplock import mp_lock_value

def process(data, shared_data, init_values):
    return int(data) ** 2

results = mp_lock_value([str(i) for i in range(10)], process, None, 2, "out-python")
print("results:", results, "sum:", sum(results))
PY
(cd "$DEMO" && PYTHONPATH="$OLDPWD/python" MPLOCK_BUILD="$OLDPWD/build" /usr/bin/python3 squares.py)
