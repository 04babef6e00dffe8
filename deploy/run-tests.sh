#!/bin/bash
# The whole test suite: a normal build, an AddressSanitizer+UBSan build and a
# ThreadSanitizer build, each running every unit test (cmocka) and
# integration test (pytest); then a clang build running each libFuzzer
# harness for 20 s (tests/fuzz/README.md).
#   usage: deploy/run-tests.sh        (run deploy/install-deps.sh first, as root)
set -euo pipefail
cd "$(dirname "$0")/.."
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
status=0

[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build
meson test -C build --print-errorlogs --num-processes 2 || status=1

[ -f build-asan/build.ninja ] || meson setup build-asan -Db_sanitize=address,undefined \
  -Db_lundef=false -Dc_args=-fno-sanitize-recover=all >/dev/null
ninja -C build-asan
meson test -C build-asan --print-errorlogs --num-processes 2 || status=1

# ThreadSanitizer: libzmq's own lock-free internals are suppressed (tests/tsan.supp)
[ -f build-tsan/build.ninja ] || meson setup build-tsan -Db_sanitize=thread -Db_lundef=false >/dev/null
ninja -C build-tsan
PACD_SANITIZER=thread TSAN_OPTIONS="suppressions=$PWD/tests/tsan.supp halt_on_error=1" \
  meson test -C build-tsan --print-errorlogs --num-processes 2 || status=1

# libFuzzer harnesses (clang, ASan+UBSan), each on a copy of its seed corpus
[ -f build-fuzz/build.ninja ] || CC=clang meson setup build-fuzz -Dfuzz=true -Dmujoco=disabled \
  -Db_sanitize=address,undefined -Db_lundef=false -Dc_args=-fno-sanitize-recover=all >/dev/null
ninja -C build-fuzz
meson test -C build-fuzz --print-errorlogs --suite fuzz || status=1

exit $status
