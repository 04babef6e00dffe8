#!/bin/bash
# The long fuzz run: each harness of tests/fuzz in turn for a fixed number of
# executions (default 10^7, the goal of 0 crashes in 10^7 executions per
# target), on a temporary copy of its seed corpus, one at a time.
#   usage: tests/fuzz/run-long.sh [-n RUNS] [TARGET...]   (default: every target)
#   e.g.   tests/fuzz/run-long.sh -n 1000000 mcap config
# Builds build-fuzz first when needed (CC=clang, -Dfuzz=true, ASan+UBSan).
# Prints the CPU, then per target: executions, seconds, exec/s and crashes;
# a failing target's reproducers are kept and their directory printed
# (tests/fuzz/README.md: how to reproduce and what to commit).
# Exit 0 when no target found anything.
set -uo pipefail
cd "$(dirname "$0")/../.."
runs=10000000
while getopts n: opt; do
  case $opt in
    n) runs=$OPTARG ;;
    *) sed -n 2,12p "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
if [ ! -f build-fuzz/build.ninja ]; then
  CC=clang meson setup build-fuzz -Dfuzz=true -Dmujoco=disabled -Db_sanitize=address,undefined \
    -Db_lundef=false -Dc_args=-fno-sanitize-recover=all >/dev/null || exit 2
fi
targets=("$@")
if [ ${#targets[@]} = 0 ]; then
  for f in tests/fuzz/fuzz_*.c; do t=${f##*/fuzz_}; targets+=("${t%.c}"); done
fi
exes=()
for t in "${targets[@]}"; do exes+=("tests/fuzz/fuzz_$t"); done
ninja -C build-fuzz "${exes[@]}" >/dev/null || exit 2

echo "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)," \
     "$(nproc) CPUs online; $(date -u '+%Y-%m-%d %H:%M UTC')"
status=0
for t in "${targets[@]}"; do
  tests/fuzz/run-fuzz.sh "build-fuzz/tests/fuzz/fuzz_$t" "tests/fuzz/corpus/$t" \
    -runs="$runs" | tail -n 120 || status=1
done
exit $status
