"""pacd's `remote` backend against pacd-fake-driver under injected faults
(docs/bridge.md "Fault injection"): delayed, duplicated and reordered
targets and states, targets delayed past the stale limit, a stalled link.

Each test runs an episode through the faulty link, ends it (a hold), stops
pacd, and then judges the driver's trace of its 1 kHz commanded motion
(--trace): every period within the robot's velocity, acceleration and jerk
limits (hal/hal_robot.c, read here from the source); every stop (stale
targets or a hold) comes to rest within the stopping distance the limits
allow from where it began; after a hold no joint speeds up or reverses until
a fresh target (a newer seq) arrives; after a stale stop the arm stays at rest
until a newer target. The driver's counters (its exit lines) show the faults
were injected and that duplicated / reordered targets were refused as old.
Nothing is timed: the tests wait for counters with generous deadlines."""
import math
import os
import re
import struct

from conftest import FrameFeeder, scaled, wait_until

import pacd_client
from test_remote_backend import PANDA_HOME, Driver, moved, remote_extra

pb = pacd_client.pb
SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DT = 1e-3
IDLE, TRACKING, STOPPING, HOLDING = 1, 2, 3, 4


def panda_limits():
    """dq_max, ddq_max, dddq_max of the Panda description (hal/hal_robot.c)."""
    with open(os.path.join(SRC, "hal", "hal_robot.c")) as f:
        text = f.read()
    block = text[text.index('.name = "panda"'):]
    out = []
    for name in ("dq_max", "ddq_max", "dddq_max"):
        m = re.search(r"\.%s = \{([^}]*)\}" % name, block)
        out.append([float(x) for x in m.group(1).split(",")])
    return out


def read_trace(path):
    """The driver's --trace: a list of (t_ns, mode, flags, seq, q, dq, ddq)."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"PACDDRV1", data[:8]
    (n,) = struct.unpack_from("=I", data, 8)
    rec = struct.Struct("=qIIQ%dd" % (3 * n))
    rows = []
    for off in range(12, len(data) - rec.size + 1, rec.size):
        v = rec.unpack_from(data, off)
        rows.append((v[0], v[1], v[2], v[3], v[4:4 + n], v[4 + n:4 + 2 * n], v[4 + 2 * n:]))
    return rows


def stop_distance(v, a, A, J):
    """How far a joint at v (rad/s) with acceleration a goes until rest when
    it brakes at jerk J and acceleration A (time-optimal, continuous time)."""
    s = abs(v)
    if s == 0 and a == 0:
        return 0.0
    d = 0.0
    aa = a if v >= 0 else -a
    if aa > 0:  # accelerating away: bring the acceleration to 0 first
        t = aa / J
        d += s * t + aa * t * t / 2 - J * t ** 3 / 6
        s += aa * aa / (2 * J)
    if s >= A * A / J:
        return d + s / 2 * (s / A + A / J)
    return d + s * math.sqrt(s / J)


def judge_trace(rows):
    """Assert the trace's rules; returns (stops judged, holds judged)."""
    vmax, amax, jmax = panda_limits()
    n = len(vmax)
    assert len(rows) > 500, "a trace of %d periods" % len(rows)
    for k, (t, mode, flags, seq, q, dq, ddq) in enumerate(rows):
        for i in range(n):
            assert abs(dq[i]) <= vmax[i] * (1 + 1e-9), (k, i, dq[i])
            assert abs(ddq[i]) <= amax[i] * (1 + 1e-6) + 1e-6, (k, i, ddq[i])
            if k:
                jerk = (ddq[i] - rows[k - 1][6][i]) / DT
                assert abs(jerk) <= jmax[i] * (1 + 1e-6) + 1e-3, (k, i, jerk)
    # after a hold (a hold target, until a newer target): no joint speeds up
    # beyond what bringing its acceleration to 0 at full jerk adds, none
    # reverses, and once at rest the arm stays there
    holds = 0
    hold_seq = None
    for k in range(1, len(rows)):
        t, mode, flags, seq, q, dq, ddq = rows[k]
        if not flags & 1:
            hold_seq = None
            continue
        if seq != hold_seq:
            hold_seq, holds = seq, holds + 1
            v0, a0 = rows[k - 1][5], rows[k - 1][6]
            d0 = [math.copysign(1, v0[i]) if v0[i] else (math.copysign(1, a0[i]) if a0[i] else 0)
                  for i in range(n)]
            peak = [abs(v0[i]) + max(0.0, a0[i] * d0[i]) ** 2 / (2 * jmax[i]) + amax[i] * DT
                    for i in range(n)]
            rested = False
        for i in range(n):
            assert dq[i] * d0[i] >= 0 and (d0[i] or dq[i] == 0), \
                "period %d after the hold %d: joint %d reversed (%.6g rad/s)" % (k, seq, i + 1, dq[i])
            assert abs(dq[i]) <= peak[i], \
                "period %d after the hold %d: joint %d sped up to %.6g rad/s" % (k, seq, i + 1, dq[i])
        if rested:
            assert not any(dq), "period %d: moved after the hold %d without a newer target" % (k, seq)
        rested = rested or not any(dq)
    # every stop (stale targets or a hold): from where it began, no joint
    # goes farther than the limits' stopping distance (plus two periods'
    # travel of the discrete profile); at rest it stays until a newer target
    stops = 0
    k = 1
    while k < len(rows):
        mode, prev_mode = rows[k][1], rows[k - 1][1]
        if mode in (STOPPING, HOLDING) and prev_mode not in (STOPPING, HOLDING):
            q0, v0, a0 = rows[k - 1][4], rows[k - 1][5], rows[k - 1][6]
            allowed = [stop_distance(v0[i], a0[i], amax[i], jmax[i]) + 2 * DT * abs(v0[i]) + 1e-9
                       for i in range(n)]
            j = k
            at_rest = False
            while j < len(rows) and rows[j][1] != TRACKING:
                q, dq, seq = rows[j][4], rows[j][5], rows[j][3]
                for i in range(n):
                    assert abs(q[i] - q0[i]) <= allowed[i], \
                        "period %d: joint %d went %.6g rad in a stop, the limits allow %.6g" % (
                            j, i + 1, abs(q[i] - q0[i]), allowed[i])
                if at_rest and seq == rows[j - 1][3]:
                    assert not any(dq), "period %d: moved at rest without a newer target" % j
                at_rest = at_rest or not any(dq)
                j += 1
            stops += 1
            k = j
        k += 1
    return stops, holds


def exit_counts(drv):
    """The driver's exit lines as numbers: {'targets': .., 'old targets': .., ...}
    and the fault line's {'targets delayed': .., 'states reordered': .., 'stalls': ..}."""
    err = drv.stderr()
    stopping = [l for l in err.splitlines() if "stopping:" in l][0]
    faults = [l for l in err.splitlines() if "faults:" in l][0]
    c = {}
    for num, name in re.findall(r"(\d+) ([a-z ]+?)(?=,|$)", stopping.split("stopping: ")[1]):
        c[name] = int(num)
    body = faults.split("faults: ")[1]
    for part in body.split("; "):
        words = part.split(" ", 1)
        if words[0] in ("targets", "states"):
            for num, what in re.findall(r"(\d+) ([a-z]+)", words[1]):
                c["%s %s" % (words[0], what)] = int(num)
        else:
            num, what = part.split(" ", 1)
            c[what] = int(num)
    return c


def run_episode(request, daemon, tmp_path, fault_args, want_motion=True, during=None):
    """Start the faulty driver and pacd, run an episode until the arm moved
    (or, want_motion False, until pacd sent 40 targets), end it (a hold),
    wait for the arm to be at rest, stop both. Returns (trace rows, the
    driver's counts, pacd's last status, the driver)."""
    endpoint = "ipc://%s" % (tmp_path / "driver.sock")
    trace = str(tmp_path / "driver.trace")
    drv = Driver(request, tmp_path, endpoint, "--seed", "11", "--trace", trace, *fault_args)
    try:
        d = daemon(extra=remote_extra(endpoint))
        feed = FrameFeeder(d.camera())
        d.client.start_episode(max_steps=100000)
        if want_motion:
            st = d.wait_for(lambda s: moved(s, PANDA_HOME, 0.05) and s.hal_targets_sent > 40,
                            feed=feed, what="the arm to move through the faulty link")
        else:
            st = d.wait_for(lambda s: s.hal_targets_sent > 40, feed=feed, what="40 targets sent")
        if during:
            st = during(d, feed, st)
        d.client.end_episode()  # pacd holds the arm: a hold target
        st = d.wait_for(lambda s: s.hal_link_up and len(s.robot_state.joint_velocities) == 7 and
                        max(map(abs, s.robot_state.joint_velocities)) < 1e-9, feed=feed,
                        what="the arm at rest after the episode's hold")
        d.stop()
        assert d.proc.returncode == 0, d.stderr()
    finally:
        if drv.proc.poll() is None:
            drv.stop()
    rows = read_trace(trace)
    counts = exit_counts(drv)
    assert counts["limit violations"] == 0, drv.stderr()
    return rows, counts, st, drv


def test_delayed_targets_and_states_move_within_limits(request, daemon, tmp_path):
    """Half the targets and half the states 20..60 ms late: the arm moves,
    the link stays, every stop and the final hold stay within the limits."""
    rows, c, st, drv = run_episode(request, daemon, tmp_path, [
        "--delay-targets", "0.5", "--delay-states", "0.5", "--delay-ms", "20", "--jitter-ms", "40"])
    assert c["targets delayed"] > 5 and c["states delayed"] > 50, c
    stops, holds = judge_trace(rows)
    assert holds >= 1, "the episode's end held the arm"
    # a target delayed past a newer one is refused as old, never obeyed
    assert c["old targets"] <= c["targets delayed"], c


def test_targets_delayed_past_the_stale_limit_never_move_the_arm(request, daemon, tmp_path):
    """Every target 150 ms late (the stale limit is two 50 ms periods): each
    arrives stale, so the driver never starts a motion; pacd's link stays up
    (states are on time)."""
    rows, c, st, drv = run_episode(request, daemon, tmp_path, [
        "--delay-targets", "1", "--delay-ms", "150"], want_motion=False)
    assert c["targets delayed"] > 20 and c["targets"] > 20, c
    assert c["stale stops"] >= c["targets"] - c["holds"] - 1, c  # each counted once, as it arrived
    assert not any(any(r[5]) for r in rows), "a stale target moved the arm"
    assert all(r[1] in (IDLE, STOPPING, HOLDING) for r in rows)
    judge_trace(rows)
    assert st.hal_link_up


def test_duplicated_targets_and_states_are_refused_or_harmless(request, daemon, tmp_path):
    """Half the targets and states sent twice: each duplicate target is
    refused as old (counted), the motion stays within the limits."""
    rows, c, st, drv = run_episode(request, daemon, tmp_path, [
        "--duplicate-targets", "0.5", "--duplicate-states", "0.5"])
    assert c["targets duplicated"] > 5 and c["states duplicated"] > 50, c
    assert c["old targets"] >= c["targets duplicated"] - 1, c  # the last may be in flight at exit
    # pacd ignores the duplicated states (counted) and reports the driver's counters
    assert 0 < st.hal_states_old <= c["states duplicated"], (st.hal_states_old, c)
    assert 0 < st.hal_driver_counters.targets_old <= c["old targets"], (st.hal_driver_counters, c)
    assert st.hal_driver_errors == 0 and st.hal_driver_mode != 0
    stops, holds = judge_trace(rows)
    assert holds >= 1


def test_reordered_targets_are_refused_and_a_hold_is_not_undone(request, daemon, tmp_path):
    """30 % of targets and states held back and delivered after the next one:
    each late target is refused as old (the newer one was taken); a target
    that arrives after the hold never moves the arm again."""
    rows, c, st, drv = run_episode(request, daemon, tmp_path, [
        "--reorder-targets", "0.3", "--reorder-states", "0.3"])
    assert c["targets reordered"] > 3 and c["states reordered"] > 30, c
    assert c["old targets"] >= c["targets reordered"] - 1, c  # the last may be in flight at exit
    # a state overtaken on the way is older than the one pacd took: ignored, counted
    assert 0 < st.hal_states_old <= c["states reordered"], (st.hal_states_old, c)
    stops, holds = judge_trace(rows)
    assert holds >= 1


def test_stalled_link_holds_both_sides_and_recovers(request, daemon, tmp_path):
    """The link passes nothing for longer than pacd's state age limit: the
    driver stops on stale targets within the stopping distance, pacd counts
    a lost link and holds; after the stall pacd links again, its steps are
    fresh and the driver tracks its targets."""
    stall_ms = int(max(800, 3 * scaled(250)))

    def during(d, feed, st):
        losses0 = st.hal_link_losses
        st = d.wait_for(lambda s: s.hal_link_losses > losses0, feed=feed, timeout=60,
                        what="pacd to lose the stalled link")
        st = d.wait_for(lambda s: s.hal_link_up and s.hal_link_reconnects >= 1, feed=feed,
                        timeout=60, what="the link back after the stall")
        # pacd's steps are fresh again (the policy's targets reach the
        # driver): 20 steps in a row without a stale one
        last = {"stale": None, "since": 0}

        def fresh(s):
            if s.stale_steps != last["stale"]:
                last["stale"], last["since"] = s.stale_steps, s.step
            return s.step - last["since"] >= 20
        return d.wait_for(fresh, feed=feed, timeout=60, what="fresh steps after the stall")

    rows, c, st, drv = run_episode(request, daemon, tmp_path, [
        "--stall-after-ms", "1500", "--stall-ms", str(stall_ms),
        "--stall-every-ms", str(stall_ms + 4000)], during=during)
    assert c["stalls"] >= 1 and c["targets stalled"] > 0 and c["states stalled"] > 0, c
    assert c["stale stops"] >= 1, c
    assert "handshake from pacd accepted" in drv.stderr()
    for line in drv.stderr().splitlines():
        if "at rest after a stale stop" in line:
            used = float(line.split("used ")[1].split(" of")[0])
            assert used <= 1.0, line
    stops, holds = judge_trace(rows)
    assert stops >= 2 and holds >= 1, (stops, holds)
    # the driver tracked pacd's targets again after a stall's stop
    first_stop = next(k for k, r in enumerate(rows) if r[1] == STOPPING)
    assert any(r[1] == TRACKING for r in rows[first_stop:])
