"""The mujoco HAL backend seen from outside, as pacd would see it.

tests/hal/hal_mujoco_tool drives the backend like pacd's control loop (20 Hz:
read state, Cartesian mapping, safety filter, command) and publishes rendered
cameras and robot states to ZeroMQ SUB sockets bound here, decoded with the
Python protobuf module (a second, independent implementation of the wire
format). Checks: frames arrive as real images with rising seq and recent
capture times; commanded joint and Cartesian velocities move the end effector
the commanded way; no published state is ever past a joint limit.

The tool runs for a span of the backend's own time, and where a test needs a
number of messages it keeps running until they have arrived (then the test
closes its stdin): a loaded machine makes a test slower, not different.

Skipped (with a message) only when the backend was not built (no libmujoco)
or the shared scenes are missing.
"""
import json
import os
import subprocess
import threading
import time

import numpy as np
import pytest
import zmq

import conftest
from conftest import BUILD, free_port, scaled, wait_until
import pacd_client

pb = pacd_client.pb
TOOL = os.path.join(BUILD, "tests", "hal", "hal-mujoco-tool")
DATA = os.environ.get("PACD_DATA_DIR") or os.path.join(conftest.SRC, "..", "shared", "data")
PANDA = os.path.join(DATA, "menagerie", "franka_emika_panda", "scene_cam.xml")
SAWYER = os.path.join(DATA, "menagerie", "rethink_robotics_sawyer", "scene_cam.xml")
LIFT = os.path.join(DATA, "robosuite", "assets", "demonstrations", "SawyerLift", "models", "model_1.xml")
LIMIT_TOL = 0.02  # rad: a physical joint's tracking overshoot allowed past the reference

pytestmark = [
    pytest.mark.skipif(not os.path.exists(TOOL),
                       reason="mujoco backend not built (needs libmujoco-dev and libegl-dev)"),
    pytest.mark.skipif(not os.path.exists(PANDA) or not os.path.exists(LIFT),
                       reason="MuJoCo scenes not found under " + DATA),
]


def count(msgs, topic):
    return sum(1 for t, _, _ in list(msgs) if t == topic)


def run(robot, scene, space, values, seconds, cameras=None, size="128x128", until=None):
    """Run the tool for `seconds` of backend time; with cameras, collect
    everything published, and with until(msgs) keep the tool running until
    that holds. Returns (summary, [(topic, body, receive time)])."""
    args = [TOOL, robot, scene, space, ",".join(str(v) for v in values),
            str(seconds) + ("+" if until else "")]
    msgs = []
    if not cameras:
        p = subprocess.run(args, capture_output=True, text=True, timeout=scaled(300))
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout), msgs
    ctx = zmq.Context()
    socks = []
    eps = []
    for _ in range(2):
        s = ctx.socket(zmq.SUB)
        s.setsockopt(zmq.SUBSCRIBE, b"")
        s.setsockopt(zmq.RCVHWM, 0)
        port = free_port()
        s.bind("tcp://127.0.0.1:%d" % port)
        socks.append(s)
        eps.append("tcp://127.0.0.1:%d" % port)
    stop = [False]

    def drain():
        poller = zmq.Poller()
        for s in socks:
            poller.register(s, zmq.POLLIN)
        while not stop[0]:
            for s, _ in poller.poll(50):
                topic, body = s.recv_multipart()
                msgs.append((topic.decode(), body, time.time_ns()))

    th = threading.Thread(target=drain, daemon=True)
    th.start()
    tool = subprocess.Popen(args + [cameras, size, eps[0], eps[1]], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if until:
            wait_until(lambda: until(msgs) or tool.poll() is not None, timeout=120,
                       what="the messages the test needs")
        out, err = tool.communicate(timeout=scaled(300))  # closes stdin: the tool ends
        # what the tool published last may still be on its way: wait until
        # nothing more arrives for 0.3 s
        seen = [-1]

        def settled():
            n, seen[0] = seen[0], len(msgs)
            return n == seen[0]
        wait_until(settled, timeout=30, what="the subscriber to drain", interval=0.3)
    finally:
        if tool.poll() is None:
            tool.kill()
            tool.wait()
        stop[0] = True
        th.join()
        for s in socks:
            s.close(0)
        ctx.term()
    assert tool.returncode == 0, err
    return json.loads(out), msgs


def check_states_within_limits(summary, states):
    lo = np.array(summary["q_min"]) - LIMIT_TOL
    hi = np.array(summary["q_max"]) + LIMIT_TOL
    for s in states:
        q = np.array(s.joint_positions)
        assert np.all(q >= lo) and np.all(q <= hi), q


def test_frames_and_states_reach_a_python_subscriber():
    summary, msgs = run("panda", PANDA, "joint", [0.5, 0, 0, 0, 0, 0, 0], 2.0, cameras="front",
                        until=lambda m: count(m, "camera/front") >= 20 and count(m, "robot_state") >= 20)
    frames = [(pb.CameraFrame.FromString(b), t) for topic, b, t in msgs if topic == "camera/front"]
    states = [pb.RobotState.FromString(b) for topic, b, _ in msgs if topic == "robot_state"]
    assert not [t for t, _, _ in msgs if t not in ("camera/front", "robot_state")]
    # the tool ran until 20 of each had arrived (2 s at 20 Hz)
    assert len(frames) >= 20, len(frames)
    assert len(states) >= 20
    seqs = [f.seq for f, _ in frames]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    for f, t_recv in frames:
        assert (f.camera, f.width, f.height, f.encoding) == ("front", 128, 128, pb.CameraFrame.RGB8)
        assert len(f.data) == 128 * 128 * 3
        # capture time is the sim's now (a frame waits for the render thread
        # and the subscriber on a loaded machine: seconds, not days)
        assert 0 <= t_recv - f.capture_time_unix_ns < scaled(30) * 1e9
    imgs = [np.frombuffer(f.data, np.uint8).reshape(128, 128, 3) for f, _ in frames]
    assert imgs[0].std() > 10
    # joint 1 turned the arm: the picture changed
    assert np.abs(imgs[0].astype(int) - imgs[-1].astype(int)).mean() > 1
    check_states_within_limits(summary, states)
    assert all(s.robot == "panda" and len(s.joint_positions) == 7 for s in states)
    assert summary["last"]["q"][0] - summary["first"]["q"][0] > 0.5 * 0.5 * 2.0 * 0.8


@pytest.mark.parametrize("robot,scene", [("sawyer", SAWYER), ("sawyer", LIFT), ("panda", PANDA)])
def test_cartesian_velocity_moves_ee_the_right_way(robot, scene):
    # up at 5 cm/s for 1.5 s, then the same along -y
    for axis, values in ((2, [0, 0, 0.05, 0]), (1, [0, -0.05, 0, 0])):
        summary, _ = run(robot, scene, "cartesian", values, 1.5)
        first, last = np.array(summary["first"]["ee"]), np.array(summary["last"]["ee"])
        moved = last[:3] - first[:3]
        want = values[axis] * 1.5
        assert moved[axis] * want > 0 and 0.5 * abs(want) < abs(moved[axis]) < 1.3 * abs(want), moved
        others = [i for i in range(3) if i != axis]
        assert np.all(np.abs(moved[others]) < 0.3 * abs(want)), moved


def test_twist_rotates_about_z():
    summary, _ = run("panda", PANDA, "twist", [0, 0, 0, 0, 0, 0.4, 0], 1.5)
    def yaw(qw, qx, qy, qz):
        return np.arctan2(2 * (qw * qz + qx * qy), 1 - 2 * (qy * qy + qz * qz))
    d = yaw(*summary["last"]["ee"][3:]) - yaw(*summary["first"]["ee"][3:])
    d = (d + np.pi) % (2 * np.pi) - np.pi
    assert 0.5 * 0.6 < d < 1.3 * 0.6, d
    moved = np.array(summary["last"]["ee"][:3]) - np.array(summary["first"]["ee"][:3])
    assert np.linalg.norm(moved) < 0.03


def test_joint_limits_never_passed_when_driven_into_them():
    summary, msgs = run("panda", PANDA, "joint", [2.5, 0, 0, 2.5, 0, 0, -2.6], 3.0, cameras="front",
                        size="32x32", until=lambda m: count(m, "robot_state") > 30)
    states = [pb.RobotState.FromString(b) for topic, b, _ in msgs if topic == "robot_state"]
    assert len(states) > 30
    check_states_within_limits(summary, states)
    q = summary["last"]["q"]
    # the safety filter keeps 0.02 rad clear of each limit
    assert summary["q_max"][0] - 0.1 < q[0] <= summary["q_max"][0]
    assert summary["q_max"][3] - 0.1 < q[3] <= summary["q_max"][3] + LIMIT_TOL
    assert summary["q_min"][6] - LIMIT_TOL <= q[6] < summary["q_min"][6] + 0.1


def test_lift_scene_task_signal():
    summary, msgs = run("sawyer", LIFT, "joint", [0] * 7, 1.0, cameras="agentview", size="64x64",
                        until=lambda m: count(m, "reward") >= 10)
    assert summary["cube_height"] == pytest.approx(0.02, abs=0.005)
    assert summary["success"] == 0
    rewards = [pb.Reward.FromString(b) for topic, b, _ in msgs if topic == "reward"]
    assert len(rewards) >= 10 and all(r.reward == 0.0 for r in rewards)


@conftest.realtime
def test_rendered_frames_reach_pacd_and_land_in_the_log(daemon):
    """pacd (sim arm, camera `front`) fed by the backend's rendered camera:
    every step of an episode uses a rendered frame, and the frames are logged."""
    from test_daemon import cat_steps, node_read

    d = daemon()
    junk_state = "tcp://127.0.0.1:%d" % free_port()  # robot_state not for this pacd
    # the tool renders until this test closes its stdin
    tool = subprocess.Popen([TOOL, "panda", PANDA, "joint", "0.3,0,0,0,0,0,0", "1+", "front", "128x128",
                             d.ep("camera"), junk_state], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # the tool loads MuJoCo and EGL first (seconds under ASan on a loaded
        # machine): start the episode only once rendered frames are flowing
        first = d.wait_for(lambda s: s.frames_received >= 1, timeout=60, what="first rendered frame")
        d.wait_for(lambda s: s.frames_received >= first.frames_received + 10, timeout=60,
                   what="rendered frames flowing")
        reply = d.client.start_episode(max_steps=40)
        assert reply.ok
        st = d.wait_for(lambda s: s.state == pb.IDLE and s.step == 40, timeout=60, what="40 steps")
        assert st.episodes == 1
    finally:
        out, err = tool.communicate(input="", timeout=scaled(120))
    assert tool.returncode == 0, err
    d.stop()
    logs = d.logs()
    assert len(logs) == 1
    steps = cat_steps(logs[0])
    assert [s["step"] for s in steps] == list(range(40))
    assert sum(1 for s in steps if not s["stale"]) >= 35, [s["stale"] for s in steps]
    refs = [s["frames"][0] for s in steps if s["frames"]]
    assert len(refs) >= 35 and all(r["camera"] == "front" for r in refs)
    # newer rendered frames as they come (how many depends on the render
    # rate the machine allows), each logged once
    seqs = [r["seq"] for r in refs]
    assert seqs == sorted(seqs) and len(set(seqs)) >= 2, seqs
    logged = [m for m in node_read(logs[0])["messages"] if m["topic"] == "/pacd/camera/front"]
    assert len(logged) == len(set(seqs))
