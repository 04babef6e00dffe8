#!/bin/bash
# Loop benchmark: pacd at 20 Hz on the sim Panda for DURATION seconds (60)
# with a camera publisher and a running episode, against cyclictest (rt-tests)
# measuring plain clock_nanosleep wake-up latency at the same 50 ms interval
# in the same run, with the same scheduling policy. Prints figures and ratios;
# asserts nothing.
#   usage: bench/run_loop_bench.sh [BUILD_DIR] [DURATION_S] [RT_PRIORITY]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=$(realpath "${1:-build}")
DURATION=${2:-60}
PRIO=${3:-0}
PY=/usr/bin/python3
command -v cyclictest >/dev/null || { echo "install rt-tests (cyclictest)"; exit 2; }
export PACD_BUILD_DIR=$BUILD
TMP=$(mktemp -d)
PIDS=()
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$TMP"' EXIT
trap 'exit 143' INT TERM   # a kill or Ctrl-C also runs the EXIT trap
TICKS=$((DURATION * 20))

. "$(dirname "$0")/bench_pacd.sh"
bench_pacd_start "$TMP" "$TICKS" "$PRIO"

CT_PRIO=()
[ "$PRIO" -gt 0 ] && CT_PRIO=(-p "$PRIO")
cyclictest -q -m -t1 -i 50000 -l "$TICKS" "${CT_PRIO[@]}" > "$TMP/cyclictest.txt" 2>&1 &
CT=$!
sleep "$DURATION"
sleep 1
$PACCTL status --json > "$TMP/status.json"
wait $CT || true
$PACCTL episode stop >/dev/null || true

$PY - "$TMP/status.json" "$TMP/cyclictest.txt" "$DURATION" "$PRIO" <<'PYEOF'
import json, re, sys
st = json.load(open(sys.argv[1]))
ct = open(sys.argv[2]).read()
m = re.search(r"Min:\s*(\d+)\s+Act:\s*\d+\s+Avg:\s*(\d+)\s+Max:\s*(\d+)", ct)
print("pacd loop benchmark: %s s at 20 Hz, sim Panda, MLP actor, camera 128x128, SCHED_%s"
      % (sys.argv[3], "FIFO %s" % sys.argv[4] if sys.argv[4] != "0" else "OTHER"))
print("  ticks %d, deadline misses %d, stale steps %d, window %d ticks"
      % (st["tick_count"], st["deadline_misses"], st["stale_steps"], st["window_ticks"]))
for k in ("lateness", "period", "inference", "loop"):
    p = st[k]
    print("  %-10s p50 %7d us  p99 %7d us  max %7d us" % (k, p["p50_us"], p["p99_us"], p["max_us"]))
if m:
    mn, avg, mx = (int(x) for x in m.groups())
    print("  cyclictest (same interval, same run): min %d us  avg %d us  max %d us" % (mn, avg, mx))
    lat = st["lateness"]
    print("  ratio pacd/cyclictest: max lateness %.2f, pacd p50 lateness / cyclictest avg %.2f"
          % (lat["max_us"] / max(mx, 1), lat["p50_us"] / max(avg, 1)))
else:
    print("  cyclictest output not understood:\n" + ct)
PYEOF
