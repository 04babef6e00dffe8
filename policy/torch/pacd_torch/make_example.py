"""Make the example checkpoint: a small MLP actor trained in seconds by
behaviour cloning of a proportional joint controller.

    python3 -m pacd_torch.make_example --robot panda --out example.safetensors

Expert: action = clip(gain * (q_goal - q), -vmax, vmax) (joint velocities,
rad/s), with q_goal a pose inside the robot's joint limits. Observation:
joint_positions (7, rad) + joint_velocities (7, rad/s). Action space
joint_velocity, bounds +-vmax. Training states are drawn uniformly inside the
joint limits (Franka control-parameters-joint-panda.csv, Sawyer sawyer_base.urdf.xacro), velocities uniformly in +-vmax.
"""

import argparse
import sys
import time

import torch

from .export import export
from .mlp import MLPActor

# Joint limits (rad). Panda: Franka docs, control-parameters-joint-panda.csv.
# Sawyer: sawyer_base.urdf.xacro.
ROBOTS = {
    "panda": {
        "q_min": [-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973],
        "q_max": [2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973],
        # the usual "ready" pose of the Panda
        "q_goal": [0.0, -0.785398, 0.0, -2.356194, 0.0, 1.570796, 0.785398],
    },
    "sawyer": {
        "q_min": [-3.0503, -3.8095, -3.0426, -3.0439, -2.9761, -2.9761, -4.7124],
        "q_max": [3.0503, 2.2736, 3.0426, 3.0439, 2.9761, 2.9761, 4.7124],
        "q_goal": [0.0, -1.0, 0.0, 1.5, 0.0, 1.0, 0.0],
    },
}
GAIN = 1.0      # 1/s
VMAX = 0.5      # rad/s, well inside both arms' velocity limits
N_JOINTS = 7


def expert(q, q_goal, gain=GAIN, vmax=VMAX):
    """The proportional controller being cloned. q: [batch, 7] rad."""
    return (gain * (q_goal - q)).clamp(-vmax, vmax)


def observation_spec():
    return [
        {"name": "joint_positions", "source": "joint_positions", "shape": [N_JOINTS], "history": 1},
        {"name": "joint_velocities", "source": "joint_velocities", "shape": [N_JOINTS], "history": 1},
    ]


def action_spec():
    return {"space": "joint_velocity", "dim": N_JOINTS,
            "low": [-VMAX] * N_JOINTS, "high": [VMAX] * N_JOINTS}


def sample_states(robot, n, gen):
    r = ROBOTS[robot]
    lo = torch.tensor(r["q_min"])
    hi = torch.tensor(r["q_max"])
    q = lo + (hi - lo) * torch.rand(n, N_JOINTS, generator=gen)
    qd = (torch.rand(n, N_JOINTS, generator=gen) * 2 - 1) * VMAX
    return q, qd


def train(robot, steps=1500, batch=512, hidden=(64, 64), seed=0, log=None):
    """Train the actor; returns (model, held-out RMSE in rad/s)."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    q_goal = torch.tensor(ROBOTS[robot]["q_goal"])
    act = action_spec()
    model = MLPActor(2 * N_JOINTS, N_JOINTS, list(hidden), "relu", "tanh",
                     act["low"], act["high"])
    # normalisation statistics from the training distribution
    q, qd = sample_states(robot, 20000, gen)
    data = torch.cat([q, qd], dim=1)
    model.obs_norm.mean.copy_(data.mean(0))
    model.obs_norm.std.copy_(data.std(0))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for step in range(steps):
        q, qd = sample_states(robot, batch, gen)
        target = expert(q, q_goal)
        loss = torch.nn.functional.mse_loss(model(torch.cat([q, qd], 1)), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if log and (step % 500 == 0 or step == steps - 1):
            print(f"step {step}: mse {loss.item():.6f}", file=log)
    q, qd = sample_states(robot, 4096, gen)
    with torch.no_grad():
        err = model(torch.cat([q, qd], 1)) - expert(q, q_goal)
    return model, float(err.pow(2).mean().sqrt())


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m pacd_torch.make_example", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--robot", choices=sorted(ROBOTS), default="panda")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", choices=["f32", "f16", "bf16"], default="f32")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.time()
    model, rmse = train(args.robot, steps=args.steps, seed=args.seed, log=sys.stderr)
    export(model, args.out, args.robot, observation_spec(), action_spec(), args.dtype,
           extra_metadata={"pacd.example": {
               "task": "behaviour cloning of clip(gain * (q_goal - q), -vmax, vmax)",
               "q_goal": ROBOTS[args.robot]["q_goal"], "gain": GAIN, "vmax": VMAX,
               "heldout_rmse": round(rmse, 6)}})
    print(f"wrote {args.out}: robot {args.robot}, held-out RMSE {rmse:.4f} rad/s, "
          f"{time.time() - t0:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
