#!/bin/bash
# The main job: build pacd, start it on the MuJoCo SawyerLift cell (the
# robosuite scene in ../shared/data) with the trained low-dim checkpoint of
# deploy/checkpoints/, run a short evaluation (EPISODES seeded episodes that
# training never saw, sampled actions), and print the success count and the
# episode logs. deploy/checkpoints/README.md says how the checkpoint was made.
#   usage: deploy/run-main-job.sh [BUILD_DIR] [EPISODES]   (default: build 5)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
EPISODES=${2:-5}
PY=/usr/bin/python3
OUT=$PWD/out/main-job
CKPT=$PWD/deploy/checkpoints/lift-lowdim.safetensors
SCENE=$(realpath -m ../shared/data/robosuite/assets/demonstrations/SawyerLift/models/model_1.xml)
[ -f "$SCENE" ] || { echo "run-main-job: $SCENE is missing: ../shared must be beside the repository" >&2; exit 2; }

[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" >/dev/null
ninja -C "$BUILD" >/dev/null
export PACD_BUILD_DIR=$(realpath "$BUILD")
PACCTL="$BUILD/clients/pacctl"

mkdir -p "$OUT/episodes"
rm -f "$OUT"/episodes/*.mcap
# free ports for the four endpoints
read -r P_CAM P_STATE P_TEL P_CTL < <($PY -c '
import socket
s = [socket.socket() for _ in range(4)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
cat > "$OUT/pacd.conf" <<CONF
[pacd]
rate_hz = 20
lock_memory = false
mode = control
[policy]
checkpoint = $CKPT
sample = true
temperature = 1.0
seed = 1
[robot]
name = sawyer
backend = mujoco
scene = $SCENE
seed = 1
[safety]
workspace_min = 0.3, -0.25, -0.13
workspace_max = 0.8, 0.35, 0.25
[ingest]
camera_bind = tcp://127.0.0.1:$P_CAM
state_bind = tcp://127.0.0.1:$P_STATE
[episode]
max_steps = 250
reset_on_start = true
[task]
source = hal
[logger]
directory = $OUT/episodes
[telemetry]
bind = tcp://127.0.0.1:$P_TEL
rate_hz = 20
[control]
bind = tcp://127.0.0.1:$P_CTL
CONF
"$BUILD/daemon/pacd" --check-config "$OUT/pacd.conf"

echo "== pacd on the MuJoCo SawyerLift cell with $(basename "$CKPT") =="
"$BUILD/daemon/pacd" --config "$OUT/pacd.conf" 2> "$OUT/pacd.log" &
PACD=$!
trap 'kill $PACD 2>/dev/null || true' EXIT
export PACD_CONTROL=tcp://127.0.0.1:$P_CTL PACD_TELEMETRY=tcp://127.0.0.1:$P_TEL \
       PACD_STATE=tcp://127.0.0.1:$P_STATE
for _ in $(seq 100); do
  "$PACCTL" --control "$PACD_CONTROL" --timeout 200 status >/dev/null 2>&1 && break
  kill -0 $PACD 2>/dev/null || { cat "$OUT/pacd.log" >&2; exit 1; }
  sleep 0.2
done

echo "== $EPISODES evaluation episodes (seeds 900000...) =="
$PY clients/pacd_lift_operator.py evaluate --episodes "$EPISODES" --seed 900000 --timeout 30
kill -TERM $PACD
wait $PACD || true
trap - EXIT
echo "== episode logs in $OUT/episodes (pacctl log verify / cat / export) =="
for f in "$OUT"/episodes/*.mcap; do "$PACCTL" log verify "$f" | head -1; done
