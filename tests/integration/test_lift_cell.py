"""Collecting data through pacd: teleop mode (the teleoperator's action drives
the arm through the safety filter and is logged as the action taken, a stale
one holds the arm), the task contract of the MuJoCo SawyerLift cell (a seeded
start per episode, success = a terminal step with reward 1, the cube pose in
the task values), and the scripted Lift operator (clients/pacd_lift_operator.py)
driving pacd in teleop mode."""
import math
import os
import random
import subprocess
import sys

import numpy
import pytest

import pacd_client
from conftest import PACCTL, PACD, SRC, FrameFeeder, every, scaled, write_config
from test_daemon import cat_steps, node_read

pb = pacd_client.pb
sys.path.insert(0, os.path.join(SRC, "clients"))
import pacd_lift_operator as op  # noqa: E402

LIFT_SCENE = os.path.abspath(os.path.join(
    SRC, "..", "shared", "data", "robosuite", "assets", "demonstrations", "SawyerLift", "models",
    "model_1.xml"))
version = subprocess.run([PACD, "--version"], capture_output=True, text=True).stdout
needs_mujoco = pytest.mark.skipif("mujoco" not in version,
                                  reason="pacd was built without MuJoCo (install libmujoco-dev)")


def metadata(path):
    doc = node_read(path)
    return {m["name"]: m["metadata"] for m in doc["metadata"]}["pacd"]


def test_operator_geometry_and_mistakes():
    # the Sawyer's home pinch-point orientation (tool z down, site y along +x)
    h = math.sqrt(0.5)
    assert op.finger_angle(0.0, h, h, 0.0) == pytest.approx(0.0, abs=1e-9)
    # a cube turned by 100 degrees: its nearest face is 10 degrees away
    yaw = math.radians(100)
    q = (math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2))
    assert op.yaw_of(*q) == pytest.approx(yaw)
    assert op._wrap_quarter(yaw - 0.0) == pytest.approx(math.radians(10))
    assert op._wrap_quarter(math.radians(-50)) == pytest.approx(math.radians(40))
    # the script: above the cube it descends, at the grasp height it closes
    s = op.LiftScript(20.0, None, noise=0.0)
    down = (0.0, h, h, 0.0)
    a = s.act((0.5, 0.0, 0.2), down, (0.5, 0.0, 0.0), 0.0)
    assert a[2] < 0 and a[4] == 1.0 and s.phase == "approach"
    s.act((0.5, 0.0, 0.1), down, (0.5, 0.0, 0.0), 0.0)
    assert s.phase == "descend"
    a = s.act((0.5, 0.0, -0.005), down, (0.5, 0.0, 0.0), 0.0)
    assert s.phase == "close" and a[4] == -1.0
    # the mistakes follow the seed, about 1 - skill of the episodes get one
    assert [op.mistake_for(s, 0.3) for s in range(50)] == [op.mistake_for(s, 0.3) for s in range(50)]
    n = sum(op.mistake_for(s, 0.3) is not None for s in range(2000))
    assert 0.65 < n / 2000 < 0.75
    assert op.LiftScript(20.0, "high", random.Random(1)).grasp_extra >= 0.025


def test_operator_drift_is_a_slow_disturbance_of_the_approach_only():
    """--drift: an Ornstein-Uhlenbeck x-y velocity disturbance with the given
    standard deviation and correlation time, during the approach only."""
    h = math.sqrt(0.5)
    down = (0.0, h, h, 0.0)
    far = (0.3, 0.2, 0.3)          # far from the cube: the controller saturates the same way
    cube = (0.6, 0.0, 0.0)
    clean = op.LiftScript(20.0, None, random.Random(4), noise=0.0)
    s = op.LiftScript(20.0, None, random.Random(4), noise=0.0, drift=0.05, drift_tau_s=1.0)
    d = []
    for _ in range(20000):
        a, b = s.act(far, down, cube, 0.0), clean.act(far, down, cube, 0.0)
        d.append((a[0] - b[0], a[1] - b[1]))
        assert a[2] == b[2] and a[4] == b[4]       # z and the gripper untouched
        s.ticks_in_phase = clean.ticks_in_phase = 0  # stay in the approach
    xs = [x for x, _ in d]
    std = math.sqrt(sum(x * x for x in xs) / len(xs))
    assert 0.04 < std < 0.06, std
    # correlated over the time constant: lag-1 (50 ms) ~ exp(-0.05), lag-20 (1 s) ~ exp(-1)
    def corr(k):
        return sum(a * b for a, b in zip(xs, xs[k:])) / (len(xs) - k) / std ** 2
    assert corr(1) > 0.9 and 0.2 < corr(20) < 0.55, (corr(1), corr(20))
    # outside the approach: no disturbance
    s.phase = clean.phase = "lift"
    s.grasp_z = clean.grasp_z = 0.0
    a, b = s.act(far, down, cube, 0.0), clean.act(far, down, cube, 0.0)
    assert a[:2] == b[:2]


def test_operator_waver_alternates_the_approach_target_and_descends_where_it_arrived():
    """--waver P: in segments of 5-15 ticks the approach heads for the cube
    (probability P) or for the episode's point 3-4.5 cm beside it; the
    descent keeps the target the approach arrived at; the same seed gives
    the same episode."""
    h = math.sqrt(0.5)
    down = (0.0, h, h, 0.0)
    cube = (0.6, 0.0, 0.0)
    ee = (0.6, 0.0, 0.3)   # straight above the cube, 0.2 m above the approach point

    def heading(a):
        return (a[0], a[1])

    s = op.LiftScript(20.0, None, random.Random(11), noise=0.0, waver=0.5)
    d = math.hypot(*s.beside)
    assert 0.03 <= d <= 0.045
    segs, cur, n = [], None, 0
    for _ in range(4000):
        a = s.act(ee, down, cube, 0.0)
        s.ticks_in_phase = 0
        to_cube = heading(a) == (0.0, 0.0)   # above the cube: no x-y motion towards it
        if not to_cube:
            # towards the point beside the cube, in its direction
            assert a[0] * s.beside[0] + a[1] * s.beside[1] > 0
        if to_cube != cur and cur is not None:
            segs.append(n)
            n = 0
        cur = to_cube
        n += 1
    # a run of one intent lasts at least 5 ticks (segments of 5-15, possibly repeated)
    assert len(segs) > 50 and min(segs) >= 5, segs[:20]
    # about P of the segments head for the cube: count ticks
    s2 = op.LiftScript(20.0, None, random.Random(12), noise=0.0, waver=0.2)
    good = 0
    for _ in range(20000):
        good += heading(s2.act(ee, down, cube, 0.0)) == (0.0, 0.0)
        s2.ticks_in_phase = 0
    assert 0.14 < good / 20000 < 0.26, good / 20000
    # arriving beside the cube while heading there: the descent goes down there
    s3 = op.LiftScript(20.0, None, random.Random(5), noise=0.0, waver=0.0001)
    bx, by = cube[0] + s3.beside[0], cube[1] + s3.beside[1]
    s3.act((bx, by, 0.1), down, cube, 0.0)
    assert s3.phase == "descend"
    a = s3.act((bx, by, 0.05), down, cube, 0.0)
    assert abs(a[0]) < 1e-12 and abs(a[1]) < 1e-12 and a[2] < 0
    # seeded: the same draws again
    r1 = [op.LiftScript(20.0, None, random.Random(7), waver=0.3).act(ee, down, cube, 0.0)
          for _ in range(3)]
    r2 = [op.LiftScript(20.0, None, random.Random(7), waver=0.3).act(ee, down, cube, 0.0)
          for _ in range(3)]
    assert r1 == r2


def test_teleop_mode_drives_the_arm_holds_when_stale_and_logs_both_actions(daemon):
    d = daemon(extra="[pacd]\nmode = teleop\n[teleop]\nmax_age_ms = 300\n")
    feed_frames = FrameFeeder(d.camera())
    st = d.wait_for(lambda s: s.frames_received > 0, feed=feed_frames, what="camera frames")
    assert st.mode == "teleop"
    d.client.start_episode(max_steps=0)
    # no teleoperator action yet: the steps are stale and the arm holds
    d.wait_for(lambda s: s.stale_steps >= 3, feed=feed_frames, what="stale steps without teleop")
    pub = d.state_publisher()
    act = [0.2, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    seq = [0]

    def send(values=act, space=pb.JOINT_VELOCITY):
        seq[0] += 1
        a = pb.Action(space=space, values=values, seq=seq[0])
        pub.send_raw([b"teleop_action", a.SerializeToString()])

    def feed():
        feed_frames()
        send()

    base = d.wait_delivered(send, lambda s: s.teleop_actions_received, what="teleop publisher")
    d.wait_for(lambda s: s.step >= base.step + 30, feed=every(0.02, feed), what="30 teleop steps")
    # an action of another size than the checkpoint's holds the arm (stale)
    stale0 = d.client.status().stale_steps
    d.wait_for(lambda s: s.stale_steps >= stale0 + 5,
               feed=every(0.02, lambda: (feed_frames(), send(act[:3]))),
               what="stale steps on a mis-shaped teleop action")
    assert "another action space or size" in d.stderr()
    step = d.client.status().step
    d.wait_for(lambda s: s.step >= step + 5, feed=every(0.02, feed), what="teleop again")
    # the teleoperator goes quiet: after max_age_ms the arm holds again
    stale1 = d.client.status().stale_steps
    d.wait_for(lambda s: s.stale_steps >= stale1 + 10, feed=feed_frames,
               what="stale steps after the teleoperator stopped")
    d.client.end_episode()
    d.wait_for(lambda s: s.state == pb.IDLE, feed=feed_frames, what="episode end")
    d.stop()
    err = d.stderr()
    assert "no teleoperator action since the episode began" in err and "ms old (max_age_ms 300)" in err
    steps = cat_steps(d.logs()[0])
    assert all(s.get("teleop") for s in steps), "every step of a teleop episode says so"
    driven = [s for s in steps if not s["stale"] and s.get("teleop_action") == pytest.approx(act)]
    assert len(driven) >= 25
    for s in driven:
        assert not s["held"]
        # the executed joint command follows the teleoperator (the safety
        # filter limits the acceleration: same direction, at most its speed)
        a = s["action"]
        assert 0.0 <= a[0] <= 0.2 + 1e-6 and max(abs(v) for v in a[1:]) < 1e-6
        # the policy ran and its own action is logged beside it
        assert len(s["policy_action"]) == 7
    assert any(s["action"][0] > 0.15 for s in driven)
    assert any(s["policy_action"] != pytest.approx(act, abs=1e-3) for s in driven)
    q0 = steps[0]["observation"]["joint_positions"][0]
    q1 = driven[-1]["observation"]["joint_positions"][0]
    assert q1 - q0 > 0.05, "joint 0 moved the teleoperator's way"
    stale = [s for s in steps if s["stale"]]
    assert len(stale) >= 15 and all(s["held"] and not any(s["action"]) for s in stale)
    assert metadata(d.logs()[0])["mode"] == "teleop"


def test_task_source_hal_and_seeds_are_checked(tmp_path, example_checkpoint, daemon):
    # a checkpoint reading a simulated object's pose needs the scene's task
    ports0 = {"camera": 1, "state": 2, "telemetry": 3, "control": 4}
    cfg = write_config(str(tmp_path / "o.conf"), lift_checkpoint(tmp_path / "o.safetensors"),
                       str(tmp_path), ports0, cameras=(), extra="[robot]\nname = sawyer\n")
    r = subprocess.run([PACD, "--check-config", cfg], capture_output=True, text=True,
                       timeout=scaled(60))
    assert r.returncode != 0 and "object_pose/cube" in r.stderr and "source = hal" in r.stderr, \
        r.stderr
    ports = {"camera": 1, "state": 2, "telemetry": 3, "control": 4}
    cfg = write_config(str(tmp_path / "t.conf"), example_checkpoint, str(tmp_path), ports,
                       extra="[task]\nsource = hal\n")
    r = subprocess.run([PACD, "--check-config", cfg], capture_output=True, text=True,
                       timeout=scaled(60))
    assert r.returncode != 0 and "reset_on_start = true" in r.stderr, r.stderr
    cfg = write_config(str(tmp_path / "t.conf"), example_checkpoint, str(tmp_path), ports,
                       extra="[task]\nsource = hal\n[episode]\nreset_on_start = true\n")
    r = subprocess.run([PACD, "--config", cfg], capture_output=True, text=True,
                       timeout=scaled(60))
    assert r.returncode != 0 and "no task signal" in r.stderr, r.stderr
    cfg = write_config(str(tmp_path / "s.conf"), example_checkpoint, str(tmp_path), ports,
                       extra="[pacd]\nmode = shadow\n[task]\nsource = hal\n")
    r = subprocess.run([PACD, "--check-config", cfg], capture_output=True, text=True,
                       timeout=scaled(60))
    assert r.returncode != 0 and "needs an arm" in r.stderr, r.stderr
    # a seed without a reset would place nothing: refused with the fix
    d = daemon()
    reply = d.client.start_episode(max_steps=5, seed=3, check=False)
    assert not reply.ok and "reset_on_start" in reply.error
    r = subprocess.run([PACCTL, "--control", d.ep("control"), "episode", "start", "--seed",
                        "-1"], capture_output=True, text=True, timeout=scaled(30))
    assert r.returncode == 2 and "--seed takes an integer" in r.stderr, r.stderr


def lift_extra(mode="teleop", max_steps=300):
    return f"""[pacd]
mode = {mode}
[robot]
name = sawyer
backend = mujoco
scene = {LIFT_SCENE}
seed = 1
[episode]
max_steps = {max_steps}
reset_on_start = true
[task]
source = hal
[telemetry]
rate_hz = 20
[safety]
workspace_min = 0.3, -0.25, -0.13
workspace_max = 0.8, 0.35, 0.25
"""


def lift_checkpoint(path):
    """A Sawyer checkpoint in the Lift cell's action space (CARTESIAN_VELOCITY
    with the gripper, 0.15 m/s) whose policy always outputs zeros: in teleop
    mode the operator acts, the checkpoint gives the observation spec (with the
    cube pose, a privileged field only the simulated scene has)."""
    import torch
    from pacd_torch.export import export
    from pacd_torch.mlp import MLPActor
    low, high = [-0.15, -0.15, -0.15, -1.0, -1.0], [0.15, 0.15, 0.15, 1.0, 1.0]
    obs = [{"name": "end_effector_pose", "source": "end_effector_pose", "shape": [7],
            "history": 1},
           {"name": "gripper_position", "source": "gripper_position", "shape": [1],
            "history": 1},
           {"name": "cube_pose", "source": "object_pose/cube", "shape": [7], "history": 1},
           {"name": "gripper_to_cube", "source": "gripper_to_object/cube", "shape": [3],
            "history": 1}]
    model = MLPActor(18, 5, [8], activation="relu", head="tanh", low=low, high=high)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    export(model, str(path), "sawyer", obs,
           {"space": "cartesian_velocity", "dim": 5, "low": low, "high": high})
    return str(path)


@needs_mujoco
def test_lift_cell_seeded_starts_terminal_success_and_the_scripted_operator(daemon, tmp_path):
    assert os.path.exists(LIFT_SCENE), "../shared/data must be beside the repository"
    d = daemon(checkpoint=lift_checkpoint(tmp_path / "lift.safetensors"), cameras=(),
               extra=lift_extra())
    t = d.telemetry(count=1)[0]
    values = {v.name: v.value for v in t.task_info}
    assert values["cube_height_m"] == pytest.approx(0.02, abs=0.005)
    assert t.HasField("robot_state") and len(t.robot_state.joint_positions) == 7
    assert t.episode_seed == -1
    # the operator at full skill, no noise: the scripted grasp lifts the cube
    drv = op.EpisodeDriver(d.ep("control"), d.ep("telemetry"), d.ep("state"), timeout_s=scaled(10))
    results = []
    try:
        for seed in (7, 8):
            results.append(drv.run(seed, op.LiftScript(20.0, None, noise=0.0)))
        # seed 7 again, ended by hand after a few steps: the same start
        st0 = d.client.status()
        d.client.start_episode(max_steps=0, seed=7)
        d.wait_for(lambda s: s.episodes == st0.episodes + 1 and s.step >= 3, what="3 steps")
        d.client.end_episode()
        d.wait_for(lambda s: s.state == pb.IDLE, what="idle")
    finally:
        drv.close()
    assert [r["success"] for r in results] == [True, True], results
    st = d.client.status()
    assert st.episodes_terminal == 2 and st.episode_seed == 7
    d.stop()
    logs = d.logs()
    assert len(logs) == 3
    first = {}
    for path, seed in zip(logs, (7, 8, 7)):
        meta = metadata(path)
        assert meta["task_seed"] == str(seed) and meta["mode"] == "teleop"
        steps = cat_steps(path)
        info = steps[0]["task_info"]
        first.setdefault(seed, []).append(info)
        # the privileged observation field is the scene's cube pose
        for s in steps[:3]:
            pose = [s["task_info"]["cube_" + k] for k in ("x", "y", "z", "qw", "qx", "qy", "qz")]
            assert s["observation"]["cube_pose"] == pytest.approx(pose, abs=1e-6)
            ee = s["observation"]["end_effector_pose"]
            assert s["observation"]["gripper_to_cube"] == \
                pytest.approx([ee[i] - pose[i] for i in range(3)], abs=1e-5)
        if path != logs[2]:
            last = steps[-1]
            assert last["is_last"] and last["is_terminal"] and last["reward"] == 1.0
            assert last["discount"] == 0.0
            assert not any(s["is_terminal"] for s in steps[:-1])
            assert all(s["reward"] == 0.0 for s in steps[:-1])
            assert last["task_info"]["cube_height_m"] > 0.04
            # the operator's Cartesian action was executed: logged as such
            assert all(len(s["teleop_action"]) == 5 for s in steps if not s["stale"])
    # the data set: the operator's actions (clamped to the spec's bounds,
    # zeros where the arm held) are the actions taken; no model acted
    import h5py
    out = str(tmp_path / "lift.hdf5")
    r = subprocess.run([PACCTL, "log", "export", "-o", out, "--checkpoint",
                        str(tmp_path / "lift.safetensors"), logs[0], logs[1]],
                       capture_output=True, text=True, timeout=scaled(120))
    assert r.returncode == 0, r.stderr
    with h5py.File(out, "r") as f:
        for i, (path, seed) in enumerate(zip(logs[:2], (7, 8))):
            g = f["data/demo_%d" % i]
            assert g.attrs["seed"] == seed and g.attrs["model_sha256"] == ""
            steps = cat_steps(path)
            want = [[min(max(v, lo), hi) for v, lo, hi in
                     zip(s["teleop_action"], [-0.15] * 3 + [-1, -1], [0.15] * 3 + [1, 1])]
                    if not s["held"] else [0.0] * 5 for s in steps[:-1]]
            got = g["actions"][:]
            assert got.shape == (len(want), 5)
            assert abs(got - numpy.array(want)).max() < 1e-6
            # the held steps are marked (training leaves them out: the
            # operator did not choose those zeros)
            held = [int(s["held"]) for s in steps[:-1]]
            assert g["held"][:].tolist() == held and 0 in held
            assert g["rewards"][-1] == 1.0 and g["dones"][-1] == 1
            assert not g["dones"][:-1].any()
    os.remove(out)
    a, b = first[7]
    for k in ("cube_x", "cube_y", "cube_qz"):
        assert a[k] == pytest.approx(b[k], abs=2e-3), (k, a, b)
    c = first[8][0]
    assert math.hypot(a["cube_x"] - c["cube_x"], a["cube_y"] - c["cube_y"]) > 1e-3
