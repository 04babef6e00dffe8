# Sourced by run_policy_bench.sh and run_pac_bench.sh (bash): the common set-up
# of a three-engine benchmark. Before sourcing set BENCH_EXE (the pacd bench
# binary under the build's bench/), BENCH_ITERS (default iterations) and
# BENCH_TMP (mktemp template); pass the driver's "$@" ([BUILD_DIR] [ITERS]).
# Sets here, build, iters, py, work (a temporary directory removed on exit)
# and have_ort (1 when onnxruntime-node is in bench/node_modules; it is
# installed there on the first run).
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="${1:-$here/../build}"
iters="${2:-$BENCH_ITERS}"
py=/usr/bin/python3
[ -x "$build/bench/$BENCH_EXE" ] || { echo "build first: ninja -C $build" >&2; exit 1; }
work="$(mktemp -d "$BENCH_TMP")"
trap 'rm -rf "$work"' EXIT
have_ort=0
if command -v node >/dev/null; then
  if [ ! -d "$here/node_modules/onnxruntime-node" ]; then
    (cd "$here" && npm install --ignore-scripts --no-audit --no-fund >/dev/null 2>&1) || true
  fi
  [ -d "$here/node_modules/onnxruntime-node" ] && have_ort=1
fi
