"""The simulated clock ([robot] clock = simulated): pacd's loop steps the
mujoco backend by one control period per tick, renders the cameras on the
tick and waits for them, and does not sleep during an episode. Checked here:
the option's refusals, steps whose logged times advance by exactly the
period with a frame of their own instant, determinism (the same seed and
checkpoint give the same episode), and the scripted operator in lockstep in
teleop mode. Nothing is timed: speed is docs/performance.md's business."""
import os

import pytest

import pacd_client
from conftest import PACD, scaled, write_config
from test_daemon import cat_steps
from test_lift_cell import LIFT_SCENE, lift_checkpoint, lift_extra, needs_mujoco, op

import subprocess

pb = pacd_client.pb
PERIOD_NS = 50_000_000  # [pacd] rate_hz = 20


def sim_extra(mode="control", max_steps=300, camera=False):
    extra = lift_extra(mode, max_steps) + "[robot]\nclock = simulated\n"
    if camera:
        extra += ("[robot]\nrender_cameras = agentview\n"
                  "[camera.agentview]\nwidth = 64\nheight = 64\n")
    return extra


def random_lift_checkpoint(path, seed=5):
    """The Lift cell's spec with random (nonzero) weights: a policy whose
    actions depend on every observed value."""
    import torch
    from pacd_torch.export import export
    from pacd_torch.mlp import MLPActor
    low, high = [-0.15, -0.15, -0.15, -1.0, -1.0], [0.15, 0.15, 0.15, 1.0, 1.0]
    obs = [{"name": "joint_positions", "source": "joint_positions", "shape": [7], "history": 1},
           {"name": "joint_velocities", "source": "joint_velocities", "shape": [7],
            "history": 1},
           {"name": "end_effector_pose", "source": "end_effector_pose", "shape": [7],
            "history": 1},
           {"name": "cube_pose", "source": "object_pose/cube", "shape": [7], "history": 1}]
    torch.manual_seed(seed)
    model = MLPActor(28, 5, [32], activation="relu", head="tanh", low=low, high=high)
    export(model, str(path), "sawyer", obs,
           {"space": "cartesian_velocity", "dim": 5, "low": low, "high": high})
    return str(path)


def check_config(tmp_path, extra, cameras=()):
    ports = {"camera": 1, "state": 2, "telemetry": 3, "control": 4}
    cfg = write_config(str(tmp_path / "c.conf"), lift_checkpoint(tmp_path / "c.safetensors"),
                       str(tmp_path), ports, cameras=cameras, extra=extra)
    return subprocess.run([PACD, "--check-config", cfg], capture_output=True, text=True,
                          timeout=scaled(60))


def run_episode(d, seed, max_steps):
    st0 = d.client.status()
    d.client.start_episode(max_steps=max_steps, seed=seed)
    d.wait_for(lambda s: s.episodes == st0.episodes + 1 and s.state == pb.IDLE,
               timeout=scaled(120), what="the episode's end")


def test_simulated_clock_is_refused_where_pacd_cannot_step_the_arm(tmp_path):
    # the sim backend (like any backend that drives hardware) runs on the real clock
    r = check_config(tmp_path, "[robot]\nname = sawyer\nclock = simulated\n")
    assert r.returncode != 0 and "backend = mujoco" in r.stderr and "clock = real" in r.stderr, \
        r.stderr
    # shadow mode: the state socket sets the pace, there is no arm to step
    r = check_config(tmp_path, "[pacd]\nmode = shadow\n[robot]\nname = sawyer\n"
                     "backend = mujoco\nscene = %s\nclock = simulated\n" % LIFT_SCENE)
    assert r.returncode != 0 and "shadow mode" in r.stderr, r.stderr
    # a camera the backend does not render would run on the real clock
    r = check_config(tmp_path, sim_extra(), cameras=("front",))
    assert r.returncode != 0 and "[camera.front] is not in [robot] render_cameras" in r.stderr, \
        r.stderr
    r = check_config(tmp_path, "[robot]\nclock = fast\n")
    assert r.returncode != 0 and "expected real" in r.stderr, r.stderr
    # the real clock stays the default and the mujoco Lift cell takes the option
    assert check_config(tmp_path, sim_extra()).returncode == 0


@needs_mujoco
def test_episode_steps_advance_by_exactly_the_period_with_the_frame_of_their_instant(
        daemon, tmp_path):
    d = daemon(checkpoint=random_lift_checkpoint(tmp_path / "r.safetensors"), cameras=(),
               extra=sim_extra(camera=True))
    # telemetry: one message (at least) for every tick of the episode
    telemetry = pacd_client.watch(d.ep("telemetry"), timeout_s=scaled(10))
    first = next(telemetry)  # subscribed
    assert first.state == pb.IDLE
    d.client.start_episode(max_steps=40, seed=3)
    seen = set()
    for t in telemetry:
        if t.episodes == first.episodes + 1:
            seen.add(t.step)
            if t.state == pb.IDLE:
                break
    telemetry.close()
    assert seen >= set(range(1, 41)), sorted(set(range(1, 41)) - seen)
    st = d.client.status()
    assert st.stale_steps == 0 and st.deadline_misses == 0
    d.stop()
    steps = cat_steps(d.logs()[0])
    assert len(steps) == 40
    times = [s["time_unix_ns"] for s in steps]
    ticks = [s["tick_mono_ns"] for s in steps]
    assert [b - a for a, b in zip(times, times[1:])] == [PERIOD_NS] * 39
    assert [b - a for a, b in zip(ticks, ticks[1:])] == [PERIOD_NS] * 39
    seqs = []
    for s in steps:
        assert not s["stale"]
        (f,) = s["frames"]
        # the frame rendered at the step's own simulated instant
        assert f["camera"] == "agentview" and f["capture_time_unix_ns"] == s["time_unix_ns"]
        assert f.get("age_us", 0) == 0
        seqs.append(f["seq"])
    assert seqs == sorted(set(seqs)), "a new frame every step"
    assert any(any(abs(v) > 1e-6 for v in s["action"]) for s in steps), "the arm moved"


@needs_mujoco
def test_same_seed_and_checkpoint_give_the_same_episode(daemon, tmp_path):
    d = daemon(checkpoint=random_lift_checkpoint(tmp_path / "r.safetensors"), cameras=(),
               extra=sim_extra())
    for seed in (11, 12, 11):
        run_episode(d, seed, max_steps=60)
    d.stop()
    a, other, b = (cat_steps(p) for p in d.logs())
    assert len(a) == len(b) == 60
    for x, y in zip(a, b):
        assert x["observation"] == y["observation"]
        assert x["action"] == y["action"] and x["policy_action"] == y["policy_action"]
        assert x["task_info"] == y["task_info"]
    assert a[-1]["observation"] != a[0]["observation"], "the arm moved"
    assert other[0]["task_info"] != a[0]["task_info"], "another seed, another start"


@needs_mujoco
def test_scripted_operator_lifts_the_cube_in_lockstep(daemon, tmp_path):
    d = daemon(checkpoint=lift_checkpoint(tmp_path / "lift.safetensors"), cameras=(),
               extra=sim_extra(mode="teleop"))
    drv = op.EpisodeDriver(d.ep("control"), d.ep("telemetry"), d.ep("state"),
                           timeout_s=scaled(10))
    try:
        results = [drv.run(seed, op.LiftScript(20.0, None, noise=0.0)) for seed in (7, 8)]
    finally:
        drv.close()
    assert [r["success"] for r in results] == [True, True], results
    d.stop()
    for path in d.logs():
        steps = cat_steps(path)
        assert steps[-1]["is_terminal"] and steps[-1]["reward"] == 1.0
        # only the first step had no answer yet; every later step ran the
        # operator's answer to the telemetry of the step before it
        assert steps[0]["stale"] and not any(s["stale"] for s in steps[1:])
        seqs = [int(s["teleop_action_seq"]) for s in steps[1:]]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
