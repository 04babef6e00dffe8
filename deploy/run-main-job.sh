#!/bin/bash
# The main job: build pacd, make an example checkpoint with policy/torch,
# start pacd on the simulated Panda with a camera publisher feeding frames,
# run one episode of 200 steps, and say where the log is and what
# `pacctl log verify` says of it.
#   usage: deploy/run-main-job.sh [BUILD_DIR]     (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
PY=/usr/bin/python3
OUT=$PWD/out
STEPS=200

[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" >/dev/null
ninja -C "$BUILD" >/dev/null
export PACD_BUILD_DIR=$(realpath "$BUILD")

mkdir -p "$OUT/episodes"
echo "== making the example checkpoint (policy/torch) =="
PYTHONPATH=policy/torch $PY -m pacd_torch.make_example --robot panda --out "$OUT/example-panda.safetensors"

# the example config with this run's paths and ports
sed -e "s|^checkpoint = .*|checkpoint = $OUT/example-panda.safetensors|" \
    -e "s|^directory = .*|directory = $OUT/episodes|" \
    -e "s|^lock_memory = .*|lock_memory = false|" \
    deploy/pacd.conf > "$OUT/pacd-main-job.conf"
"$BUILD/daemon/pacd" --check-config "$OUT/pacd-main-job.conf"

echo "== starting pacd (sim Panda) and a camera publisher =="
"$BUILD/daemon/pacd" --config "$OUT/pacd-main-job.conf" 2> "$OUT/pacd.log" &
PACD=$!
$PY clients/pacd_client.py camera --camera front --size 128x128 --rate 20 2> "$OUT/camera.log" &
CAM=$!
trap 'kill $CAM 2>/dev/null || true; kill $PACD 2>/dev/null || true' EXIT
PACCTL="$BUILD/clients/pacctl"
for _ in $(seq 50); do
  "$PACCTL" --timeout 200 status >/dev/null 2>&1 && break
  sleep 0.1
done

echo "== one episode of $STEPS steps =="
"$PACCTL" episode start --max-steps $STEPS
for _ in $(seq 600); do
  state=$("$PACCTL" status --json | $PY -c 'import json,sys; t=json.load(sys.stdin); print(t["state"], t["step"])')
  [ "$state" = "IDLE $STEPS" ] && break
  sleep 0.1
done
"$PACCTL" status
kill -TERM $PACD
wait $PACD
kill $CAM 2>/dev/null || true
trap - EXIT

LOG=$(ls -t "$OUT"/episodes/*.mcap | head -1)
echo "== episode log: $LOG =="
"$PACCTL" log verify "$LOG"
