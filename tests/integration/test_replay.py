"""pacd-replay: a recorded robosuite SawyerLift demonstration as live input.

Runs the real pacd-replay from the build against ZeroMQ SUB sockets bound
here (where pacd's ingest would be) and checks what arrives against the
recorded demo.hdf5, read independently with h5py:
one RobotState, one teleop_action, one Reward and one frame per camera for
each recorded state; joint positions equal the recorded qpos (robosuite's
model: right_j0 is qpos[0], head_pan qpos[1], right_j1..6 qpos[2..7]); the
human's joint velocities and (sign-flipped) gripper; images that are images;
and the final cube height equals the recorded cube z minus the table top
(0.8 m in the robosuite 0.1 Lift scene).

Skipped (with a message) only when pacd-replay was not built (no libmujoco
or libhdf5) or the shared demonstrations are missing.
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
REPLAY = os.path.join(BUILD, "clients", "pacd-replay")
DATA = os.environ.get("PACD_DATA_DIR") or os.path.join(conftest.SRC, "..", "shared", "data")
DEMO = os.path.join(DATA, "robosuite", "assets", "demonstrations", "SawyerLift", "demo.hdf5")
TABLE_TOP_Z = 0.8  # robosuite 0.1 Lift: table_full_size z = 0.8 m
# pacd-replay sleeps this long for its PUB sockets to connect before the
# first message (what goes out before is lost): long enough for a loaded
# machine. Lockstep waits for pacd's answers up to LOCKSTEP_MS.
CONNECT_MS = str(int(scaled(2000)))
LOCKSTEP_MS = str(int(scaled(15000)))
# The window of demo_1 the message and shadow-mode tests replay
# (--first-state/--max-states): its last 200 of 1058 states, where the arm
# still moves (about 0.1 rad per joint), the cube rests on the table until
# row 1046 and ends lifted: rewards 0 then 1, as in the whole demo. Every
# state of the window is checked as every state of the demo was; replaying
# all 1058 took minutes (one offscreen render per state and camera).
SLICE_N = 200


def window(arrays):
    """The last SLICE_N rows of each recorded array; the first row's index."""
    first = len(arrays[0]) - SLICE_N
    return [a[first:] for a in arrays], first

pytestmark = [
    pytest.mark.skipif(not os.path.exists(REPLAY),
                       reason="pacd-replay not built (needs libmujoco-dev, libegl-dev, libhdf5-dev)"),
    pytest.mark.skipif(not os.path.exists(DEMO), reason="SawyerLift demo.hdf5 not found under " + DATA),
]


class Collector:
    """SUB sockets bound on free ports, drained by a thread."""

    def __init__(self):
        self.ctx = zmq.Context()
        self.ports = {"camera": free_port(), "state": free_port()}
        self.socks = {}
        for k, port in self.ports.items():
            s = self.ctx.socket(zmq.SUB)
            s.setsockopt(zmq.RCVHWM, 0)
            s.setsockopt(zmq.SUBSCRIBE, b"")
            s.bind("tcp://127.0.0.1:%d" % port)
            self.socks[k] = s
        self.msgs = []
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def ep(self, k):
        return "tcp://127.0.0.1:%d" % self.ports[k]

    def run(self):
        poller = zmq.Poller()
        for s in self.socks.values():
            poller.register(s, zmq.POLLIN)
        while not self.stop:
            for s, _ in poller.poll(100):
                topic, body = s.recv_multipart()
                self.msgs.append((topic.decode(), body))

    def close(self):
        self.stop = True
        self.thread.join()
        for s in self.socks.values():
            s.close(0)
        self.ctx.term()


def recorded(episode):
    h5py = pytest.importorskip("h5py")
    with h5py.File(DEMO, "r") as f:
        g = f["data/demo_%d" % episode]
        return (g["states"][:], g["joint_velocities"][:], g["gripper_actuations"][:])


def run_replay(col, *args, timeout=300):
    cmd = [REPLAY, "--demo", DEMO, "--camera-endpoint", col.ep("camera"),
           "--state-endpoint", col.ep("state"), "--connect-wait-ms", CONNECT_MS, *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=scaled(timeout))
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def wait_drained(col, n_expected, timeout=30):
    wait_until(lambda: len(col.msgs) >= n_expected, timeout,
               what="%d messages (have %d)" % (n_expected, len(col.msgs)), interval=0.05)


def test_replay_demo_1_one_message_set_per_recorded_state():
    (states, jv, grip), first = window(recorded(1))
    T = len(states)
    col = Collector()
    try:
        summary = run_replay(col, "--episode", "1", "--cameras", "agentview,birdview",
                             "--size", "64x48", "--rate", "max", "--first-state", str(first),
                             "--max-states", str(T))
        wait_drained(col, T * 5)
    finally:
        col.close()
    assert summary["states"] == first + T and summary["published"] == T

    by_topic = {}
    for topic, body in col.msgs:
        by_topic.setdefault(topic, []).append(body)
    assert set(by_topic) == {"camera/agentview", "camera/birdview", "robot_state", "teleop_action", "reward"}
    for topic in by_topic:
        assert len(by_topic[topic]) == T, (topic, len(by_topic[topic]))

    robot_states = [pb.RobotState.FromString(b) for b in by_topic["robot_state"]]
    actions = [pb.Action.FromString(b) for b in by_topic["teleop_action"]]
    rewards = [pb.Reward.FromString(b) for b in by_topic["reward"]]
    frames = [pb.CameraFrame.FromString(b) for b in by_topic["camera/agentview"]]

    arm_qpos = [1, 3, 4, 5, 6, 7, 8]  # state columns: 0 is time, then qpos
    arm_qvel = [1 + 17 + i for i in (0, 2, 3, 4, 5, 6, 7)]
    for t, (s, a) in enumerate(zip(robot_states, actions)):
        assert s.robot == "sawyer"
        assert s.seq == t + 1 and a.seq == t + 1
        np.testing.assert_allclose(s.joint_positions, states[t, arm_qpos], atol=1e-12)
        np.testing.assert_allclose(s.joint_velocities, states[t, arm_qvel], atol=1e-12)
        assert a.space == pb.JOINT_VELOCITY_GRIPPER
        np.testing.assert_allclose(a.values[:7], jv[t], rtol=1e-6, atol=1e-6)
        assert a.values[7] == pytest.approx(-grip[t, 0])
        assert a.time_unix_ns == s.time_unix_ns
    # times never go back
    times = [s.time_unix_ns for s in robot_states]
    assert all(b >= a for a, b in zip(times, times[1:]))
    # the gripper pinch point lies between the fingers: above the table
    # (base frame: the robot base is at z 0.913, the table top at 0.8)
    assert all(-0.2 < s.end_effector.z < 0.6 for s in robot_states)

    for t, f in enumerate(frames):
        assert f.width == 64 and f.height == 48 and f.encoding == pb.CameraFrame.RGB8
        assert len(f.data) == 64 * 48 * 3
        assert f.seq == t + 1
        assert f.capture_time_unix_ns == robot_states[t].time_unix_ns
    first = np.frombuffer(frames[0].data, np.uint8).reshape(48, 64, 3)
    last = np.frombuffer(frames[-1].data, np.uint8).reshape(48, 64, 3)
    assert first.std() > 10  # an image, not a blank buffer
    # upright (GL's bottom-up rows flipped): agentview looks down at the
    # table, which fills the bottom of the picture in light grey, while the
    # top shows the dark floor and the robot's pedestal
    assert first[-12:].mean() > first[:12].mean() + 30, (first[-12:].mean(), first[:12].mean())
    assert np.abs(first.astype(int) - last.astype(int)).mean() > 1  # the arm moved

    # Lift: the cube ends lifted; its height is the recorded cube z (qpos of
    # the cube's free joint: columns 1 + 10 .. 1 + 12) minus the table top
    cube_z = states[:, 1 + 12]
    assert summary["final_cube_height_m"] == pytest.approx(cube_z[-1] - TABLE_TOP_Z, abs=1e-5)
    want_rewards = (cube_z - TABLE_TOP_Z > 0.04).astype(float)
    assert [r.reward for r in rewards] == list(want_rewards)
    assert want_rewards[0] == 0 and want_rewards[-1] == 1


def test_replay_paces_at_the_requested_rate():
    """--rate 100 with demo 2 (its first 300 of 837 states: 3 s of pacing, each
    state checked; all 837 took 8.4 s): state k (1, 2, ...) goes out no earlier
    than k/100 s after the pace's origin (start_unix_ns in the summary;
    absolute deadlines: a loaded machine makes a wake-up late, never early),
    and the origin is after the launch. Full speed would send them all within
    a fraction of a second. How close to the deadlines it keeps is a figure,
    not a test: bench/bench_replay_pace.py."""
    states, _, _ = recorded(2)
    n = 300
    col = Collector()
    t_launch = time.time_ns()
    try:
        summary = run_replay(col, "--episode", "2", "--cameras", "", "--rate", "100",
                             "--max-states", str(n))
        wait_drained(col, n * 3)
    finally:
        col.close()
    rs = [pb.RobotState.FromString(b) for t, b in col.msgs if t == "robot_state"]
    assert summary["states"] == len(states)
    assert len(rs) == summary["published"] == n
    assert [s.seq for s in rs] == list(range(1, len(rs) + 1))
    # the origin follows the connect wait
    t0 = summary["start_unix_ns"]
    assert t0 >= t_launch + int(CONNECT_MS) * 1_000_000, (t0, t_launch)
    early = [(s.seq, (s.time_unix_ns - t0) * 1e-9) for s in rs
             if s.time_unix_ns < t0 + s.seq * 10_000_000]
    assert not early, "states sent before their deadline (seq, s after launch): %s" % early[:5]


def test_replay_rejects_bad_input(tmp_path):
    bad = tmp_path / "x.hdf5"
    bad.write_text("not hdf5")
    for args, msg in [(["--demo", str(bad)], "cannot open"),
                      (["--demo", DEMO, "--episode", "9"], "no episode"),
                      (["--demo", DEMO, "--cameras", "nosuch"], "no camera 'nosuch'"),
                      (["--demo", DEMO, "--size", "0x0"], "--size"),
                      (["--demo", DEMO, "--max-states", "0"], "--max-states"),
                      (["--demo", DEMO, "--first-state", "-1"], "--first-state"),
                      (["--demo", DEMO, "--first-state", "1058"], "has 1058 states"),
                      ([], "--demo FILE is required")]:
        p = subprocess.run([REPLAY, *args, "--connect-wait-ms", "0"], capture_output=True, text=True,
                           timeout=60)
        assert p.returncode != 0
        assert msg in p.stderr, p.stderr


def test_lockstep_without_pacd_fails_with_a_message():
    p = subprocess.run([REPLAY, "--demo", DEMO, "--cameras", "", "--connect-wait-ms", "0",
                        "--state-endpoint", "tcp://127.0.0.1:%d" % free_port(),
                        "--lockstep", "tcp://127.0.0.1:%d" % free_port(),
                        "--lockstep-timeout-ms", "20"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert "pacd did not answer" in p.stderr, p.stderr
    assert p.stdout == ""


@pytest.fixture(scope="module")
def sawyer_ckpt(tmp_path_factory):
    return conftest.make_example_checkpoint("sawyer", tmp_path_factory)


@pytest.mark.skipif(not os.path.exists(conftest.PACD), reason="pacd not built")
def test_lockstep_counts_frames_pacd_refuses_and_stops_when_none_arrive(daemon, sawyer_ckpt):
    """Lockstep does not take a frame pacd refused for one it used: frames of
    another size than pacd's [camera] (64x64 against 128x128, no resize) are
    counted as rejected and the run exits 3; frames sent where pacd does not
    listen stop the run after three states with a message, not after every
    state's timeout."""
    d = daemon(checkpoint=sawyer_ckpt, cameras=("agentview",),
               extra="[pacd]\nmode = shadow\n[robot]\nname = sawyer\n")
    n = 40   # the first 40 states (--max-states) are enough
    assert d.client.start_episode(max_steps=n).ok
    p = subprocess.run([REPLAY, "--demo", DEMO, "--episode", "1", "--cameras", "agentview",
                        "--size", "64x64", "--rate", "max", "--camera-endpoint", d.ep("camera"),
                        "--state-endpoint", d.ep("state"), "--connect-wait-ms", CONNECT_MS,
                        "--lockstep", d.ep("control"), "--lockstep-timeout-ms", LOCKSTEP_MS,
                        "--max-states", str(n)],
                       capture_output=True, text=True, timeout=scaled(300))
    assert p.returncode == 3, p.stderr
    summary = json.loads(p.stdout)
    assert summary["published"] == n and summary["frames_rejected"] == n, summary
    assert summary["unacknowledged"] == 0 and summary["frames_unacknowledged"] == 0
    assert "pacd refused the frame(s) of state 1 " in p.stderr, p.stderr
    st = d.client.status()
    assert st.frames_misshaped == n and st.step == n

    p = subprocess.run([REPLAY, "--demo", DEMO, "--episode", "1", "--cameras", "agentview",
                        "--rate", "max", "--camera-endpoint", "tcp://127.0.0.1:%d" % free_port(),
                        "--state-endpoint", d.ep("state"), "--connect-wait-ms", "0",
                        "--lockstep", d.ep("control"), "--lockstep-timeout-ms", "100"],
                       capture_output=True, text=True, timeout=scaled(300))
    assert p.returncode == 3, p.stderr
    summary = json.loads(p.stdout)
    assert summary["stopped"] is True and summary["published"] == 2, summary
    assert summary["frames_unacknowledged"] == 3
    assert "received none of the frames of 3 states in a row" in p.stderr, p.stderr
    d.stop()


@pytest.mark.skipif(not os.path.exists(conftest.PACD), reason="pacd not built")
def test_pacd_shadow_mode_logs_one_step_per_recorded_state(daemon, sawyer_ckpt):
    """pacd (Sawyer checkpoint, shadow mode, camera agentview) on the replayed
    SawyerLift demo_1 (its last SLICE_N states: window()): one step per recorded state, each with that state's
    joint positions, the human's action, the reward of the recorded cube
    height and the rendered frame; the last step reports the lifted cube."""
    from test_daemon import cat_steps

    (states, jv, grip), first = window(recorded(1))
    T = len(states)
    d = daemon(checkpoint=sawyer_ckpt, cameras=("agentview",),
               extra="[pacd]\nmode = shadow\n[robot]\nname = sawyer\n")
    reply = d.client.start_episode(max_steps=T)
    assert reply.ok
    p = subprocess.run([REPLAY, "--demo", DEMO, "--episode", "1", "--cameras", "agentview",
                        "--size", "128x128", "--rate", "50", "--first-state", str(first),
                        "--max-states", str(T), "--camera-endpoint", d.ep("camera"),
                        "--state-endpoint", d.ep("state"), "--connect-wait-ms", CONNECT_MS,
                        "--lockstep", d.ep("control"), "--lockstep-timeout-ms", LOCKSTEP_MS],
                       capture_output=True, text=True, timeout=scaled(300))
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    assert summary["unacknowledged"] == 0 and summary["frames_unacknowledged"] == 0
    assert summary["frames_rejected"] == 0 and summary["stopped"] is False
    st = d.wait_for(lambda s: s.state == pb.IDLE and s.step == T, what="%d shadow steps" % T)
    assert st.mode == "shadow"
    # with no episode running pacd makes no step: lockstep says so for every
    # state and exits 3
    p = subprocess.run([REPLAY, "--demo", DEMO, "--episode", "1", "--cameras", "", "--rate", "max",
                        "--first-state", str(first), "--max-states", str(T),
                        "--state-endpoint", d.ep("state"), "--connect-wait-ms", "0",
                        "--lockstep", d.ep("control"), "--lockstep-timeout-ms", "2"],
                       capture_output=True, text=True, timeout=scaled(300))
    assert p.returncode == 3, p.stderr
    assert json.loads(p.stdout)["unacknowledged"] == T
    assert json.loads(p.stdout)["frames_unacknowledged"] == 0  # no camera: nothing to wait for
    assert "made no step from state 1 " in p.stderr
    assert d.client.status().tick_count == st.tick_count
    d.stop()
    logs = d.logs()
    assert len(logs) == 1
    steps = cat_steps(logs[0])
    assert [s["step"] for s in steps] == list(range(T))

    arm_qpos = [1, 3, 4, 5, 6, 7, 8]
    want_rewards = (states[:, 1 + 12] - TABLE_TOP_Z > 0.04).astype(float)
    for k, s in enumerate(steps):
        assert s["shadow"] is True
        assert s["robot_state_seq"] == k + 1
        np.testing.assert_allclose(s["observation"]["joint_positions"], states[k, arm_qpos], atol=1e-9)
        assert s["teleop_action_seq"] == k + 1
        np.testing.assert_allclose(s["teleop_action"][:7], jv[k], rtol=1e-6, atol=1e-6)
        assert s["teleop_action"][7] == pytest.approx(-grip[k, 0])
        assert s["reward"] == want_rewards[k]
        # the cube height the reward came from is logged with the step
        assert s["task_info"]["cube_height_m"] == pytest.approx(states[k, 1 + 12] - TABLE_TOP_Z,
                                                                abs=1e-6)
        assert len(s["frames"]) == 1 and s["frames"][0]["camera"] == "agentview"
        # the frame rendered from this row: lockstep waits until pacd has it
        # before the state goes out (the frames travel on another connection)
        assert s["frames"][0]["seq"] == k + 1
    # the demo ends with the cube lifted, as recorded
    assert steps[-1]["reward"] == 1.0 and steps[-1]["is_last"]
    assert steps[-1]["task_info"]["cube_height_m"] == pytest.approx(states[-1, 1 + 12] - TABLE_TOP_Z,
                                                                    abs=1e-6)
