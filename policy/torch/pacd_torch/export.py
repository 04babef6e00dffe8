"""Export an MLPActor (state_dict + spec) to a pacd checkpoint, and load one
back (docs/checkpoint.md).

    python3 -m pacd_torch.export --state-dict model.pt --spec spec.json \
        --out actor.safetensors [--dtype f32|f16|bf16]

spec.json: {"robot": "panda", "observation": [{name, source, shape, history}, ...],
            "action": {"space", "dim", "low", "high"},
            "model": {"hidden": [...], "activation": ..., "head": ...}}
"""

import argparse
import json
import math
import sys

import torch

from . import FORMAT, FORMAT_VERSION, safetensors
from .mlp import MLPActor

DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
# Tensors kept in F32 whatever --dtype says (small, and precision matters)
F32_ALWAYS = ("obs_norm.mean", "obs_norm.std")


def obs_dim_of(observation):
    """Length of the float observation vector the fields describe."""
    n = 0
    for f in observation:
        if f["source"].startswith("camera/"):
            continue
        n += math.prod(f["shape"]) * f["history"]
    return n


def metadata_for(model, robot, observation, action, extra=None):
    """The "__metadata__" map of a pacd checkpoint of `model`."""
    meta = {
        "pacd.format": FORMAT,
        "pacd.format_version": str(FORMAT_VERSION),
        "pacd.architecture": getattr(model, "architecture", "mlp"),
        "pacd.robot": robot or "",
        "pacd.model": json.dumps(model.model_metadata()),
        "pacd.observation": json.dumps(observation),
        "pacd.action": json.dumps(action),
    }
    for k, v in (extra or {}).items():
        meta[k] = v if isinstance(v, str) else json.dumps(v)
    return meta


def round_weights(model, dtype):
    """A copy of the state_dict with the weights rounded through `dtype` (as
    export stores them), in float32: what the C engine computes with."""
    dt = DTYPES[dtype] if isinstance(dtype, str) else dtype
    out = {}
    for name, t in model.state_dict().items():
        t = t.detach().float()
        out[name] = t if name in F32_ALWAYS else t.to(dt).float()
    return out


def export(model, path, robot, observation, action, dtype="f32", extra_metadata=None):
    """Write `model` (an MLPActor or pac.PACActor) as a pacd checkpoint at `path`.
    observation: list of {name, source, shape, history}; action: {space, dim,
    low, high}. dtype: f32, f16 or bf16 for the layer weights."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}")
    if obs_dim_of(observation) != model.obs_dim:
        raise ValueError(f"observation fields give {obs_dim_of(observation)} values, "
                         f"the model takes {model.obs_dim}")
    if action["dim"] != model.action_dim:
        raise ValueError("action dim differs from the model's")
    low = torch.tensor(action["low"], dtype=torch.float32)
    high = torch.tensor(action["high"], dtype=torch.float32)
    if not (torch.equal(low, model.low) and torch.equal(high, model.high)):
        raise ValueError("action bounds differ from the model's low/high")
    tensors = {}
    for name, t in model.state_dict().items():
        t = t.detach().float()
        tensors[name] = t if name in F32_ALWAYS else t.to(DTYPES[dtype])
    meta = metadata_for(model, robot, observation, action, extra_metadata)
    safetensors.write(path, tensors, meta)


def load(path):
    """Load a pacd mlp or pac checkpoint into (model in float32, metadata dict)."""
    tensors, meta = safetensors.read(path)
    arch = meta.get("pacd.architecture")
    if arch not in ("mlp", "pac"):
        raise ValueError(f"{path}: architecture {arch!r} is not mlp or pac")
    model_cfg = json.loads(meta["pacd.model"])
    action = json.loads(meta["pacd.action"])
    observation = json.loads(meta["pacd.observation"])
    if arch == "pac":
        from .pac import PACActor
        model = PACActor(observation, action, model_cfg)
        model.load_state_dict({k: v.float() for k, v in tensors.items()})
        return model, meta
    model = MLPActor(obs_dim_of(observation), action["dim"], model_cfg["hidden"],
                     model_cfg["activation"], model_cfg["head"], action["low"], action["high"])
    model.load_state_dict({k: v.float() for k, v in tensors.items()})
    return model, meta


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m pacd_torch.export", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--state-dict", required=True, help="torch.save()d state_dict of an MLPActor")
    ap.add_argument("--spec", required=True, help="JSON spec (see above)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="f32")
    args = ap.parse_args(argv)
    with open(args.spec) as f:
        spec = json.load(f)
    m = spec["model"]
    model = MLPActor(obs_dim_of(spec["observation"]), spec["action"]["dim"], m["hidden"],
                     m["activation"], m["head"], spec["action"]["low"], spec["action"]["high"])
    model.load_state_dict(torch.load(args.state_dict, map_location="cpu"))
    export(model, args.out, spec.get("robot", ""), spec["observation"], spec["action"],
           args.dtype)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
