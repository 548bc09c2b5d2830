#!/bin/sh
# Builds mplock three times and tests each build: plain and ASan+UBSan run
# every meson test (unit, integration, and in the plain build torture and
# systemd); clang with libFuzzer (and ASan+UBSan) runs the fuzz suite, a
# minute per target. Ends with one line "N passed, M failed" over all test cases.
set -eu
cd "$(dirname "$0")/.."
./scripts/deps.sh

status=0
for variant in plain sanitize; do
        dir="build-test-$variant"
        if [ ! -f "$dir/build.ninja" ]; then
                if [ "$variant" = sanitize ]; then
                        # Modules are linked without the sanitizer runtime: the
                        # executables provide it.
                        meson setup "$dir" -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
                else
                        meson setup "$dir" >/dev/null
                fi
        fi
        ninja -C "$dir" >/dev/null
        echo "== $variant build: meson test"
        ASAN_OPTIONS="detect_leaks=1:abort_on_error=0" \
        UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1" \
                meson test -C "$dir" --print-errorlogs --num-processes 2 || status=1
done

# The fuzz targets, built with clang and libFuzzer, a minute each.
dir=build-test-fuzz
if [ ! -f "$dir/build.ninja" ]; then
        CC=clang meson setup "$dir" -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
fi
ninja -C "$dir" >/dev/null
echo "== fuzz targets (clang, libFuzzer, ASan+UBSan)"
meson test -C "$dir" --suite fuzz --print-errorlogs || status=1
grep -h "runs in" "$dir"/meson-logs/testlog.txt || true

python3 scripts/count-tests.py build-test-plain build-test-sanitize build-test-fuzz
exit $status
