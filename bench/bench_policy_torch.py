"""PyTorch side of the policy benchmark (prints figures, asserts nothing).

    /usr/bin/python3 bench/bench_policy_torch.py make DIR
        export the benchmark actors (MLP 3x256 and 3x1024, same weights) as
        pacd checkpoints (DIR/mlp_W.safetensors) and ONNX (DIR/mlp_W.onnx),
        plus DIR/obs.bin (float32 observation rows) and DIR/models.json
    /usr/bin/python3 bench/bench_policy_torch.py time DIR [ITERS]
        time the PyTorch twin at batch 1 with torch.set_num_threads(1);
        one JSON line per model

Observation: a PAC-like proprioception vector (the PAC paper's RGB-stacking setup): joint positions,
joint velocities, gripper position/velocity, grasp, end-effector pose
(24 values) stacked 3 deep, plus the previous 7-D action 2 deep: 86 floats.
"""

import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "policy" / "torch"))
from pacd_torch.export import export, obs_dim_of  # noqa: E402
from pacd_torch.mlp import MLPActor  # noqa: E402
from bench_timing import main, time_calls  # noqa: E402

WIDTHS = (256, 1024)
DEPTH = 3
ACTION_DIM = 7
FIELDS = [
    {"name": "q", "source": "joint_positions", "shape": [7], "history": 3},
    {"name": "qd", "source": "joint_velocities", "shape": [7], "history": 3},
    {"name": "gripper_pos", "source": "gripper_position", "shape": [1], "history": 3},
    {"name": "gripper_vel", "source": "gripper_velocity", "shape": [1], "history": 3},
    {"name": "grasp", "source": "grasp", "shape": [1], "history": 3},
    {"name": "pinch", "source": "end_effector_pose", "shape": [7], "history": 3},
    {"name": "prev", "source": "previous_action", "shape": [ACTION_DIM], "history": 2},
]
ACTION = {"space": "joint_velocity", "dim": ACTION_DIM, "low": [-0.5] * ACTION_DIM,
          "high": [0.5] * ACTION_DIM}
N_OBS = 1024


def build(width, seed):
    torch.manual_seed(seed)
    obs_dim = obs_dim_of(FIELDS)
    m = MLPActor(obs_dim, ACTION_DIM, [width] * DEPTH, "relu", "tanh", ACTION["low"],
                 ACTION["high"])
    with torch.no_grad():
        m.obs_norm.mean.copy_(torch.randn(obs_dim) * 0.1)
        m.obs_norm.std.copy_(0.5 + torch.rand(obs_dim))
    return m.eval()


def make(out):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    models = {}
    for i, w in enumerate(WIDTHS):
        m = build(w, i)
        name = f"mlp_3x{w}"
        export(m, out / f"{name}.safetensors", "panda", FIELDS, ACTION, "f32")
        torch.save(m.state_dict(), out / f"{name}.pt")
        # the ONNX graph includes normalisation, tanh and rescaling, as pacd's step
        torch.onnx.export(m, torch.zeros(1, m.obs_dim), str(out / f"{name}.onnx"),
                          input_names=["observation"], output_names=["action"],
                          opset_version=13)
        models[name] = {"width": w, "depth": DEPTH, "obs_dim": m.obs_dim,
                        "action_dim": ACTION_DIM}
    g = torch.Generator().manual_seed(42)
    obs = torch.randn(N_OBS, obs_dim_of(FIELDS), generator=g)
    obs.numpy().astype("<f4").tofile(out / "obs.bin")
    with torch.no_grad():
        for name in models:
            m = build(models[name]["width"], WIDTHS.index(models[name]["width"]))
            m(obs[:64]).numpy().astype("<f4").tofile(out / f"{name}.torch_actions.bin")
    (out / "models.json").write_text(json.dumps(models, indent=2))


def time_models(out, iters):
    out = Path(out)
    torch.set_num_threads(1)
    models = json.loads((out / "models.json").read_text())
    obs = torch.from_numpy(np.fromfile(out / "obs.bin", dtype="<f4").copy())
    for name, info in models.items():
        m = build(info["width"], WIDTHS.index(info["width"]))
        rows = obs.reshape(-1, info["obs_dim"])
        xs = [(rows[i:i + 1],) for i in range(rows.shape[0])]
        time_calls("torch", name, m, xs, iters, warmup=200)


if __name__ == "__main__":
    sys.exit(main(__doc__, make, time_models, sys.argv[1:], default_iters=2000))
