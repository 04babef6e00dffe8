#!/bin/bash
# pacd on real input (README, third run), with a PAC checkpoint (pac-s size,
# random weights: it exercises the pipeline, it has learned nothing):
#  1. shadow mode on the recorded SawyerLift human demonstration (demo_1),
#     replayed through MuJoCo by pacd-replay: one step per recorded state,
#     the policy's action logged next to the human's;
#  2. closed loop on the MuJoCo Menagerie Sawyer with its rendered camera.
#   usage: deploy/run-real-input.sh [BUILD_DIR]      (needs pacd built with MuJoCo)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=$(realpath "${1:-build}")
PY=/usr/bin/python3
OUT=$PWD/out/real-input
DATA=$(realpath ../shared/data)
DEMO=$DATA/robosuite/assets/demonstrations/SawyerLift/demo.hdf5
SCENE=$DATA/menagerie/rethink_robotics_sawyer/scene_cam.xml

[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" >/dev/null
ninja -C "$BUILD" >/dev/null
"$BUILD/daemon/pacd" --version | grep -q mujoco || {
  echo "pacd was built without MuJoCo: install libmujoco-dev (deploy/install-deps.sh) and rebuild"; exit 2; }
export PACD_BUILD_DIR=$BUILD
PACCTL="$BUILD/clients/pacctl"
mkdir -p "$OUT"
rm -rf "$OUT"/shadow "$OUT"/closed-loop

wait_ready() {
  for _ in $(seq 100); do "$PACCTL" --timeout 200 status >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "pacd did not come up; see $OUT/*.log"; return 1
}
wait_idle() {  # wait_idle STEPS
  for _ in $(seq 1800); do
    s=$("$PACCTL" status --json | $PY -c 'import json,sys; t=json.load(sys.stdin); print(t["state"], t["step"])')
    [ "$s" = "IDLE $1" ] && return 0
    sleep 0.1
  done
  echo "timed out: $s"; return 1
}
config() {  # config NAME CAMERA [SED-ARGS...] -> out/real-input/NAME.conf
  # keys are set in place (pacd refuses a key given twice in a section)
  local name=$1 cam=$2
  shift 2
  sed -e "s|^checkpoint = .*|checkpoint = $OUT/pac-s-sawyer.safetensors|" \
      -e "s|^directory = .*|directory = $OUT/$name|" \
      -e "s|^lock_memory = .*|lock_memory = false|" \
      -e "s|^name = panda|name = sawyer|" \
      -e "s|^\[camera.front\]|[camera.$cam]|" \
      "$@" deploy/pacd.conf > "$OUT/$name.conf"
}

echo "== PAC checkpoint (pac-s, Sawyer, one 128x128 camera, critic) =="
PYTHONPATH=policy/torch $PY -m pacd_torch.make_pac --size pac-s --robot sawyer --cameras agentview \
  --action-space joint_velocity --critic --out "$OUT/pac-s-sawyer.safetensors"

echo "== 1. shadow mode on the replayed SawyerLift demo_1 =="
T=$($PY -c "import h5py; print(len(h5py.File('$DEMO')['data/demo_1/states']))")
config shadow agentview -e "s|^mode = .*|mode = shadow|"
"$BUILD/daemon/pacd" --config "$OUT/shadow.conf" 2> "$OUT/shadow-pacd.log" &
PACD=$!
trap 'kill $PACD 2>/dev/null || true' EXIT
wait_ready
"$PACCTL" episode start --max-steps "$T"
"$BUILD/clients/pacd-replay" --demo "$DEMO" --episode 1 --cameras agentview --rate 20 \
  --lockstep tcp://127.0.0.1:5558
wait_idle "$T"
kill -TERM $PACD; wait $PACD
LOG=$(ls "$OUT"/shadow/*.mcap)
"$PACCTL" log verify "$LOG"
"$PACCTL" log cat "$LOG" | $PY -c '
import json, sys
steps = [json.loads(l) for l in sys.stdin]
last = steps[-1]
print("steps %d; last step: human action %s, policy action %s, Q %.3f, reward %.0f, cube height %.3f m"
      % (len(steps), [round(v, 3) for v in last["teleop_action"]],
         [round(v, 3) for v in last["policy_action"]], last.get("q_value", float("nan")),
         last["reward"], last["task_info"]["cube_height_m"]))'

echo "== 2. closed loop on the MuJoCo Sawyer with its rendered camera =="
config closed-loop front -e "s|^backend = .*|backend = mujoco|" \
  -e "s|^scene =.*|scene = $SCENE|" -e "s|^render_cameras =.*|render_cameras = front|"
PYTHONPATH=policy/torch $PY -m pacd_torch.make_pac --size pac-s --robot sawyer --cameras front \
  --action-space joint_velocity --critic --out "$OUT/pac-s-sawyer-front.safetensors"
sed -i "s|^checkpoint = .*|checkpoint = $OUT/pac-s-sawyer-front.safetensors|" "$OUT/closed-loop.conf"
"$BUILD/daemon/pacd" --config "$OUT/closed-loop.conf" 2> "$OUT/closed-loop-pacd.log" &
PACD=$!
wait_ready
"$PACCTL" episode start --max-steps 100
wait_idle 100
"$PACCTL" status
kill -TERM $PACD; wait $PACD
trap - EXIT
"$PACCTL" log verify "$(ls "$OUT"/closed-loop/*.mcap)"
