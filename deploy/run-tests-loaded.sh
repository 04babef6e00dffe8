#!/bin/bash
# The tests under load: `stress-ng --cpu N` (default 2, one per core of the
# reference 2-core machine) runs beside `meson test`, repeated ROUNDS times.
# The tests wait for events with generous deadlines and never time things,
# so they must pass here as on an idle machine.
#   usage: deploy/run-tests-loaded.sh [-r ROUNDS] [-c CPU_WORKERS] BUILD_DIR [TEST ...]
#   (BUILD_DIR relative to the repository, or absolute; TESTs as meson test names them)
#   e.g.   deploy/run-tests-loaded.sh -r 3 build-asan integration/test_replay.py hal-sim
# Prints one line per round (pass/fail, seconds); exit 1 if any round failed.
set -uo pipefail
rounds=1 cpus=2
while getopts "r:c:" o; do
  case $o in
    r) rounds=$OPTARG ;;
    c) cpus=$OPTARG ;;
    *) sed -n '2,9p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || { sed -n '2,9p' "$0"; exit 2; }
build=$1; shift
command -v stress-ng >/dev/null || { echo "install stress-ng (deploy/install-deps.sh)" >&2; exit 2; }
cd "$(dirname "$0")/.."
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
# a ThreadSanitizer build gets what deploy/run-tests.sh gives it
if /usr/bin/python3 -c 'import json, sys; o = {x["name"]: x["value"] for x in json.load(open(sys.argv[1]))}; sys.exit(o.get("b_sanitize") != "thread")' \
     "$build/meson-info/intro-buildoptions.json" 2>/dev/null; then
  export PACD_SANITIZER=thread TSAN_OPTIONS="suppressions=$PWD/tests/tsan.supp halt_on_error=1"
fi
stress-ng --cpu "$cpus" --timeout 0 --quiet &
stress=$!
trap 'kill $stress 2>/dev/null; wait $stress 2>/dev/null' EXIT
status=0
for r in $(seq "$rounds"); do
  t0=$(date +%s)
  if meson test -C "$build" --print-errorlogs --num-processes 2 "$@"; then res=pass; else res=FAIL; status=1; fi
  echo "round $r/$rounds: $res in $(( $(date +%s) - t0 )) s (stress-ng --cpu $cpus, load $(cut -d' ' -f1-3 /proc/loadavg))"
done
exit $status
