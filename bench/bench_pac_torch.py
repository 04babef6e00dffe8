"""PyTorch side of the PAC benchmark (prints figures, asserts nothing).

    /usr/bin/python3 bench/bench_pac_torch.py make DIR
        export pac-s and pac-m (random weights, seeded; two 128x128 cameras,
        24-D proprioception 3 deep, previous 5-D action 2 deep, 101 bins, no
        critic) as pacd checkpoints DIR/<size>.safetensors and ONNX
        DIR/<size>.onnx (action + logits, from torch.onnx.export), the inputs
        DIR/obs.bin (float32 rows) and DIR/img.bin (uint8 rows: both frames),
        the twin's logits for the first rows and DIR/models.json (with FLOPs);
        also pac-s-bf16 and pac-m-bf16: the same models with every weight
        rounded to bf16, stored as a BF16 checkpoint for pacd while PyTorch
        and ONNX Runtime compute in float32 with the same (rounded) values
    /usr/bin/python3 bench/bench_pac_torch.py time DIR [ITERS]
        time the twin at batch 1 with torch.set_num_threads(1) (inference
        mode), one JSON line per model
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "policy" / "torch"))
from pacd_torch import make_pac  # noqa: E402
from pacd_torch.export import export, round_weights  # noqa: E402
from bench_timing import main, time_calls  # noqa: E402
from pacd_torch.pac import PACDeploy, flops  # noqa: E402

SIZES = ("pac-s", "pac-m")
MODELS = SIZES + tuple(s + "-bf16" for s in SIZES)
CAMERAS = ["front", "wrist"]
N_ROWS = 16
CHECK_ROWS = 4


def build(name):
    """The model called `name`: a size, or a size + "-bf16" (weights rounded
    to bf16 values, float32 compute)."""
    size = name[:-len("-bf16")] if name.endswith("-bf16") else name
    m, obs, act = make_pac.build(size, CAMERAS, "cartesian_velocity", seed=SIZES.index(size))
    if name != size:   # what pacd computes with from the BF16 checkpoint
        m.load_state_dict(round_weights(m, "bf16"))
    return m, obs, act


def inputs(out):
    v = torch.from_numpy(np.fromfile(out / "obs.bin", "<f4").copy())
    img = torch.from_numpy(np.fromfile(out / "img.bin", "u1").copy())
    return v, img


def split(v, img, obs_dim, i):
    x = v.reshape(-1, obs_dim)[i:i + 1]
    frames = img.reshape(-1, 2, 128, 128, 3)[i:i + 1]
    return x, [frames[:, 0], frames[:, 1]]


def make(out):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(42)
    models = {}
    for size in MODELS:
        m, obs, act = build(size)
        export(m, out / f"{size}.safetensors", "sawyer", obs, act,
               "bf16" if size.endswith("-bf16") else "f32")
        if not (out / "obs.bin").exists():
            (torch.randn(N_ROWS, m.obs_dim, generator=g)).numpy().astype("<f4").tofile(
                out / "obs.bin")
            torch.randint(0, 256, (N_ROWS, 2, 128, 128, 3), generator=g,
                          dtype=torch.uint8).numpy().tofile(out / "img.bin")
        v, img = inputs(out)
        x, frames = split(v, img, m.obs_dim, 0)
        torch.onnx.export(PACDeploy(m), (x, *frames), str(out / f"{size}.onnx"),
                          input_names=["values", "camera0", "camera1"],
                          output_names=["action", "logits"], opset_version=13)
        with torch.no_grad():
            rows = [m(*split(v, img, m.obs_dim, i)).reshape(-1) for i in range(CHECK_ROWS)]
        torch.stack(rows).numpy().astype("<f4").tofile(out / f"{size}.torch_logits.bin")
        models[size] = {"obs_dim": m.obs_dim, "action_dim": m.action_dim,
                        "flops": flops(m), "params": sum(p.numel() for p in m.parameters()),
                        "check_rows": CHECK_ROWS}
    (out / "models.json").write_text(json.dumps(models, indent=2))


def time_models(out, iters):
    out = Path(out)
    torch.set_num_threads(1)
    models = json.loads((out / "models.json").read_text())
    v, img = inputs(out)
    for size, info in models.items():
        m, _, _ = build(size)
        n = v.numel() // info["obs_dim"]
        xs = [split(v, img, info["obs_dim"], i) for i in range(n)]
        time_calls("torch", size, m.act, xs, iters, warmup=20)


if __name__ == "__main__":
    sys.exit(main(__doc__, make, time_models, sys.argv[1:], default_iters=200))
