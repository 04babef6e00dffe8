#!/bin/bash
# The simulated clock against the real one ([robot] clock): Lift-cell
# evaluation episodes (SawyerLift scene of ../shared/data, [task] source =
# hal, reset_on_start, 250-step episodes) run through pacd by
# clients/pacd_lift_operator.py evaluate, low-dim and with one agentview
# camera, on each clock in the same run. Prints steps/s and episodes/min per
# configuration and the ratios. Asserts nothing.
#
#   bench/run_sim_clock_bench.sh BUILD CHECKPOINT [REAL_EPISODES] [SIM_EPISODES] [CAMERA_PX]
#
# CHECKPOINT: a Sawyer cartesian_velocity checkpoint of the Lift cell's
# observation spec (e.g. deploy/run-loop.sh's pac). Defaults: 4 real-clock
# and 20 simulated-clock episodes, an 84x84 camera.
set -euo pipefail
BUILD=$(realpath "${1:?usage: $0 BUILD CHECKPOINT [REAL_EPISODES] [SIM_EPISODES] [CAMERA_PX]}")
CKPT=$(realpath "${2:?checkpoint}")
NREAL=${3:-4}
NSIM=${4:-20}
PX=${5:-84}
SRC=$(cd "$(dirname "$0")/.." && pwd)
DEMOS=$SRC/../shared/data/robosuite/assets/demonstrations
SCENE=$(realpath "$DEMOS/SawyerLift/models/model_1.xml")
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
port() {
    /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# conf NAME CLOCK CAMERA(0/1)
conf() {
    local cam="" cams=""
    if [ "$3" = 1 ]; then
        cam="render_cameras = agentview"
        cams=$'[camera.agentview]\n'"width = $PX"$'\n'"height = $PX"
    fi
    cat > "$TMP/$1.conf" <<EOF
[pacd]
rate_hz = 20
lock_memory = false
[policy]
checkpoint = $CKPT
[robot]
name = sawyer
backend = mujoco
scene = $SCENE
seed = 1
clock = $2
$cam
[ingest]
camera_bind = tcp://127.0.0.1:$(port)
state_bind = tcp://127.0.0.1:$(port)
$cams
[episode]
max_steps = 250
reset_on_start = true
[task]
source = hal
[logger]
directory = $TMP/logs-$1
[telemetry]
bind = tcp://127.0.0.1:$(port)
rate_hz = 20
[control]
bind = tcp://127.0.0.1:$(port)
[safety]
workspace_min = 0.3, -0.25, -0.13
workspace_max = 0.8, 0.35, 0.25
EOF
}

ep() { sed -n "/^\[$2\]/,/^\[/p" "$TMP/$1.conf" | grep -m1 "$3" | sed 's/.*= //'; }

# run NAME EPISODES -> "steps seconds"
run() {
    local c="$TMP/$1.conf"
    mkdir -p "$TMP/logs-$1"
    "$BUILD/daemon/pacd" --config "$c" > /dev/null 2> "$TMP/$1.err" &
    local pid=$!
    export PACD_CONTROL=$(ep "$1" control bind) PACD_TELEMETRY=$(ep "$1" telemetry bind)
    export PACD_STATE=$(ep "$1" ingest state_bind)
    for _ in $(seq 200); do
        "$BUILD/clients/pacctl" --control "$PACD_CONTROL" status > /dev/null 2>&1 && break
        sleep 0.5
    done
    local t0 t1
    t0=$(date +%s.%N)
    /usr/bin/python3 "$SRC/clients/pacd_lift_operator.py" evaluate --episodes "$2" \
        --seed 900000 --timeout 60 > "$TMP/$1.eval"
    t1=$(date +%s.%N)
    kill -TERM "$pid"
    wait "$pid" || true
    local steps
    steps=$(grep -o "in [0-9]* steps" "$TMP/$1.eval" | awk '{s += $2} END {print s}')
    echo "$steps $(echo "$t1 - $t0" | bc)"
}

echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores;" \
    "load: $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A RATE
for cfg in "lowdim 0" "camera 1"; do
    set -- $cfg
    for clock in real simulated; do
        n=$NREAL
        [ "$clock" = simulated ] && n=$NSIM
        conf "$1-$clock" "$clock" "$2"
        read -r steps secs < <(run "$1-$clock" "$n")
        RATE[$1-$clock]=$(echo "scale=2; $steps / $secs" | bc)
        printf '%-8s %-9s %3d episodes %6d steps in %7.1f s: %7.1f steps/s, %6.1f episodes/min\n' \
            "$1" "$clock" "$n" "$steps" "$secs" "${RATE[$1-$clock]}" \
            "$(echo "scale=2; 60 * $n / $secs" | bc)"
    done
    printf '%-8s simulated / real: %.1fx\n' "$1" \
        "$(echo "scale=2; ${RATE[$1-simulated]} / ${RATE[$1-real]}" | bc)"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
