"""EXPERIMENT (not a trainer option): PAC on a Lift data set with an MLP action
input in the critic's Q decoder, as synthetic_ablate.py did on the synthetic
cell (docs/loop.md, "Fifth sitting").

The critic's query is `critic.query + action_proj(a_unit)`; pac.Critic has
action_proj = Linear(A, d). Here pacd_torch.train's model builder is patched
so that action_proj = Sequential(Linear(A, H), GELU, Linear(H, d)), H = 4 d
by default; everything else (trainer, losses, hyper-parameters, data
loading) is pacd_torch.train unchanged. A real `--critic-action-hidden H`
trainer option is being added elsewhere; this script is only the experiment.

pacd's C engine cannot load this critic (its Q decoder has one Linear), so
the script writes two files:

  OUT                       the actor only (critic None in pacd.model): what
                            pacd evaluates (pacd only needs the actor to act;
                            it reports no Q for it);
  OUT minus .safetensors + .full-mlpcritic.safetensors
                            actor + MLP critic, for the probe
                            (experiments/lift_critic_probe.py reads the
                            metadata key `experiment.critic_action_hidden`
                            to rebuild it). NOT loadable by pacd.

  PYTHONPATH=policy/torch OMP_NUM_THREADS=1 nice -n 10 /usr/bin/python3 \\
      policy/torch/experiments/exp_lift_mlp_critic.py --data runs/behaviour.hdf5 \\
      --out runs/pac-mlp.safetensors --steps 3000 --seed 0 \\
      --exclude previous_action,joint_velocities \\
      --action-repeat 5 --n-step 2 --eta 0.05 [--hidden H]
"""
import argparse
import json
import sys
import time

import torch
from torch import nn

from pacd_torch import dataset as pds
from pacd_torch import train as ptrain
from pacd_torch.export import export
from pacd_torch.pac import PACActor

META_KEY = "experiment.critic_action_hidden"


def mlp_action_proj(a, hidden, d):
    """The experiment's action input: Linear(A, H), GELU, Linear(H, d)."""
    return nn.Sequential(nn.Linear(a, hidden), nn.GELU(), nn.Linear(hidden, d))


def patch(hidden):
    """Make pacd_torch.train.build_model give critics an MLP action input of
    `hidden` units (None: 4 x width). Returns the original builder."""
    orig = ptrain.build_model

    def build(fields, action, size, hp, critic):
        m = orig(fields, action, size, hp, critic)
        if critic:
            d = m.cfg["width"]
            m.critic.action_proj = mlp_action_proj(m.action_dim, hidden or 4 * d, d)
        return m
    ptrain.build_model = build
    return orig


def actor_only(model):
    """A copy of a PACActor without its critic (pacd.model critic None), the
    actor's weights copied exactly."""
    cfg = dict(model.cfg, critic=None)
    a = PACActor(model.observation, model.action_spec, cfg)
    sd = {k: v for k, v in model.state_dict().items() if not k.startswith("critic.")}
    a.load_state_dict(sd, strict=True)
    return a


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, nargs="+")
    ap.add_argument("--out", required=True, help="actor-only checkpoint for pacd")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hidden", type=int, default=None, help="H (default 4 x width)")
    ap.add_argument("--exclude", default="previous_action,joint_velocities")
    ap.add_argument("--action-repeat", type=int, default=5)
    ap.add_argument("--n-step", type=int, default=2)
    ap.add_argument("--eta", type=float, default=0.05)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    patch(args.hidden)
    hp = {"action_repeat": args.action_repeat, "n_step": args.n_step, "eta": args.eta}
    full = ptrain.side_path(args.out, ".full-mlpcritic.safetensors")
    t0 = time.monotonic()
    tr, info = ptrain.train(args.data, "pac", full, "lowdim", args.steps, args.seed, hp,
                            progress=True, exclude=[x for x in args.exclude.split(",") if x])
    secs = time.monotonic() - t0
    model = tr.model
    hidden = model.critic.action_proj[0].out_features
    robot, _, action, _ = pds.read_spec(args.data[0])
    if args.action_repeat > 1:
        action = dict(action, repeat=args.action_repeat)
    info = dict(info, experiment={"critic_action_input": "mlp", "hidden": hidden,
                                  "script": "policy/torch/experiments/exp_lift_mlp_critic.py",
                                  "train_seconds": secs})
    # rewrite the full file with the marker the probe needs
    export(model, full, robot, model.observation, action,
           extra_metadata={"pacd.training": info, META_KEY: str(hidden)})
    info_a = dict(info, critic=False,
                  note="actor of an MLP-critic PAC run; critic dropped for pacd (its C engine "
                       "has no MLP action input)")
    export(actor_only(model), args.out, robot, model.observation, action,
           extra_metadata={"pacd.training": info_a})
    print(json.dumps({"out": args.out, "full": full, "hidden": hidden, "train_seconds": secs,
                      "final": info["final"]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
