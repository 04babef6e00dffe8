"""The `remote` HAL backend against pacd-fake-driver (docs/bridge.md): pacd
drives a robot-side driver over the bridge protocol; the arm moves; a driver
killed mid-motion makes pacd hold (and count the lost link); a restarted
driver is linked again; a driver of another protocol version is refused."""
import math
import os
import signal
import subprocess

from conftest import BUILD, FrameFeeder, attach_log, scaled, wait_until

import pacd_client

pb = pacd_client.pb
FAKE_DRIVER = os.path.join(BUILD, "hal", "driver", "pacd-fake-driver")
PANDA_HOME = [0.0, 0.0, 0.0, -1.57079, 0.0, 1.57079, -0.7853]


class Driver:
    """A pacd-fake-driver process; its stderr goes to a file in tmp_path."""

    def __init__(self, request, tmp_path, endpoint, *args):
        n = 0
        while os.path.exists(str(tmp_path / ("driver-%d.stderr" % n))):
            n += 1
        self.stderr_path = str(tmp_path / ("driver-%d.stderr" % n))
        attach_log(request, "pacd-fake-driver stderr (%s)" % self.stderr_path, self.stderr_path)
        self._err = open(self.stderr_path, "w")
        self.proc = subprocess.Popen([FAKE_DRIVER, "--bind", endpoint, "--robot", "panda", "--gripper",
                                      *args], stderr=self._err)
        wait_until(lambda: "ready" in self.stderr() or self.proc.poll() is not None, 30,
                   "the fake driver to bind", details=self.stderr)
        assert self.proc.poll() is None, self.stderr()

    def stderr(self):
        with open(self.stderr_path) as f:
            return f.read()

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._err.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            assert self.proc.wait(timeout=scaled(30)) == 0
        self._err.close()


def remote_extra(endpoint):
    # the state may be older than usual on a loaded machine (two processes at
    # 1 kHz); still far below the watchdog-free time a real arm allows
    return ("[robot]\nbackend = remote\ndriver_endpoint = %s\nstate_max_age_ms = %d\n"
            % (endpoint, int(scaled(250))))


def moved(status, ref, tol=0.01):
    q = list(status.robot_state.joint_positions)
    return len(q) == 7 and max(abs(a - b) for a, b in zip(q, ref)) > tol


def test_remote_backend_moves_holds_on_driver_loss_and_reconnects(request, daemon, tmp_path):
    endpoint = "ipc://%s" % (tmp_path / "driver.sock")
    drivers = [Driver(request, tmp_path, endpoint)]
    try:
        d = daemon(extra=remote_extra(endpoint))
        st = d.wait_for(lambda s: s.hal_link_up and s.hal_states_received > 0,
                        what="the link to the driver")
        assert st.backend == "remote"
        assert st.hal_link_losses == 0 and st.hal_versions_refused == 0
        feed = FrameFeeder(d.camera())
        d.client.start_episode(max_steps=100000)
        # motion: the policy's targets move the driver's arm
        st = d.wait_for(lambda s: moved(s, PANDA_HOME), feed=feed, what="the arm to move")
        assert st.hal_targets_sent > 0
        assert st.state == pb.RUNNING
        # (a machine loaded by other work may starve a state past the limit:
        # such a loss is counted too, so the checks below use baselines)
        losses0, reconnects0 = st.hal_link_losses, st.hal_link_reconnects

        # kill the driver mid-motion: pacd loses the link, counts it, holds
        # (its steps go stale: no policy, the arm held)
        drivers[0].kill()
        st = d.wait_for(lambda s: s.hal_link_losses == losses0 + 1 and not s.hal_link_up,
                        feed=feed, what="the lost link counted")
        stale0 = st.stale_steps
        st = d.wait_for(lambda s: s.stale_steps > stale0 + 5, feed=feed,
                        what="stale (held) steps while the driver is gone")
        assert st.hal_link_losses == losses0 + 1 and not st.hal_link_up
        assert st.state == pb.RUNNING  # holding, not faulted: the driver may come back

        # a restarted driver (at its home pose) is linked again and moves again
        drivers.append(Driver(request, tmp_path, endpoint))
        st = d.wait_for(lambda s: s.hal_link_up and s.hal_link_reconnects == reconnects0 + 1,
                        feed=feed, what="the restarted driver linked")
        received = st.hal_states_received
        d.wait_for(lambda s: s.hal_states_received > received + 10 and moved(s, PANDA_HOME),
                   feed=feed, what="states and motion from the restarted driver")
        assert "linked to the driver" in d.stderr()
        assert "lost the driver" in d.stderr()
        d.client.end_episode()
        d.stop()
        assert d.proc.returncode == 0, d.stderr()  # SIGTERM: exit 0 (and no sanitizer report)
        # the second driver took targets and answered one handshake
        drivers[1].stop()
        err = drivers[1].stderr()
        assert "handshake from pacd accepted" in err
        stopping = [l for l in err.splitlines() if "stopping:" in l][0]
        targets = int(stopping.split(" targets")[0].split(", ")[-1])
        assert targets > 0, stopping
        assert stopping.endswith(", 0 limit violations"), stopping
    finally:
        for dr in drivers:
            if dr.proc.poll() is None:
                dr.kill()


def test_driver_of_another_protocol_version_is_refused(request, daemon, tmp_path):
    endpoint = "ipc://%s" % (tmp_path / "driver.sock")
    drv = Driver(request, tmp_path, endpoint, "--protocol-version", "2")
    try:
        d = daemon(extra=remote_extra(endpoint), wait=False)
        assert d.proc.wait(timeout=scaled(60)) != 0
        err = d.stderr()
        assert "speaks bridge protocol version 2, pacd 1: refused" in err, err
        assert "the driver at %s cannot drive this arm: it speaks bridge protocol version 2, pacd 1" % endpoint in err, err
        assert "Sanitizer" not in err and "runtime error" not in err, err
    finally:
        drv.stop()
    assert "handshake refused: bridge protocol version 1 refused" in drv.stderr()


def test_config_refuses_remote_without_endpoint_and_unauthenticated_network(tmp_path, example_checkpoint):
    from conftest import PACD, write_config
    ports = {k: 40001 + i for i, k in enumerate(("camera", "state", "telemetry", "control"))}
    for extra, want in [("[robot]\nbackend = remote\n", "needs [robot] driver_endpoint"),
                        ("[robot]\nbackend = remote\ndriver_endpoint = tcp://192.0.2.7:5590\n",
                         "the bridge has no CURVE")]:
        cfg = write_config(str(tmp_path / "pacd.conf"), example_checkpoint,
                           str(tmp_path / "episodes"), ports, extra=extra)
        r = subprocess.run([PACD, "--check-config", cfg], capture_output=True, text=True)
        assert r.returncode != 0 and want in r.stderr + r.stdout, r.stderr + r.stdout


def test_pacd_killed_mid_motion_the_driver_stops_within_limits(request, daemon, tmp_path):
    endpoint = "ipc://%s" % (tmp_path / "driver.sock")
    drv = Driver(request, tmp_path, endpoint)
    try:
        d = daemon(extra=remote_extra(endpoint))
        feed = FrameFeeder(d.camera())
        d.client.start_episode(max_steps=100000)
        d.wait_for(lambda s: moved(s, PANDA_HOME) and s.hal_targets_sent > 20, feed=feed,
                   what="the arm to move")
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
        # the targets go stale: the driver decelerates to rest within the
        # stopping distance its jerk, acceleration and speed limits allow
        line = wait_until(lambda: [l for l in drv.stderr().splitlines()
                                   if "at rest after a stale stop" in l], 30,
                          "the driver to stop on stale targets", details=drv.stderr)[0]
        used = float(line.split("used ")[1].split(" of")[0])
        assert 0 <= used <= 1.0, line  # 0: the arm was already at rest
        # a new pacd starts a new session with the same driver
        d.stop()
        d2 = daemon(extra=remote_extra(endpoint))
        d2.wait_for(lambda s: s.hal_link_up and s.hal_states_received > 0,
                    what="the new pacd linked")
        d2.stop()
        # the second pacd's handshake was answered (a loaded machine may add
        # re-handshakes of the first after a starved state)
        assert drv.stderr().count("handshake from pacd accepted") >= 2
    finally:
        if drv.proc.poll() is None:
            drv.stop()
    stopping = [l for l in drv.stderr().splitlines() if "stopping:" in l][0]
    assert stopping.endswith(", 0 limit violations"), stopping


def test_driver_of_another_robot_is_refused(request, daemon, tmp_path):
    endpoint = "ipc://%s" % (tmp_path / "driver.sock")
    drv = Driver(request, tmp_path, endpoint, "--robot", "sawyer")
    try:
        d = daemon(extra=remote_extra(endpoint), wait=False)
        assert d.proc.wait(timeout=scaled(60)) != 0
        err = d.stderr()
        assert "refused the handshake: this driver drives a sawyer with 7 joints, not panda" in err, err
    finally:
        drv.stop()


def test_dropped_messages_the_link_holds_and_stops_stay_within_limits(request, daemon, tmp_path):
    """The fake driver's fault-injection hook drops 30 % of the targets it
    receives and of the states it sends: the arm still moves, pacd's link
    stays up on the states that arrive, and every stop the driver makes on
    targets gone stale stays within the limits' stopping distance."""
    endpoint = "ipc://%s" % (tmp_path / "driver.sock")
    drv = Driver(request, tmp_path, endpoint, "--drop-targets", "0.3", "--drop-states", "0.3",
                 "--seed", "7")
    try:
        d = daemon(extra=remote_extra(endpoint))
        feed = FrameFeeder(d.camera())
        d.client.start_episode(max_steps=100000)
        st = d.wait_for(lambda s: moved(s, PANDA_HOME, 0.05) and s.hal_targets_sent > 60,
                        feed=feed, what="the arm to move with messages dropped")
        assert st.hal_link_up
        d.client.end_episode()
        d.stop()
        assert d.proc.returncode == 0, d.stderr()
    finally:
        if drv.proc.poll() is None:
            drv.stop()
    err = drv.stderr()
    stopping = [l for l in err.splitlines() if "stopping:" in l][0]
    dropped = int(stopping.split(" dropped")[0].split(", ")[-1])
    assert dropped > 10, stopping
    assert stopping.endswith(", 0 limit violations"), stopping
    for line in err.splitlines():
        if "at rest after a stale stop" in line:
            used = float(line.split("used ")[1].split(" of")[0])
            assert used <= 1.0, line
