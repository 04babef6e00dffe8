"""Parity of pacd's C actor engine with its PyTorch twin, and the example checkpoint.

Runs pacd-policy-eval (found under $PACD_BUILD_DIR, default ./build) on
checkpoints exported by pacd_torch.export, and compares its actions with the
PyTorch model's on the same observations. For F16/BF16 checkpoints the PyTorch
reference uses the same rounded weights.

Run: PACD_BUILD_DIR=build /usr/bin/python3 -m pytest tests/integration/test_policy_parity.py
"""

import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "policy" / "torch"))

from pacd_torch import export as pexport  # noqa: E402
from pacd_torch import make_example, safetensors  # noqa: E402
from pacd_torch.mlp import MLPActor  # noqa: E402

TOL = 1e-5


def build_dir():
    return Path(os.environ.get("PACD_BUILD_DIR", ROOT / "build"))


@pytest.fixture(scope="module")
def eval_exe():
    exe = build_dir() / "policy" / "pacd-policy-eval"
    if not exe.exists():
        pytest.fail(f"{exe} not found: build first (ninja -C {build_dir()}) or set PACD_BUILD_DIR")
    return exe


def run_eval(exe, ckpt, obs):
    """Actions from the C engine for obs [n, obs_dim] float32."""
    data = np.ascontiguousarray(obs, dtype="<f4").tobytes()
    r = subprocess.run([str(exe), str(ckpt)], input=data, capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    return np.frombuffer(r.stdout, dtype="<f4").reshape(obs.shape[0], -1)


def spec_of(exe, ckpt):
    r = subprocess.run([str(exe), "--spec", str(ckpt)], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    return json.loads(r.stdout)


def obs_fields(history=1, prev_action_dim=0):
    fields = [
        {"name": "joint_positions", "source": "joint_positions", "shape": [7], "history": history},
        {"name": "joint_velocities", "source": "joint_velocities", "shape": [7], "history": history},
        {"name": "gripper_position", "source": "gripper_position", "shape": [1], "history": 1},
    ]
    if prev_action_dim:
        fields.append({"name": "previous_action", "source": "previous_action", "shape": [prev_action_dim],
                       "history": 2})
    return fields


# (hidden, activation, head, dtype, action space, dim, history, with previous_action)
CASES = [
    ([32], "relu", "tanh", "f32", "joint_velocity", 7, 1, False),
    ([64, 64], "tanh", "gaussian", "f16", "joint_velocity", 7, 3, True),
    ([48, 96, 24], "gelu", "tanh", "bf16", "joint_velocity_gripper", 8, 2, False),
    ([256, 256, 256], "relu", "gaussian", "f32", "joint_velocity", 7, 3, True),
    ([128, 128], "gelu", "gaussian", "bf16", "cartesian_velocity", 5, 1, True),
    ([], "relu", "tanh", "f16", "joint_velocity", 7, 1, False),
]


def random_model(case, seed):
    hidden, act, head, _, space, dim, history, prev = case
    g = torch.Generator().manual_seed(seed)
    fields = obs_fields(history, dim if prev else 0)
    obs_dim = pexport.obs_dim_of(fields)
    low = (-0.2 - torch.rand(dim, generator=g)).tolist()
    high = (0.1 + torch.rand(dim, generator=g)).tolist()
    torch.manual_seed(seed)
    model = MLPActor(obs_dim, dim, hidden, act, head, low, high)
    # larger-than-default weights so the tanh is exercised away from 0 too
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.5)
        model.obs_norm.mean.copy_(torch.randn(obs_dim, generator=g))
        model.obs_norm.std.copy_(0.1 + torch.rand(obs_dim, generator=g) * 2)
        model.obs_norm.std[0] = 0.0   # a constant feature: clamped to MIN_STD on both sides
    action = {"space": space, "dim": dim, "low": low, "high": high}
    return model, fields, action


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{'x'.join(map(str, c[0])) or 'linear'}-"
                         f"{c[1]}-{c[2]}-{c[3]}")
def test_parity(tmp_path, eval_exe, case):
    seed = CASES.index(case) + 1
    model, fields, action = random_model(case, seed)
    dtype = case[3]
    path = tmp_path / "actor.safetensors"
    pexport.export(model, path, "panda", fields, action, dtype=dtype)

    # reference: the same model with the weights rounded as stored
    ref_model = MLPActor(model.obs_dim, model.action_dim, model.hidden, model.activation,
                         model.head_kind, action["low"], action["high"])
    ref_model.load_state_dict(pexport.round_weights(model, dtype))
    g = torch.Generator().manual_seed(100 + seed)
    obs = model.obs_norm.mean + torch.randn(300, model.obs_dim, generator=g) * 2
    obs[:, 0] = model.obs_norm.mean[0]   # the std-0 feature sits at its mean (as in training)
    with torch.no_grad():
        want = ref_model(obs).numpy()
    got = run_eval(eval_exe, path, obs.numpy())
    assert got.shape == want.shape
    err = np.abs(got - want).max()
    assert err <= TOL, f"max |C - torch| = {err}"
    low = np.array(action["low"], dtype=np.float32)
    high = np.array(action["high"], dtype=np.float32)
    assert (got >= low).all() and (got <= high).all()
    # the outputs really vary (a constant policy would pass the comparison trivially)
    assert got.std(axis=0).min() > 1e-3
    if dtype != "f32":
        # rounding matters: the unrounded model differs by more than the tolerance
        with torch.no_grad():
            exact = model(obs).numpy()
        assert np.abs(exact - got).max() > TOL

    spec = spec_of(eval_exe, path)
    assert spec["obs_dim"] == model.obs_dim
    assert spec["action"]["dim"] == action["dim"]
    assert spec["action"]["space"] == action["space"]
    assert spec["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    offsets = [f["offset"] for f in spec["fields"]]
    sizes = [math.prod(f["shape"]) * f["history"] for f in fields]
    assert offsets == [sum(sizes[:i]) for i in range(len(sizes))]


def test_export_roundtrip_and_dtypes(tmp_path):
    model, fields, action = random_model(CASES[2], 7)
    for dtype, name in (("f32", "F32"), ("f16", "F16"), ("bf16", "BF16")):
        path = tmp_path / f"m-{dtype}.safetensors"
        pexport.export(model, path, "", fields, action, dtype=dtype)
        tensors, meta = safetensors.read(path)
        header_len = int.from_bytes(path.read_bytes()[:8], "little")
        assert header_len % 8 == 0
        assert meta["pacd.format"] == "pacd-checkpoint"
        assert meta["pacd.format_version"] == "1"
        assert json.loads(meta["pacd.model"]) == {"hidden": [48, 96, 24], "activation": "gelu",
                                                  "head": "tanh"}
        assert tensors["layers.0.weight"].dtype == getattr(torch, {"f32": "float32",
                                                                  "f16": "float16",
                                                                  "bf16": "bfloat16"}[dtype])
        assert tensors["obs_norm.std"].dtype == torch.float32
        loaded, _ = pexport.load(path)
        rounded = pexport.round_weights(model, dtype)
        for k, v in loaded.state_dict().items():
            assert torch.equal(v, rounded[k]), k
        assert name in path.read_bytes()[8:8 + header_len].decode()


def test_eval_rejects_bad_input(tmp_path, eval_exe):
    model, fields, action = random_model(CASES[0], 3)
    path = tmp_path / "a.safetensors"
    pexport.export(model, path, "panda", fields, action)
    # a short observation row
    r = subprocess.run([str(eval_exe), str(path)], input=b"\0" * 12, capture_output=True)
    assert r.returncode == 1 and b"short" in r.stderr
    # a broken file: the message names it
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(path.read_bytes()[:100])
    r = subprocess.run([str(eval_exe), str(bad)], capture_output=True)
    assert r.returncode == 1 and str(bad).encode() in r.stderr
    r = subprocess.run([str(eval_exe)], capture_output=True)
    assert r.returncode == 2


@pytest.mark.parametrize("robot", ["panda", "sawyer"])
def test_example_checkpoint_drives_to_goal(tmp_path, eval_exe, robot):
    path = tmp_path / f"{robot}.safetensors"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "policy" / "torch"))
    r = subprocess.run([sys.executable, "-m", "pacd_torch.make_example", "--robot", robot,
                        "--out", str(path)], env=env, capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr.decode()
    spec = spec_of(eval_exe, path)
    assert spec["robot"] == robot
    assert spec["obs_dim"] == 14 and spec["action"]["dim"] == 7
    assert spec["action"]["space"] == "joint_velocity"
    assert [f["source"] for f in spec["fields"]] == ["joint_positions", "joint_velocities"]

    lim = make_example.ROBOTS[robot]
    q_min, q_max = np.array(lim["q_min"]), np.array(lim["q_max"])
    q_goal = np.array(lim["q_goal"])
    assert ((q_goal > q_min) & (q_goal < q_max)).all()
    vmax = make_example.VMAX
    rng = np.random.default_rng(0)

    # single steps from random states: the action points toward the goal
    q = rng.uniform(q_min, q_max, size=(500, 7))
    qd = rng.uniform(-vmax, vmax, size=(500, 7))
    a = run_eval(eval_exe, path, np.concatenate([q, qd], 1).astype(np.float32))
    assert (np.abs(a) <= vmax + 1e-6).all()
    toward = np.einsum("ij,ij->i", a, q_goal - q)
    assert (toward > 0).mean() > 0.99

    # closed loop at 20 Hz for 15 s from 16 random starts: q converges to the goal
    dt = 0.05
    q = rng.uniform(q_min, q_max, size=(16, 7))
    qd = np.zeros_like(q)
    d0 = np.abs(q - q_goal).max(axis=1)
    for _ in range(300):
        a = run_eval(eval_exe, path, np.concatenate([q, qd], 1).astype(np.float32))
        qd = a.astype(np.float64)
        q = np.clip(q + qd * dt, q_min, q_max)
    d1 = np.abs(q - q_goal).max(axis=1)
    assert (d1 < 0.1).all(), f"final max joint error {d1.max():.3f} rad (start {d0.max():.3f})"
    assert (d1 < d0).all()
