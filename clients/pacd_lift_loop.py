#!/usr/bin/python3
"""The offline actor-critic loop in the MuJoCo SawyerLift cell, end to end, through pacd.

    deploy/run-loop.sh [--smoke] [--out DIR]    (this program, with the build's paths)

1. collect: pacd in teleop mode, the scripted operator (pacd_lift_operator.py)
   at the default skill: the behaviour data, logged by pacd;
2. export: `pacctl log export` -> one HDF5 data set;
3. train: pacd_torch.train, low-dim size, for bc, fbc, bcq, pac and
   pac-2stage. pac: actor and critic trained together (--critic-steps) as in
   the paper, the TD target's next decision sampled from the target policy,
   started from the BC row's actor, the improvement's samples within that
   actor's support (docs/loop.md, "Ninth sitting"); pac-2stage: a critic
   trained first (bcq on the behaviour's Q, --critic-steps), then only the
   actor against it, within the same support ("Seventh sitting");
4. evaluate: each checkpoint in pacd (control mode, sampled actions, one
   sampling seed) over the same fixed seeds, none of them seen in collection;
5. round 2: pac (else pac-2stage) in control mode with sampling collects its
   own episodes; on the behaviour data plus them pac trains on from its
   round-1 checkpoint (pac-2stage: both stages again), and is evaluated
   again;
6. the table: success rates with 95% Wilson intervals, as markdown (stdout and
   DIR/results.md) and JSON (DIR/results.json).

--variant camera logs the 64x64 agentview camera with every step and trains
the camera model (proprioception and the camera, no privileged field) instead
of the low-dim one. --smoke makes every stage tiny (a few episodes, a few dozen gradient steps):
it checks the path, not the numbers. --data reuses a behaviour data set
(skips 1 and 2); --algos "" stops after the export. pacd runs on the
simulated clock (PACD_LOOP_CLOCK=real: real time at 20 Hz).
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(SRC, "policy", "torch"))
# pacd_client finds the generated pacd_pb2 through PACD_BUILD_DIR when it is
# imported, before the arguments are parsed: --build sets it first
for _i, _a in enumerate(sys.argv[:-1]):
    if _a == "--build":
        os.environ["PACD_BUILD_DIR"] = os.path.abspath(sys.argv[_i + 1])
import pacd_client  # noqa: E402
import pacd_lift_operator as op  # noqa: E402
from pacd_torch import dataset as pds  # noqa: E402
from pacd_torch.stats import format_rate, wilson  # noqa: E402

LIFT_SCENE = os.path.join(SRC, "..", "shared", "data", "robosuite", "assets", "demonstrations",
                          "SawyerLift", "models", "model_1.xml")
# Cartesian velocity of the pinch point (m/s), yaw rate (rad/s), gripper
ACTION = {"space": "cartesian_velocity", "dim": 5, "low": [-0.15, -0.15, -0.15, -1.0, -1.0],
          "high": [0.15, 0.15, 0.15, 1.0, 1.0]}


# Logged, but not shown to the models: both echo the last action (the arm's
# joint velocities are the last command, filtered), and a cloned policy that
# sees its last action keeps doing it (the "copycat" failure of behaviour
# cloning): it overshoots the cube at full speed and, once stopped, stays.
TRAIN_EXCLUDE = ("previous_action", "joint_velocities")
# The camera model's training (docs/loop.md, "Twelfth sitting"): an auxiliary
# head predicts the privileged cube pose from its latents (weight 10), so the
# encoder learns where the cube is in the pixels (the deployed model never
# reads the cube pose).
CAMERA_TRAIN = ["--aux", "10"]
# pac-2stage (docs/loop.md, "Seventh sitting"): decisions of five periods;
# stage 1 bcq on the behaviour's Q with 2-decision targets, stage 2 the actor
# alone against it (alpha 0.25 on BC, eta 0.02, samples within the support)
TWO_STAGE_COMMON = ["--action-repeat", "5"]
TWO_STAGE_CRITIC = ["--bootstrap", "data", "--n-step", "2"]
# the actor loss of both: 0.25 on BC, the improvement at a fixed temperature
ACTOR_LOSS = ["--alpha", "0.25", "--eta", "0.02"]
TWO_STAGE_ACTOR = ACTOR_LOSS + ["--support", "0.1"]
# pac (docs/loop.md, "Ninth sitting"): the paper's joint training, actor and
# critic together for --critic-steps, the TD target's next decision sampled
# from the target policy (the trainer's default bootstrap), started from the
# BC row's actor, whose bins are the improvement's support; 0.25 on BC and
# 0.75 on the improvement, the same decisions and n-step targets as pac-2stage;
# the improvement joins after a third of the steps, once the critic has
# trained beside the BC actor ("Tenth sitting"); the support keeps bins of at
# least a hundredth of the BC actor's best bin, so that the rare gripper-close
# decision at the grasp pose (about 2% under the BC actor) stays in it
# ("Eleventh sitting")
PAC_JOINT = ACTOR_LOSS + ["--support", "0.01", "--n-step", "2", "--improve-after", "0.33"] + \
    TWO_STAGE_COMMON
EVAL_SAMPLING_SEED = 1


# The camera variant's camera: robosuite's agentview (front, looking down at
# the table) rendered at 64x64, the camera model's input size (docs/loop.md,
# "Sizes"): the logged pixels are exactly what the policy sees.
CAMERA = "agentview"
CAMERA_SIZE = 64


def observation_spec(variant="lowdim"):
    """The cell's logged observation: proprioception, the cube pose and the
    gripper-to-cube vector (both privileged) and the previous action, one
    tick each; the camera variant adds the agentview camera (uint8 [64, 64, 3]).
    The low-dim model sees the non-camera fields, the camera model the
    non-privileged ones and the camera (pacd_torch.dataset.select_fields)."""
    def f(name, source, n):
        return {"name": name, "source": source, "shape": [n], "history": 1}
    spec = [f("joint_positions", "joint_positions", 7),
            f("joint_velocities", "joint_velocities", 7),
            f("gripper_position", "gripper_position", 1),
            f("end_effector_pose", "end_effector_pose", 7),
            f("cube_pose", "object_pose/cube", 7),
            f("gripper_to_cube", "gripper_to_object/cube", 3),
            f("previous_action", "previous_action", ACTION["dim"])]
    if variant == "camera":
        spec.append({"name": "camera/" + CAMERA, "source": "camera/" + CAMERA,
                     "shape": [CAMERA_SIZE, CAMERA_SIZE, 3], "history": 1})
    return spec


def collection_checkpoint(path, variant="lowdim"):
    """A checkpoint that only defines the data's specs: in teleop mode the
    operator acts (pacd logs the checkpoint's action beside it). Low-dim: an
    MLP that outputs zeros; camera: the smallest PAC with an image encoder,
    random weights (an MLP reads no camera, and pacd logs the frames of the
    checkpoint's camera fields)."""
    import torch
    from pacd_torch.export import export, obs_dim_of
    obs = observation_spec(variant)
    if variant == "camera":
        from pacd_torch import train as ptrain
        torch.manual_seed(0)
        m = ptrain.build_model(obs, ACTION, "tiny-camera", dict(ptrain.DEFAULTS), critic=False)
    else:
        from pacd_torch.mlp import MLPActor
        m = MLPActor(obs_dim_of(obs), ACTION["dim"], [8], activation="relu", head="tanh",
                     low=ACTION["low"], high=ACTION["high"])
        with torch.no_grad():
            for p in m.parameters():
                p.zero_()
    export(m, path, "sawyer", obs, ACTION)
    return path


# The clock of every stage's pacd ([robot] clock, docs/loop.md "The simulated
# clock"): simulated (the default) runs the episodes as fast as the CPU
# allows; PACD_LOOP_CLOCK=real runs them at 20 Hz of wall time.
CLOCK = os.environ.get("PACD_LOOP_CLOCK", "simulated")


class Pacd:
    """pacd on the Lift cell: teleop (collection) or control (evaluation,
    optionally sampling)."""

    def __init__(self, build, out, name, checkpoint, mode, max_steps, sample=False, seed=0,
                 temperature=1.0, camera=False):
        self.ports = {k: pacd_client.free_port()
                      for k in ("camera", "state", "telemetry", "control")}
        self.logdir = os.path.join(out, name, "episodes")
        os.makedirs(self.logdir, exist_ok=True)
        self.config = os.path.join(out, name, "pacd.conf")
        sampling = ("sample = true\ntemperature = %g\nseed = %d\n" % (temperature, seed)
                    if sample else "")
        # the camera is rendered on every tick of the simulated clock
        render = "render_cameras = %s\n" % CAMERA if camera else ""
        cam_section = ("[camera.%s]\nwidth = %d\nheight = %d\n" % (CAMERA, CAMERA_SIZE, CAMERA_SIZE)
                       if camera else "")
        with open(self.config, "w") as f:
            f.write(f"""[pacd]
rate_hz = 20
lock_memory = false
mode = {mode}
[policy]
checkpoint = {checkpoint}
{sampling}[robot]
name = sawyer
backend = mujoco
scene = {os.path.abspath(LIFT_SCENE)}
seed = 1
clock = {CLOCK}
{render}{cam_section}[safety]
workspace_min = 0.3, -0.25, -0.13
workspace_max = 0.8, 0.35, 0.25
[ingest]
camera_bind = tcp://127.0.0.1:{self.ports['camera']}
state_bind = tcp://127.0.0.1:{self.ports['state']}
[episode]
max_steps = {max_steps}
reset_on_start = true
[task]
source = hal
[logger]
directory = {self.logdir}
[telemetry]
bind = tcp://127.0.0.1:{self.ports['telemetry']}
rate_hz = 20
[control]
bind = tcp://127.0.0.1:{self.ports['control']}
""")
        self.stderr_path = os.path.join(out, name, "pacd.stderr")
        self.err = open(self.stderr_path, "w")
        self.proc = subprocess.Popen([os.path.join(build, "daemon", "pacd"), "--config",
                                      self.config], stderr=self.err)
        ep = "tcp://127.0.0.1:%d"
        self.driver = None
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("pacd exited: see %s" % self.stderr_path)
            try:
                self.driver = op.EpisodeDriver(ep % self.ports["control"],
                                               ep % self.ports["telemetry"],
                                               ep % self.ports["state"], timeout_s=30.0)
                self.driver.client.status()
                break
            except pacd_client.PacdError:
                if self.driver:
                    self.driver.close()
                    self.driver = None
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def episodes(self, seeds, skill=None, log=None, align_yaw=False, drift=0.0, drift_tau_s=1.0,
                 waver=0.0):
        """Run one episode per seed (the operator acts when skill is given);
        returns the list of successes."""
        wins = []
        for i, seed in enumerate(seeds):
            script = None
            if skill is not None:
                import random
                script = op.LiftScript(20.0, op.mistake_for(seed, skill), random.Random(seed),
                                       noise=0.01, align_yaw=align_yaw, drift=drift,
                                       drift_tau_s=drift_tau_s, waver=waver)
            r = self.driver.run(seed, script)
            wins.append(bool(r["success"]))
            if log:
                log("  episode %d/%d seed %d: %s in %d steps" % (
                    i + 1, len(seeds), seed, "success" if r["success"] else "failure",
                    r["steps"]))
        return wins

    def close(self):
        if self.driver:
            self.driver.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.err.close()

    def logs(self):
        return sorted(os.path.join(self.logdir, f) for f in os.listdir(self.logdir)
                      if f.endswith(".mcap"))


def run(cmd, log):
    log("$ " + " ".join(cmd))
    subprocess.run(cmd, check=True)


def write_table(results, out, log, info):
    """Print the success table (k/n, rate, 95% Wilson interval per row) and
    write it to out/results.md and out/results.json (with `info`). Returns 0."""
    lines = ["| policy | success | 95% Wilson interval |", "|---|---|---|"]
    for name, (k, n) in results.items():
        lo, hi = wilson(k, n)
        lines.append("| %s | %d/%d = %.0f%% | [%.0f%%, %.0f%%] |" % (name, k, n, 100.0 * k / n,
                                                                   100 * lo, 100 * hi))
    table = "\n".join(lines)
    log("\n" + table)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(table + "\n")
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(dict(info, results={k: {"successes": v[0], "episodes": v[1]}
                                      for k, v in results.items()}), f, indent=1)
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("PACD_BUILD_DIR", os.path.join(SRC, "build")))
    ap.add_argument("--out", default=os.path.join(SRC, "out", "loop"))
    ap.add_argument("--smoke", action="store_true", help="tiny stages: check the path")
    ap.add_argument("--episodes", type=int, default=None, help="behaviour episodes (100)")
    ap.add_argument("--eval-episodes", type=int, default=None, help="per checkpoint (30)")
    ap.add_argument("--eval-seed", type=int, default=900000,
                    help="first evaluation seed (900000; collection uses 1000- and 5000-): "
                    "another base gives a held-out set of starts")
    ap.add_argument("--round2-episodes", type=int, default=None, help="pac's own episodes (50)")
    ap.add_argument("--steps", type=int, default=None, help="gradient steps per run (3000)")
    ap.add_argument("--variant", choices=("lowdim", "camera"), default="lowdim",
                    help="lowdim: proprioception and the privileged cube pose; camera: "
                    "proprioception and the 64x64 agentview camera (logged in the data)")
    ap.add_argument("--skill", type=float, default=0.3)
    ap.add_argument("--drift", type=float, default=0.0,
                    help="the operator's x-y disturbance during the approach, m/s (std)")
    ap.add_argument("--drift-tau-s", type=float, default=1.0)
    ap.add_argument("--waver", type=float, default=0.0,
                    help="the operator's approach wavers: P(heading for the cube) per "
                    "5-15 tick segment (0: off; pacd_lift_operator.py)")
    ap.add_argument("--algos", default="bc,fbc,bcq,pac,pac-2stage",
                    help="comma-separated; empty: collect and export only")
    ap.add_argument("--critic-steps", type=int, default=None,
                    help="steps of the runs that train a critic: pac (joint) and "
                    "pac-2stage's first stage (4 x --steps)")
    ap.add_argument("--data", default=None,
                    help="reuse this behaviour data set (HDF5): skip collection and export")
    ap.add_argument("--seed", type=int, default=0,
                    help="training seed of every run (evaluation seeds do not change)")
    ap.add_argument("--temperature", type=float, default=1.0,
                    help="sampling temperature of evaluation and round-2 collection (1)")
    ap.add_argument("--evaluate", nargs="+", default=None, metavar="CKPT",
                    help="only evaluate these checkpoints (same seeds, table) and stop")
    ap.add_argument("--pac-args", default="",
                    help="extra pacd_torch.train arguments for pac, after its own "
                    "(the last of a repeated option wins), e.g. \"--bootstrap data\"")
    args = ap.parse_args(argv)
    small = args.smoke
    n_collect = args.episodes or (3 if small else 100)
    n_eval = args.eval_episodes or (2 if small else 30)
    n_round2 = args.round2_episodes or (2 if small else 50)
    steps = args.steps or (30 if small else 3000)
    critic_steps = args.critic_steps or 4 * steps
    max_steps = 140 if small else 250   # the scripted grasp takes about 90-120 steps
    skill = 1.0 if small else args.skill   # the smoke run needs a success for fbc
    algos = [a for a in args.algos.split(",") if a]
    camera = args.variant == "camera"
    build = os.path.abspath(args.build)
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    os.environ["PACD_BUILD_DIR"] = build
    pacctl = os.path.join(build, "clients", "pacctl")
    env_py = [sys.executable, "-m", "pacd_torch.train"]
    os.environ["PYTHONPATH"] = os.path.join(SRC, "policy", "torch")

    def log(msg):
        print(msg, flush=True)

    eval_seeds = list(range(args.eval_seed, args.eval_seed + n_eval))
    results = {}

    def evaluate(name, ckpt):
        log("== evaluate %s over %d seeds" % (name, n_eval))
        # sampled actions ([policy] sample, --temperature, one fixed seed for
        # every policy): a greedy policy stops at the grasp point with the
        # gripper open (the close command starts in one state per episode in
        # the data, so its bin does not win the argmax there) and waits
        # forever (docs/loop.md)
        e = Pacd(build, out, "eval-" + name, ckpt, "control", max_steps, sample=True,
                 seed=EVAL_SAMPLING_SEED, temperature=args.temperature, camera=camera)
        try:
            w = e.episodes(eval_seeds, log=log)
        finally:
            e.close()
        results[name] = (sum(w), len(w))
        log("  %s: %s" % (name, format_rate(sum(w), len(w))))

    def collect(name, ckpt, mode, seeds, h5, skill=None, sample=False):
        """Episodes on `seeds` (the operator acts when skill is given), exported
        to out/h5 (`pacctl log export`). Returns (successes, data set path)."""
        p = Pacd(build, out, name, ckpt, mode, max_steps, sample=sample,
                 temperature=args.temperature, camera=camera)
        try:
            wins = p.episodes(list(seeds), skill=skill, log=log, drift=args.drift,
                              drift_tau_s=args.drift_tau_s, waver=args.waver)
        finally:
            p.close()
        path = os.path.join(out, h5)
        if os.path.exists(path):
            os.remove(path)
        log("== export %s" % h5)
        run([pacctl, "log", "export", "-o", path, "--checkpoint", ckpt] + p.logs(), log)
        return wins, path

    if args.evaluate:
        for ckpt in args.evaluate:
            evaluate(os.path.basename(ckpt).rsplit(".", 1)[0], os.path.abspath(ckpt))
        return write_table(results, out, log, {"eval_episodes": n_eval, "eval_seeds": eval_seeds,
                                               "temperature": args.temperature,
                                               "checkpoints": args.evaluate})
    ckpt0 = collection_checkpoint(os.path.join(out, "collect.safetensors"), args.variant)
    if args.data:
        data = os.path.abspath(args.data)
        demos = pds.read(data, cameras=False)["demos"]
        results["behaviour data"] = (sum(pds.episode_success(d) for d in demos), len(demos))
        log("== 1-2. behaviour data %s: %d episodes" % (data, len(demos)))
    else:
        log("== 1. collect %d operator episodes (teleop mode, skill %.2f, drift %g m/s, "
            "waver %g)" % (n_collect, skill, args.drift, args.waver))
        wins, data = collect("collect", ckpt0, "teleop", range(1000, 1000 + n_collect),
                             "behaviour.hdf5", skill=skill)
        results["behaviour data"] = (sum(wins), len(wins))

    def train(algo, datas, out_ckpt, init=None):
        """Trains `algo` on the data sets `datas` into out_ckpt. init: pac's
        start (default: the BC row's actor on the same data, trained here when
        there is none); round 2 passes round 1's pac checkpoint."""
        size = ["--size", "camera", "--camera", CAMERA] + CAMERA_TRAIN if camera \
            else ["--size", "lowdim"]
        common = ["--data"] + datas + size + ["--seed", str(args.seed), "--quiet",
                                              "--exclude", ",".join(TRAIN_EXCLUDE)]
        if algo == "pac-2stage":
            critic = out_ckpt[:-len(".safetensors")] + "-critic.safetensors"
            run(env_py + common + ["--algo", "bcq", "--out", critic, "--steps",
                                   str(critic_steps)] + TWO_STAGE_COMMON + TWO_STAGE_CRITIC, log)
            run(env_py + common + ["--algo", "pac", "--init", critic, "--freeze-critic",
                                   "--out", out_ckpt, "--steps", str(steps)] +
                TWO_STAGE_COMMON + TWO_STAGE_ACTOR, log)
            return out_ckpt
        if algo == "pac":
            # its start: the BC row's checkpoint when that saw the same data
            start = init or bc_ckpts.get(tuple(datas))
            if start is None:
                start = train("bc", datas, out_ckpt[:-len(".safetensors")] + "-bc.safetensors")
            run(env_py + common + ["--algo", "pac", "--init", start, "--out", out_ckpt,
                                   "--steps", str(critic_steps)] + PAC_JOINT +
                args.pac_args.split(), log)
            return out_ckpt
        run(env_py + common + ["--algo", algo, "--out", out_ckpt, "--steps", str(steps)], log)
        if algo == "bc":
            bc_ckpts[tuple(datas)] = out_ckpt
        return out_ckpt

    log("== 3. train and 4. evaluate: %s" % ", ".join(algos))
    ckpts = {}
    bc_ckpts = {}
    for algo in algos:
        ckpts[algo] = train(algo, [data], os.path.join(out, algo + ".safetensors"))
        evaluate(algo, ckpts[algo])

    r2 = "pac" if "pac" in ckpts else ("pac-2stage" if "pac-2stage" in ckpts else None)
    if r2:
        log("== 5. round 2: %s collects %d episodes of its own (sampling)" % (r2, n_round2))
        w2, data2 = collect("round2-collect", ckpts[r2], "control",
                            range(5000, 5000 + n_round2), "round2.hdf5", sample=True)
        results["%s's own episodes (sampling)" % r2] = (sum(w2), len(w2))
        # pac goes on from round 1 (actor, critic and the support of its actor);
        # pac-2stage retrains both stages
        ckpts[r2 + " round 2"] = train(r2, [data, data2],
                                       os.path.join(out, r2 + "-round2.safetensors"),
                                       init=ckpts[r2] if r2 == "pac" else None)
        evaluate(r2 + " round 2", ckpts[r2 + " round 2"])

    return write_table(results, out, log, {
        "variant": args.variant, "eval_episodes": n_eval, "eval_seeds": eval_seeds,
        "steps": steps, "seed": args.seed, "smoke": small, "temperature": args.temperature,
        "pac_args": args.pac_args, "critic_steps": critic_steps,
        "pac_2stage_args": {"common": TWO_STAGE_COMMON, "critic": TWO_STAGE_CRITIC,
                            "actor": TWO_STAGE_ACTOR}, "pac_joint_args": PAC_JOINT,
        "data": data,
        # how the behaviour data was collected (a reused --data set: not known here)
        "collection": None if args.data else {
            "episodes": n_collect, "skill": skill, "drift": args.drift,
            "drift_tau_s": args.drift_tau_s, "waver": args.waver}})


if __name__ == "__main__":
    sys.exit(main())
