#!/bin/bash
# Live view benchmark: does serving Foxglove viewers slow the control loop?
# One pacd at 20 Hz on the sim Panda with a camera publisher and a running
# episode, [foxglove] on (JPEG images at 10 Hz); ROUNDS times, alternately,
# DURATION seconds with no viewer and DURATION seconds with VIEWERS viewers
# (tests/integration/foxglove_view.mjs hold: @foxglove/ws-protocol clients
# subscribed to every channel, decoding everything). After each phase the
# telemetry window (DURATION * 20 ticks, so only that phase's ticks) gives
# the loop's wake-up lateness and tick work. Prints figures and ratios
# (viewers / none); asserts nothing.
#   usage: bench/run_foxglove_bench.sh [BUILD_DIR] [DURATION_S] [RT_PRIORITY] [ROUNDS] [VIEWERS]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=$(realpath "${1:-build}")
DURATION=${2:-30}
PRIO=${3:-0}
ROUNDS=${4:-2}
VIEWERS=${5:-10}
PY=/usr/bin/python3
[ -d tests/integration/node_modules ] || {
  echo "run: npm ci --prefix tests/integration --no-audit --no-fund --ignore-scripts"; exit 2; }
export PACD_BUILD_DIR=$BUILD
TMP=$(mktemp -d)
PIDS=()
cleanup() {
  exec 3>&- 2>/dev/null || true
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 143' INT TERM   # a kill or Ctrl-C also runs the EXIT trap
TICKS=$((DURATION * 20))
FGPORT=18765

. "$(dirname "$0")/bench_pacd.sh"
bench_pacd_start "$TMP" "$TICKS" "$PRIO" "s|^enabled = false|enabled = true|" \
  "s|^port = 8765|port = $FGPORT|" "s|^image_rate_hz = .*|image_rate_hz = 10|"

field() { $PACCTL status --json 3>&- | $PY -c "import json,sys; print(json.load(sys.stdin)$1)" 3>&-; }

for r in $(seq "$ROUNDS"); do
  # no viewer: a whole window of ticks without one
  sleep $((DURATION + 1))
  $PACCTL status --json > "$TMP/none-$r.json"
  # VIEWERS viewers, connected before the window starts
  mkfifo "$TMP/hold-$r"
  exec 3<>"$TMP/hold-$r"
  VPIDS=()
  for v in $(seq "$VIEWERS"); do
    node tests/integration/foxglove_view.mjs "ws://127.0.0.1:$FGPORT" \
      $([ $((v % 2)) -eq 0 ] && echo foxglove.sdk.v1 || echo foxglove.websocket.v1) hold \
      < "$TMP/hold-$r" > "$TMP/viewer-$r-$v.json" 2>>"$TMP/viewers.log" 3>&- &
    VPIDS+=($!)
    PIDS+=($!)
  done
  for _ in $(seq 300); do
    [ "$(field "['foxglove_clients']")" = "$VIEWERS" ] && break; sleep 0.1
  done
  sleep $((DURATION + 1))
  $PACCTL status --json > "$TMP/viewers-$r.json"
  exec 3>&-
  for p in "${VPIDS[@]}"; do wait "$p" || true; done
  rm -f "$TMP/hold-$r"
done
$PACCTL episode stop >/dev/null || true

$PY - "$TMP" "$ROUNDS" "$DURATION" "$PRIO" "$VIEWERS" <<'PYEOF'
import json, os, statistics, sys
tmp, rounds, dur, prio, nv = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
print("pacd live view benchmark: %s s phases at 20 Hz, sim Panda, MLP actor, camera 128x128, "
      "SCHED_%s; %d rounds of no viewer / %d Foxglove viewers (all channels, JPEG at 10 Hz)"
      % (dur, "FIFO %s" % prio if prio != "0" else "OTHER", rounds, nv))
def row(label, st):
    lat, loop = st["lateness"], st["loop"]
    print("  %-16s lateness p50 %6d p99 %6d max %6d us | tick work p50 %5d p99 %5d max %6d us"
          " | misses since start %d, viewers %d"
          % (label, lat["p50_us"], lat["p99_us"], lat["max_us"], loop["p50_us"], loop["p99_us"],
             loop["max_us"], st["deadline_misses"], st.get("foxglove_clients", 0)))
acc = {"none": [], "viewers": []}
for r in range(1, rounds + 1):
    for k in ("none", "viewers"):
        st = json.load(open(os.path.join(tmp, "%s-%d.json" % (k, r))))
        acc[k].append(st)
        row("round %d %s" % (r, k), st)
    msgs = byts = 0
    for v in range(1, nv + 1):
        try:
            d = json.load(open(os.path.join(tmp, "viewer-%d-%d.json" % (r, v))))
            msgs, byts = msgs + d["messages"], byts + d["bytes"]
        except (OSError, ValueError):
            pass
    print("  round %d: the viewers decoded %d messages, %.1f MB" % (r, msgs, byts / 1e6))
def med(k, f, p):
    return statistics.median(st[f][p] for st in acc[k])
for f in ("lateness", "loop"):
    parts = []
    for p in ("p50_us", "p99_us", "max_us"):
        a, b = med("none", f, p), med("viewers", f, p)
        parts.append("%s %.0f -> %.0f us (x%.2f)" % (p[:-3], a, b, b / max(a, 1)))
    print("  %-9s none -> %d viewers (median of rounds): %s" % (f, nv, ", ".join(parts)))
last = acc["viewers"][-1]
print("  live view: %d viewers accepted, %d dropped slow, %d dropped bad"
      % (last.get("foxglove_clients_accepted", 0), last.get("foxglove_clients_dropped_slow", 0),
         last.get("foxglove_clients_dropped_bad", 0)))
PYEOF
