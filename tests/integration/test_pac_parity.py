"""Parity of pacd's PAC actor (policy/arch/arch_pac_*.c) with its PyTorch twin
(pacd_torch.pac), and checkpoint validation errors for PAC metadata/tensors.

pacd-policy-eval (under $PACD_BUILD_DIR, default ./build) runs checkpoints
exported by pacd_torch.export on the same observations, images and tasks as
the twin; logits must agree within 1e-4, categorical actions exactly, Gaussian
actions and Q values within 1e-5 / 1e-4. For F16/BF16 checkpoints the twin uses
the same rounded weights. Every case runs with each matrix kernel (--kernel
auto, avx512, avx2, blas, amx); kernels this CPU lacks are skipped, after checking
that forcing them fails with a message.

Run: PACD_BUILD_DIR=build /usr/bin/python3 -m pytest tests/integration/test_pac_parity.py
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "policy" / "torch"))

from pacd_torch import export as pexport  # noqa: E402
from pacd_torch import make_pac, safetensors  # noqa: E402
from pacd_torch.pac import PACActor, randomize_  # noqa: E402

LOGIT_TOL = 1e-4
KERNELS = ["auto", "avx512", "avx2", "blas", "amx"]


def cpu_flags():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_has(kernel):
    flags = cpu_flags()
    return {"avx512": "avx512f" in flags, "avx2": {"avx2", "fma"} <= flags,
            "amx": {"avx512f", "avx512_bf16", "amx_tile", "amx_bf16"} <= flags}.get(kernel, True)


def build_dir():
    return Path(os.environ.get("PACD_BUILD_DIR", ROOT / "build"))


@pytest.fixture(scope="module")
def eval_exe():
    exe = build_dir() / "policy" / "pacd-policy-eval"
    if not exe.exists():
        pytest.fail(f"{exe} not found: build first (ninja -C {build_dir()}) or set PACD_BUILD_DIR")
    return exe


def enc(convs, groups=4, act="gelu", res=0):
    return {"convs": [{"kernel": k, "stride": s, "padding": p, "channels": c}
                      for k, s, p, c in convs],
            "groups": groups, "activation": act, "residual_blocks": res}


# name -> (model cfg, cameras [(H, W)], action space, dtype, task)
CASES = {
    "w32-h4-cat-1cam-f32": (
        {"width": 32, "heads": 4, "latents": 8, "blocks": 1, "mlp_ratio": 4,
         "image_encoder": enc([(4, 4, 0, 8), (3, 2, 1, 16)]),
         "head": {"type": "categorical", "bins": 21}, "critic": None},
        [(32, 32)], "joint_velocity", "f32", None),
    "w64-h8-cat-single-2cam-critic-bf16": (
        {"width": 64, "heads": 8, "latents": 16, "blocks": 2, "mlp_ratio": 2,
         "image_encoder": enc([(5, 2, 2, 8), (3, 2, 0, 16)], groups=2, act="relu", res=1),
         "queries": "single", "head": {"type": "categorical", "bins": 15},
         "critic": {"value_bins": 31, "value_min": -2.0, "value_max": 3.0}},
        [(32, 32), (24, 40)], "joint_velocity_gripper", "bf16", None),
    "w48-h2-gauss-nocam-critic-task-f32": (
        {"width": 48, "heads": 2, "latents": 4, "blocks": 0, "mlp_ratio": 3,
         "head": {"type": "gaussian"},
         "critic": {"value_bins": 11, "value_min": 0.0, "value_max": 1.0},
         "task": {"type": "embedding", "count": 5}},
        [], "cartesian_velocity", "f32", "embedding"),
    "w64-h4-gauss-single-1cam-res2-f16-taskvec": (
        {"width": 64, "heads": 4, "latents": 12, "blocks": 3, "mlp_ratio": 4,
         "image_encoder": enc([(3, 1, 1, 8), (4, 4, 0, 16)], groups=4, act="relu", res=2),
         "queries": "single", "head": {"type": "gaussian"}, "critic": None,
         "task": {"type": "vector", "dim": 6}},
        [(16, 16)], "joint_velocity", "f16", "vector"),
    "w96-h6-cat-2cam-critic-bf16": (
        {"width": 96, "heads": 6, "latents": 8, "blocks": 1, "mlp_ratio": 2,
         "image_encoder": enc([(8, 8, 0, 12), (3, 1, 1, 24)], groups=3),
         "head": {"type": "categorical", "bins": 51},
         "critic": {"value_bins": 21, "value_min": -1.0, "value_max": 1.0}},
        [(32, 32), (32, 32)], "cartesian_velocity", "bf16", None),
    # heads x queries (8 x 7) > width: the decoder's general cross block
    # (K/V of the latents) instead of dec_plan's folded one
    "w32-h8-cat-7q-nocam-critic-f32": (
        {"width": 32, "heads": 8, "latents": 6, "blocks": 1, "mlp_ratio": 2,
         "head": {"type": "categorical", "bins": 11},
         "critic": {"value_bins": 9, "value_min": -1.0, "value_max": 1.0}},
        [], "joint_velocity", "f32", None),
    # the critic's MLP action input (critic "action_hidden"): Linear(A, H), GELU,
    # Linear(H, d) packed for each kernel; H not a multiple of any panel width
    "w40-h4-cat-nocam-critic-mlp-f32": (
        {"width": 40, "heads": 4, "latents": 6, "blocks": 1, "mlp_ratio": 2,
         "head": {"type": "categorical", "bins": 13},
         "critic": {"value_bins": 17, "value_min": -1.0, "value_max": 2.0,
                    "action_hidden": 37}},
        [], "joint_velocity_gripper", "f32", None),
    "w64-h4-gauss-1cam-critic-mlp-bf16": (
        {"width": 64, "heads": 4, "latents": 8, "blocks": 1, "mlp_ratio": 2,
         "image_encoder": enc([(4, 4, 0, 8)], groups=2),
         "head": {"type": "gaussian"},
         "critic": {"value_bins": 21, "value_min": 0.0, "value_max": 1.0,
                    "action_hidden": 256}},
        [(16, 16)], "cartesian_velocity", "bf16", None),
    "pac-s-critic-f32": (
        dict(make_pac.SIZES["pac-s"], head={"type": "categorical", "bins": 101},
             critic={"value_bins": 51, "value_min": 0.0, "value_max": 1.0}),
        [(128, 128), (128, 128)], "cartesian_velocity", "f32", None),
    # BF16 weights at full size: AMX keeps only their hi halves and runs the
    # residual convolutions by im2col (their Winograd transforms are not bf16)
    "pac-s-bf16": (
        dict(make_pac.SIZES["pac-s"], head={"type": "categorical", "bins": 101}),
        [(128, 128), (128, 128)], "cartesian_velocity", "bf16", None),
}


def make_case(name, seed):
    cfg, cams, space, dtype, task = CASES[name]
    cfg = dict(cfg)
    if not cams:
        cfg["image_encoder"] = None
    action = make_pac.action_spec(space)
    observation = make_pac.observation_spec([], action_dim=action["dim"])
    for i, (h, w) in enumerate(cams):
        observation.append({"name": f"camera/c{i}", "source": f"camera/c{i}",
                            "shape": [h, w, 3], "history": 1})
    torch.manual_seed(seed)
    model = PACActor(observation, action, cfg)
    g = torch.Generator().manual_seed(seed)
    randomize_(model, g, scale=1.5)
    with torch.no_grad():
        model.obs_norm.mean.copy_(torch.randn(model.obs_dim, generator=g))
        model.obs_norm.std.copy_(0.2 + torch.rand(model.obs_dim, generator=g))
        model.obs_norm.std[1] = 0.0    # constant feature: clamped to 1e-6 on both sides
    return model, observation, action, dtype, task, cams


def run_eval(exe, ckpt, tmp, values, images, task=None, task_id=0, kernel="auto"):
    n = values.shape[0]
    values.numpy().astype("<f4").tofile(tmp / "obs.bin")
    args = [str(exe), "--input", str(tmp / "obs.bin"), "--output", str(tmp / "act.bin"),
            "--logits", str(tmp / "logits.bin"), "--q-values", str(tmp / "q.bin"),
            "--kernel", kernel]
    if images:
        np.concatenate([im.reshape(n, -1).numpy() for im in images], 1).tofile(tmp / "img.bin")
        args += ["--images", str(tmp / "img.bin")]
    if task is not None:
        task.numpy().astype("<f4").tofile(tmp / "task.bin")
        args += ["--task-vectors", str(tmp / "task.bin")]
    args += ["--task-id", str(task_id), str(ckpt)]
    r = subprocess.run(args, capture_output=True, timeout=600)
    assert r.returncode == 0, r.stderr.decode()
    act = np.fromfile(tmp / "act.bin", "<f4").reshape(n, -1)
    logits = np.fromfile(tmp / "logits.bin", "<f4").reshape(n, -1)
    q = np.fromfile(tmp / "q.bin", "<f4")
    return act, logits, q


def amx_granted(exe, ckpt):
    """This CPU has AMX and the OS grants this process the tile state."""
    if not cpu_has("amx"):
        return False
    r = subprocess.run([str(exe), "--spec", "--kernel", "amx", str(ckpt)], capture_output=True)
    return r.returncode == 0


def check_kernel(exe, ckpt, kernel, dtype):
    """The kernel --spec reports for `kernel`; skips (after checking the
    refusal) when this CPU lacks it. auto takes AMX for BF16 weights where
    it runs, else the best float kernel."""
    r = subprocess.run([str(exe), "--spec", "--kernel", kernel, str(ckpt)], capture_output=True)
    if not cpu_has(kernel):
        msg = r.stderr.decode()
        assert r.returncode == 3 and kernel in msg and "lacks" in msg, msg
        pytest.skip(f"this CPU lacks the {kernel} kernel")
    if kernel == "amx" and r.returncode == 3 and b"lacks" in r.stderr:
        # the CPU has AMX but the OS refused this process the tile state
        pytest.skip("AMX present but not granted by the kernel (arch_prctl)")
    assert r.returncode == 0, r.stderr.decode()
    got = json.loads(r.stdout)["kernel"]
    want = {"avx512": "avx512-packed", "avx2": "avx2-packed", "blas": "blas",
            "amx": "amx-bf16x3"}.get(kernel)
    if want:
        assert got == want
    elif dtype == "bf16" and amx_granted(exe, ckpt):
        assert got == "amx-bf16x3"
    else:
        assert got in ("avx512-packed", "avx2-packed", "blas")
        assert got == ("avx512-packed" if cpu_has("avx512") else
                       "avx2-packed" if cpu_has("avx2") else "blas")
    return got


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("name", list(CASES))
def test_parity(tmp_path, eval_exe, name, kernel):
    seed = list(CASES).index(name) + 11
    model, observation, action, dtype, task, cams = make_case(name, seed)
    path = tmp_path / "pac.safetensors"
    pexport.export(model, path, "panda", observation, action, dtype=dtype)
    check_kernel(eval_exe, path, kernel, dtype)
    ref = PACActor(observation, action, model.cfg).eval()
    ref.load_state_dict(pexport.round_weights(model, dtype))
    n = 4 if name.startswith("pac-s") else 12
    g = torch.Generator().manual_seed(100 + seed)
    values = model.obs_norm.mean + torch.randn(n, model.obs_dim, generator=g) * 2
    values[:, 1] = model.obs_norm.mean[1]
    images = [torch.randint(0, 256, (n, h, w, 3), generator=g, dtype=torch.uint8)
              for h, w in cams]
    task_id = 3 if task == "embedding" else 0
    task_vec = torch.randn(n, 6, generator=g) if task == "vector" else None
    with torch.no_grad():
        logits, act, q = ref.act(values, images,
                                 task_id=torch.full((n,), task_id, dtype=torch.long),
                                 task_vector=task_vec)
    got_act, got_logits, got_q = run_eval(eval_exe, path, tmp_path, values, images,
                                          task_vec, task_id, kernel)
    want_logits = logits.reshape(n, -1).numpy()
    err = np.abs(got_logits - want_logits).max()
    assert err <= LOGIT_TOL, f"max |C - torch| logits = {err}"
    # the logits depend on the observation (a constant network would pass trivially)
    assert want_logits.std(axis=0).max() > 1e-2
    low, high = np.array(action["low"], "f4"), np.array(action["high"], "f4")
    assert (got_act >= low).all() and (got_act <= high).all()
    if model.cfg["head"]["type"] == "categorical":
        np.testing.assert_array_equal(got_act, act.numpy())
    else:
        np.testing.assert_allclose(got_act, act.numpy(), atol=1e-5, rtol=0)
    if model.critic is not None:
        np.testing.assert_allclose(got_q, q.numpy(), atol=1e-4, rtol=0)
        assert np.abs(q.numpy()).max() > 0
        if model.cfg["critic"].get("action_hidden"):
            # the comparison sees the MLP: without its GELU, Q moves well past 1e-4
            ref.critic.action_proj[1] = torch.nn.Identity()
            with torch.no_grad():
                q_lin = ref.q_value(ref.latents(values, images), act)
            assert np.abs(q_lin.numpy() - got_q).max() > 1e-3
    else:
        assert np.isnan(got_q).all()
    if dtype != "f32":
        # rounding matters: the unrounded model differs by more than the tolerance
        with torch.no_grad():
            exact = model(values, images, torch.full((n,), task_id, dtype=torch.long),
                          task_vec).reshape(n, -1).numpy()
        assert np.abs(exact - got_logits).max() > LOGIT_TOL


def test_task_embedding_changes_output(tmp_path, eval_exe):
    model, observation, action, dtype, _, _ = make_case("w48-h2-gauss-nocam-critic-task-f32", 5)
    path = tmp_path / "t.safetensors"
    pexport.export(model, path, "", observation, action, dtype=dtype)
    values = torch.randn(3, model.obs_dim)
    _, l0, _ = run_eval(eval_exe, path, tmp_path, values, [], task_id=0)
    _, l4, _ = run_eval(eval_exe, path, tmp_path, values, [], task_id=4)
    assert np.abs(l0 - l4).max() > 1e-3
    values.numpy().astype("<f4").tofile(tmp_path / "obs.bin")
    r = subprocess.run([str(eval_exe), "--input", str(tmp_path / "obs.bin"), "--task-id", "5",
                        str(path)], capture_output=True)
    assert r.returncode == 1 and b"Invalid argument" in r.stderr


def test_make_pac_cli(tmp_path, eval_exe):
    out = tmp_path / "run.safetensors"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "policy" / "torch"))
    r = subprocess.run([sys.executable, "-m", "pacd_torch.make_pac", "--size", "pac-s",
                        "--robot", "panda", "--cameras", "front,wrist",
                        "--action-space", "joint_velocity_gripper", "--critic",
                        "--out", str(out)], env=env, capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr.decode()
    spec = json.loads(subprocess.run([str(eval_exe), "--spec", str(out)], capture_output=True,
                                     check=True).stdout)
    assert spec["architecture"] == "pac" and spec["robot"] == "panda"
    assert spec["has_critic"] is True
    assert spec["action"]["space"] == "joint_velocity_gripper" and spec["action"]["dim"] == 8
    names = [f["name"] for f in spec["fields"]]
    assert names == ["joint_positions", "joint_velocities", "grasp", "gripper_position",
                     "gripper_velocity", "end_effector_pose", "previous_action",
                     "camera/front", "camera/wrist"]
    assert spec["obs_dim"] == 24 * 3 + 8 * 2
    assert [f["shape"] for f in spec["fields"] if f["is_image"]] == [[128, 128, 3]] * 2


def rewrite(src, dst, meta_fn=None, tensor_fn=None):
    tensors, meta = safetensors.read(src)
    if meta_fn:
        meta = meta_fn(dict(meta))
    if tensor_fn:
        tensors = tensor_fn(dict(tensors))
    safetensors.write(dst, tensors, meta)


def model_edit(**kv):
    def fn(meta):
        m = json.loads(meta["pacd.model"])
        for k, v in kv.items():
            if v is None:
                m.pop(k, None)
            else:
                m[k] = v
        meta["pacd.model"] = json.dumps(m)
        return meta
    return fn


def drop(name):
    def fn(t):
        del t[name]
        return t
    return fn


def reshape(name):
    def fn(t):
        t[name] = torch.zeros(t[name].shape[0] + 1, *t[name].shape[1:])
        return t
    return fn


def extra(t):
    t["encoder.blocks.9.ln1.weight"] = torch.ones(4)
    return t


def nan_in(name):
    def fn(t):
        t[name] = t[name].float().clone()
        t[name].view(-1)[2] = float("nan")
        return t
    return fn


BAD = [
    ("width not multiple of heads", model_edit(heads=5), None, "not a multiple of heads"),
    ("unknown model key", model_edit(dropout=0.1), None, "unknown key 'dropout'"),
    ("missing width", model_edit(width=None), None, "\"width\" must be an integer"),
    ("bad head", model_edit(head={"type": "beta"}), None, "\"head\" must be"),
    ("bins too few", model_edit(head={"type": "categorical", "bins": 1}), None,
     "\"bins\" must be an integer"),
    ("bad critic", model_edit(critic={"value_bins": 11, "value_min": 1, "value_max": 0}), None,
     "\"critic\" must be null"),
    ("critic action_hidden not an integer",
     model_edit(critic={"value_bins": 51, "value_min": 0, "value_max": 1, "action_hidden": 0.5}),
     None, "critic: \"action_hidden\" must be an integer in [0, 4096]"),
    ("critic action_hidden without its tensors",
     model_edit(critic={"value_bins": 51, "value_min": 0, "value_max": 1, "action_hidden": 8}),
     None, "tensor 'critic.action_proj.0.weight' is missing"),
    ("bad queries", model_edit(queries="many"), None, "\"queries\" must be"),
    ("bad task", model_edit(task={"type": "language"}), None, "\"task\" must be"),
    ("conv too large", model_edit(image_encoder=enc([(8, 8, 0, 8), (15, 1, 0, 8)])), None,
     "does not fit the 4x4 map"),
    ("groups do not divide", model_edit(image_encoder=enc([(4, 4, 0, 8)], groups=3)), None,
     "not a multiple of the GroupNorm groups"),
    ("missing tensor", None, drop("encoder.blocks.0.attn.q.weight"),
     "'encoder.blocks.0.attn.q.weight'"),
    ("wrong shape", None, reshape("policy.queries"), "'policy.queries'"),
    ("stray tensor", None, extra, "tensor 'encoder.blocks.9.ln1.weight' is not part"),
    ("critic tensors without critic metadata", model_edit(critic=None), None,
     "is not part of the pac model"),
    ("nan weight", None, nan_in("encoder.latents"), "NaN"),
    ("no model", lambda m: {k: v for k, v in m.items() if k != "pacd.model"}, None,
     "'pacd.model' is missing"),
]


@pytest.mark.parametrize("case", BAD, ids=[b[0] for b in BAD])
def test_validation_errors(tmp_path, eval_exe, case):
    _, meta_fn, tensor_fn, needle = case
    good = tmp_path / "good.safetensors"
    model, observation, action = make_pac.build("pac-s", ["c0"], "joint_velocity",
                                                 critic=True, image_size=32, seed=2,
                                                 overrides={"width": 32, "heads": 4,
                                                            "latents": 4, "blocks": 1})
    pexport.export(model, good, "panda", observation, action)
    r = subprocess.run([str(eval_exe), "--spec", str(good)], capture_output=True)
    assert r.returncode == 0, r.stderr.decode()
    bad = tmp_path / "bad.safetensors"
    rewrite(good, bad, meta_fn, tensor_fn)
    r = subprocess.run([str(eval_exe), "--spec", str(bad)], capture_output=True)
    assert r.returncode == 1
    msg = r.stderr.decode()
    assert str(bad) in msg and needle in msg, msg
