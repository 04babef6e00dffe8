#!/usr/bin/env bash
# PAC benchmark driver: pac-s and pac-m at batch 1, one thread, same weights and
# inputs (each also as -bf16: the weights rounded to bf16 and stored as a BF16
# checkpoint for pacd, float32 compute in PyTorch and ONNX Runtime): pacd's engine, once per matrix kernel this CPU runs (avx512, amx,
# avx2, blas, and blis in a build with BLIS; policy_options_t.kernel), vs PyTorch (Debian python3-torch) vs ONNX
# Runtime (onnxruntime-node, from torch.onnx.export). Prints median ms/step, ratios,
# GFLOP/s each engine reaches and, as yardsticks, an sgemm (64 x 512 x 512)
# measured in the same run with pacd's BLAS, the core's float32 FMA peak and
# pacd's packed kernel on a warm layer (how near the step is to what this CPU
# can do in float32); BLIS (blis kernel) against OpenBLAS (blas kernel) and the best
# pacd kernel per model, and both libraries on a warm linear layer at two PAC
# shapes. Asserts nothing.
#   bench/run_pac_bench.sh [BUILD_DIR] [ITERS] [ROUNDS]
# ROUNDS (default 3): the engines run in turn, pacd, PyTorch, ONNX Runtime, that
# many times over; each figure is the median over the rounds and each ratio the
# median of the rounds' ratios, with their range, so that a machine whose speed
# drifts (a shared VM) moves both sides of a ratio alike.
# The OpenBLAS kernel is whatever the environment selects (OPENBLAS_CORETYPE
# is printed; this script never sets it). To compare kernels, run it under
# another value yourself, e.g. OPENBLAS_CORETYPE=SkylakeX bench/run_pac_bench.sh.
set -euo pipefail
BENCH_EXE=bench_pac BENCH_ITERS=200 BENCH_TMP=/tmp/pacd-pac-bench-XXXXXX
. "$(dirname "$0")/bench_peers.sh"
"$py" "$here/bench_pac_torch.py" make "$work" >/dev/null 2>&1

results="$work/results.jsonl"
rounds="${3:-3}"
case "$rounds" in
  ""|*[!0-9]*|0) echo "ROUNDS must be a positive integer, not '$rounds'" >&2; exit 2 ;;
esac
tag() { sed "s/^{/{\"round\": $1, /"; }
for r in $(seq "$rounds"); do
  for k in avx512 amx avx2 blas blis; do
    for m in pac-s pac-m pac-s-bf16 pac-m-bf16; do
      rc=0
      PACD_BENCH_LOGITS="$work/$m.pacd-$k.logits.bin" \
        "$build/bench/bench_pac" "$work/$m.safetensors" "$work/obs.bin" "$work/img.bin" "$iters" 1 "$k" \
        >"$work/one.json" 2>"$work/one.err" || rc=$?
      if [ "$rc" = 3 ]; then
        [ "$r" = 1 ] && echo "pacd kernel $k: skipped, this CPU (or build) lacks it" >&2
        break
      fi
      [ "$rc" = 0 ] || { cat "$work/one.err" >&2; exit 1; }
      sed "s/^{/{\"model\": \"$m\", \"option\": \"$k\", /" "$work/one.json" | tag "$r" >>"$results"
    done
  done
  "$py" "$here/bench_pac_torch.py" time "$work" "$iters" | tag "$r" >>"$results"
  if [ "$have_ort" = 1 ]; then
    { node "$here/bench_pac_ort.mjs" "$work" "$iters" || echo "onnxruntime-node run failed" >&2; } | tag "$r" >>"$results"
  fi
done

"$py" - "$work" "$results" <<'PYEOF'
import json, sys, os
import numpy as np
work, path = sys.argv[1], sys.argv[2]
rows = [json.loads(l) for l in open(path) if l.strip()]
models = json.load(open(os.path.join(work, "models.json")))
rounds = sorted({r["round"] for r in rows})
def key(r):
    return (r["engine"], r["model"], r.get("option", ""))
runs = {}
for r in rows:
    runs.setdefault(key(r), {})[r["round"]] = r
pacd = [r for r in rows if r["engine"] == "pacd"]
core = pacd[0]["corename"] if pacd else "?"
sg = float(np.median([r["sgemm_gflops"] for r in pacd])) if pacd else 0.0
print(f"OpenBLAS core: {core} (OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}); "
      f"BLAS self-check {'ok' if all(r['blas_selfcheck'] for r in pacd) else 'FAILED'}; "
      f"sgemm 64x512x512 in this run: {sg:.1f} GFLOP/s (median)")
peak = float(np.median([r.get("fma_peak_gflops", 0.0) for r in pacd])) if pacd else 0.0
if peak:
    kern = {}
    for r in pacd:
        if r.get("packed_gflops"):
            kern.setdefault(r["kernel"], []).append(r["packed_gflops"])
    print(f"float32 FMA peak of one core (12 vfmadd231ps chains, widest vector ISA): {peak:.1f} GFLOP/s; "
          "pacd's packed kernel on a warm 32x256->1024 layer: " +
          (", ".join(f"{k} {np.median(v):.1f} GFLOP/s ({100 * np.median(v) / peak:.0f}% of the peak)"
                     for k, v in sorted(kern.items())) or "-"))
print(f"batch 1, one thread, {len(rounds)} rounds (pacd, torch, onnxruntime in turn); median over "
      "the rounds of each engine's median ms/step (p99); GFLOP/s = model FLOPs / median time "
      "(% of the sgemm); ratio = peer / pacd (>1: pacd faster), the median of the rounds' "
      "ratios [lowest-highest]; one row per pacd kernel")
hdr = f"{'model':<10} {'GFLOP':>6} {'kernel':<14} {'pacd':>22} {'torch':>22} {'onnxruntime':>22} {'torch/pacd':>17} {'ort/pacd':>17}  max|logit diff| vs pacd (torch, ort)"
print(hdr)
def med(by_round, field):
    return float(np.median([r[field] for r in by_round.values()]))
for m, info in models.items():
    fl = info["flops"] / 1e9
    t, o = runs.get(("torch", m, "")), runs.get(("onnxruntime-node", m, ""))
    def fmt(br):
        if not br:
            return "-"
        ms = med(br, "us_per_step") / 1e3
        gf = fl / ms * 1e3
        return f"{ms:.2f} ({med(br, 'p99_us') / 1e3:.2f}) {gf:.0f}GF {100 * gf / sg:.0f}%" if sg else f"{ms:.2f}"
    opts = [k[2] for k in runs if k[0] == "pacd" and k[1] == m]
    for opt in opts or [None]:
        p = runs.get(("pacd", m, opt)) if opt else None
        def ratio(peer):
            if not peer or not p:
                return "-"
            rs = [peer[i]["us_per_step"] / p[i]["us_per_step"] for i in p if i in peer]
            short = f" ({len(rs)}/{len(rounds)} rounds)" if len(rs) < len(rounds) else ""
            return f"{np.median(rs):.2f} [{min(rs):.2f}-{max(rs):.2f}]{short}" if rs else "-"
        diffs = []
        a = os.path.join(work, f"{m}.pacd-{opt}.logits.bin") if opt else ""
        for peer in ("torch", "ort"):
            b = os.path.join(work, f"{m}.{peer}_logits.bin")
            if os.path.exists(a) and os.path.exists(b):
                x, y = np.fromfile(a, "<f4"), np.fromfile(b, "<f4")
                diffs.append(f"{np.abs(x - y).max():.1e}" if x.shape == y.shape else "shape?")
            else:
                diffs.append("-")
        kern = next(iter(p.values()))["kernel"] if p else "-"
        print(f"{m:<10} {fl:>6.2f} {kern:<14} {fmt(p):>22} {fmt(t):>22} {fmt(o):>22} {ratio(t):>17} {ratio(o):>17}  {', '.join(diffs)}")
blis = [r for r in pacd if r["kernel"] == "blis"]
if blis:
    print(f"BLIS {blis[0].get('blis_version', '?')} {blis[0].get('blis_arch', '?')} "
          f"(BLIS_ARCH_TYPE={os.environ.get('BLIS_ARCH_TYPE', 'unset')}; blis kernel) vs OpenBLAS {core} (blas "
          "kernel), one thread: median ms/step; ratio = other / blis (>1: blis faster), the "
          "median of the rounds' ratios [lowest-highest]; max|logit diff| blis vs blas")
    for m in models:
        b, o = runs.get(("pacd", m, "blis")), runs.get(("pacd", m, "blas"))
        if not b or not o:
            continue
        def rr(x):
            rs = [x[i]["us_per_step"] / b[i]["us_per_step"] for i in b if i in x]
            return f"{np.median(rs):.2f} [{min(rs):.2f}-{max(rs):.2f}]" if rs else "-"
        others = [k[2] for k in runs if k[0] == "pacd" and k[1] == m and k[2] not in ("blis", "blas")]
        fast = min(others, key=lambda k: med(runs[("pacd", m, k)], "us_per_step"), default=None)
        bf, of = (os.path.join(work, f"{m}.pacd-{k}.logits.bin") for k in ("blis", "blas"))
        d = (f"{np.abs(np.fromfile(bf, '<f4') - np.fromfile(of, '<f4')).max():.1e}"
             if os.path.exists(bf) and os.path.exists(of) else "-")
        fs = (f"; fastest other: {fast} {med(runs[('pacd', m, fast)], 'us_per_step') / 1e3:.2f} ms, "
              f"{fast}/blis {rr(runs[('pacd', m, fast)])}") if fast else ""
        print(f"  {m:<10} blis {med(b, 'us_per_step') / 1e3:.2f} ms, blas {med(o, 'us_per_step') / 1e3:.2f} ms, "
              f"blas/blis {rr(o)}{fs}; logits {d}")
    sh = blis[0].get("linear_shapes")
    if sh:
        for i, (n, k, o) in enumerate(sh):
            gb = np.median([r["linear_gflops"]["blas"][i] for r in blis])
            gl = np.median([r["linear_gflops"]["blis"][i] for r in blis])
            print(f"  warm linear layer {n} x {k} -> {o}: OpenBLAS {gb:.1f} GFLOP/s, BLIS {gl:.1f} GFLOP/s "
                  f"(blis/blas {gl / gb:.2f}; median of {len(blis)} runs)")
PYEOF
