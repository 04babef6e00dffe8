#!/usr/bin/python3
"""A fake Intera robot (a Sawyer's right arm) for pacd-sawyer-driver's test:
a rospy node that plays the robot's side of the topics the driver uses.

- subscribes to /robot/limb/right/joint_command (intera_core_msgs/JointCommand,
  the classes made at run time from the driver's committed .msg files) and
  integrates VELOCITY_MODE commands into the joint positions; when no command
  came for longer than the joint_command_timeout (/robot/limb/right/
  joint_command_timeout, std_msgs/Float64; 0.2 s until set) the arm stops, as
  Intera falls back to holding its position;
- publishes /robot/joint_states (sensor_msgs/JointState) at 100 Hz with the
  arm's joints among others (head_pan, a gripper joint) in a shuffled order,
  and /robot/limb/right/endpoint_state (intera_core_msgs/EndpointState) with
  a pose made from the joints;
- records what it received (each command with its receive time on this
  node's clock, the timeouts, /robot/set_super_enable) and what it published
  last.

Control on stdin, one command a line (answers on stdout):
  dump PATH         write the record as JSON to PATH, answer "dumped PATH"
  bad KIND COUNT    the next COUNT joint states are bad: KIND names (right_j6
                    missing), nan (a non-finite position), short (fewer
                    velocities than names) or pose (good joint states, the
                    endpoint state marked not valid); then good again
  good              end a run of bad joint states
It prints "ready" once it publishes. SIGTERM / end of stdin: exit 0."""
import argparse
import json
import math
import os
import signal
import sys
import threading
import time

import genmsg
import genmsg.gentools
import genmsg.msg_loader
import genpy.dynamic
import rospy
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64

JOINTS = ["right_j%d" % i for i in range(7)]
# the order on the wire: by name, never by position
WIRE_NAMES = ["head_pan", "right_j6", "right_j0", "right_j1", "right_j2", "right_j3", "right_j4",
              "right_j5", "right_gripper_l_finger_joint"]


def intera_classes(msg_dir):
    """intera_core_msgs JointCommand and EndpointState classes from the .msg
    files in msg_dir (std_msgs and geometry_msgs from Debian's packages)."""
    ctx = genmsg.MsgContext.create_default()
    search = {"intera_core_msgs": [msg_dir], "std_msgs": ["/usr/share/std_msgs/msg"],
              "geometry_msgs": ["/usr/share/geometry_msgs/msg"]}
    out = {}
    for name in ("JointCommand", "EndpointState"):
        full = "intera_core_msgs/" + name
        spec = genmsg.msg_loader.load_msg_from_file(ctx, os.path.join(msg_dir, name + ".msg"), full)
        genmsg.msg_loader.load_depends(ctx, spec, search)
        text = genmsg.gentools.compute_full_text(ctx, spec)
        out[name] = genpy.dynamic.generate_dynamic(full, text)[full]
    return out


def ee_pose(q):
    """A made-up but smooth end point: position from three joints, a
    rotation about z by the last one (w, x, y, z)."""
    pos = [0.4 + 0.1 * math.sin(q[0]), 0.1 * q[1], 0.3 + 0.05 * q[3]]
    quat = [math.cos(q[6] / 2), 0.0, 0.0, math.sin(q[6] / 2)]
    return pos, quat


class FakeIntera:
    def __init__(self, q0, classes):
        self.lock = threading.Lock()
        self.q = list(q0)
        self.v = [0.0] * 7          # the commanded velocity in force
        self.last_cmd = None        # when it came (this node's monotonic clock)
        self.timeout = 0.2
        self.commands, self.timeouts, self.enables, self.bad_modes = [], [], [], []
        self.published = None
        self.bad = None             # [kind, count left]
        self.bad_sent = 0
        self.classes = classes

    def on_command(self, m):
        t = time.monotonic()
        with self.lock:
            self.commands.append({"t": t, "stamp": m.header.stamp.to_sec(), "mode": m.mode,
                                  "names": list(m.names), "velocity": list(m.velocity)})
            if m.mode == 2 and list(m.names) == JOINTS and len(m.velocity) == 7 and \
                    all(math.isfinite(x) for x in m.velocity):
                self.v = list(m.velocity)
                self.last_cmd = t
            else:
                self.bad_modes.append(m.mode)

    def on_timeout(self, m):
        with self.lock:
            self.timeouts.append(m.data)
            self.timeout = m.data

    def on_enable(self, m):
        with self.lock:
            self.enables.append(m.data)

    def step(self, dt, now, js_pub, ee_pub):
        with self.lock:
            fresh = self.last_cmd is not None and now - self.last_cmd <= self.timeout
            v = self.v if fresh else [0.0] * 7
            self.q = [a + b * dt for a, b in zip(self.q, v)]
            q, eff = list(self.q), [0.1 * (i + 1) for i in range(7)]
            bad = None
            if self.bad:
                bad = self.bad[0]
                self.bad[1] -= 1
                self.bad_sent += 1
                if self.bad[1] <= 0:
                    self.bad = None
        by_name = {n: i for i, n in enumerate(JOINTS)}
        js = JointState()
        js.header.stamp = rospy.Time.now()
        js.name = list(WIRE_NAMES)
        js.position = [q[by_name[n]] if n in by_name else 0.01 for n in WIRE_NAMES]
        js.velocity = [v[by_name[n]] if n in by_name else 0.0 for n in WIRE_NAMES]
        js.effort = [eff[by_name[n]] if n in by_name else 0.0 for n in WIRE_NAMES]
        if bad == "names":
            i = js.name.index("right_j6")
            for a in (js.name, js.position, js.velocity, js.effort):
                del a[i]
        elif bad == "nan":
            js.position[js.name.index("right_j2")] = float("nan")
        elif bad == "short":
            js.velocity = js.velocity[:-2]
        js_pub.publish(js)
        pos, quat = ee_pose(q)
        ee = self.classes["EndpointState"]()
        ee.header.stamp = js.header.stamp
        ee.pose.position.x, ee.pose.position.y, ee.pose.position.z = pos
        (ee.pose.orientation.w, ee.pose.orientation.x, ee.pose.orientation.y,
         ee.pose.orientation.z) = quat
        ee.valid = bad != "pose"  # "pose": good joint states, a pose marked not valid
        ee_pub.publish(ee)
        if bad is None:
            with self.lock:
                self.published = {"t": now, "q": q, "dq": list(v), "effort": eff,
                                  "pose": pos + quat}

    def record(self):
        with self.lock:
            return {"commands": list(self.commands), "timeouts": list(self.timeouts),
                    "enables": list(self.enables), "bad_modes": list(self.bad_modes),
                    "published": self.published, "q": list(self.q), "bad_sent": self.bad_sent}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--msg-dir", required=True, help="the driver's intera_core_msgs .msg files")
    ap.add_argument("--q0", required=True, help="7 joint positions, rad, comma-separated")
    args = ap.parse_args()
    q0 = [float(x) for x in args.q0.split(",")]
    assert len(q0) == 7
    classes = intera_classes(args.msg_dir)
    fake = FakeIntera(q0, classes)
    rospy.init_node("fake_intera", disable_signals=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    rospy.Subscriber("/robot/limb/right/joint_command", classes["JointCommand"], fake.on_command,
                     queue_size=100, tcp_nodelay=True)
    rospy.Subscriber("/robot/limb/right/joint_command_timeout", Float64, fake.on_timeout)
    rospy.Subscriber("/robot/set_super_enable", Bool, fake.on_enable)
    js_pub = rospy.Publisher("/robot/joint_states", JointState, queue_size=10, tcp_nodelay=True)
    ee_pub = rospy.Publisher("/robot/limb/right/endpoint_state", classes["EndpointState"],
                             queue_size=10, tcp_nodelay=True)

    def control():
        for line in sys.stdin:
            w = line.split()
            if w and w[0] == "dump":
                with open(w[1] + ".tmp", "w") as f:
                    json.dump(fake.record(), f)
                os.rename(w[1] + ".tmp", w[1])
                print("dumped", w[1], flush=True)
            elif w and w[0] == "bad":
                with fake.lock:
                    fake.bad = [w[1], int(w[2])]
            elif w and w[0] == "good":
                with fake.lock:
                    fake.bad = None
        stop.set()

    threading.Thread(target=control, daemon=True).start()
    print("ready", flush=True)
    period = 0.01
    last = time.monotonic()
    nxt = last + period
    while not stop.is_set():
        time.sleep(max(0.0, nxt - time.monotonic()))
        now = time.monotonic()
        fake.step(now - last, now, js_pub, ee_pub)
        last = now
        nxt += period
        if nxt < now:
            nxt = now + period
    rospy.signal_shutdown("done")


if __name__ == "__main__":
    main()
