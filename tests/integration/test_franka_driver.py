"""pacd-franka-driver's libfranka layer against a fake of libfranka 0.9.x's API
(tests/fake_libfranka/: the same driver source, built against headers of the
same names whose Robot::control runs the callback on a simulated 1 kHz clock
and integrates the commanded joint velocities). This proves the layer's
logic against a fake of the API, not against a robot: no network to the
arm, no rate limiter, no reflexes but the injected one (docs/real-robot.md
is the bring-up on a real Panda).

Checked: pacd (remote backend) drives it and the arm follows; the control
loop is started with joint velocities, joint impedance, rate limiting on and
libfranka's default cutoff; the callback trace (every commanded velocity)
stays within the Panda's velocity and acceleration limits; a stale link
decelerates to rest within the stopping distance; an injected
communication_constraints_violation reports ERROR with the exception's text
in DriverState and holds (targets refused, the arm still); recovery only
with --auto-recover; the gripper thread opens and grasps on the target's
gripper value."""
import math
import os
import signal
import subprocess
import time

import zmq

from conftest import BUILD, FrameFeeder, attach_log, scaled, wait_until

import pacd_client

pb = pacd_client.pb
DRIVER = os.path.join(BUILD, "tests", "fake_libfranka", "pacd-franka-driver-fake")
PANDA_HOME = [0.0, 0.0, 0.0, -1.57079, 0.0, 1.57079, -0.7853]
# hal/hal_robot.c, the Panda (Franka's limits)
DQ_MAX = [2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61]
DDQ_MAX = [15.0, 7.5, 10.0, 12.5, 15.0, 20.0, 20.0]


class FrankaDriver:
    """pacd-franka-driver built against the fake libfranka; its stderr, the
    callback trace and the injection trigger are files in tmp_path."""

    def __init__(self, request, tmp_path, endpoint, *args):
        n = 0
        while os.path.exists(str(tmp_path / ("franka-%d.stderr" % n))):
            n += 1
        base = str(tmp_path / ("franka-%d" % n))
        self.stderr_path = base + ".stderr"
        self.trace_path = base + ".trace"
        self.inject_path = base + ".inject"
        attach_log(request, "pacd-franka-driver stderr (%s)" % self.stderr_path, self.stderr_path)
        self._err = open(self.stderr_path, "w")
        env = dict(os.environ, FAKE_FRANKA_TRACE=self.trace_path, FAKE_FRANKA_INJECT=self.inject_path)
        self.proc = subprocess.Popen([DRIVER, "--robot-ip", "fake-panda", "--bind", endpoint,
                                      "--realtime", "ignore", *args], stderr=self._err, env=env)
        wait_until(lambda: "ready" in self.stderr() or self.proc.poll() is not None, 30,
                   "the driver to bind", details=self.stderr)
        assert self.proc.poll() is None, self.stderr()

    def stderr(self):
        with open(self.stderr_path) as f:
            return f.read()

    def inject(self):
        open(self.inject_path, "w").close()
        wait_until(lambda: "injected: communication_constraints_violation" in self.stderr(), 30,
                   "the fake libfranka to throw", details=self.stderr)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            assert self.proc.wait(timeout=scaled(30)) == 0, self.stderr()
        self._err.close()
        err = self.stderr()
        assert "Sanitizer" not in err and "runtime error" not in err, err
        return [l for l in self.stderr().splitlines() if "stopping:" in l][0]

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self._err.close()

    def trace(self):
        """The callback trace: (t_ms, [dq1..dq7]) per callback."""
        rows = []
        with open(self.trace_path) as f:
            for line in f:
                v = line.split()
                if len(v) == 8:
                    rows.append((int(v[0]), [float(x) for x in v[1:]]))
        return rows


def check_trace(rows):
    """Every commanded velocity within dq_max, every change between two
    callbacks 1 ms apart within ddq_max (plus rounding); returns the largest
    fractions of each limit used."""
    assert len(rows) > 100, len(rows)
    v_used = a_used = 0.0
    for (t0, dq0), (t1, dq1) in zip(rows, rows[1:]):
        for i in range(7):
            assert math.isfinite(dq1[i])
            assert abs(dq1[i]) <= DQ_MAX[i] * (1 + 1e-9), (t1, i, dq1[i])
            v_used = max(v_used, abs(dq1[i]) / DQ_MAX[i])
            if t1 - t0 == 1:
                a = (dq1[i] - dq0[i]) / 1e-3
                assert abs(a) <= DDQ_MAX[i] * (1 + 1e-6) + 1e-6, (t1, i, a)
                a_used = max(a_used, abs(a) / DDQ_MAX[i])
    return v_used, a_used


class Peer:
    """A bridge peer speaking for pacd (docs/bridge.md): handshake, 20 Hz
    velocity targets with a gripper value, the newest state kept."""

    def __init__(self, endpoint):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.seq = 0
        self.state = None
        self.velocity = [0.0] * 7
        self.gripper = 0.0
        self.sending = False
        self.last_sent = 0.0
        hello = pb.BridgeMessage(hello=pb.DriverHello(
            protocol_version=1, robot="panda", n_joints=7, policy_period_s=0.05,
            has_gripper=True, peer="test"))
        self.send(hello.SerializeToString())
        answer = None
        deadline = time.monotonic() + scaled(10)
        while answer is None and time.monotonic() < deadline:
            if self.sock.poll(100):
                m = pb.BridgeMessage.FromString(self.sock.recv())
                if m.WhichOneof("body") == "hello":
                    answer = m.hello
        assert answer is not None and answer.accepted, answer
        assert answer.peer == "pacd-franka-driver"

    def pump(self):
        """Take the states that arrived; send a target every 50 ms while sending."""
        while self.sock.poll(0):
            m = pb.BridgeMessage.FromString(self.sock.recv())
            if m.WhichOneof("body") == "state":
                self.state = m.state
        now = time.monotonic()
        if self.sending and now - self.last_sent >= 0.05:
            self.seq += 1
            t = pb.JointCommand(protocol_version=1, seq=self.seq, robot="panda",
                                mode=pb.JointCommand.VELOCITY, space=pb.JOINT_VELOCITY_GRIPPER,
                                values=self.velocity + [self.gripper],
                                time_mono_ns=time.monotonic_ns(), time_unix_ns=time.time_ns())
            self.send(pb.BridgeMessage(target=t).SerializeToString())
            self.last_sent = now

    def send(self, data):
        """Never blocks: a DEALER blocks a send while no driver is connected
        (one that died), which would hang the test; a dropped target is what
        a lost packet does, and the waits then fail with the driver's stderr."""
        try:
            self.sock.send(data, zmq.NOBLOCK)
        except zmq.Again:
            pass

    def wait(self, pred, what, driver, timeout=30):
        wait_until(lambda: self.state is not None and pred(self.state), timeout, what,
                   feed=self.pump, details=lambda: "%s\n%s" % (self.state, driver.stderr()),
                   interval=0.005)
        return self.state

    def close(self):
        self.sock.close()
        self.ctx.term()


def test_pacd_drives_the_franka_layer_and_a_stale_link_stops_it(request, daemon, tmp_path):
    endpoint = "ipc://%s" % (tmp_path / "driver.sock")
    drv = FrankaDriver(request, tmp_path, endpoint, "--gripper")
    try:
        d = daemon(extra="[robot]\nbackend = remote\ndriver_endpoint = %s\nstate_max_age_ms = %d\n"
                   % (endpoint, int(scaled(250))))
        st = d.wait_for(lambda s: s.hal_link_up and s.hal_states_received > 0,
                        what="the link to the Franka driver")
        assert st.backend == "remote"
        err = drv.stderr()
        # the loop libfranka runs: joint velocities, joint impedance, rate
        # limiting on, the default cutoff (100 Hz)
        assert "control(JointVelocities, joint impedance, limit_rate=1, cutoff_frequency=100)" in err, err
        feed = FrameFeeder(d.camera())
        d.client.start_episode(max_steps=100000)
        d.wait_for(lambda s: len(s.robot_state.joint_positions) == 7 and
                   max(abs(a - b) for a, b in zip(s.robot_state.joint_positions, PANDA_HOME)) > 0.01
                   and s.hal_targets_sent > 20,
                   feed=feed, what="the arm to follow pacd's targets")
        # pacd gone mid-motion: its targets go stale, the driver decelerates
        # to rest within the stopping distance the limits allow
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
        line = wait_until(lambda: [l for l in drv.stderr().splitlines()
                                   if "at rest after a stale stop" in l], 30,
                          "the driver to stop on stale targets", details=drv.stderr)[-1]
        used = float(line.split("used ")[1].split(" of")[0])
        assert 0 <= used <= 1.0, line
        d.stop()
        stopping = drv.stop()
    finally:
        drv.kill()
    targets = int(stopping.split(" targets")[0].split(", ")[-1])
    assert targets > 20, stopping
    assert ", 0 exceptions, 0 recoveries" in stopping, stopping
    assert "control: motion finished" in drv.stderr()  # SIGTERM: at rest, MotionFinished
    rows = drv.trace()
    v_used, a_used = check_trace(rows)
    assert v_used > 0.001, "the trace never moved"
    # what the callback commanded is what the fake integrated: the arm moved
    moved = [sum(dq[i] for _, dq in rows) * 1e-3 for i in range(7)]
    assert max(abs(m) for m in moved) > 0.01, moved


def test_driver_error_reaches_pacd_and_the_loop_holds(request, daemon, tmp_path):
    """The driver's ERROR (an injected reflex) reaches pacd's telemetry
    (mode, escaped text, counted once, the driver's counters) and the loop
    holds: no driver state is taken while the driver is in ERROR, so the
    robot state goes stale and every step is a stale (held) one."""
    endpoint = "ipc://%s" % (tmp_path / "driver.sock")
    drv = FrankaDriver(request, tmp_path, endpoint)
    try:
        d = daemon(extra="[robot]\nbackend = remote\ndriver_endpoint = %s\nstate_max_age_ms = %d\n"
                   % (endpoint, int(scaled(250))))
        feed = FrameFeeder(d.camera())
        d.client.start_episode(max_steps=100000)
        st = d.wait_for(lambda s: s.hal_driver_mode == pb.DriverState.TRACKING and
                        s.hal_driver_counters.targets_received > 10, feed=feed,
                        what="the driver tracking pacd's targets")
        assert st.hal_driver_errors == 0 and st.hal_driver_error == ""
        assert st.hal_driver_counters.ticks > 0
        drv.inject()
        st = d.wait_for(lambda s: s.hal_driver_mode == pb.DriverState.ERROR, feed=feed,
                        what="the driver's error in pacd's telemetry")
        assert st.hal_driver_errors == 1
        assert "communication_constraints_violation" in st.hal_driver_error, st
        assert "reports an error: " in d.stderr()
        # the loop holds: from now on its steps are stale
        stale0 = st.stale_steps
        st = d.wait_for(lambda s: s.stale_steps >= stale0 + 10, feed=feed,
                        what="stale (held) steps while the driver is in ERROR")
        assert st.hal_driver_mode == pb.DriverState.ERROR and st.hal_driver_errors == 1
        assert st.hal_driver_counters.targets_refused > 0  # what pacd still sent was refused
        d.stop()
        drv.stop()
    finally:
        drv.kill()


def test_exception_holds_without_recovery_and_the_gripper_thread_acts(request, tmp_path):
    endpoint = "ipc://%s" % (tmp_path / "driver.sock")
    drv = FrankaDriver(request, tmp_path, endpoint, "--gripper")
    peer = Peer(endpoint)
    try:
        q0 = peer.wait(lambda s: len(s.joint_positions) == 7, "a first state", drv).joint_positions[0]
        # motion follows the targets; the gripper value opens the hand
        peer.velocity = [0.3, 0, 0, 0, 0, 0, 0]
        peer.gripper = 1.0
        peer.sending = True
        st = peer.wait(lambda s: s.mode == pb.DriverState.TRACKING and
                       s.joint_positions[0] > q0 + 0.05, "joint 1 to follow", drv)
        assert len(st.joint_torques) == 7
        assert abs(math.sqrt(st.end_effector.qw ** 2 + st.end_effector.qx ** 2 +
                             st.end_effector.qy ** 2 + st.end_effector.qz ** 2) - 1) < 1e-9
        wait_until(lambda: "gripper move(width=0.08, speed=0.1)" in drv.stderr(), 30,
                   "the gripper thread to open", feed=peer.pump, details=drv.stderr)
        peer.gripper = -1.0
        peer.wait(lambda s: s.grasp, "the gripper thread to grasp", drv)
        assert "gripper grasp(width=0, speed=0.1, force=20, epsilon_inner=0.005, epsilon_outer=0.08)" in drv.stderr()
        # stale: no more targets, the driver decelerates to rest
        peer.sending = False
        peer.wait(lambda s: s.mode == pb.DriverState.IDLE and
                  all(v == 0 for v in s.joint_velocities), "rest after a stale stop", drv)
        assert "at rest after a stale stop" in drv.stderr()
        # the injected reflex: ERROR with the exception's text, held
        peer.sending = True
        peer.wait(lambda s: s.mode == pb.DriverState.TRACKING, "tracking again", drv)
        drv.inject()
        st = peer.wait(lambda s: s.mode == pb.DriverState.ERROR, "the error reported", drv)
        assert any("communication_constraints_violation" in e for e in st.errors), st.errors
        # the first ERROR state may carry the last callback's positions, one
        # period before the robot stopped: take the held pose a moment later
        t_end = time.monotonic() + 0.2
        wait_until(lambda: time.monotonic() > t_end, 30, "a moment", feed=peer.pump, interval=0.005)
        st = peer.state
        q_held = list(st.joint_positions)
        refused0 = st.counters.targets_refused
        t_end = time.monotonic() + scaled(1.5)
        wait_until(lambda: time.monotonic() > t_end, 30, "a while", feed=peer.pump, interval=0.005)
        st = peer.state
        assert st.mode == pb.DriverState.ERROR  # no recovery without --auto-recover
        assert list(st.joint_positions) == q_held  # nothing commanded
        assert st.counters.targets_refused > refused0 + 10  # targets refused while held
        assert "automaticErrorRecovery" not in drv.stderr()
        assert "holding" in drv.stderr()
        stopping = drv.stop()
    finally:
        peer.close()
        drv.kill()
    assert ", 1 exceptions, 0 recoveries, 2 gripper commands" in stopping, stopping
    check_trace(drv.trace())


def test_auto_recover_flag_recovers_and_moves_again(request, tmp_path):
    endpoint = "ipc://%s" % (tmp_path / "driver.sock")
    drv = FrankaDriver(request, tmp_path, endpoint, "--auto-recover")
    peer = Peer(endpoint)
    try:
        q0 = peer.wait(lambda s: len(s.joint_positions) == 7, "a first state", drv).joint_positions[0]
        peer.velocity = [0.3, 0, 0, 0, 0, 0, 0]
        peer.sending = True
        peer.wait(lambda s: s.joint_positions[0] > q0 + 0.05, "joint 1 to follow", drv)
        drv.inject()
        st = peer.wait(lambda s: s.mode == pb.DriverState.ERROR, "the error reported", drv)
        assert any("communication_constraints_violation" in e for e in st.errors), st.errors
        q1 = st.joint_positions[0]
        # recovered (automaticErrorRecovery), then fresh targets move it again
        st = peer.wait(lambda s: s.mode == pb.DriverState.TRACKING and
                       s.joint_positions[0] > q1 + 0.05, "motion after the recovery", drv)
        assert not st.errors
        err = drv.stderr()
        assert "fake-libfranka: automaticErrorRecovery (robot mode was reflex)" in err, err
        assert err.count("control(JointVelocities") == 2, err
        stopping = drv.stop()
    finally:
        peer.close()
        drv.kill()
    assert ", 1 exceptions, 1 recoveries" in stopping, stopping
    check_trace(drv.trace())


def test_speed_scale_limits_the_first_motions(request, tmp_path):
    """--speed-scale 0.2: a target of 1 rad/s on joint 1 moves it at 0.2 x
    the Panda's 2.175 rad/s, clamped and counted."""
    endpoint = "ipc://%s" % (tmp_path / "driver.sock")
    drv = FrankaDriver(request, tmp_path, endpoint, "--speed-scale", "0.2")
    peer = Peer(endpoint)
    try:
        peer.wait(lambda s: len(s.joint_positions) == 7, "a first state", drv)
        peer.velocity = [1.0, 0, 0, 0, 0, 0, 0]
        peer.sending = True
        st = peer.wait(lambda s: abs(s.joint_velocities[0] - 0.2 * DQ_MAX[0]) < 1e-9,
                       "joint 1 at the scaled speed", drv)
        assert st.counters.velocity_clamps > 0
        stopping = drv.stop()
    finally:
        peer.close()
        drv.kill()
    assert "speed scale 0.2" in drv.stderr()
    for _, dq in drv.trace():
        assert all(abs(v) <= 0.2 * m * (1 + 1e-9) for v, m in zip(dq, DQ_MAX)), dq
    assert ", 0 exceptions" in stopping
