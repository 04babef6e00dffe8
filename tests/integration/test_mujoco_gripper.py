"""The Sawyer's gripper in the robosuite Lift scene (mujoco backend): the
backend drives the Sawyer with its Rethink gripper there, so the gripper value
of a Cartesian-velocity action (the RGB-stacking Sawyer space: vx vy vz wz
gripper) acts in closed loop; [robot] gripper = no drops it; --check-config
checks a gripper checkpoint against the description [robot] gripper names."""
import os
import subprocess

import pytest

import pacd_client
from conftest import PACD, SRC, write_config
from test_cartesian import constant_cartesian_checkpoint
from test_daemon import cat_steps, node_read

pb = pacd_client.pb
SHARED = os.path.abspath(os.path.join(SRC, "..", "shared", "data"))
LIFT_SCENE = os.path.join(SHARED, "robosuite", "assets", "demonstrations", "SawyerLift",
                          "models", "model_1.xml")
# SawyerLift model_1.xml: each finger's slide range within its servo's
# ctrlrange is -0.0115..0.0115 m, so fully open is 0.046 m between them
OPEN_M = 4 * 0.0115
GRIPPER_IGNORED = 1 << 8  # hal.h HAL_SAFETY_GRIPPER_IGNORED
HELD = 1 << 6             # hal.h HAL_SAFETY_HELD

version = subprocess.run([PACD, "--version"], capture_output=True, text=True).stdout
pytestmark = [
    pytest.mark.skipif("mujoco" not in version,
                       reason="pacd was built without MuJoCo (install libmujoco-dev)"),
    pytest.mark.skipif(not os.path.exists(LIFT_SCENE),
                       reason="robosuite SawyerLift scene not found under " + SHARED),
]


def lift_extra(gripper=None):
    text = ("[robot]\nname = sawyer\nbackend = mujoco\nscene = %s\nseed = 1\n" % LIFT_SCENE)
    if gripper:
        text += "gripper = %s\n" % gripper
    return text


def run_episode(daemon, ckpt, extra, steps):
    # no camera: the checkpoint observes the end-effector pose only
    d = daemon(checkpoint=ckpt, cameras=(), extra=extra)
    d.client.start_episode(max_steps=steps)
    d.wait_for(lambda s: s.state == pb.IDLE and s.step == steps, timeout=60,
               what="%d steps" % steps)
    d.stop()
    log = d.logs()[0]
    states = [m["message"] for m in node_read(log)["messages"] if m["topic"] == "/pacd/robot_state"]
    return cat_steps(log), [s.get("gripperPosition", 0.0) for s in states], d.stderr()


def test_cartesian_gripper_closes_the_lift_scene_fingers(daemon, tmp_path):
    # up at 2 cm/s (clear of the table), gripper -1: close
    ckpt = constant_cartesian_checkpoint(tmp_path / "close.safetensors", [0.0, 0.0, 0.02, 0.0, -1.0],
                                         robot="sawyer")
    steps, opening, stderr = run_episode(daemon, ckpt, lift_extra(), 40)
    assert "drives the sawyer with a gripper" in stderr
    assert len(steps) == 40 and len(opening) == 40
    # the gripper command reached the backend: no GRIPPER_IGNORED, 8 values
    # (the last step holds: the episode ends)
    assert not any(s["safety_flags"] & GRIPPER_IGNORED for s in steps)
    live = [s for s in steps if not s["safety_flags"] & HELD]
    assert len(live) >= 35
    for s in live:
        assert len(s["action"]) == 8 and s["action"][7] == pytest.approx(-1.0)
    # the fingers start open and close (0.1 m/s: about 10 steps), never opening
    assert opening[0] > OPEN_M - 0.01
    assert opening[-1] < 0.005
    assert all(b <= a + 1e-4 for a, b in zip(opening, opening[1:])), opening
    assert sum(1 for a, b in zip(opening, opening[1:]) if b < a - 1e-3) >= 5
    # and the Cartesian part moved the end effector up meanwhile
    z = [s["observation"]["end_effector_pose"][2] for s in steps]
    assert z[-1] - z[0] > 0.01


def test_gripper_no_keeps_the_fingers_open(daemon, tmp_path):
    ckpt = constant_cartesian_checkpoint(tmp_path / "close.safetensors", [0.0, 0.0, 0.0, 0.0, -1.0],
                                         robot="sawyer")
    steps, opening, stderr = run_episode(daemon, ckpt, lift_extra(gripper="no"), 20)
    assert "drives the sawyer without a gripper" in stderr
    assert all(s["safety_flags"] & GRIPPER_IGNORED for s in steps if not s["safety_flags"] & HELD)
    assert all(len(s["action"]) == 7 for s in steps)
    assert min(opening) > OPEN_M - 0.01


def joint_gripper_checkpoint(path):
    """A Sawyer joint_velocity_gripper MLP (7 joint velocities + gripper)."""
    import torch
    from pacd_torch.export import export
    from pacd_torch.mlp import MLPActor

    low, high = [-0.5] * 7 + [-1.0], [0.5] * 7 + [1.0]
    obs = [{"name": "end_effector_pose", "source": "end_effector_pose", "shape": [7], "history": 1}]
    model = MLPActor(7, 8, [8], activation="relu", head="tanh", low=low, high=high)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    export(model, str(path), "sawyer", obs,
           {"space": "joint_velocity_gripper", "dim": 8, "low": low, "high": high})
    return str(path)


@pytest.mark.parametrize("gripper, ok", [(None, False), ("yes", True), ("no", False)])
def test_check_config_uses_the_gripper_key(tmp_path, gripper, ok):
    ckpt = joint_gripper_checkpoint(tmp_path / "jvg.safetensors")
    ports = {"camera": 1, "state": 2, "telemetry": 3, "control": 4}
    cfg = write_config(str(tmp_path / "c.conf"), ckpt, str(tmp_path), ports, cameras=(),
                       extra=lift_extra(gripper))
    r = subprocess.run([PACD, "--check-config", cfg], capture_output=True, text=True, timeout=60)
    if ok:
        assert r.returncode == 0, r.stderr
        assert "gripper 0.046 m" in r.stdout
    else:
        assert r.returncode != 0
        assert "gripper" in r.stderr
        if gripper is None:
            assert "[robot] gripper = yes" in r.stderr  # the hint says what to do


def test_gripper_yes_on_a_scene_without_one_is_a_clear_error(tmp_path):
    scene = os.path.join(SHARED, "menagerie", "rethink_robotics_sawyer", "scene_cam.xml")
    ckpt = joint_gripper_checkpoint(tmp_path / "jvg.safetensors")
    ports = {"camera": 1, "state": 2, "telemetry": 3, "control": 4}
    extra = "[robot]\nname = sawyer\nbackend = mujoco\nscene = %s\ngripper = yes\n" % scene
    cfg = write_config(str(tmp_path / "c.conf"), ckpt, str(tmp_path), ports, cameras=(),
                       extra=extra)
    r = subprocess.run([PACD, "--config", cfg], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "has no gripper" in r.stderr
