"""How do a Lift policy's episodes fail? (docs/loop.md, "Seventh sitting")

    build/clients/pacctl log export -o ev.hdf5 --checkpoint CKPT EVAL_DIR/episodes/*.mcap
    PYTHONPATH=policy/torch /usr/bin/python3 policy/torch/experiments/lift_failure_modes.py \\
        ev.hdf5 [more.hdf5 ...]

Reads exported episodes (a policy's evaluation, or the behaviour data) and
the privileged field `gripper_to_object/cube` (end effector minus cube, base
frame, m) and prints, per data set, for the successful and the failed
episodes:

  close:   episodes that never commanded the gripper closed (action[4] < 0);
           at the first close command, the median x-y distance to the cube
           and the median height above it; how many closed within 1 cm in
           x-y and how many more than 2 cm above the cube; the median number
           of open/close switches per episode;
  descent: at the first step with the gripper less than 4 cm above the cube,
           the median x-y distance to it, the share within 1.5 cm and the
           median step;
  nearest: the median over episodes of the smallest x-y distance reached.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lift_critic_probe import g2c_columns, load_data  # noqa: E402
from pacd_torch import dataset as pds  # noqa: E402

DESCENT_HEIGHT = 0.04   # m above the cube: below it the gripper is descending onto it


def episode_rows(path):
    """(data, per-episode (start row, length)) of an exported data set."""
    d = load_data(path)
    demos = pds.read(path, cameras=False, next_obs="last")["demos"]
    lens = [len(x["actions"]) for x in demos]
    starts = np.cumsum([0] + lens[:-1])
    return d, list(zip(starts, lens))


def episode_figures(g, a):
    """Figures of one episode: g [T, 3] gripper-to-cube (m), a [T, A] actions."""
    dxy = np.linalg.norm(g[:, :2], axis=1)
    closed = a[:, 4] < 0
    first = np.flatnonzero(closed)
    low = np.flatnonzero(g[:, 2] < DESCENT_HEIGHT)
    nan = float("nan")
    return {
        "closed": len(first) > 0,
        "close_dxy": dxy[first[0]] if len(first) else nan,
        "close_z": g[first[0], 2] if len(first) else nan,
        "switches": int(np.sum(np.diff(closed.astype(int)) != 0)),
        "descent_dxy": dxy[low[0]] if len(low) else nan,
        "descent_step": low[0] if len(low) else nan,
        "nearest": dxy.min(),
    }


def report(path):
    d, eps = episode_rows(path)
    g2c = d["obs"][:, g2c_columns(d)].astype(np.float64)
    figs = [episode_figures(g2c[s:s + n], d["actions"][s:s + n]) for s, n in eps]
    print(f"{path}: {len(figs)} episodes, {int(d['ep_success'].sum())} successful")
    for ok in (True, False):
        f = [x for x, s in zip(figs, d["ep_success"]) if bool(s) == ok]
        if not f:
            continue

        def col(k):
            return np.array([x[k] for x in f], float)
        print(f"  {'successful' if ok else 'failed'} ({len(f)}):")
        print(f"    close: never {int(sum(not x['closed'] for x in f))}; first close x-y "
              f"{np.nanmedian(col('close_dxy')):.3f} m, height {np.nanmedian(col('close_z')):.3f} m "
              f"(medians); within 1 cm x-y {int(np.sum(col('close_dxy') < 0.01))}, more than 2 cm "
              f"above {int(np.sum(col('close_z') > 0.02))}; switches {np.median(col('switches')):.1f}")
        dd = col("descent_dxy")
        print(f"    descent: x-y {np.nanmedian(dd):.3f} m, within 1.5 cm "
              f"{np.nanmean(dd[~np.isnan(dd)] < 0.015):.2f}, step "
              f"{np.nanmedian(col('descent_step')):.0f} (never below {DESCENT_HEIGHT} m: "
              f"{int(np.isnan(dd).sum())})")
        print(f"    nearest x-y: {np.median(col('nearest')):.3f} m")


def main(argv):
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    for path in argv:
        report(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
