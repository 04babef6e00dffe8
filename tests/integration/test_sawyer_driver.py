"""pacd-sawyer-driver (hal/driver/pacd_sawyer_driver.cpp, docs/bridge.md)
against a fake Intera node (fake_intera_node.py) under its own
`rosmaster --core` on a free port, all started here: the JointCommand mode,
rate and joint names, the command timeout and the enable it sets, the
conversion of the robot's joint and endpoint states into pacd's state, the
arm moving the way the targets say, the stop when pacd is killed, the
refusal of bad joint states (the arm held) and the md5 sum of the committed
JointCommand.msg."""
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import threading

import pytest
import zmq

from conftest import (BUILD, PY, SRC, FrameFeeder, attach_log, free_port, make_example_checkpoint,
                      scaled, wait_until)

import pacd_client

pb = pacd_client.pb
SAWYER_DRIVER = os.path.join(BUILD, "hal", "driver", "pacd-sawyer-driver")
FAKE_NODE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_intera_node.py")
MSG_DIR = os.path.join(SRC, "hal", "driver", "msg", "intera_core_msgs")
ROSMASTER = shutil.which("rosmaster") or "/usr/bin/rosmaster"
JOINTS = ["right_j%d" % i for i in range(7)]
Q0 = [0.05, -1.1, 0.1, 2.1, -0.05, 0.6, 3.2]  # near the Sawyer's home, not on it
DDQ_MAX = 2.0  # rad/s^2, every joint (hal_robot.c)


def _missing():
    if not os.path.exists(SAWYER_DRIVER):
        return ("pacd-sawyer-driver is not built: meson found no roscpp, ROS message headers "
                "or gencpp (libroscpp-dev, libsensor-msgs-dev, libgeometry-msgs-dev, "
                "python3-gencpp; deploy/install-deps.sh)")
    if not os.path.exists(ROSMASTER):
        return "no rosmaster (python3-rosmaster)"
    r = subprocess.run([PY, "-c", "import rospy, genpy, genmsg, sensor_msgs.msg"],
                       capture_output=True, text=True)
    if r.returncode:
        return "no rospy / genmsg / sensor_msgs for %s (python3-rospy, python3-genmsg, " \
               "python3-sensor-msgs): %s" % (PY, r.stderr.strip().splitlines()[-1:])
    return None


needs_ros = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))


class Child:
    """A child process whose stderr (and stdout) go to files in tmp_path,
    attached to the test's report."""

    def __init__(self, request, tmp_path, name, argv, env, stdin=None):
        self.name = name
        self.err_path = str(tmp_path / ("%s.stderr" % name))
        self.out_path = str(tmp_path / ("%s.stdout" % name))
        attach_log(request, "%s stderr" % name, self.err_path)
        attach_log(request, "%s stdout" % name, self.out_path)
        self._err, self._out = open(self.err_path, "w"), open(self.out_path, "w")
        self.proc = subprocess.Popen(argv, stdin=stdin, stdout=self._out, stderr=self._err,
                                     env=env, text=True)

    def stderr(self):
        with open(self.err_path) as f:
            return f.read()

    def stdout(self):
        with open(self.out_path) as f:
            return f.read()

    def alive(self):
        """Fails the test at once when the process has exited (a feed for
        wait_until: a dead driver is reported, not waited out)."""
        assert self.proc.poll() is None, "%s exited with status %s:\n%s" % (
            self.name, self.proc.returncode, self.stderr())

    def wait_for(self, text, what, stream="stderr", timeout=30):
        read = self.stderr if stream == "stderr" else self.stdout
        wait_until(lambda: text in read() or self.proc.poll() is not None, timeout, what,
                   details=lambda: "%s stderr:\n%s" % (self.name, self.stderr()))
        assert self.proc.poll() is None, "%s exited:\n%s" % (self.name, self.stderr())

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=scaled(30))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdin:
            self.proc.stdin.close()
        self._err.close()
        self._out.close()
        return self.proc.returncode


class Ros:
    """A rosmaster of our own on a free port, the fake Intera node and the
    driver, all under tmp_path (ROS_HOME, ROS_LOG_DIR)."""

    def __init__(self, request, tmp_path):
        self.request, self.tmp_path, self.children = request, tmp_path, []
        port = free_port()
        self.env = dict(os.environ, ROS_MASTER_URI="http://127.0.0.1:%d" % port, ROS_IP="127.0.0.1",
                        ROS_HOME=str(tmp_path / "ros"), ROS_LOG_DIR=str(tmp_path / "ros" / "log"))
        self.env.pop("ROS_HOSTNAME", None)
        self.master = self.start("rosmaster", [ROSMASTER, "--core", "-p", str(port)])

        def up():
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0 or self.master.proc.poll() is not None

        wait_until(up, 30, "rosmaster to listen", details=self.master.stderr)
        assert self.master.proc.poll() is None, self.master.stderr()

    def start(self, name, argv, stdin=None):
        c = Child(self.request, self.tmp_path, name, argv, self.env, stdin)
        self.children.append(c)
        return c

    def node(self, q0=Q0):
        n = self.start("fake_intera_node", [PY, FAKE_NODE, "--msg-dir", MSG_DIR,
                                            "--q0", ",".join(map(str, q0))], stdin=subprocess.PIPE)
        n.wait_for("ready", "the fake Intera node", stream="stdout")
        n.dumps = 0

        def dump():
            n.dumps += 1
            path = str(self.tmp_path / ("record-%d.json" % n.dumps))
            n.proc.stdin.write("dump %s\n" % path)
            n.proc.stdin.flush()
            wait_until(lambda: os.path.exists(path), 30, "the fake node's record",
                       details=n.stderr)
            with open(path) as f:
                rec = json.load(f)
            os.remove(path)
            return rec

        def say(line):
            n.proc.stdin.write(line + "\n")
            n.proc.stdin.flush()

        n.dump = dump
        n.bad = lambda kind, count: say("bad %s %d" % (kind, count))
        n.good = lambda: say("good")
        return n

    def driver(self, endpoint):
        # a joint state may be late on a loaded machine: only a real loss holds
        d = self.start("pacd-sawyer-driver", [SAWYER_DRIVER, "--bind", endpoint,
                                              "--robot-state-max-age-ms", str(int(scaled(500)))])
        d.wait_for("ready", "the Sawyer driver to bind")
        return d

    def close(self):
        for c in reversed(self.children):
            c.stop()


@pytest.fixture
def ros(request, tmp_path):
    r = Ros(request, tmp_path)
    yield r
    r.close()


def close_to(a, b, tol):
    return len(a) == len(b) and all(abs(x - y) <= tol for x, y in zip(a, b))


def check_commands(cmds):
    """Every command: VELOCITY_MODE, right_j0..right_j6, finite, and a step
    from the previous one within the acceleration limit over their stamps
    (the driver core's own time)."""
    assert cmds, "no JointCommand received"
    for c in cmds:
        assert c["mode"] == 2, c
        assert c["names"] == JOINTS, c
        assert len(c["velocity"]) == 7 and all(math.isfinite(v) for v in c["velocity"]), c
    for a, b in zip(cmds, cmds[1:]):
        dt = b["stamp"] - a["stamp"]
        if dt <= 0:  # the zero command on SIGTERM may share the last stamp
            assert all(v == 0 for v in b["velocity"]), (a, b)
            continue
        for va, vb in zip(a["velocity"], b["velocity"]):
            assert abs(vb - va) <= DDQ_MAX * dt * (1 + 1e-6) + 1e-6, (a, b)


def rate_hz(cmds):
    """The most commands the fake node received within one second of its own
    clock (their receive times): the rate while the driver commands."""
    t = [c["t"] for c in cmds]
    assert t and t[-1] - t[0] >= 1.0, "less than a second of commands"
    best, j = 0, 0
    for i in range(len(t)):
        while t[i] - t[j] > 1.0:
            j += 1
        best = max(best, i - j + 1)
    return best


def sawyer_extra(endpoint):
    return ("[robot]\nname = sawyer\nbackend = remote\ndriver_endpoint = %s\n"
            "state_max_age_ms = %d\n" % (endpoint, int(scaled(250))))


@needs_ros
def test_pacd_drives_the_fake_sawyer_through_the_driver(request, daemon, ros, tmp_path,
                                                         tmp_path_factory):
    endpoint = "ipc://%s" % (tmp_path / "driver.sock")
    node = ros.node()
    drv = ros.driver(endpoint)
    d = daemon(checkpoint=make_example_checkpoint("sawyer", tmp_path_factory),
               extra=sawyer_extra(endpoint))
    st = d.wait_for(lambda s: s.hal_link_up and s.hal_states_received > 10,
                    what="the link to the Sawyer driver")
    assert st.backend == "remote" and st.robot == "sawyer"

    # at rest: pacd's robot state is what the fake robot published (joints
    # picked by name from a shuffled list with others, the endpoint pose)
    rec = node.dump()
    pub = rec["published"]
    st = d.wait_for(lambda s: close_to(s.robot_state.joint_positions, pub["q"], 1e-9),
                    what="pacd's state to be the fake robot's")
    rs = st.robot_state
    assert close_to(rs.joint_positions, Q0, 1e-9)
    assert close_to(rs.joint_velocities, [0.0] * 7, 1e-12)
    ee = rs.end_effector
    assert close_to([ee.x, ee.y, ee.z, ee.qw, ee.qx, ee.qy, ee.qz], pub["pose"], 1e-9), (ee, pub)
    assert rec["commands"] == []  # nothing commanded before a target
    # the robot enabled and the command timeout set, as Intera's own tools do
    assert rec["enables"] == [True]
    assert rec["timeouts"] == [pytest.approx(0.2)]

    # an episode: pacd's targets move the fake arm; pacd's state follows it
    feed = FrameFeeder(d.camera())
    d.client.start_episode(max_steps=100000)
    st = d.wait_for(lambda s: not close_to(s.robot_state.joint_positions, Q0, 0.01), feed=feed,
                    what="the fake arm to move")
    wait_until(lambda: len(node.dump()["commands"]) >= 150, 30, "150 commands", feed=feed,
               interval=0.2)
    rec = node.dump()
    moving = rec["commands"]
    check_commands(moving)
    assert rate_hz(moving) >= 90, rate_hz(moving)
    assert any(any(abs(v) > 1e-3 for v in c["velocity"]) for c in moving)

    # pacd killed mid-motion: the targets go stale, the driver brakes within
    # the limits to a zero command, then stops commanding (Intera holds)
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()

    def settled():
        r = node.dump()
        c = r["commands"]
        return r if len(c) > len(moving) + 10 and all(v == 0 for v in c[-1]["velocity"]) and \
            r["commands"][-1]["t"] < r["published"]["t"] - 0.3 else None

    rec = wait_until(settled, 30, "the driver to stop commanding", details=drv.stderr,
                     interval=0.2)
    cmds = rec["commands"]
    check_commands(cmds)
    tail = cmds[len(moving):]
    assert all(v == 0 for c in tail[-10:] for v in c["velocity"]), tail[-10:]
    assert rate_hz(cmds) >= 90, rate_hz(cmds)
    # the fake arm is at rest where the commands left it
    assert close_to(rec["published"]["dq"], [0.0] * 7, 0)
    assert rec["bad_modes"] == []
    assert drv.stop() == 0, drv.stderr()
    err = drv.stderr()
    assert "handshake from pacd accepted" in err
    stopping = [l for l in err.splitlines() if "stopping:" in l][0]
    assert ", 0 robot states refused" in stopping, stopping
    assert int(stopping.split(" stale stops")[0].split(", ")[-1]) >= 1, stopping


class Peer:
    """pacd's side of the bridge, by hand: a DEALER that shakes hands and
    sends velocity targets, and reads the driver's states."""

    def __init__(self, endpoint):
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.seq = 0
        self.lock = threading.Lock()  # a ZeroMQ socket is one thread's at a time

    def send(self, **kw):
        # never blocks: a DEALER blocks a send while no driver is connected
        # (a driver that died), which would hang the test with the lock held;
        # a dropped target is what a lost packet does, and the waits fail
        with self.lock:
            try:
                self.sock.send(pb.BridgeMessage(**kw).SerializeToString(), zmq.NOBLOCK)
            except zmq.Again:
                pass

    def hello(self):
        def answer():
            # a policy period of 0.1 s: a target is stale after 0.2 s
            self.send(hello=pb.DriverHello(protocol_version=1, robot="sawyer", n_joints=7,
                                           policy_period_s=0.1, peer="test"))
            with self.lock:
                if self.sock.poll(200):
                    m = pb.BridgeMessage()
                    m.ParseFromString(self.sock.recv())
                    if m.WhichOneof("body") == "hello":
                        return m.hello
            return None

        h = wait_until(answer, 30, "the driver's handshake")
        assert h.accepted, h

    def target(self, values):
        with self.lock:
            self.seq += 1
        self.send(target=pb.JointCommand(protocol_version=1, robot="sawyer", seq=self.seq,
                                         mode=pb.JointCommand.VELOCITY,
                                         space=pb.JOINT_VELOCITY, values=values))

    def states(self):
        out = []
        with self.lock:
            while self.sock.poll(0):
                m = pb.BridgeMessage()
                m.ParseFromString(self.sock.recv())
                if m.WhichOneof("body") == "state":
                    out.append(m.state)
        return out

    def close(self):
        self.sock.close()


class Sender(threading.Thread):
    """Sends the peer's target every 50 ms until stopped."""

    def __init__(self, peer, values):
        super().__init__(daemon=True)
        self.peer, self.values, self.done = peer, values, threading.Event()
        self.start()

    def run(self):
        while not self.done.wait(0.05):
            self.peer.target(self.values)


@needs_ros
def test_targets_move_the_arm_their_way_and_bad_joint_states_hold_it(ros, tmp_path):
    endpoint = "ipc://%s" % (tmp_path / "driver.sock")
    node = ros.node()
    drv = ros.driver(endpoint)

    def wait(*args, **kw):  # every wait fails at once if the driver died
        return wait_until(*args, feed=drv.alive, **kw)

    peer = Peer(endpoint)
    sender = None
    try:
        peer.hello()
        # the state, field by field, against what the fake robot published
        # (at rest: no target yet)
        st = wait(lambda: (peer.states() or [None])[-1], 30, "a DriverState")
        pub = node.dump()["published"]
        assert st.robot == "sawyer" and st.protocol_version == 1
        assert close_to(st.joint_positions, pub["q"], 1e-12)
        assert close_to(st.joint_velocities, [0.0] * 7, 0)
        assert close_to(st.joint_torques, pub["effort"], 1e-12)
        e = st.end_effector
        assert close_to([e.x, e.y, e.z, e.qw, e.qx, e.qy, e.qz], pub["pose"], 1e-12)
        assert st.mode == pb.DriverState.IDLE

        # +0.2 rad/s on joint 1, -0.3 rad/s on joint 4 at 20 Hz: the fake
        # arm goes that way, and the commands reach the targets exactly
        want = [0.2, 0.0, 0.0, -0.3, 0.0, 0.0, 0.0]
        sender = Sender(peer, want)

        def reached():
            r = node.dump()
            return r if r["commands"] and close_to(r["commands"][-1]["velocity"], want, 1e-9) \
                and r["q"][0] > Q0[0] + 0.05 and r["q"][3] < Q0[3] - 0.05 else None

        rec = wait(reached, 60, "the fake arm to move the targets' way",
                   details=drv.stderr, interval=0.1)
        for j in (1, 2, 4, 5, 6):
            assert abs(rec["q"][j] - Q0[j]) < 1e-9, rec["q"]
        check_commands(rec["commands"])

        # bad joint states (right_j6 missing, a NaN, a short array) while the
        # targets keep coming: each refused and counted, the arm held (the
        # commands brake to zero), no state to pacd meanwhile
        for kind, why in [("names", "joint state without right_j6"),
                          ("nan", "non-finite right_j2"),
                          ("short", "joint state arrays of 9 positions, 7 velocities"),
                          ("pose", "endpoint state marked not valid")]:
            base = len(node.dump()["commands"])
            node.bad(kind, 1000)  # 10 s of bad states, ended below
            wait(lambda: why in drv.stderr(), 30, "the refusal of %s" % kind,
                 details=drv.stderr)

            def held():
                c = node.dump()["commands"]
                return len(c) > base and all(v == 0 for v in c[-1]["velocity"])

            wait(held, 30, "the arm held on %s" % kind, details=drv.stderr, interval=0.1)
            peer.states()
            stall = node.dump()
            # 30 more bad states while targets keep coming: none taken (no
            # command moves), no state sent
            wait(lambda: node.dump()["bad_sent"] >= stall["bad_sent"] + 30, 30,
                 "30 more bad joint states", interval=0.1)
            rec = node.dump()
            assert all(v == 0 for c in rec["commands"][len(stall["commands"]):]
                       for v in c["velocity"])
            assert rec["q"] == stall["q"]
            assert peer.states() == []
            node.good()
            # good states again: the targets move the arm again
            rec = wait(reached, 60, "the arm moving again after %s" % kind,
                       details=drv.stderr, interval=0.1)
            assert rec["q"][0] > stall["q"][0]
        n_bad = node.dump()["bad_sent"]
        assert "holding the arm" in drv.stderr()
        assert "valid joint states again" in drv.stderr()
        st = wait(lambda: (peer.states() or [None])[-1], 30, "a DriverState")
        assert 90 <= st.counters.robot_states_refused <= n_bad, (st.counters, n_bad)
        assert st.mode == pb.DriverState.TRACKING
    finally:
        if sender:
            sender.done.set()
            sender.join()
        peer.close()
    assert drv.stop() == 0, drv.stderr()
    stopping = [l for l in drv.stderr().splitlines() if "stopping:" in l][0]
    assert int(stopping.split(" holds on robot input")[0].split(", ")[-1]) >= 3, stopping


def test_joint_command_md5_matches_intera():
    """The committed JointCommand.msg hashes (ROS's md5 rule, genmsg) to the
    sum Intera's robots check on connection; so does the header gencpp made
    for the driver."""
    r = subprocess.run([PY, "-c", """
import sys, genmsg, genmsg.msg_loader as ml, genmsg.gentools as gt
ctx = genmsg.MsgContext.create_default()
search = {'intera_core_msgs': [sys.argv[1]], 'std_msgs': ['/usr/share/std_msgs/msg'],
          'geometry_msgs': ['/usr/share/geometry_msgs/msg']}
for n in ('JointCommand', 'EndpointState'):
    spec = ml.load_msg_from_file(ctx, sys.argv[1] + '/' + n + '.msg', 'intera_core_msgs/' + n)
    ml.load_depends(ctx, spec, search)
    print(n, gt.compute_md5(ctx, spec))
""", MSG_DIR], capture_output=True, text=True)
    if r.returncode and "No module named 'genmsg'" in r.stderr:
        pytest.skip("no genmsg for %s (python3-genmsg)" % PY)
    assert r.returncode == 0, r.stderr
    sums = dict(line.split() for line in r.stdout.splitlines())
    assert sums["JointCommand"] == "c8c85922d297da6209a089a906207e5d"
    header = os.path.join(BUILD, "hal", "driver", "msg", "intera_core_msgs", "JointCommand.h")
    if os.path.exists(header):
        with open(header) as f:
            assert '"c8c85922d297da6209a089a906207e5d"' in f.read()
