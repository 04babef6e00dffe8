#!/bin/bash
# The whole test suite: a normal build, an AddressSanitizer+UBSan build and a
# ThreadSanitizer build, each running every unit test (cmocka) and
# integration test (pytest); then a clang build running each libFuzzer
# harness for 20 s (tests/fuzz/README.md), two at a time. The sanitizer and
# fuzz builds compile in the background (nice 19) during the plain tests;
# what is left of them when those end is built at full speed.
#   usage: deploy/run-tests.sh        (run deploy/install-deps.sh first, as root)
set -euo pipefail
cd "$(dirname "$0")/.."
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
status=0

# meson setup DIR ARGS unless DIR is set up; a set-up cut short (no
# build.ninja) is started again from nothing
setup() {
  local dir=$1; shift
  [ -f "$dir/build.ninja" ] && return 0
  rm -rf "$dir"
  meson setup "$dir" "$@" >/dev/null
}
setup_asan() {
  setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dc_args=-fno-sanitize-recover=all
}
setup_tsan() {
  setup build-tsan -Db_sanitize=thread -Db_lundef=false
}
setup_fuzz() {
  CC=clang setup build-fuzz -Dfuzz=true -Dmujoco=disabled -Db_sanitize=address,undefined \
    -Db_lundef=false -Dc_args=-fno-sanitize-recover=all
}

setup build
ninja -C build

# The other builds compile meanwhile, on the CPU the plain build's tests
# leave idle (they mostly wait: daemons at 20 Hz, real-time pacing): nice 19
# and one job, so the tests hardly notice. Output goes to a file; each
# build's own setup and ninja below finish what is left, or report its
# errors again.
bg_log=$(mktemp "${TMPDIR:-/tmp}/pacd-run-tests-build-XXXXXX")
( setup_asan && nice -n 19 ninja -C build-asan -j1 &&
  setup_tsan && nice -n 19 ninja -C build-tsan -j1 &&
  setup_fuzz && nice -n 19 ninja -C build-fuzz -j1 ) >"$bg_log" 2>&1 &
bg_build=$!
meson test -C build --print-errorlogs --num-processes 2 || status=1
# The plain tests are done: what the background build has not finished yet
# (on a loaded machine, at nice 19 and one job, most of it) is built below at
# full speed. Stop it: ninja ends its compilers and records only finished
# objects, so the builds below redo nothing and miss nothing.
if kill -0 "$bg_build" 2>/dev/null; then
  bg_kids=$(pgrep -P "$bg_build" || true)
  kill "$bg_build" 2>/dev/null || true
  [ -z "$bg_kids" ] || kill $bg_kids 2>/dev/null || true
  wait "$bg_build" 2>/dev/null || true
  rm -f "$bg_log"
elif wait "$bg_build"; then rm -f "$bg_log"
else echo "run-tests.sh: the background build stopped (errors again below; its log: $bg_log)"; fi

setup_asan
ninja -C build-asan
meson test -C build-asan --print-errorlogs --num-processes 2 || status=1

# ThreadSanitizer: libzmq's own lock-free internals are suppressed (tests/tsan.supp)
setup_tsan
ninja -C build-tsan
PACD_SANITIZER=thread TSAN_OPTIONS="suppressions=$PWD/tests/tsan.supp halt_on_error=1" \
  meson test -C build-tsan --print-errorlogs --num-processes 2 || status=1

# libFuzzer harnesses (clang, ASan+UBSan), each on a copy of its seed corpus;
# two at a time (each is one process: a core each, as when run alone)
setup_fuzz
ninja -C build-fuzz
meson test -C build-fuzz --print-errorlogs --suite fuzz --num-processes 2 || status=1

exit $status
