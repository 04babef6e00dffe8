"""Does a Lift PAC critic see the approach contrast? (docs/loop.md, "Fifth sitting")

    PYTHONPATH=policy/torch /usr/bin/python3 policy/torch/experiments/lift_critic_probe.py \\
        --data runs/behaviour.hdf5 CKPT.safetensors [CKPT ...] [--json out.json]

Approach rows: transitions of the data set whose action was chosen (not a
hold) where the gripper is more than 4 cm above the cube (gripper_to_cube z >
0.04 m) and 1.5-3 cm beside it in x-y (|gripper_to_cube x, y| in [0.015,
0.03] m), read from the data set's privileged field `gripper_to_object/cube`
(the end effector minus the cube, base frame). The decision at a row is the
checkpoint's: with `"repeat": k` in its action spec, the mean of the logged
actions of steps i .. i+k-1 (pacd_torch.train.repeated_actions, what the
trainer learns from). Rows whose decision moves slower than --min-speed in
x-y are left out (there the direction means nothing, and after snapping to
the action bins centring and its opposite would be the same bin).

Per checkpoint with a critic (pacd_torch.export.load; a linear or an MLP
action input, the trainer's --critic-action-hidden):

  gap = Q(s, a_c) - Q(s, a_o), where a_c is the data's decision with its x-y
        velocity replaced by the centring direction (-gripper_to_cube x-y,
        normalised) at the decision's own x-y speed, a_o the same with the
        opposite direction; vz, wz and the gripper stay the data's. Actions are
        snapped to the bins as in training (the critic sees bin centres).
        Reported: mean, mean |gap|, share > 0.
  actor: the cosine between the actor's expected x-y velocity (mean over its
        bins) and the centring direction at the same rows: mean, share > 0, and
        the mean centring component (m/s); also for checkpoints without a critic.
  scale: std of Q(s, a_data) over the approach rows and over 4,000 random rows
        of the whole data set; and the mean over approach rows of the std of Q
        over 16 random x-y velocities (other dimensions the data's).

Also the data's own contrast (no checkpoint needed): among the approach rows,
the success rate of the episodes of rows whose decision moved towards the cube
(cosine between the decision's x-y velocity and the centring direction > 0)
and away (< 0), and the same with |cosine| > 0.7; counts of rows and
episodes. The decision for the contrast uses --repeat (default 5).

Outputs one JSON object per checkpoint (and one for the data) on stdout, and
all of them in --json.
"""
import argparse
import json
import sys

import numpy as np
import torch

from pacd_torch import dataset as pds
from pacd_torch import safetensors
from pacd_torch import train as ptrain
from pacd_torch.export import load as load_ckpt

G2C_SOURCE = "gripper_to_object/cube"


def load_model(path):
    """(model, metadata) of a checkpoint (pacd_torch.export.load: either
    action input of the critic, --critic-action-hidden)."""
    return load_ckpt(path)


def load_data(path):
    """Every non-camera field of the data set as transitions (pds.load_transitions),
    plus the per-episode success and the field layout."""
    _, observation, _, _ = pds.read_spec(path)
    fields = pds.select_fields(observation, "lowdim")
    data = pds.load_transitions(path, fields)
    demos = pds.read(path, cameras=False, next_obs="last")["demos"]
    data["ep_success"] = np.array([pds.episode_success(d) for d in demos], bool)
    data["layout"] = {f["name"]: (f, off, n) for f, off, n in pds.obs_layout(fields)}
    return data


def g2c_columns(data):
    for f, off, n in data["layout"].values():
        if f["source"] == G2C_SOURCE:
            return slice(off, off + n)
    for f, off, n in data["layout"].values():   # e.g. the synthetic cell's (script checks)
        if f["source"].startswith("gripper_to_object/"):
            return slice(off, off + n)
    raise SystemExit(f"the data set has no {G2C_SOURCE} field")


# the approach rows' box (module doc); --min-height, --beside change it
BOX = {"min_height": 0.04, "beside": (0.015, 0.03)}


def approach_rows(data, decisions, min_speed):
    """Indices of approach rows (module doc) and their gripper-to-cube vectors."""
    m = len(data["actions"])
    g = data["obs"][:m, g2c_columns(data)].astype(np.float64)
    dxy = np.linalg.norm(g[:, :2], axis=1)
    speed = np.linalg.norm(decisions[:, :2], axis=1)
    lo, hi = BOX["beside"]
    keep = data["acted"] & (g[:, 2] > BOX["min_height"]) & (dxy >= lo) & (dxy <= hi) & \
        (speed >= min_speed)
    return np.flatnonzero(keep), g


def data_contrast(data, repeat, min_speed):
    dec = ptrain.repeated_actions(data["next_index"], data["actions"], repeat)
    rows, g = approach_rows(data, dec, min_speed)
    c = -g[rows, :2] / np.linalg.norm(g[rows, :2], axis=1, keepdims=True)
    v = dec[rows, :2].astype(np.float64)
    cos = (v * c).sum(1) / np.linalg.norm(v, axis=1)
    succ = data["ep_success"][data["episode"][rows]]
    out = {"data_rows_approach": int(len(rows)), "repeat": repeat, "min_speed": min_speed,
           "episodes": int(len(data["ep_success"])),
           "episode_success_rate": float(data["ep_success"].mean()), "box": dict(BOX)}
    for name, sel in (("towards", cos > 0), ("away", cos < 0),
                      ("towards_strict", cos > 0.7), ("away_strict", cos < -0.7)):
        out[f"{name}_rows"] = int(sel.sum())
        out[f"{name}_episodes"] = int(len(np.unique(data["episode"][rows][sel])))
        out[f"{name}_success"] = float(succ[sel].mean()) if sel.any() else None
    return out


def q_of(model, obs, actions, k, batch=2048):
    """Expected Q [M] of actions [M, A] (snapped to k bins) at observations [M, D]."""
    out = []
    with torch.no_grad():
        for i in range(0, len(obs), batch):
            o = torch.as_tensor(obs[i:i + batch])
            a = torch.as_tensor(actions[i:i + batch], dtype=torch.float32)
            a = ptrain.bins_to_action(ptrain.action_to_bins(a, model.low, model.high, k),
                                      model.low, model.high, k)
            lat = model.latents(o)
            out.append(model.q_value(lat, a).numpy().astype(np.float64))
    return np.concatenate(out)


def model_obs(data, model):
    """The data's observation columns of the fields the model reads."""
    cols = []
    for f in model.observation:
        if f["name"] not in data["layout"]:
            raise SystemExit(f"the checkpoint reads {f['name']}, not in the data set")
        _, off, n = data["layout"][f["name"]]
        cols.extend(range(off, off + n))
    return data["obs"][:, np.asarray(cols)].astype(np.float32)


def actor_xy(model, obs, batch=2048):
    """The actor's expected x-y velocity [M, 2] (mean over its bins) at observations."""
    out = []
    with torch.no_grad():
        for i in range(0, len(obs), batch):
            lg = model._per_dim(model(torch.as_tensor(obs[i:i + batch])))   # [B, A, K]
            p = torch.softmax(lg, -1)
            out.append((p * model.bin_centres()[None]).sum(-1)[:, :2].numpy())
    return np.concatenate(out).astype(np.float64)


def probe(path, data, min_speed, seed=0):
    model, meta = load_model(path)
    model.eval()
    repeat = int(json.loads(meta["pacd.action"]).get("repeat", 1))
    k = model.cfg["head"]["bins"]
    dec = ptrain.repeated_actions(data["next_index"], data["actions"], repeat).astype(np.float64)
    rows, g = approach_rows(data, dec, min_speed)
    if not len(rows):
        return {"checkpoint": path, "rows": 0}
    obs = model_obs(data, model)
    c = -g[rows, :2] / np.linalg.norm(g[rows, :2], axis=1, keepdims=True)
    # the actor at the same rows: does its mean x-y velocity head for the cube?
    ax = actor_xy(model, obs[rows])
    acos = (ax * c).sum(1) / np.maximum(np.linalg.norm(ax, axis=1), 1e-9)
    actor = {"actor_cos_mean": float(acos.mean()), "actor_towards_share": float((acos > 0).mean()),
             "actor_centring_speed": float((ax * c).sum(1).mean())}
    if model.critic is None:
        return dict(actor, checkpoint=path, critic=None, rows=int(len(rows)))
    speed = np.linalg.norm(dec[rows, :2], axis=1, keepdims=True)
    a_c = dec[rows].copy()
    a_c[:, :2] = c * speed
    a_o = dec[rows].copy()
    a_o[:, :2] = -c * speed
    o = obs[rows]
    qc, qo = q_of(model, o, a_c, k), q_of(model, o, a_o, k)
    qd = q_of(model, o, dec[rows], k)
    gap = qc - qo
    rng = np.random.default_rng(seed)
    rand_rows = rng.choice(np.flatnonzero(data["acted"]), min(4000, int(data["acted"].sum())),
                           replace=False)
    q_all = q_of(model, obs[rand_rows], dec[rand_rows], k)
    qr = []
    for _ in range(16):
        a = dec[rows].copy()
        a[:, :2] = rng.uniform(-0.15, 0.15, (len(rows), 2))
        qr.append(q_of(model, o, a, k))
    succ = data["ep_success"][data["episode"][rows]]
    auc = None
    if succ.any() and (~succ).any():
        # AUC of Q(s, a_data) separating approach rows of successful episodes
        r = np.argsort(np.argsort(qd)) + 1.0
        n1, n0 = succ.sum(), (~succ).sum()
        auc = float((r[succ].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))
    tr = json.loads(meta.get("pacd.training", "{}"))
    mlp = isinstance(model.critic.action_proj, torch.nn.Sequential)
    return {"checkpoint": path, "critic": "mlp" if mlp else "linear",
            "steps": tr.get("steps"), "rows": int(len(rows)),
            "gap_mean": float(gap.mean()), "gap_abs": float(np.abs(gap).mean()),
            "gap_positive": float((gap > 0).mean()),
            "q_data_mean_approach": float(qd.mean()),
            "q_std_over_states_approach": float(qd.std()),
            "q_std_over_states_all": float(q_all.std()),
            "q_std_over_xy_actions": float(np.std(np.stack(qr), 0).mean()),
            "auc_q_data_success_approach": auc, **actor}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("checkpoints", nargs="*")
    ap.add_argument("--repeat", type=int, default=5, help="decision length for the data's "
                    "contrast (checkpoints use their own)")
    ap.add_argument("--min-speed", type=float, default=0.015,
                    help="m/s: slower x-y decisions are left out (one bin is 0.015 m/s)")
    ap.add_argument("--min-height", type=float, default=0.04,
                    help="m: approach rows are higher than this above the cube")
    ap.add_argument("--beside", type=float, nargs=2, default=[0.015, 0.03],
                    help="m: approach rows are this far beside the cube in x-y")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    BOX.update(min_height=args.min_height, beside=tuple(args.beside))
    torch.set_num_threads(1)
    data = load_data(args.data)
    res = [dict(data_contrast(data, args.repeat, args.min_speed), data=args.data)]
    print(json.dumps(res[-1]), flush=True)
    for c in args.checkpoints:
        res.append(probe(c, data, args.min_speed))
        print(json.dumps(res[-1]), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
