#!/usr/bin/python3
"""Checks hal's robot tables and forward kinematics against the MuJoCo
Menagerie models, independently of the C code.

This script parses the menagerie XML itself (body pos/quat chain, hinge axes,
joint ranges, the "home" keyframe), computes the end-effector pose with numpy
for random joint vectors, and compares with the C FK (hal-fk-tool).

For the Panda the C side uses the Franka DH table, so agreement with the
MuJoCo body chain is also a check of the two models against each other.

usage: test_fk.py HAL_FK_TOOL [MENAGERIE_DIR]
$PACD_DATA_DIR/menagerie, when set, wins over MENAGERIE_DIR, which
defaults to /work/shared/data/menagerie. Exit 77 (skip) when the models are missing.
"""
import os
import subprocess
import sys
import unittest
import xml.etree.ElementTree as ET

import numpy as np

TOOL = None
MENAGERIE = None

# What the C FK returns, per robot: (XML file, chain end body, offset in
# that body's frame as (pos, quat wxyz)). Panda: the Franka Hand TCP is
# 0.1034 m along the hand body's z (Franka docs F_T_EE; the menagerie hand
# body already carries the -pi/4 rotation). Sawyer: site attachment_site.
ROBOTS = {
    "panda": ("franka_emika_panda/panda.xml", "hand", None),
    "sawyer": ("rethink_robotics_sawyer/sawyer.xml", "right_l6", "attachment_site"),
}
PANDA_TCP = ((0.0, 0.0, 0.1034), (1.0, 0.0, 0.0, 0.0))


def vec(s, n, default):
    if s is None:
        return np.array(default, dtype=float)
    v = np.array([float(x) for x in s.split()], dtype=float)
    assert v.shape == (n,), s
    return v


def quat_to_mat(q):
    q = np.asarray(q, dtype=float)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def axis_angle(axis, angle):
    a = np.asarray(axis, dtype=float)
    a = a / np.linalg.norm(a)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


class Model:
    """The parts of a menagerie MJCF needed for kinematics."""

    def __init__(self, path):
        self.root = ET.parse(path).getroot()
        self.defaults = {}  # class -> {joint attrs}
        for d in self.root.iter("default"):
            cls = d.get("class")
            j = d.find("joint")
            if cls is not None and j is not None:
                self.defaults[cls] = dict(j.attrib)
        self.parent_class = {}
        for d in self.root.iter("default"):
            for child in d.findall("default"):
                self.parent_class[child.get("class")] = d.get("class")

    def joint_attr(self, joint, cls, name):
        if joint.get(name) is not None:
            return joint.get(name)
        c = joint.get("class", cls)
        while c is not None:
            if name in self.defaults.get(c, {}):
                return self.defaults[c][name]
            c = self.parent_class.get(c)
        return None

    def chain(self, end_body):
        """[(body element, childclass in effect)] from the world to end_body."""
        def walk(elem, cls, path):
            for b in elem.findall("body"):
                c = b.get("childclass", cls)
                p = path + [(b, c)]
                if b.get("name") == end_body:
                    return p
                r = walk(b, c, p)
                if r:
                    return r
            return None
        return walk(self.root.find("worldbody"), None, [])

    def hinges(self, end_body):
        """[(joint name, range, axis)] along the chain, in order."""
        out = []
        for body, cls in self.chain(end_body):
            for j in body.findall("joint"):
                out.append((j.get("name"), vec(self.joint_attr(j, cls, "range"), 2, [0, 0]),
                            vec(self.joint_attr(j, cls, "axis"), 3, [0, 0, 1])))
        return out

    def fk(self, end_body, q, site=None, extra=None):
        R, p = np.eye(3), np.zeros(3)
        k = 0
        for body, cls in self.chain(end_body):
            bp = vec(body.get("pos"), 3, [0, 0, 0])
            bq = vec(body.get("quat"), 4, [1, 0, 0, 0])
            p = p + R @ bp
            R = R @ quat_to_mat(bq)
            for j in body.findall("joint"):
                assert self.joint_attr(j, cls, "type") in (None, "hinge"), "hinge joints only"
                jp = vec(j.get("pos"), 3, [0, 0, 0])
                axis = vec(self.joint_attr(j, cls, "axis"), 3, [0, 0, 1])
                # rotation about the axis through the joint's anchor point
                Rj = axis_angle(axis, q[k])
                p = p + R @ (jp - Rj @ jp)
                R = R @ Rj
                k += 1
        if site is not None:
            s = [e for e in self.chain(end_body)[-1][0].findall("site") if e.get("name") == site][0]
            p = p + R @ vec(s.get("pos"), 3, [0, 0, 0])
            R = R @ quat_to_mat(vec(s.get("quat"), 4, [1, 0, 0, 0]))
        if extra is not None:
            p = p + R @ np.array(extra[0])
            R = R @ quat_to_mat(extra[1])
        assert k == len(q), "q has %d values, chain has %d hinges" % (len(q), k)
        return p, R

    def keyframe(self, name):
        for key in self.root.iter("key"):
            if key.get("name") == name:
                return np.array([float(x) for x in key.get("qpos").split()])
        return None


def c_fk(robot, qs):
    text = "\n".join(" ".join("%.17g" % v for v in q) for q in qs) + "\n"
    out = subprocess.run([TOOL, robot, "fk"], input=text, capture_output=True, text=True,
                         check=True).stdout
    return np.array([[float(x) for x in line.split()] for line in out.strip().splitlines()])


def c_limits(robot):
    out = subprocess.run([TOOL, robot, "limits"], capture_output=True, text=True,
                         check=True).stdout
    rows = {}
    for line in out.strip().splitlines():
        name, *vals = line.split()
        rows[name] = np.array([float(v) for v in vals])
    return rows


class FkTest(unittest.TestCase):
    def model(self, robot):
        return Model(os.path.join(MENAGERIE, ROBOTS[robot][0]))

    def check_fk(self, robot, extra=None):
        m = self.model(robot)
        _, end, site = ROBOTS[robot]
        hinges = m.hinges(end)
        self.assertEqual(len(hinges), 7)
        lo = np.array([h[1][0] for h in hinges])
        hi = np.array([h[1][1] for h in hinges])
        rng = np.random.default_rng(12345)
        # random poses inside the limits, plus poses spread over +-pi
        qs = list(rng.uniform(lo, hi, size=(200, 7))) + list(rng.uniform(-np.pi, np.pi, (50, 7)))
        poses = c_fk(robot, qs)
        self.assertEqual(poses.shape, (len(qs), 7))
        for q, pose in zip(qs, poses):
            p, R = m.fk(end, q, site=site, extra=extra)
            np.testing.assert_allclose(pose[:3], p, atol=1e-6,
                                       err_msg="%s position at q=%s" % (robot, q))
            quat = pose[3:]
            self.assertAlmostEqual(np.linalg.norm(quat), 1.0, places=9)
            self.assertGreaterEqual(quat[0], 0.0)
            np.testing.assert_allclose(quat_to_mat(quat), R, atol=1e-6,
                                       err_msg="%s orientation at q=%s" % (robot, q))

    def test_panda_dh_matches_menagerie_chain(self):
        self.check_fk("panda", extra=PANDA_TCP)

    def test_sawyer_matches_menagerie_chain(self):
        self.check_fk("sawyer")

    def check_tables(self, robot):
        m = self.model(robot)
        _, end, _ = ROBOTS[robot]
        hinges = m.hinges(end)
        t = c_limits(robot)
        np.testing.assert_allclose(t["q_min"], [h[1][0] for h in hinges], atol=1e-12)
        np.testing.assert_allclose(t["q_max"], [h[1][1] for h in hinges], atol=1e-12)
        home = m.keyframe("home")
        self.assertIsNotNone(home, "%s model has no 'home' keyframe" % robot)
        np.testing.assert_allclose(t["q_home"], home[:7], atol=1e-12)
        return m, t, home

    def test_panda_tables_match_menagerie(self):
        m, t, home = self.check_tables("panda")
        # two fingers, each a slide joint 0..0.04 (hand part of panda.xml)
        fingers = [j for j in m.root.iter("joint") if j.get("class") == "finger"]
        self.assertEqual(len(fingers), 2)
        total = sum(vec(m.joint_attr(j, "panda", "range"), 2, [0, 0])[1] for j in fingers)
        self.assertAlmostEqual(t["gripper_max"][0], total, places=12)

    def test_sawyer_tables_match_menagerie(self):
        _, t, _ = self.check_tables("sawyer")
        self.assertEqual(t["gripper_max"][0], 0.0)


def main():
    global TOOL, MENAGERIE
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    TOOL = sys.argv[1]
    if os.environ.get("PACD_DATA_DIR"):
        MENAGERIE = os.path.join(os.environ["PACD_DATA_DIR"], "menagerie")
    elif len(sys.argv) > 2:
        MENAGERIE = sys.argv[2]
    else:
        MENAGERIE = "/work/shared/data/menagerie"
    if not os.path.isfile(os.path.join(MENAGERIE, ROBOTS["panda"][0])):
        print("menagerie models not found in %s: skipping (set PACD_DATA_DIR)" % MENAGERIE)
        return 77
    prog = unittest.main(argv=[sys.argv[0], "-v"], exit=False)
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
