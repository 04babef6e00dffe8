"""What the PyTorch sides of the benchmarks share: time one call per input at
batch 1 and print the JSON line the drivers collect (benchmarks only)."""

import json
import sys
import time

import numpy as np
import torch


def time_calls(engine, model, call, inputs, iters, warmup):
    """Run call(*inputs[i % len(inputs)]) `warmup` times, then time `iters`
    calls one by one (inference mode) and print one JSON line: median, mean
    and p99 in µs, the thread count and the torch version."""
    with torch.inference_mode():
        for i in range(warmup):
            call(*inputs[i % len(inputs)])
        t = np.empty(iters)
        for i in range(iters):
            args = inputs[i % len(inputs)]
            t0 = time.perf_counter()
            call(*args)
            t[i] = (time.perf_counter() - t0) * 1e6
    print(json.dumps({"engine": engine, "model": model, "iters": iters,
                      "threads": torch.get_num_threads(), "torch": torch.__version__,
                      "us_per_step": round(float(np.median(t)), 3),
                      "mean_us": round(float(t.mean()), 3),
                      "p99_us": round(float(np.percentile(t, 99)), 3)}), flush=True)


def main(doc, make, time_models, argv, default_iters):
    """The command line of a PyTorch side: `make DIR` or `time DIR [ITERS]`."""
    if len(argv) < 2 or argv[0] not in ("make", "time"):
        print(doc, file=sys.stderr)
        return 2
    if argv[0] == "make":
        make(argv[1])
    else:
        time_models(argv[1], int(argv[2]) if len(argv) > 2 else default_iters)
    return 0
