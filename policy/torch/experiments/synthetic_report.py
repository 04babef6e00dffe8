"""Probe and evaluate the synthetic cell's checkpoints, write the figures
(docs/loop.md, "Fifth sitting"):

  PYTHONPATH=policy/torch nice -n 10 /usr/bin/python3 policy/torch/experiments/synthetic_report.py RUNS_DIR OUT_DIR

RUNS_DIR holds <data>-<algo>[-tag].safetensors trained on <data>.hdf5
(data: shared or separated). Writes OUT_DIR/results.json, q-grid.png (Q over
the x-y velocity bins at three states) and q-gap.png (critic gap against the
Monte Carlo gap of the checkpoint's own policy).
"""
import glob
import json
import os
import sys

import torch

from pacd_torch import synthetic as syn
from pacd_torch.stats import format_rate


def main():
    runs, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    res = []
    for ck in sorted(glob.glob(os.path.join(runs, "*.safetensors"))):
        name = os.path.basename(ck)[:-len(".safetensors")]
        mode = name.split("-")[0]
        if mode not in syn.MODES:
            continue
        k, n = syn.evaluate(ck, 200)
        r = {"name": name, "success": k, "episodes": n, "rate": format_rate(k, n)}
        if "-bc" not in name:
            r.update(syn.probe(ck, mode, mc=16, per_state=True))
        res.append(r)
        print(name, r["rate"], {x: round(r[x], 4) for x in ("gap_offset_mean", "gap_away_mean",
                                                            "mc_gap_offset_mean")
                                if x in r}, flush=True)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    crit = [r for r in res if "per_state" in r and "seed" not in r["name"]]
    syn.gap_figure(os.path.join(out, "q-gap.png"), crit, [r["name"] for r in crit])
    rows = [(os.path.join(runs, f"{m}.safetensors"), lab) for m, lab in (
        ("shared-pac", "PAC shared (repeat 5)"), ("separated-pac", "PAC separated (repeat 5)"),
        ("shared-pac-r1", "PAC shared (repeat 1 n-step 10)"))]
    rows = [r for r in rows if os.path.exists(r[0])]
    syn.figure(os.path.join(out, "q-grid.png"), [r[0] for r in rows], [r[1] for r in rows])
    return 0


if __name__ == "__main__":
    sys.exit(main())
