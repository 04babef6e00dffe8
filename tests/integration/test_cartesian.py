"""Cartesian action spaces in the real daemon on the sim Panda: a policy that
always asks for the same end-effector velocity moves the end effector that
way, at about that speed, and stops at the workspace box."""
import math
import os
import sys

import pytest

from conftest import SRC, FrameFeeder
from test_daemon import cat_steps

import pacd_client

pb = pacd_client.pb
sys.path.insert(0, os.path.join(SRC, "policy", "torch"))


def constant_cartesian_checkpoint(path, velocity, space="cartesian_velocity", robot="panda"):
    """An MLP whose action is `velocity` whatever it observes (zero weights,
    head bias = atanh of the wanted tanh output). One value more than the
    space's 4 (cartesian_velocity) or 6 (cartesian_twist) is the gripper in
    [-1 close, 1 open]; a value at a bound is reached exactly (bias 20:
    tanh(20) is 1 in float32)."""
    import torch
    from pacd_torch.export import export
    from pacd_torch.mlp import MLPActor

    if space == "cartesian_velocity":
        low, high = [-0.07, -0.07, -0.07, -1.0], [0.07, 0.07, 0.07, 1.0]
    else:
        low, high = [-0.1] * 3 + [-0.5] * 3, [0.1] * 3 + [0.5] * 3
    if len(velocity) == len(low) + 1:
        low, high = low + [-1.0], high + [1.0]
    n = len(low)
    obs = [{"name": "end_effector_pose", "source": "end_effector_pose", "shape": [7], "history": 1}]
    model = MLPActor(7, n, [8], activation="relu", head="tanh", low=low, high=high)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for i, v in enumerate(velocity):
            t = 2 * (v - low[i]) / (high[i] - low[i]) - 1
            model.head.bias[i] = math.atanh(t) if abs(t) < 1 else math.copysign(20.0, t)
    export(model, str(path), robot, obs, {"space": space, "dim": n, "low": low, "high": high})
    return str(path)


def ee_positions(steps):
    return [s["observation"]["end_effector_pose"][:3] for s in steps]


def test_constant_cartesian_velocity_moves_the_end_effector_and_stops_at_the_box(daemon, tmp_path):
    v = 0.05  # m/s along +x
    ckpt = constant_cartesian_checkpoint(tmp_path / "cart.safetensors", [v, 0.0, 0.0, 0.0])
    # the default box: 0.25 x 0.25 x 0.2 m centred on the home pose's end
    # effector (RGB stacking), so 0.125 m of room along +x
    d = daemon(checkpoint=ckpt)
    feed = FrameFeeder(d.camera())
    d.client.start_episode(max_steps=75)
    d.wait_for(lambda s: s.state == pb.IDLE and s.step == 75, feed=feed, what="75 steps")
    d.stop()
    steps = cat_steps(d.logs()[0])
    p = ee_positions(steps)
    x0 = p[0][0]
    # while far from the face it moves along +x at about v (over the steps'
    # own times: a late tick on a loaded machine moves it further); y and z stay
    mid = [(a, b) for a, b in zip(p[5:20], p[6:21])]
    dt = (steps[20]["time_unix_ns"] - steps[5]["time_unix_ns"]) * 1e-9
    assert (p[20][0] - p[5][0]) / dt == pytest.approx(v, rel=0.25)
    assert all(abs(b[1] - a[1]) < 5e-4 and abs(b[2] - a[2]) < 5e-4 for a, b in mid)
    # then it stops at the box face and stays inside
    xmax = x0 + 0.125
    assert max(q[0] for q in p) <= xmax + 2e-3
    assert p[-1][0] == pytest.approx(xmax, abs=6e-3)
    assert any(s["safety_flags"] & 0x80 for s in steps), "workspace flag seen"


def home_end_effector(daemon, ckpt):
    """The end-effector position at the home pose, as pacd observes it."""
    d = daemon(checkpoint=ckpt)
    feed = FrameFeeder(d.camera())
    d.client.start_episode(max_steps=1)
    d.wait_for(lambda s: s.state == pb.IDLE and s.step == 1, feed=feed, what="1 step")
    d.stop()
    return ee_positions(cat_steps(d.logs()[0]))[0]


def test_workspace_box_from_the_config(daemon, tmp_path):
    ckpt = constant_cartesian_checkpoint(tmp_path / "down.safetensors", [0.0, 0.0, -0.06, 0.0])
    x, y, z = home_end_effector(daemon, ckpt)
    floor = z - 0.03  # 3 cm below the start
    box = "[safety]\nworkspace_min = %f, %f, %f\nworkspace_max = %f, %f, %f\n" % (
        x - 0.2, y - 0.2, floor, x + 0.2, y + 0.2, z + 0.2)
    (tmp_path / "episodes").rename(tmp_path / "episodes-home")
    d = daemon(checkpoint=ckpt, extra=box)
    feed = FrameFeeder(d.camera())
    d.client.start_episode(max_steps=40)
    d.wait_for(lambda s: s.state == pb.IDLE and s.step == 40, feed=feed, what="40 steps")
    d.stop()
    zs = [q[2] for q in ee_positions(cat_steps(d.logs()[0]))]
    assert zs[0] - zs[-1] > 0.02          # it went down ...
    assert min(zs) >= floor - 2e-3        # ... and stopped at the floor


def test_cartesian_twist_rotates_about_z(daemon, tmp_path):
    w = 0.3  # rad/s about the base z axis
    ckpt = constant_cartesian_checkpoint(tmp_path / "twist.safetensors", [0, 0, 0, 0, 0, w],
                                         space="cartesian_twist")
    d = daemon(checkpoint=ckpt)
    feed = FrameFeeder(d.camera())
    d.client.start_episode(max_steps=30)
    d.wait_for(lambda s: s.state == pb.IDLE and s.step == 30, feed=feed, what="30 steps")
    d.stop()
    steps = cat_steps(d.logs()[0])

    def yaw(q):  # qw qx qy qz -> rotation about z
        qw, qx, qy, qz = q
        return math.atan2(2 * (qw * qz + qx * qy), 1 - 2 * (qy * qy + qz * qz))

    yaws = [yaw(s["observation"]["end_effector_pose"][3:]) for s in steps]
    turn = (yaws[25] - yaws[5] + math.pi) % (2 * math.pi) - math.pi
    dt = (steps[25]["time_unix_ns"] - steps[5]["time_unix_ns"]) * 1e-9  # the steps' own times
    # at most the commanded w dt; at least 40% of it: on a loaded machine a
    # late tick lets the 1 kHz arm's command timeout decelerate it between
    # ticks (0.68 w dt measured beside the whole ASan suite), while a wrong
    # axis, sign or unit (deg/rad) is off by far more
    assert 0.4 * w * dt <= turn <= 1.25 * w * dt, (turn, w * dt)
    pos = ee_positions(steps)
    assert max(abs(a - b) for a, b in zip(pos[5], pos[25])) < 5e-3  # turns in place
