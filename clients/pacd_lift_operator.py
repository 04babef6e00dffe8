#!/usr/bin/python3
"""A scripted operator for the MuJoCo SawyerLift cell, driving the arm through pacd.

It is what a person with a spacemouse does when collecting demonstrations, as
a program: it watches pacd's telemetry (the robot state of the last tick and
the Lift task's cube pose, both in the robot base frame), and at every tick
publishes a teleoperator action (topic `teleop_action`, CARTESIAN_VELOCITY:
vx vy vz in m/s, wz in rad/s, gripper in [-1, 1], -1 closes) to pacd's state
socket. pacd runs in `[pacd] mode = teleop`: the action passes pacd's
Cartesian mapping and safety filter and is logged as the action taken.

    pacd_lift_operator.py operate  --episodes 50 --seed 1000 [--skill 0.3]
    pacd_lift_operator.py evaluate --episodes 20 --seed 5000   # the policy drives

Both print one line per episode and then the success rate with its 95%
Wilson interval (docs/loop.md). `evaluate` is the same episode driver without
actions: pacd must run in control mode with the checkpoint to evaluate.

The grasp (facts measured on the SawyerLift scenes with MuJoCo 2.2.2):
proportional control of the pinch point, gain 2 /s on position (clipped at
0.3 m/s; the checkpoint's action bounds may clip harder) and 2 /s on yaw
(clipped at 1 rad/s); the finger axis turned to the cube face nearest its
current direction (at most 45 degrees); phases: 0.10 m above the cube (within
1 cm, yaw error < 0.03 rad) -> down to the cube centre minus 5 mm (within
4 mm) -> close for 0.5 s -> lift 0.15 m at 0.1 m/s. An operator with
skill 1 lifts the cube in almost every start.

The skill knob makes mixed-quality data, as the PAC paper's sub-optimal data
(it succeeds 28% of the time): with probability `skill` an episode is carried
out as above; otherwise it has one deliberate mistake, drawn uniformly from
  high     closes 2.5-4 cm above the grasp height (the fingers miss the cube),
  offset   aims 3-4.5 cm beside the cube in a random direction,
  release  opens the gripper again after closing it, instead of lifting,

and every episode gets Gaussian action noise (`--noise`, m/s). `--drift`
(m/s, default 0) adds a slowly varying x-y velocity disturbance during the
approach (an Ornstein-Uhlenbeck process with that standard deviation and a
time constant of `--drift-tau-s`): the arm wanders off its path and the
controller brings it back, so the data shows corrections from states beside
the path, as a human operator's would. `--waver P` (default 0: off) makes
an operator who hesitates between the cube and a point beside it: every
episode gets an offset point as in the "offset" mistake, and during the
approach the operator re-draws every 5-15 ticks whether it heads for the
cube (probability P) or for that point; the descent goes where it was
heading when it arrived. Failed and successful episodes then pass through
the same states, and there the action, not the state, tells them apart
(what a critic needs to learn an action-dependent Q: docs/loop.md). The
high and release mistakes stay per episode. The draws come
from the episode's seed, so a seed list gives the same episodes again. The
default skill (0.3) gives a success rate of roughly 20-40% (docs/loop.md).
"""
import argparse
import math
import os
import random
import sys
import time

import zmq

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)
sys.path.insert(0, os.path.join(_HERE, "..", "policy", "torch"))
import pacd_client  # noqa: E402
from pacd_torch.stats import format_rate  # noqa: E402
from pacd_client import pb  # noqa: E402

POS_GAIN = 2.0        # 1/s
POS_CLIP = 0.3        # m/s
YAW_GAIN = 2.0        # 1/s
YAW_CLIP = 1.0        # rad/s
APPROACH_HEIGHT = 0.10  # m above the cube centre
APPROACH_TOL = 0.01   # m
YAW_TOL = 0.03        # rad
GRASP_DEPTH = 0.005   # m below the cube centre
GRASP_TOL = 0.004     # m
CLOSE_S = 0.5         # s with the gripper closing before the lift
LIFT_HEIGHT = 0.15    # m
LIFT_SPEED = 0.1      # m/s
GIVE_UP_S = 1.0       # s after the script ended without success: end the episode
STUCK_S = 5.0         # s in approach or descend without reaching the target: give up
MISTAKES = ("high", "offset", "release")


def _wrap_quarter(a):
    """a modulo pi/2, into [-pi/4, pi/4)."""
    q = math.pi / 2
    return (a + math.pi / 4) % q - math.pi / 4


def finger_angle(qw, qx, qy, qz):
    """Direction (rad, about base z) of the end effector's y axis (the finger
    closing axis) projected on the base xy plane."""
    yx = 2 * (qx * qy - qw * qz)
    yy = 1 - 2 * (qx * qx + qz * qz)
    return math.atan2(yy, yx)


def yaw_of(qw, qx, qy, qz):
    """Rotation (rad) about base z of a body resting flat on the table."""
    return math.atan2(2 * (qw * qz + qx * qy), 1 - 2 * (qy * qy + qz * qz))


class LiftScript:
    """The scripted grasp for one episode. act() takes the pinch point
    position (m, base frame) and orientation (qw qx qy qz), the cube centre
    (m, base frame) and yaw (rad), and returns [vx, vy, vz, wz, gripper]."""

    def __init__(self, rate_hz=20.0, mistake=None, rng=None, noise=0.0, align_yaw=True,
                 drift=0.0, drift_tau_s=1.0, waver=0.0):
        self.dt = 1.0 / rate_hz
        self.drift = drift
        self.drift_decay = math.exp(-self.dt / drift_tau_s) if drift_tau_s > 0 else 0.0
        self.drift_v = [0.0, 0.0]
        self.align_yaw = align_yaw
        self.mistake = mistake
        self.rng = rng or random.Random(0)
        self.noise = noise
        self.phase = "approach"
        self.ticks_in_phase = 0
        self.grasp_z = None
        self.offset = (0.0, 0.0)
        self.grasp_extra = 0.0
        self.release = False
        if mistake == "high":
            self.grasp_extra = self.rng.uniform(0.025, 0.04)
        elif mistake == "offset":
            a = self.rng.uniform(-math.pi, math.pi)
            d = self.rng.uniform(0.03, 0.045)
            self.offset = (d * math.cos(a), d * math.sin(a))
        elif mistake == "release":
            self.release = True
        elif mistake is not None:
            raise ValueError("unknown mistake %r (%s)" % (mistake, ", ".join(MISTAKES)))
        # wavering (waver > 0): the point beside the cube, and whether the
        # current approach segment heads for the cube (True) or for it
        self.waver = waver
        self.waver_left = 0
        self.waver_good = True
        self.beside = self.offset
        if waver > 0:
            if mistake != "offset":
                a = self.rng.uniform(-math.pi, math.pi)
                d = self.rng.uniform(0.03, 0.045)
                self.beside = (d * math.cos(a), d * math.sin(a))
            self.offset = (0.0, 0.0)

    def _goto(self, ee, target, clip=POS_CLIP):
        v = [POS_GAIN * (t - e) for t, e in zip(target, ee)]
        n = math.sqrt(sum(x * x for x in v))
        if n > clip:
            v = [x * clip / n for x in v]
        return v

    def _set(self, phase):
        self.phase = phase
        self.ticks_in_phase = 0

    def act(self, ee, ee_quat, cube, cube_yaw):
        yaw_err = _wrap_quarter(cube_yaw - finger_angle(*ee_quat)) if self.align_yaw else 0.0
        wz = max(-YAW_CLIP, min(YAW_CLIP, YAW_GAIN * yaw_err))
        if self.waver > 0 and self.phase == "approach":
            if self.waver_left <= 0:
                self.waver_good = self.rng.random() < self.waver
                self.waver_left = self.rng.randint(5, 15)
            self.waver_left -= 1
            self.offset = (0.0, 0.0) if self.waver_good else self.beside
        gx, gy = cube[0] + self.offset[0], cube[1] + self.offset[1]
        grip = 1.0
        if self.phase == "approach":
            target = (gx, gy, cube[2] + APPROACH_HEIGHT)
            err = math.dist(ee, target)
            if err < APPROACH_TOL and abs(yaw_err) < YAW_TOL:
                self._set("descend")
        if self.phase == "descend":
            target = (gx, gy, cube[2] - GRASP_DEPTH + self.grasp_extra)
            if math.dist(ee, target) < GRASP_TOL:
                self._set("close")
                self.grasp_z = ee[2]
        if self.phase == "close":
            target = tuple(ee)
            grip = -1.0
            wz = 0.0
            if self.ticks_in_phase * self.dt >= CLOSE_S:
                self._set("released" if self.release else "lift")
        if self.phase == "lift":
            grip = -1.0
            wz = 0.0
            target = (ee[0], ee[1], self.grasp_z + LIFT_HEIGHT)
            if ee[2] >= self.grasp_z + LIFT_HEIGHT - GRASP_TOL:
                self._set("done")
        if self.phase in ("released", "done"):
            grip = 1.0 if self.phase == "released" else -1.0
            target = tuple(ee)
            wz = 0.0
        clip = LIFT_SPEED if self.phase == "lift" else POS_CLIP
        v = self._goto(ee, target, clip)
        if self.noise > 0:
            v = [x + self.rng.gauss(0.0, self.noise) for x in v]
        if self.drift > 0 and self.phase == "approach":
            # Ornstein-Uhlenbeck: stationary std `drift`, correlation time drift_tau_s
            a = self.drift_decay
            k = self.drift * math.sqrt(1.0 - a * a)
            self.drift_v = [a * d + k * self.rng.gauss(0.0, 1.0) for d in self.drift_v]
            v = [v[0] + self.drift_v[0], v[1] + self.drift_v[1], v[2]]
        self.ticks_in_phase += 1
        return [v[0], v[1], v[2], wz, grip]

    def finished(self):
        """True once the script has nothing left to do (it has lifted, or
        released, GIVE_UP_S ago), or has been stuck in approach or descend
        for STUCK_S (fingers on the cube): the operator ends the episode."""
        t = self.ticks_in_phase * self.dt
        if self.phase in ("approach", "descend"):
            return t >= STUCK_S
        return self.phase in ("released", "done") and t >= GIVE_UP_S


def task_values(telemetry):
    return {v.name: v.value for v in telemetry.task_info}


def cube_pose(values):
    """(x, y, z) m and yaw rad of the cube in the base frame from the Lift
    task's values, or None when the telemetry carries none."""
    try:
        p = (values["cube_x"], values["cube_y"], values["cube_z"])
        q = (values["cube_qw"], values["cube_qx"], values["cube_qy"], values["cube_qz"])
    except KeyError:
        return None
    return p, yaw_of(*q)


class EpisodeDriver:
    """Runs episodes through pacd: starts each with its seed, follows the
    telemetry tick by tick, sends the script's actions (operate) or none
    (evaluate), and reads the outcome from pacd's counters: an episode
    succeeded when it ended on a terminal step (the Lift task's success)."""

    def __init__(self, control=pacd_client.CONTROL, telemetry=pacd_client.TELEMETRY,
                 state=pacd_client.STATE, key=pacd_client.KEY,
                 server_key=pacd_client.SERVER_KEY, timeout_s=10.0):
        self.ctx = zmq.Context.instance()
        self.client = pacd_client.Client(control, ctx=self.ctx, key=key, server_key=server_key)
        keys = pacd_client.load_keys(key, server_key)
        self.sub = self.ctx.socket(zmq.SUB)
        pacd_client._curve(self.sub, keys)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.RCVHWM, 4)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"telemetry")
        self.sub.connect(telemetry)
        self.pub = pacd_client.StatePublisher(state, ctx=self.ctx, key=key,
                                              server_key=server_key)
        self.timeout_s = timeout_s
        self.seq = 0

    def close(self):
        self.sub.close()
        self.pub.close()
        self.client.close()

    def _next(self):
        if not self.sub.poll(int(self.timeout_s * 1000)):
            raise pacd_client.PacdError("no telemetry within %.0f s" % self.timeout_s)
        parts = self.sub.recv_multipart()
        t = pb.Telemetry()
        t.ParseFromString(parts[-1])
        return t

    def send_action(self, values):
        self.seq += 1
        a = pb.Action(space=pb.CARTESIAN_VELOCITY, values=values,
                      time_unix_ns=time.time_ns(), seq=self.seq)
        self.pub.sock.send_multipart([b"teleop_action", a.SerializeToString()])

    def run(self, seed, script=None, max_steps=0):
        """One episode; returns a dict with its id, steps, success, and the
        log path."""
        before = self.client.status()
        reply = self.client.start_episode(max_steps=max_steps, seed=seed)
        episode_id = reply.episode_id
        last_step = None
        steps = 0
        ended_by_operator = False
        while True:
            t = self._next()
            if t.episode_id != episode_id:
                continue
            if t.state == pb.IDLE or t.episodes_terminal > before.episodes_terminal:
                break
            if t.step == last_step:
                continue
            last_step = t.step
            steps = t.step + 1
            if script is None:
                continue
            cube = cube_pose(task_values(t))
            if cube is None or not t.HasField("robot_state"):
                self.send_action([0.0, 0.0, 0.0, 0.0, 1.0])
                continue
            e = t.robot_state.end_effector
            a = script.act((e.x, e.y, e.z), (e.qw, e.qx, e.qy, e.qz), cube[0], cube[1])
            self.send_action(a)
            if script.finished() and not ended_by_operator:
                self.client.end_episode(check=False)
                ended_by_operator = True
        after = self.client.status()
        while after.state != pb.IDLE:
            time.sleep(0.05)
            after = self.client.status()
        return {"episode_id": episode_id, "seed": seed, "steps": steps,
                "success": after.episodes_terminal > before.episodes_terminal,
                "log_path": after.log_path}


def mistake_for(seed, skill):
    """The deliberate mistake of the episode with this seed (None: none)."""
    rng = random.Random(seed * 7919 + 17)
    if rng.random() < skill:
        return None
    return rng.choice(MISTAKES)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("command", choices=("operate", "evaluate"))
    ap.add_argument("--episodes", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1000, help="seed of the first episode; "
                    "episode i has seed + i")
    ap.add_argument("--skill", type=float, default=0.3,
                    help="probability of an episode without a deliberate mistake (0..1)")
    ap.add_argument("--noise", type=float, default=0.01, help="action noise, m/s (std)")
    ap.add_argument("--drift", type=float, default=0.0,
                    help="x-y velocity disturbance during the approach, m/s (std; 0: none)")
    ap.add_argument("--drift-tau-s", type=float, default=1.0,
                    help="the disturbance's correlation time, s")
    ap.add_argument("--waver", type=float, default=0.0,
                    help="approach wavering between the cube and a point beside it: the "
                    "probability of heading for the cube in each 5-15 tick segment "
                    "(0: off)")
    ap.add_argument("--mistake", choices=MISTAKES, default=None,
                    help="give every episode this mistake (tests of the mistakes)")
    ap.add_argument("--keep-yaw", action="store_true",
                    help="do not turn the fingers to the cube face: grasp at the start "
                    "orientation (wz 0; docs/loop.md says when that is wanted)")
    ap.add_argument("--rate", type=float, default=20.0, help="pacd's [pacd] rate_hz")
    ap.add_argument("--max-steps", type=int, default=0, help="0: pacd's [episode] max_steps")
    ap.add_argument("--timeout", type=float, default=10.0, help="s without telemetry")
    args = ap.parse_args(argv)
    if not 0.0 <= args.skill <= 1.0:
        ap.error("--skill is a probability: 0..1")
    if not 0.0 <= args.waver <= 1.0:
        ap.error("--waver is a probability: 0..1")
    drv = EpisodeDriver(timeout_s=args.timeout)
    wins = 0
    try:
        for i in range(args.episodes):
            seed = args.seed + i
            script = None
            mistake = None
            if args.command == "operate":
                mistake = args.mistake or mistake_for(seed, args.skill)
                script = LiftScript(args.rate, mistake, random.Random(seed), args.noise,
                                    align_yaw=not args.keep_yaw, drift=args.drift,
                                    drift_tau_s=args.drift_tau_s, waver=args.waver)
            r = drv.run(seed, script, args.max_steps)
            wins += r["success"]
            print("episode %d seed %d: %s in %d steps%s  %s" % (
                i, seed, "success" if r["success"] else "failure", r["steps"],
                " (mistake: %s)" % mistake if mistake else "", r["log_path"]), flush=True)
    finally:
        drv.close()
    if args.episodes > 0:
        print("success: %s (95%% Wilson interval)" % format_rate(wins, args.episodes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
