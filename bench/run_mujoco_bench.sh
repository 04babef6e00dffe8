#!/bin/sh
# MuJoCo figures for docs/mujoco.md: physics steps/s and render frames/s per
# scene (menagerie Panda, Sawyer, robosuite SawyerLift), against peers in the
# same run: MuJoCo's own mujoco-testspeed (Debian libmujoco-samples) on the
# same scene, and a bare mj_step loop inside bench_mujoco. Prints, asserts
# nothing. Usage: bench/run_mujoco_bench.sh [BUILD_DIR] [DATA_DIR]
set -eu
BUILD=${1:-build}
DATA=${2:-$(dirname "$0")/../../shared/data}
BENCH=$BUILD/tests/hal/bench_mujoco
[ -x "$BENCH" ] || { echo "no $BENCH: build with MuJoCo (libmujoco-dev) and tests enabled" >&2; exit 1; }
PANDA=$DATA/menagerie/franka_emika_panda/scene_cam.xml
SAWYER=$DATA/menagerie/rethink_robotics_sawyer/scene_cam.xml
LIFT=$DATA/robosuite/assets/demonstrations/SawyerLift/models/model_1.xml
echo "# $(date -u +%FT%TZ) $(nproc) cores; MuJoCo $(dpkg-query -W -f '${Version}' libmujoco-dev 2>/dev/null || echo '?')"
for spec in "panda $PANDA front" "sawyer $SAWYER front" "sawyer $LIFT agentview"; do
  set -- $spec
  "$BENCH" "$1" "$2" "$3" 128x128 3
  if command -v mujoco-testspeed >/dev/null; then
    # peer: MuJoCo's testspeed, 10000 steps, 1 thread, its default control noise
    printf '  peer mujoco-testspeed: '
    mujoco-testspeed "$2" 10000 1 2>&1 | awk '/Steps per second/ {printf "%s steps/s; ", $NF} /Time per step/ {printf "%s ms/step\n", $NF}'
  else
    echo "  peer mujoco-testspeed: not installed (apt-get install libmujoco-samples)"
  fi
done
# the replay path: render + publish, at full speed, 1 camera 128x128
REPLAY=$BUILD/clients/pacd-replay
DEMO=$DATA/robosuite/assets/demonstrations/SawyerLift/demo.hdf5
if [ -x "$REPLAY" ] && [ -f "$DEMO" ]; then
  start=$(date +%s.%N)
  out=$("$REPLAY" --demo "$DEMO" --episode 1 --cameras agentview --size 128x128 --rate max \
        --connect-wait-ms 0 --camera-endpoint tcp://127.0.0.1:59991 --state-endpoint tcp://127.0.0.1:59992 2>/dev/null)
  end=$(date +%s.%N)
  n=$(echo "$out" | sed -n 's/.*"published": \([0-9]*\).*/\1/p')
  echo "pacd-replay SawyerLift demo_1, agentview 128x128, --rate max: $n states in $(echo "$end - $start" | bc) s = $(echo "$n / ($end - $start)" | bc) states/s"
fi
