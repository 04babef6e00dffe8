"""Quick ablations of the critic's action pathway on the synthetic cell
(docs/loop.md, "Fifth sitting"): the same trainer and losses (pacd_torch.train.Trainer),
with the critic's action projection replaced before training; the probe runs
on the model in memory (no pacd checkpoint holds these variants).

  PYTHONPATH=policy/torch nice -n 10 /usr/bin/python3 policy/torch/experiments/synthetic_ablate.py \
      --data runs/shared.hdf5 --mode shared --variant mlp --steps 3000 [train args]

variants: linear (pac.Critic as is: query + Linear(a)), mlp (query +
MLP(a): Linear(A, 4d) GELU Linear(4d, d)), scaled (query + 10 Linear(a)).
"""
import argparse
import json
import sys

import torch
from torch import nn

from pacd_torch import dataset as pds
from pacd_torch import synthetic as syn
from pacd_torch import train as ptrain


class Scaled(nn.Module):
    def __init__(self, lin, k):
        super().__init__()
        self.lin, self.k = lin, k

    def forward(self, x):
        return self.k * self.lin(x)


def patch(variant):
    orig = ptrain.build_model

    def build(fields, action, size, hp, critic):
        m = orig(fields, action, size, hp, critic)
        if critic and variant != "linear":
            d = m.cfg["width"]
            a = m.action_dim
            if variant == "mlp":
                m.critic.action_proj = nn.Sequential(nn.Linear(a, 4 * d), nn.GELU(),
                                                     nn.Linear(4 * d, d))
            elif variant == "scaled":
                m.critic.action_proj = Scaled(m.critic.action_proj, 10.0)
            else:
                raise ValueError(variant)
        return m
    ptrain.build_model = build


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--mode", required=True, choices=syn.MODES)
    ap.add_argument("--variant", default="linear", choices=["linear", "mlp", "scaled"])
    ap.add_argument("--algo", default="pac")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hp", default='{"action_repeat": 5, "n_step": 2, "eta": 0.05}')
    ap.add_argument("--mc", type=int, default=16)
    ap.add_argument("--eval", type=int, default=200)
    args = ap.parse_args()
    torch.set_num_threads(1)
    patch(args.variant)
    hp = json.loads(args.hp)
    _, obs, _, _ = pds.read_spec(args.data)
    data = pds.load_transitions(args.data, pds.select_fields(obs, "lowdim"))
    tr = ptrain.Trainer(data, args.algo, "lowdim", hp, args.seed)
    tr.run(args.steps, progress=False)
    m = (tr.model, int(hp.get("action_repeat", 1)))
    out = syn.probe(m, args.mode, mc=args.mc)
    if args.eval:
        out["success"], out["episodes"] = syn.evaluate(m, args.eval)
    out.update(variant=args.variant, algo=args.algo, steps=args.steps, seed=args.seed, hp=hp,
               data=args.data)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
