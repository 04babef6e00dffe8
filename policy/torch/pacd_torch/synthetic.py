"""A synthetic reaching cell for checking the PAC critic (docs/loop.md,
"Fourth sitting": is Q(s, a) flat in the x-y velocity because of the data or
because of the network?).

A point mass in the plane at 20 Hz, driven by the Lift cell's Cartesian
velocity action (5 values, +-0.15 m/s; only vx, vy move it: vz and wz are 0
and the gripper value +1 in the data), starts near the origin; the goal is
0.12 m along x, moved by a uniform +-3 cm in x and y (as the Lift cube).
Reaching within RADIUS of the goal pays reward 1 and ends the episode
(is_terminal); otherwise it ends after MAX_STEPS logged steps (is_last).

The observation mirrors the low-dim Lift model's privileged fields: the
point's pose (`end_effector_pose`: x y z=0, identity quaternion), the goal's
pose (`object_pose/goal`) and the point minus the goal
(`gripper_to_object/goal`).

The scripted operator moves the point proportionally (gain 2 /s, clamped to
the bounds, Gaussian noise) towards a target: the goal (a good intent) or,
like the Lift operator's "offset" mistake, a point 3-4.5 cm beside the goal
(drawn per episode, away from the approach side). Two data sets:

  shared     the operator re-draws its intent every 5-15 steps (good with
             probability P_GOOD_SEGMENT): failed and successful episodes pass
             through the same states (near the offset point, on the way), and
             at such a state only the action tells what follows;
  separated  the intent is drawn once per episode (good with probability
             P_GOOD_EPISODE): failed episodes wait at their offset point,
             where no successful episode goes, so the state alone separates
             the outcomes (the Lift data's structure).

Commands (python3 -m pacd_torch.synthetic ...):
  data --out F.hdf5 --mode shared|separated [--episodes N] [--seed S]
  evaluate CKPT... [--episodes N] [--seed S] [--temperature T]
  probe CKPT --mode shared|separated [--episodes N] [--seed S] [--mc M]
  figure --out F.png CKPT... (Q over the 21 x 21 x-y velocity bins at fixed states)

The data set is written with pacd_torch.dataset.write (the layout
`pacctl log export` writes), robot "" (no pacd robot drives this cell).
"""

import argparse
import json
import math
import sys

import numpy as np

RATE_HZ = 20.0
DT = 1.0 / RATE_HZ
VMAX = 0.15                 # m/s, the Lift cell's x-y bounds
RADIUS = 0.01               # m: success when the point is this close to the goal
MAX_STEPS = 80              # logged steps per episode at most (4 s)
GOAL = (0.12, 0.0)          # m, nominal goal; moved by +-GOAL_JITTER per episode
GOAL_JITTER = 0.03
START_JITTER = 0.01
GAIN = 2.0                  # 1/s, the operator's proportional gain
NOISE = 0.01                # m/s, the operator's action noise
OFFSET = (0.03, 0.045)      # m, distance of the offset point from the goal
OFFSET_ANGLE = (math.radians(60), math.radians(120))   # |angle| from +x: beside the goal (the approach comes from -x)
SEGMENT = (5, 15)           # steps an intent lasts (shared mode)
P_GOOD_SEGMENT = 0.2
P_GOOD_EPISODE = 0.35
ACTION = {"space": "cartesian_velocity", "dim": 5,
          "low": [-VMAX, -VMAX, -VMAX, -1.0, -1.0], "high": [VMAX, VMAX, VMAX, 1.0, 1.0]}
OPEN = 1.0                  # gripper value in the data (Lift: +1 open)
TASK = "synthetic-reach"
MODES = ("shared", "separated")


def observation_spec():
    def f(name, source, n):
        return {"name": name, "source": source, "shape": [n], "history": 1}
    return [f("end_effector_pose", "end_effector_pose", 7),
            f("goal_pose", "object_pose/goal", 7),
            f("point_to_goal", "gripper_to_object/goal", 3)]


def observe(p, g):
    """Flat observation [B, 17] of points p [B, 2] and goals g [B, 2]."""
    b = p.shape[0]
    z, one = np.zeros((b, 1)), np.ones((b, 1))
    quat = np.concatenate([one, z, z, z], 1)
    pose = np.concatenate([p, z, quat], 1)
    goal = np.concatenate([g, z, quat], 1)
    return np.concatenate([pose, goal, np.concatenate([p - g, z], 1)], 1).astype(np.float32)


def full_action(v):
    """The 5-value action of x-y velocities v [B, 2] (vz = wz = 0, gripper open)."""
    b = v.shape[0]
    return np.concatenate([v, np.zeros((b, 2)), np.full((b, 1), OPEN)], 1).astype(np.float32)


def start(seed):
    """(start point [2], goal [2], offset point [2]) of an episode's seed."""
    rng = np.random.default_rng([seed, 1])
    p = rng.uniform(-START_JITTER, START_JITTER, 2)
    g = np.asarray(GOAL) + rng.uniform(-GOAL_JITTER, GOAL_JITTER, 2)
    d = rng.uniform(*OFFSET)
    a = rng.uniform(*OFFSET_ANGLE) * rng.choice([-1.0, 1.0])
    return p, g, g + d * np.array([math.cos(a), math.sin(a)])


def step(p, g, v):
    """One control period: (next points, reward, success) for points p [B, 2],
    goals g [B, 2] and x-y velocities v [B, 2] (clamped to the bounds)."""
    p2 = p + np.clip(v, -VMAX, VMAX) * DT
    ok = np.linalg.norm(p2 - g, axis=1) < RADIUS
    return p2, ok.astype(np.float32), ok


def toward(p, target):
    """The operator's proportional velocity towards target, clamped [B, 2]."""
    return np.clip(GAIN * (target - p), -VMAX, VMAX)


def operator_episode(seed, mode):
    """One behaviour episode in pacd's per-step form (dataset.write's input)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    p, g, o = start(seed)
    rng = np.random.default_rng([seed, 2])
    good_episode = rng.random() < P_GOOD_EPISODE
    obs, acts, rew, term, good = [], [], [0.0], [0], []
    left = 0
    intent = good_episode
    for t in range(MAX_STEPS):
        obs.append(observe(p[None], g[None])[0])
        if t == MAX_STEPS - 1 or term[-1]:
            acts.append(full_action(np.zeros((1, 2)))[0])    # the arm holds on the last step
            good.append(intent)
            break
        if mode == "shared":
            if left == 0:
                intent = rng.random() < P_GOOD_SEGMENT
                left = int(rng.integers(SEGMENT[0], SEGMENT[1] + 1))
            left -= 1
        v = toward(p[None], (g if intent else o)[None])[0] + rng.normal(0, NOISE, 2)
        v = np.clip(v, -VMAX, VMAX)
        acts.append(full_action(v[None])[0])
        good.append(intent)
        p, r, ok = step(p[None], g[None], v[None])
        p = p[0]
        rew.append(float(r[0]))
        term.append(int(ok[0]))
    t = len(obs)
    last = np.zeros(t, np.uint8)
    last[-1] = 1
    return {"observation": np.asarray(obs), "actions": np.asarray(acts),
            "rewards": np.asarray(rew[:t]), "is_terminal": np.asarray(term[:t], np.uint8),
            "is_last": last, "seed": seed, "episode_id": f"synthetic-{mode}-{seed}",
            "goal": g, "offset": o, "good": np.asarray(good)}


def make_episodes(n, seed, mode):
    return [operator_episode(seed + i, mode) for i in range(n)]


def write_dataset(path, episodes):
    from . import dataset as pds
    pds.write(path, episodes, "", observation_spec(), ACTION, rate_hz=RATE_HZ, task=TASK)


# --- a trained checkpoint in the cell -------------------------------------------

def load(path):
    """(model, repeat) of a pacd checkpoint trained on this cell's data; `path`
    may also be a (model, repeat) pair already in memory (an ablation's model
    that no checkpoint holds)."""
    if isinstance(path, tuple):
        path[0].eval()
        return path
    from .export import load as load_ckpt
    model, meta = load_ckpt(path)
    model.eval()
    return model, int(json.loads(meta["pacd.action"]).get("repeat", 1))


def model_input(model, obs):
    """The model's observation vector (its fields, by name) from the full one."""
    import torch
    cols, off = [], 0
    layout = {}
    for f in observation_spec():
        n = math.prod(f["shape"]) * f["history"]
        layout[f["name"]] = range(off, off + n)
        off += n
    for f in model.observation:
        cols.extend(layout[f["name"]])
    return torch.as_tensor(obs[:, cols])


def sample_actions(model, lat, gen, temperature=1.0):
    """x-y velocities [B, 2] sampled from the actor's categorical bins (as pacd's
    `[policy] sample`), the other dimensions ignored."""
    import torch
    logits = model.logits_from_latents(lat)                 # [B, A, K]
    p = torch.softmax(logits[:, :2] / temperature, -1)
    b, a, k = p.shape
    idx = torch.multinomial(p.reshape(b * a, k), 1, generator=gen).reshape(b, a)
    centres = model.bin_centres()[:2]                       # [2, K]
    return centres.gather(1, idx.T).T.numpy().astype(np.float64)


def rollout(model, repeat, p, g, gen, first=None, horizon=MAX_STEPS - 1, temperature=1.0):
    """Run the policy from points p [B, 2] with goals g [B, 2] for at most
    `horizon` control periods (each decision held `repeat` periods); `first`
    [B, 2] is the first decision's velocity instead of a sample. Returns the
    number of periods until success [B] (-1: none)."""
    import torch
    b = p.shape[0]
    done = np.full(b, -1)
    v = None
    with torch.no_grad():
        for t in range(horizon):
            if t % repeat == 0:
                if t == 0 and first is not None:
                    v = first
                else:
                    lat = model.latents(model_input(model, observe(p, g)))
                    v = sample_actions(model, lat, gen, temperature)
            p, _, ok = step(p, g, v)
            hit = ok & (done < 0)
            done[hit] = t + 1
            p = np.where((done >= 0)[:, None], g, p)      # a finished episode stays put
            if (done >= 0).all():
                break
    return done


def evaluate(path, episodes=200, seed=900000, temperature=1.0, sampling_seed=1):
    """(successes, n) of a checkpoint over seeded episodes (the data's starts and
    goals; MAX_STEPS - 1 periods each, as the data's episodes)."""
    import torch
    model, repeat = load(path)
    starts = [start(seed + i) for i in range(episodes)]
    p = np.array([s[0] for s in starts])
    g = np.array([s[1] for s in starts])
    gen = torch.Generator().manual_seed(sampling_seed)
    done = rollout(model, repeat, p, g, gen, temperature=temperature)
    return int((done >= 0).sum()), episodes


# --- the critic probe ---------------------------------------------------------

def snap(model, v):
    """x-y velocities [B, 2] snapped to the action bins the critic is trained on
    (the trainer's own mapping, pacd_torch.train)."""
    import torch
    from .train import action_to_bins, bins_to_action
    k = model.cfg["head"]["bins"]
    idx = action_to_bins(torch.as_tensor(v), -VMAX, VMAX, k)
    return bins_to_action(idx, -VMAX, VMAX, k).numpy().astype(np.float64)


def q_values(model, obs, v):
    """Expected Q [B] of x-y velocities v [B, 2] (snapped to the bins) at observations obs."""
    import torch
    with torch.no_grad():
        lat = model.latents(model_input(model, obs))
        a = torch.as_tensor(full_action(snap(model, v)))
        return model.q_value(lat, a).numpy().astype(np.float64)


def probe_states(mode, episodes=60, seed=800000, min_dist=0.02, min_diff=0.04):
    """Held-out behaviour states (their own seeds) where the point is more than
    min_dist from the goal and the velocity towards the goal and the one towards
    the episode's offset point differ by more than min_diff m/s.
    Returns dict of obs [M, 17], p, g, o [M, 2], v_goal, v_offset, v_data [M, 2]."""
    rows = {k: [] for k in ("obs", "p", "g", "o", "v_data")}
    for e in make_episodes(episodes, seed, mode):
        o = e["observation"][:-1]
        rows["obs"].append(o)
        rows["p"].append(o[:, :2])
        rows["g"].append(np.repeat(e["goal"][None], len(o), 0))
        rows["o"].append(np.repeat(e["offset"][None], len(o), 0))
        rows["v_data"].append(e["actions"][:-1, :2])
    s = {k: np.concatenate(v).astype(np.float64) for k, v in rows.items()}
    s["obs"] = s["obs"].astype(np.float32)
    s["v_goal"] = toward(s["p"], s["g"])
    s["v_offset"] = toward(s["p"], s["o"])
    keep = (np.linalg.norm(s["p"] - s["g"], axis=1) > min_dist) & \
        (np.linalg.norm(s["v_goal"] - s["v_offset"], axis=1) > min_diff)
    return {k: v[keep] for k, v in s.items()}


def mc_q(model, repeat, p, g, v, rollouts=16, gamma=0.99, seed=5, horizon=150):
    """Monte Carlo Q of the checkpoint's own policy (sampled, temperature 1):
    the first decision v [B, 2] held `repeat` periods, then the policy;
    return gamma^(m - 1) for success after m periods (the critic's target's
    units), 0 without success within `horizon` periods. Mean over rollouts [B]."""
    import torch
    gen = torch.Generator().manual_seed(seed)
    b = p.shape[0]
    rep = lambda x: np.repeat(x, rollouts, 0)   # noqa: E731
    done = rollout(model, repeat, rep(p), rep(g), gen, first=rep(snap(model, v)),
                   horizon=horizon)
    ret = np.where(done > 0, gamma ** (done - 1.0), 0.0)
    return ret.reshape(b, rollouts).mean(1)


def probe(path, mode, episodes=60, seed=800000, mc=0, mc_states=100, gamma=0.99,
          per_state=False):
    """The critic's Q gaps at held-out states (dict of figures): Q of the
    velocity towards the goal minus Q of the one towards the episode's offset
    point (gap_offset) and of the opposite one (gap_away), mean signed,
    mean absolute and the fraction of states where it is positive; the same
    at the states within 1 cm of the offset point (near_offset_*); with mc > 0
    the Monte Carlo gaps of the checkpoint's own policy at mc_states of them
    (mc rollouts each). per_state: add the per-state gaps (for figures)."""
    model, repeat = load(path)
    s = probe_states(mode, episodes, seed)
    qg = q_values(model, s["obs"], s["v_goal"])
    qo = q_values(model, s["obs"], s["v_offset"])
    qa = q_values(model, s["obs"], -s["v_goal"])
    qd = q_values(model, s["obs"], s["v_data"])
    rng = np.random.default_rng(0)
    rand = [q_values(model, s["obs"], rng.uniform(-VMAX, VMAX, s["p"].shape)) for _ in range(16)]
    out = {"checkpoint": path if isinstance(path, str) else "(in memory)", "mode": mode, "states": int(len(qg)),
           "gap_offset_mean": float((qg - qo).mean()),
           "gap_offset_abs": float(np.abs(qg - qo).mean()),
           "gap_offset_positive": float((qg > qo).mean()),
           "gap_away_mean": float((qg - qa).mean()),
           "gap_away_abs": float(np.abs(qg - qa).mean()),
           "gap_away_positive": float((qg > qa).mean()),
           "q_data_mean": float(qd.mean()),
           "q_std_over_states": float(qd.std()),
           "q_std_over_actions": float(np.std(np.stack(rand), 0).mean())}
    near = np.linalg.norm(s["p"] - s["o"], axis=1) < 0.01
    if near.any():
        out.update({"near_offset_states": int(near.sum()),
                    "near_offset_gap_offset_mean": float((qg - qo)[near].mean()),
                    "near_offset_gap_offset_positive": float((qg > qo)[near].mean())})
    if mc:
        idx = rng.choice(len(qg), min(mc_states, len(qg)), replace=False)
        p, g = s["p"][idx], s["g"][idx]
        mg = mc_q(model, repeat, p, g, s["v_goal"][idx], mc, gamma)
        mo = mc_q(model, repeat, p, g, s["v_offset"][idx], mc, gamma)
        ma = mc_q(model, repeat, p, g, -s["v_goal"][idx], mc, gamma)
        out.update({"mc_states": int(len(idx)), "mc_rollouts": mc,
                    "mc_gap_offset_mean": float((mg - mo).mean()),
                    "mc_gap_away_mean": float((mg - ma).mean()),
                    "mc_q_goal_mean": float(mg.mean()),
                    "critic_gap_offset_mean_same_states": float((qg - qo)[idx].mean()),
                    "critic_gap_away_mean_same_states": float((qg - qa)[idx].mean()),
                    "corr_critic_mc_gap_away": float(np.corrcoef(
                        (qg - qa)[idx], mg - ma)[0, 1]) if (mg - ma).std() > 0 else 0.0})
        if per_state:
            out["per_state"] = {"critic_gap_offset": (qg - qo)[idx].tolist(),
                                "mc_gap_offset": (mg - mo).tolist(),
                                "critic_gap_away": (qg - qa)[idx].tolist(),
                                "mc_gap_away": (mg - ma).tolist()}
    return out


def gap_figure(out, results, labels):
    """Scatter of the critic's Q gap against the Monte Carlo gap of the
    checkpoint's own policy, per probe state (probe(..., per_state=True) results)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    for ax, kind, name in zip(axes, ("offset", "away"),
                              ("towards goal minus towards offset point",
                               "towards goal minus away from goal")):
        for r, lab in zip(results, labels):
            ps = r["per_state"]
            ax.scatter(ps[f"mc_gap_{kind}"], ps[f"critic_gap_{kind}"], s=10, alpha=0.6,
                       label=lab)
        lim = [-0.2, 0.8]
        ax.plot(lim, lim, "k--", lw=0.8)
        ax.axhline(0, color="grey", lw=0.5)
        ax.axvline(0, color="grey", lw=0.5)
        ax.set_xlabel("Monte Carlo Q gap of the policy")
        ax.set_ylabel("critic's Q gap")
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)


def figure(out, paths, labels=None, seed=800123):
    """Q over the x-y velocity bins (21 x 21) at three states of one episode
    (the start, near the offset point, near the goal), one row per checkpoint."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    p0, g, o = start(seed)
    pts = [p0, o, g + 0.5 * (o - g) + np.array([-0.01, 0.0])]
    names = ["start", "offset point", "between offset and goal"]
    fig, axes = plt.subplots(len(paths), 3, figsize=(11, 3.3 * len(paths)), squeeze=False)
    for r, path in enumerate(paths):
        model, _ = load(path)
        k = model.cfg["head"]["bins"]
        c = np.linspace(-VMAX, VMAX, k)
        vx, vy = np.meshgrid(c, c, indexing="xy")
        v = np.stack([vx.ravel(), vy.ravel()], 1)
        for j, (pt, nm) in enumerate(zip(pts, names)):
            obs = np.repeat(observe(pt[None], g[None]), len(v), 0)
            q = q_values(model, obs, v).reshape(k, k)
            ax = axes[r, j]
            im = ax.imshow(q, origin="lower", extent=[-VMAX, VMAX, -VMAX, VMAX], cmap="viridis")
            fig.colorbar(im, ax=ax, fraction=0.046)
            for tgt, col, lab in ((g, "w", "to goal"), (o, "r", "to offset")):
                u = toward(pt[None], tgt[None])[0]
                ax.plot(u[0], u[1], marker="o", color=col, mec="k", label=lab)
            ax.set_title(f"{labels[r] if labels else path}\n{nm}: Q range "
                         f"{q.max() - q.min():.3f}", fontsize=8)
            ax.set_xlabel("vx (m/s)")
            ax.set_ylabel("vy (m/s)")
            if r == 0 and j == 0:
                ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m pacd_torch.synthetic", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("data", help="write a behaviour data set")
    d.add_argument("--out", required=True)
    d.add_argument("--mode", choices=MODES, default="shared")
    d.add_argument("--episodes", type=int, default=300)
    d.add_argument("--seed", type=int, default=0)
    e = sub.add_parser("evaluate", help="success rate of checkpoints in the cell")
    e.add_argument("ckpt", nargs="+")
    e.add_argument("--episodes", type=int, default=200)
    e.add_argument("--seed", type=int, default=900000)
    e.add_argument("--temperature", type=float, default=1.0)
    pr = sub.add_parser("probe", help="the critic's Q gaps at held-out states")
    pr.add_argument("ckpt", nargs="+")
    pr.add_argument("--mode", choices=MODES, default="shared")
    pr.add_argument("--episodes", type=int, default=60)
    pr.add_argument("--seed", type=int, default=800000)
    pr.add_argument("--mc", type=int, default=0, help="Monte Carlo rollouts per state (0: none)")
    f = sub.add_parser("figure", help="Q over the x-y velocity bins at three states")
    f.add_argument("ckpt", nargs="+")
    f.add_argument("--out", required=True)
    f.add_argument("--labels", default=None, help="comma-separated row labels")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    if args.cmd == "data":
        eps = make_episodes(args.episodes, args.seed, args.mode)
        write_dataset(args.out, eps)
        ok = sum(int(e["rewards"].max() >= 1) for e in eps)
        from .stats import format_rate
        print(f"wrote {args.out}: {args.mode}, {len(eps)} episodes, "
              f"{sum(len(e['actions']) - 1 for e in eps)} transitions, success "
              f"{format_rate(ok, len(eps))}")
    elif args.cmd == "evaluate":
        from .stats import format_rate
        for c in args.ckpt:
            k, n = evaluate(c, args.episodes, args.seed, args.temperature)
            print(f"{c}: {format_rate(k, n)}")
    elif args.cmd == "probe":
        for c in args.ckpt:
            print(json.dumps(probe(c, args.mode, args.episodes, args.seed, args.mc)))
    elif args.cmd == "figure":
        figure(args.out, args.ckpt, args.labels.split(",") if args.labels else None)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
