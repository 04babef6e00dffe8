"""Make a PAC checkpoint of a named size with random weights.

    python3 -m pacd_torch.make_pac --size pac-s --robot panda --cameras front,wrist \\
        --action-space joint_velocity --out pac-s.safetensors

Observation (the PAC paper's RGB-stacking setup): joint_positions 7, joint_velocities 7,
grasp 1, gripper_position 1, gripper_velocity 1, end_effector_pose 7 (24 values)
stacked --history deep (3), previous_action stacked --action-history deep (2), and
one uint8 [S, S, 3] field "camera/<name>" per camera (S = --image-size, 128).
Action spaces: cartesian_velocity (5: x y z m/s, rotation about z rad/s, gripper;
bounds 0.07 m/s, 1.0 rad/s, [-1, 1]; the paper's Sawyer action, not executable by
pacd's sim yet), joint_velocity (7, +-0.5 rad/s) and joint_velocity_gripper (8:
7 joints +-0.5 rad/s, gripper [-1, 1]), which pacd's sim Panda executes.
The weights are random (seeded): the checkpoint exercises the whole pipeline;
it has not learned a task.
"""

import argparse
import sys

import torch

from .export import export
from .pac import SIZES, PACActor, randomize_

PROPRIO = [("joint_positions", 7), ("joint_velocities", 7), ("grasp", 1),
           ("gripper_position", 1), ("gripper_velocity", 1), ("end_effector_pose", 7)]
JOINT_VMAX = 0.5   # rad/s, well inside both arms' velocity limits (docs/hal.md)
ACTION_SPACES = {
    "cartesian_velocity": {"dim": 5, "low": [-0.07, -0.07, -0.07, -1.0, -1.0],
                           "high": [0.07, 0.07, 0.07, 1.0, 1.0]},
    "joint_velocity": {"dim": 7, "low": [-JOINT_VMAX] * 7, "high": [JOINT_VMAX] * 7},
    "joint_velocity_gripper": {"dim": 8, "low": [-JOINT_VMAX] * 7 + [-1.0],
                               "high": [JOINT_VMAX] * 7 + [1.0]},
}


def observation_spec(cameras, image_size=128, history=3, action_history=2, action_dim=5):
    fields = [{"name": s, "source": s, "shape": [n], "history": history} for s, n in PROPRIO]
    if action_history > 0:
        fields.append({"name": "previous_action", "source": "previous_action",
                       "shape": [action_dim], "history": action_history})
    for c in cameras:
        fields.append({"name": f"camera/{c}", "source": f"camera/{c}",
                       "shape": [image_size, image_size, 3], "history": 1})
    return fields


def action_spec(space):
    a = ACTION_SPACES[space]
    return {"space": space, "dim": a["dim"], "low": list(a["low"]), "high": list(a["high"])}


def parse_task(text):
    if text == "none":
        return {"type": "none"}
    kind, _, n = text.partition(":")
    if kind == "embedding":
        return {"type": "embedding", "count": int(n)}
    if kind == "vector":
        return {"type": "vector", "dim": int(n)}
    raise argparse.ArgumentTypeError("--task is none, embedding:COUNT or vector:DIM")


def build(size, cameras, space="cartesian_velocity", head="categorical", bins=101,
          critic=False, task=None, queries="per_dimension", image_size=128, history=3,
          action_history=2, seed=0, overrides=None, critic_action_hidden=0):
    """A randomly initialised PACActor and its (observation, action) specs.
    overrides: pacd.model keys replacing the named size's (width, heads, ...);
    critic_action_hidden: the critic's "action_hidden" (0: linear action input)."""
    action = action_spec(space)
    observation = observation_spec(cameras, image_size, history, action_history, action["dim"])
    model = dict(SIZES[size])
    model.update(overrides or {})
    model["task"] = task or {"type": "none"}
    model["queries"] = queries
    model["head"] = {"type": "categorical", "bins": bins} if head == "categorical" \
        else {"type": "gaussian"}
    model["critic"] = {"value_bins": 51, "value_min": 0.0, "value_max": 1.0} if critic else None
    if critic and critic_action_hidden:
        model["critic"]["action_hidden"] = critic_action_hidden
    if not cameras:
        model["image_encoder"] = None
    torch.manual_seed(seed)
    m = PACActor(observation, action, model)
    randomize_(m, torch.Generator().manual_seed(seed))
    with torch.no_grad():
        m.obs_norm.mean.zero_()
        m.obs_norm.std.fill_(1.0)
    return m.eval(), observation, action


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m pacd_torch.make_pac", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=sorted(SIZES), default="pac-s")
    ap.add_argument("--robot", choices=["panda", "sawyer", ""], default="panda")
    ap.add_argument("--cameras", default="front,wrist",
                    help="comma-separated camera names ('' for none)")
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--action-space", choices=sorted(ACTION_SPACES), default=None,
                    help="default: joint_velocity for panda, cartesian_velocity otherwise")
    ap.add_argument("--head", choices=["categorical", "gaussian"], default="categorical")
    ap.add_argument("--bins", type=int, default=101)
    ap.add_argument("--queries", choices=["per_dimension", "single"], default="per_dimension")
    ap.add_argument("--critic", action="store_true", help="include the critic's Q decoder")
    ap.add_argument("--critic-action-hidden", type=int, default=0, metavar="H",
                    help="with --critic: its action input is the MLP Linear(A, H), GELU, "
                    "Linear(H, d) instead of Linear(A, d) (0, the default)")
    ap.add_argument("--task", type=parse_task, default={"type": "none"},
                    help="none, embedding:COUNT or vector:DIM")
    ap.add_argument("--history", type=int, default=3)
    ap.add_argument("--action-history", type=int, default=2)
    ap.add_argument("--dtype", choices=["f32", "f16", "bf16"], default="f32")
    ap.add_argument("--seed", type=int, default=0)
    for k in ("width", "heads", "latents", "blocks", "mlp_ratio"):
        ap.add_argument(f"--{k.replace('_', '-')}", type=int, default=None,
                        help=f"override the size's {k}")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    space = args.action_space or ("joint_velocity" if args.robot == "panda"
                                  else "cartesian_velocity")
    cams = [c for c in args.cameras.split(",") if c]
    overrides = {k: getattr(args, k) for k in ("width", "heads", "latents", "blocks",
                                                "mlp_ratio") if getattr(args, k) is not None}
    model, observation, action = build(args.size, cams, space, args.head, args.bins,
                                       args.critic, args.task, args.queries, args.image_size,
                                       args.history, args.action_history, args.seed,
                                       overrides, args.critic_action_hidden)
    export(model, args.out, args.robot, observation, action, args.dtype,
           extra_metadata={"pacd.example": {"size": args.size, "weights": "random",
                                            "seed": args.seed}})
    n = sum(p.numel() for p in model.parameters())
    print(f"wrote {args.out}: {args.size}, {n} parameters, cameras {cams}, action "
          f"{space} ({action['dim']}), head {args.head}, critic {args.critic}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
