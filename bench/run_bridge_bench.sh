#!/bin/bash
# Bridge benchmark (docs/bridge.md, docs/performance.md "The bridge"):
# pacd-fake-driver on ipc:// against bench/bridge_bench.py playing pacd's side
# (20 Hz velocity targets stamped with CLOCK_MONOTONIC; the same host, so the
# clocks compare), in runs of DURATION seconds (15):
#   1. no faults: target-to-driver latency (pacd's send time to the driver's
#      receipt, p50/p99/max), the driver's 1 ms loop lateness unloaded
#      (wake-up time minus deadline, p50/p99/max) and the tracking error (RMS
#      of the driver's commanded joint velocity minus the target in force);
#   2. and 3. 10 % and 30 % of the targets dropped (--drop-targets): the
#      tracking error again;
#   4. only with --stress: `stress-ng --cpu 2` beside the driver: its loop
#      lateness loaded, and the ratio against run 1's. (Off by default: a
#      machine shared with other work must not be loaded on purpose.)
# Prints figures and the CPU; asserts nothing. About 4 x DURATION + 10 s.
#   usage: bench/run_bridge_bench.sh [--stress] [BUILD_DIR] [DURATION_S]
set -euo pipefail
cd "$(dirname "$0")/.."
STRESS=0
if [ "${1:-}" = "--stress" ]; then STRESS=1; shift; fi
BUILD=$(realpath "${1:-build}")
DURATION=${2:-15}
PY=/usr/bin/python3
DRIVER="$BUILD/hal/driver/pacd-fake-driver"
[ -x "$DRIVER" ] || { echo "build first: $DRIVER missing"; exit 2; }
if [ "$STRESS" = 1 ]; then
  command -v stress-ng >/dev/null || { echo "install stress-ng (deploy/install-deps.sh)"; exit 2; }
fi
export PACD_BUILD_DIR=$BUILD
TMP=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$TMP"' EXIT

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'), load average: $(cut -d' ' -f1-3 /proc/loadavg)"

# run NAME [driver options...]: one run; the driver's stats and the tracking
run() {
  local name=$1; shift
  local ep="ipc://$TMP/$name.sock"
  "$DRIVER" --bind "$ep" --robot panda --stats --trace "$TMP/$name.trace" --seed 1 "$@" \
    2> "$TMP/$name.log" &
  local drv=$!
  for _ in $(seq 100); do grep -q ready "$TMP/$name.log" && break; sleep 0.05; done
  $PY bench/bridge_bench.py --endpoint "$ep" --duration "$DURATION" --sent "$TMP/$name.sent" >/dev/null
  kill -TERM "$drv"
  wait "$drv" || true
  echo "== $name"
  grep -o 'stats: .*' "$TMP/$name.log" | sed 's/^stats: /  /'
  grep -o 'stopping: .*' "$TMP/$name.log" | sed 's/^stopping: /  driver: /'
  echo "  $($PY bench/bridge_bench.py --tracking "$TMP/$name.trace" --sent "$TMP/$name.sent")"
}

run unloaded
run drop10 --drop-targets 0.1
run drop30 --drop-targets 0.3
if [ "$STRESS" = 1 ]; then
  stress-ng --cpu 2 --timeout "$((DURATION + 5))s" >/dev/null 2>&1 &
  sleep 1
  run loaded
  wait
  lat() { grep -o 'tick lateness: .*' "$TMP/$1.log" | sed 's/.*p50 \([0-9-]*\) us, p99 \([0-9-]*\) us, max \([0-9-]*\) us/\1 \2 \3/'; }
  read -r u50 u99 umax <<< "$(lat unloaded)"
  read -r l50 l99 lmax <<< "$(lat loaded)"
  $PY -c "import sys; u=[max(1,int(x)) for x in sys.argv[1:4]]; l=[int(x) for x in sys.argv[4:7]]; \
print('lateness loaded / unloaded p50 %.2f, p99 %.2f, max %.2f' % tuple(b / a for a, b in zip(u, l)))" \
    "$u50" "$u99" "$umax" "$l50" "$l99" "$lmax"
else
  echo "(loaded lateness not measured: run with --stress, stress-ng --cpu 2 beside the driver)"
fi
