# Sourced by run_loop_bench.sh and run_foxglove_bench.sh (bash): one pacd at
# 20 Hz on the sim Panda with the example MLP actor, a camera publisher and a
# running episode, from deploy/pacd.conf on ports 15555-15558.
#   bench_pacd_start TMP TICKS PRIO [sed expressions...]
# TMP: the run's temporary directory (checkpoint, config, episodes, pacd.log);
# TICKS: the telemetry window; PRIO: [loop] rt_priority; further arguments are
# extra `sed -e` expressions for the config. Needs BUILD and PY set. Sets
# PACCTL (the pacctl command line) and appends pacd's and the camera's pids
# to the array PIDS (the caller kills them on exit).
bench_pacd_start() {
  local tmp=$1 ticks=$2 prio=$3
  shift 3
  local extra=()
  for e in "$@"; do extra+=(-e "$e"); done
  PYTHONPATH=policy/torch $PY -m pacd_torch.make_example --robot panda \
    --out "$tmp/ckpt.safetensors" >/dev/null
  sed -e "s|^checkpoint = .*|checkpoint = $tmp/ckpt.safetensors|" \
      -e "s|^directory = .*|directory = $tmp/episodes|" \
      -e "s|^window_ticks = .*|window_ticks = $ticks|" \
      -e "s|^rt_priority = .*|rt_priority = $prio|" \
      -e "s|^lock_memory = .*|lock_memory = true|" \
      -e "s|^max_steps = .*|max_steps = 0|" \
      -e "s|:5555|:15555|; s|:5556|:15556|; s|:5557|:15557|; s|:5558|:15558|" \
      "${extra[@]}" deploy/pacd.conf > "$tmp/pacd.conf"
  "$BUILD/daemon/pacd" --config "$tmp/pacd.conf" 2> "$tmp/pacd.log" &
  PIDS+=($!)
  $PY clients/pacd_client.py camera --endpoint tcp://127.0.0.1:15555 2>/dev/null &
  PIDS+=($!)
  PACCTL="$BUILD/clients/pacctl --control tcp://127.0.0.1:15558"
  local _
  for _ in $(seq 100); do $PACCTL --timeout 200 status >/dev/null 2>&1 && break; sleep 0.1; done
  $PACCTL episode start >/dev/null
}
