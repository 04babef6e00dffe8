#!/bin/bash
# Run one libFuzzer harness on a COPY of its seed corpus in a temporary
# directory (the committed corpus is never changed) and report.
#   usage: run-fuzz.sh HARNESS CORPUS_DIR [libFuzzer options...]
#   e.g.   run-fuzz.sh build-fuzz/tests/fuzz/fuzz_mcap tests/fuzz/corpus/mcap -max_total_time=20
# Exit 0 when the harness found nothing. On a crash, leak, timeout or
# out-of-memory it exits 1, prints libFuzzer's report and keeps the
# reproducer (crash-*, leak-*, timeout-*, oom-*) in a directory it names;
# otherwise the temporary directory is removed.
# Stopped by SIGINT/SIGTERM with nothing found (libFuzzer's exit 72): exit 130,
# the directory removed, "interrupted" at the end of the last line.
# Last line of output: "fuzz <name>: runs=N seconds=S exec/s=R crashes=C"
set -uo pipefail
exe=$1 corpus=$2
shift 2
name=$(basename "$exe")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pacd-$name-XXXXXX")
keep=0
cleanup() { [ "$keep" = 1 ] || rm -rf "$tmp"; }
trap cleanup EXIT
mkdir -p "$tmp/corpus" "$tmp/artifacts"
cp -r "$corpus"/. "$tmp/corpus/"
# sanitizers stop at the first report; libFuzzer catches UBSan reports too
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
start=$(date +%s.%N)
# -timeout: one input taking this long is a hang; -malloc_limit_mb: one
# allocation above this is a bug (sizes must be checked against the input)
"$exe" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 -print_final_stats=1 \
  -artifact_prefix="$tmp/artifacts/" "$@" "$tmp/corpus" >"$tmp/log" 2>&1
rc=$?
end=$(date +%s.%N)
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$tmp/log" | tail -1)
runs=${runs:-0}
secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
crashes=$(find "$tmp/artifacts" -type f \( -name "crash-*" -o -name "leak-*" -o -name "timeout-*" -o -name "oom-*" \) | wc -l)
# 72: libFuzzer's exit code when SIGINT/SIGTERM ended the run (-interrupted_exitcode)
if [ "$rc" = 72 ] && [ "$crashes" = 0 ]; then
  echo "fuzz $name: interrupted after $runs runs, nothing found"
  echo "fuzz $name: runs=$runs seconds=$secs exec/s=$(awk -v n="$runs" -v s="$secs" \
    'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }') crashes=0 interrupted"
  exit 130
fi
if [ "$rc" != 0 ] || [ "$crashes" != 0 ]; then
  keep=1
  tail -n 80 "$tmp/log"
  echo "fuzz $name: FAILED (exit $rc); reproducers kept in $tmp/artifacts:"
  ls -l "$tmp/artifacts"
  echo "  reproduce: $exe $tmp/artifacts/<file>"
  [ "$crashes" = 0 ] && crashes=1
fi
rate=$(awk -v n="$runs" -v s="$secs" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')
echo "fuzz $name: runs=$runs seconds=$secs exec/s=$rate crashes=$crashes"
[ "$crashes" = 0 ]
