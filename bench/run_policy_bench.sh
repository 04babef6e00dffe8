#!/usr/bin/env bash
# Policy benchmark driver: MLP actors 3x256 and 3x1024 at batch 1, one thread,
# pacd's engine vs PyTorch vs ONNX Runtime, same weights and inputs.
# Prints a table of us/step (median) and ratios; asserts nothing.
#   bench/run_policy_bench.sh [BUILD_DIR] [ITERS]
# Needs: a build (ninja -C BUILD_DIR), /usr/bin/python3 with torch, node + npm
# (onnxruntime-node is installed into bench/node_modules on first run).
set -euo pipefail
BENCH_EXE=bench_policy BENCH_ITERS=2000 BENCH_TMP=/tmp/pacd-bench-XXXXXX
. "$(dirname "$0")/bench_peers.sh"
"$py" "$here/bench_policy_torch.py" make "$work" >/dev/null 2>&1

results="$work/results.jsonl"
for m in mlp_3x256 mlp_3x1024; do
  PACD_BENCH_ACTIONS="$work/$m.pacd_actions.bin" \
    "$build/bench/bench_policy" "$work/$m.safetensors" "$work/obs.bin" "$iters" 1 \
    | sed "s/\"checkpoint\": \"[^\"]*\"/\"model\": \"$m\"/" >>"$results"
done
"$py" "$here/bench_policy_torch.py" time "$work" "$iters" >>"$results"
if [ "$have_ort" = 1 ]; then
  node "$here/bench_policy_ort.mjs" "$work" "$iters" >>"$results" || echo "onnxruntime-node run failed" >&2
fi

"$py" - "$work" "$results" <<'PYEOF'
import json, sys, os
import numpy as np
work, path = sys.argv[1], sys.argv[2]
rows = [json.loads(l) for l in open(path) if l.strip()]
by = {(r["engine"], r["model"]): r for r in rows}
core = next((r["corename"] for r in rows if r["engine"] == "pacd"), "?")
print(f"OpenBLAS core: {core}   (OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')})")
print("batch 1, one thread, median us/step (p99 in brackets); ratio = peer / pacd (>1: pacd faster)")
print(f"{'model':<12} {'pacd':>16} {'torch':>16} {'onnxruntime':>16} {'torch/pacd':>11} {'ort/pacd':>9}  max|diff| vs pacd (torch, ort)")
for m in ("mlp_3x256", "mlp_3x1024"):
    p, t, o = by.get(("pacd", m)), by.get(("torch", m)), by.get(("onnxruntime-node", m))
    fmt = lambda r: f"{r['us_per_step']:.1f} ({r['p99_us']:.1f})" if r else "-"
    ratio = lambda r: f"{r['us_per_step'] / p['us_per_step']:.2f}" if r and p else "-"
    diffs = []
    a = os.path.join(work, f"{m}.pacd_actions.bin")
    for peer in ("torch", "ort"):
        b = os.path.join(work, f"{m}.{peer}_actions.bin")
        if os.path.exists(a) and os.path.exists(b):
            x, y = np.fromfile(a, "<f4"), np.fromfile(b, "<f4")
            diffs.append(f"{np.abs(x - y).max():.1e}" if x.shape == y.shape else "shape?")
        else:
            diffs.append("-")
    print(f"{m:<12} {fmt(p):>16} {fmt(t):>16} {fmt(o):>16} {ratio(t):>11} {ratio(o):>9}  {', '.join(diffs)}")
PYEOF
