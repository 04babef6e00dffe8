#!/usr/bin/python3
"""How episodes of the MuJoCo Lift cell fail: counts from exported data sets.

    pacd_lift_failure_modes.py eval-pac.hdf5 [more.hdf5 ...] [--cube-from REF.hdf5] [--json]

Reads data sets written by `pacctl log export` (docs/loop.md, "Data set") and
prints, per data set, one line of counts about the grasp:

  episodes, successes (an episode with reward >= 1);
  never closed: failed episodes in which the gripper command (action
    dimension 4, -1 closes) is never negative;
  first close: where the end effector (the pinch point, `end_effector_pose`
    x y z in m, robot base frame) is relative to the cube's centre at the
    first step with a closing command, over the episodes that close: the
    median x-y distance (m), how many are within GRASP_XY of it, and the
    median height above the centre (m, negative below);
  closest approach: the median over episodes of the smallest x-y distance
    reached before the first close (or in the whole episode without one).

The cube's centre comes from the data set's privileged field with source
`gripper_to_object/cube` (end effector minus cube, m; named `gripper_to_cube`
by the loop) when it has one. A camera model's data sets carry only the
fields that model reads; for them
--cube-from names a data set of the same episode seeds that has the field
(e.g. a low-dim policy's evaluation on the same seeds): the cube rests
where the seed put it until the gripper touches it, so its pose at that
episode's first step is used. Episodes whose seed is not in the reference
are counted as skipped and left out of every other count.

policy/torch/experiments/lift_failure_modes.py is the older research script
behind the seventh to tenth sittings' figures (descent start, open/close
switches; low-dim data only); this client is the tested tool for new
measurements.

Exit status 1 with a message for a data set without `end_effector_pose`, or
without a cube pose and no usable --cube-from.
"""

import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "policy", "torch"))

from pacd_torch import dataset as pds  # noqa: E402

GRIPPER_DIM = 4        # the Lift cell's action: vx vy vz wz gripper (-1 closes)
GRASP_XY = 0.015       # m: the grasp zone of docs/loop.md's probes (the
                       # operator's good grasps close within it); a close farther off
                       # can still take the cube, or open and try again


class FailureModeError(Exception):
    pass


# the fields read, by source (docs/loop.md, "Privileged fields")
EE_POSE = "end_effector_pose"
GRIPPER_TO_CUBE = "gripper_to_object/cube"


def _columns(observation, source, n):
    for f, off, size in pds.obs_layout(observation):
        if f["source"] == source:
            if size < n:
                raise FailureModeError(f"field {f['name']!r} has {size} values, need {n}")
            return slice(off, off + n)
    return None


def _episodes(path):
    """[(seed, observation [T, D], actions [T, A], rewards [T])], observation spec."""
    ds = pds.read(path, cameras=False, next_obs="last")
    out = []
    for d in ds["demos"]:
        seed = d["attrs"].get("seed")
        out.append((None if seed is None else int(seed), d["obs"]["observation"],
                    d["actions"], d["rewards"]))
    return out, ds["observation"]


def cube_positions(path):
    """{seed: the cube's centre at the episode's first step (x y z, m)} from a
    data set with the gripper_to_cube field."""
    eps, spec = _episodes(path)
    ee, g2c = _columns(spec, EE_POSE, 3), _columns(spec, GRIPPER_TO_CUBE, 3)
    if ee is None or g2c is None:
        raise FailureModeError(f"{path}: no end_effector_pose and gripper_to_cube fields to "
                               "take the cube's position from")
    return {s: o[0, ee] - o[0, g2c] for s, o, _, _ in eps if s is not None and len(o)}


def failure_modes(path, cube_ref=None):
    """The counts above for one data set, as a dict. cube_ref: {seed: cube
    centre} for data sets without gripper_to_cube."""
    eps, spec = _episodes(path)
    ee, g2c = _columns(spec, EE_POSE, 3), _columns(spec, GRIPPER_TO_CUBE, 3)
    if ee is None:
        raise FailureModeError(f"{path}: no end_effector_pose field")
    if g2c is None and cube_ref is None:
        raise FailureModeError(f"{path}: no gripper_to_cube field; give --cube-from, a data "
                               "set of the same seeds that has it")
    r = {"data": os.path.basename(path), "episodes": len(eps), "successes": 0, "skipped": 0,
         "failures": 0, "never_closed": 0, "closed": 0, "close_within": 0}
    close_xy, close_dz, closest = [], [], []
    for seed, o, a, rew in eps:
        if g2c is not None:
            rel = o[:, g2c]
        elif seed in cube_ref:
            rel = o[:, ee] - cube_ref[seed]
        else:
            r["skipped"] += 1           # counted nowhere else
            continue
        ok = len(rew) and float(np.max(rew)) >= 1.0
        r["successes"] += int(ok)
        r["failures"] += int(not ok)
        xy = np.linalg.norm(rel[:, :2], axis=1)
        shut = np.flatnonzero(a[:, GRIPPER_DIM] < 0)
        if len(shut) == 0:
            r["never_closed"] += int(not ok)
            closest.append(float(xy.min()) if len(xy) else np.nan)
            continue
        i = shut[0]
        r["closed"] += 1
        close_xy.append(float(xy[i]))
        close_dz.append(float(rel[i, 2]))
        r["close_within"] += int(xy[i] <= GRASP_XY)
        closest.append(float(xy[:i + 1].min()))

    def med(v):
        return float(np.median(v)) if v else None
    r.update(close_xy_median_m=med(close_xy), close_dz_median_m=med(close_dz),
             closest_xy_median_m=med(closest))
    return r


def _fmt(v):
    return "-" if v is None else "%.3f" % v


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="+", help="exported data sets (pacctl log export)")
    ap.add_argument("--cube-from", default=None, metavar="REF",
                    help="a data set of the same seeds with gripper_to_cube, for data sets "
                    "without it (a camera model's)")
    ap.add_argument("--json", action="store_true", help="one JSON object per data set")
    args = ap.parse_args(argv)
    try:
        ref = cube_positions(args.cube_from) if args.cube_from else None
        rows = [failure_modes(p, ref) for p in args.data]
    except (FailureModeError, pds.DatasetError, OSError) as e:
        print(f"pacd_lift_failure_modes: {e}", file=sys.stderr)
        return 1
    for r in rows:
        if args.json:
            print(json.dumps(r))
            continue
        print(f"{r['data']}: {r['successes']}/{r['episodes'] - r['skipped']} successful; of "
              f"{r['failures']} failures {r['never_closed']} never close; first close in "
              f"{r['closed']} episodes, {r['close_within']} within {GRASP_XY * 100:.1f} cm "
              f"(x-y median {_fmt(r['close_xy_median_m'])} m, height "
              f"{_fmt(r['close_dz_median_m'])} m); closest x-y before it median "
              f"{_fmt(r['closest_xy_median_m'])} m" +
              (f"; {r['skipped']} episodes without a cube pose skipped" if r["skipped"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
