#!/usr/bin/env bash
# PAC benchmark driver: pac-s and pac-m at batch 1, one thread, same weights and
# inputs (each also as -bf16: the weights rounded to bf16 and stored as a BF16
# checkpoint for pacd, float32 compute in PyTorch and ONNX Runtime): pacd's engine, once per matrix kernel this CPU runs (avx512, amx,
# avx2, blas; policy_options_t.kernel), vs PyTorch (Debian python3-torch) vs ONNX
# Runtime (onnxruntime-node, from torch.onnx.export). Prints median ms/step, ratios,
# GFLOP/s each engine reaches and, as the yardstick, an sgemm (64 x 512 x 512)
# measured in the same run with pacd's BLAS. Asserts nothing.
#   bench/run_pac_bench.sh [BUILD_DIR] [ITERS]
# The OpenBLAS kernel is whatever the environment selects (OPENBLAS_CORETYPE
# is printed; this script never sets it). To compare kernels, run it under
# another value yourself, e.g. OPENBLAS_CORETYPE=SkylakeX bench/run_pac_bench.sh.
set -euo pipefail
BENCH_EXE=bench_pac BENCH_ITERS=200 BENCH_TMP=/tmp/pacd-pac-bench-XXXXXX
. "$(dirname "$0")/bench_peers.sh"
"$py" "$here/bench_pac_torch.py" make "$work" >/dev/null 2>&1

results="$work/results.jsonl"
for k in avx512 amx avx2 blas; do
  for m in pac-s pac-m pac-s-bf16 pac-m-bf16; do
    rc=0
    PACD_BENCH_LOGITS="$work/$m.pacd-$k.logits.bin" \
      "$build/bench/bench_pac" "$work/$m.safetensors" "$work/obs.bin" "$work/img.bin" "$iters" 1 "$k" \
      >"$work/one.json" 2>"$work/one.err" || rc=$?
    if [ "$rc" = 3 ]; then
      echo "pacd kernel $k: skipped, this CPU lacks it" >&2
      break
    fi
    [ "$rc" = 0 ] || { cat "$work/one.err" >&2; exit 1; }
    sed "s/^{/{\"model\": \"$m\", \"option\": \"$k\", /" "$work/one.json" >>"$results"
  done
done
"$py" "$here/bench_pac_torch.py" time "$work" "$iters" >>"$results"
if [ "$have_ort" = 1 ]; then
  node "$here/bench_pac_ort.mjs" "$work" "$iters" >>"$results" || echo "onnxruntime-node run failed" >&2
fi

"$py" - "$work" "$results" <<'PYEOF'
import json, sys, os
import numpy as np
work, path = sys.argv[1], sys.argv[2]
rows = [json.loads(l) for l in open(path) if l.strip()]
models = json.load(open(os.path.join(work, "models.json")))
by = {(r["engine"], r["model"]): r for r in rows if r["engine"] != "pacd"}
pacd = [r for r in rows if r["engine"] == "pacd"]
core = pacd[0]["corename"] if pacd else "?"
sg = max((r["sgemm_gflops"] for r in pacd), default=0.0)
print(f"OpenBLAS core: {core} (OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}); "
      f"BLAS self-check {'ok' if all(r['blas_selfcheck'] for r in pacd) else 'FAILED'}; "
      f"sgemm 64x512x512 in this run: {sg:.1f} GFLOP/s")
print("batch 1, one thread, median ms/step (p99); GFLOP/s = model FLOPs / median time "
      "(% of the sgemm); ratio = peer / pacd (>1: pacd faster); one row per pacd kernel")
hdr = f"{'model':<10} {'GFLOP':>6} {'kernel':<14} {'pacd':>22} {'torch':>22} {'onnxruntime':>22} {'torch/pacd':>10} {'ort/pacd':>8}  max|logit diff| vs pacd (torch, ort)"
print(hdr)
for m, info in models.items():
    fl = info["flops"] / 1e9
    t, o = by.get(("torch", m)), by.get(("onnxruntime-node", m))
    def fmt(r):
        if not r:
            return "-"
        ms = r["us_per_step"] / 1e3
        gf = fl / ms * 1e3
        return f"{ms:.2f} ({r['p99_us'] / 1e3:.2f}) {gf:.0f}GF {100 * gf / sg:.0f}%" if sg else f"{ms:.2f}"
    for p in [r for r in pacd if r["model"] == m] or [None]:
        ratio = lambda r: f"{r['us_per_step'] / p['us_per_step']:.2f}" if r and p else "-"
        diffs = []
        a = os.path.join(work, f"{m}.pacd-{p['option']}.logits.bin") if p else ""
        for peer in ("torch", "ort"):
            b = os.path.join(work, f"{m}.{peer}_logits.bin")
            if os.path.exists(a) and os.path.exists(b):
                x, y = np.fromfile(a, "<f4"), np.fromfile(b, "<f4")
                diffs.append(f"{np.abs(x - y).max():.1e}" if x.shape == y.shape else "shape?")
            else:
                diffs.append("-")
        kern = p["kernel"] if p else "-"
        print(f"{m:<10} {fl:>6.2f} {kern:<14} {fmt(p):>22} {fmt(t):>22} {fmt(o):>22} {ratio(t):>10} {ratio(o):>8}  {', '.join(diffs)}")
PYEOF
