"""A PAC checkpoint (pac-s: two 128x128 cameras, 24-D proprioception stacked
3 deep, critic) runs in the real daemon on the sim Panda with camera frames
published over ZeroMQ; the steps are logged with the critic's Q values."""
import os
import subprocess
import time

import pytest

import pacd_client
from conftest import PACD, PY, SRC, FrameFeeder, realtime
from test_daemon import cat_steps, node_read

pb = pacd_client.pb


def make_pac_s(out, *args):
    """A pac-s Panda checkpoint (cameras front and wrist) at `out`; args go to
    pacd_torch.make_pac (e.g. --critic, --dtype, --seed)."""
    env = dict(os.environ, PYTHONPATH=os.path.join(SRC, "policy", "torch"))
    subprocess.run([PY, "-m", "pacd_torch.make_pac", "--size", "pac-s", "--robot", "panda",
                    "--cameras", "front,wrist", "--action-space", "joint_velocity_gripper",
                    *args, "--out", str(out)],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    return str(out)


@pytest.fixture(scope="module")
def pac_checkpoint(tmp_path_factory):
    return make_pac_s(tmp_path_factory.mktemp("pac") / "pac-s.safetensors", "--critic",
                      "--seed", "3")


class TwoCameras:
    def __init__(self, d):
        self.feeds = [FrameFeeder(d.camera("front")), FrameFeeder(d.camera("wrist"))]
        # different images per camera, so a mix-up would show
        self.feeds[1].img = pacd_client.synthetic_image(128, 128, 3.0)

    def __call__(self):
        for f in self.feeds:
            f()


def cpu_kernels():
    flags = set()
    for line in open("/proc/cpuinfo"):
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    return {"avx512": "avx512f" in flags, "avx2": {"avx2", "fma"} <= flags, "blas": True,
            "amx": {"avx512f", "avx512_bf16", "amx_tile", "amx_bf16"} <= flags}


@pytest.mark.parametrize("kernel", ["avx2", "avx512", "blas", "amx"])
def test_check_config_names_the_forced_kernel(tmp_path, pac_checkpoint, kernel):
    from conftest import write_config
    ports = {"camera": 1, "state": 2, "telemetry": 3, "control": 4}
    cfg = write_config(str(tmp_path / "k.conf"), pac_checkpoint, str(tmp_path), ports,
                       cameras=("front", "wrist"), extra=f"[policy]\nkernel = {kernel}\n")
    r = subprocess.run([PACD, "--check-config", cfg], capture_output=True, text=True, timeout=120)
    if not cpu_kernels()[kernel]:
        assert r.returncode != 0 and "lacks" in r.stderr, r.stderr
        pytest.skip(f"this CPU lacks the {kernel} kernel")
    if kernel == "amx" and r.returncode != 0 and "lacks" in r.stderr:
        # the CPU has AMX but the OS refused this process the tile state
        pytest.skip("AMX present but not granted by the kernel (arch_prctl)")
    assert r.returncode == 0, r.stderr
    name = {"blas": "blas", "amx": "amx-bf16x3"}.get(kernel, kernel + "-packed")
    assert f"kernel {name})" in r.stdout, r.stdout


@pytest.mark.parametrize("dtype", ["f32", "bf16"])
def test_check_config_auto_kernel_by_weight_dtype(tmp_path, dtype):
    """kernel = auto: the float kernel for F32 weights; AMX for a BF16 PAC
    checkpoint where the CPU has it and the OS grants the tile state."""
    from conftest import write_config
    ckpt = make_pac_s(tmp_path / f"pac-{dtype}.safetensors", "--dtype", dtype, "--seed", "4")
    ports = {"camera": 1, "state": 2, "telemetry": 3, "control": 4}

    def kernel_line(kernel):
        cfg = write_config(str(tmp_path / f"{kernel}.conf"), ckpt, str(tmp_path), ports,
                           cameras=("front", "wrist"), extra=f"[policy]\nkernel = {kernel}\n")
        return subprocess.run([PACD, "--check-config", cfg], capture_output=True, text=True,
                              timeout=120)

    have = cpu_kernels()
    amx = have["amx"] and kernel_line("amx").returncode == 0
    best = "avx512-packed" if have["avx512"] else "avx2-packed" if have["avx2"] else "blas"
    want = "amx-bf16x3" if dtype == "bf16" and amx else best
    r = kernel_line("auto")
    assert r.returncode == 0, r.stderr
    assert f"kernel {want})" in r.stdout, r.stdout


@realtime
def test_pac_checkpoint_drives_the_sim_arm_with_cameras_and_logs_q(daemon, pac_checkpoint):
    d = daemon(checkpoint=pac_checkpoint, cameras=("front", "wrist"))
    have = cpu_kernels()
    best = "avx512-packed" if have["avx512"] else "avx2-packed" if have["avx2"] else "blas"
    assert f"kernel {best}, 20.0 Hz" in d.stderr()   # the start-up line names the kernel
    feed = TwoCameras(d)
    d.wait_for(lambda s: s.frames_received >= 4, feed=feed, what="frames of both cameras")
    d.client.start_episode(max_steps=30)
    st = d.wait_for(lambda s: s.state == pb.IDLE and s.step == 30, feed=feed, timeout=30,
                    what="30 PAC steps")
    assert st.has_q_value
    assert st.inference.p50_us > 0
    d.stop()
    log = d.logs()[0]
    steps = cat_steps(log)
    assert len(steps) == 30
    live = [s for s in steps if not s["stale"]]
    assert len(live) >= 25
    for s in live:
        assert "q_value" in s and s["q_value"] == s["q_value"]  # present and not NaN
        assert len(s["policy_action"]) == 8
        assert {f["camera"] for f in s["frames"]} == {"front", "wrist"}
    # proprioception stacked 3 deep, previous action 2 deep, as the checkpoint asks
    shapes = steps[0]["observation_shape"]
    assert shapes["joint_positions"] == [3, 7]
    assert shapes["previous_action"] == [2, 8]
    # the previous action a step sees is the command sent the step before
    for a, b in zip(live, live[1:]):
        if b["step"] == a["step"] + 1 and not a["held"]:
            assert b["observation"]["previous_action"][8:] == pytest.approx(a["action"], abs=1e-6)
    q0 = steps[0]["observation"]["joint_positions"][-7:]
    q1 = steps[-1]["observation"]["joint_positions"][-7:]
    assert max(abs(x - y) for x, y in zip(q0, q1)) > 1e-3, "the PAC actor moved the arm"
    doc = node_read(log)
    topics = {m["topic"] for m in doc["messages"]}
    assert {"/pacd/camera/front", "/pacd/camera/wrist", "/pacd/step"} <= topics
    meta = {m["name"]: m["metadata"] for m in doc["metadata"]}["pacd"]
    assert meta["policy_sampling"] == "deterministic"


@realtime
def test_pac_runs_on_the_amx_kernel_in_the_loop(daemon, pac_checkpoint):
    # kernel = amx end to end: the loop thread prepares the tile unit
    # (policy_prepare_thread) and steps; Q and actions are logged and finite
    if not cpu_kernels()["amx"]:
        pytest.skip("this CPU lacks AMX")
    d = daemon(checkpoint=pac_checkpoint, cameras=("front", "wrist"),
               extra="[policy]\nkernel = amx\n")
    assert "kernel amx-bf16x3, 20.0 Hz" in d.stderr()
    feed = TwoCameras(d)
    d.wait_for(lambda s: s.frames_received >= 4, feed=feed, what="frames of both cameras")
    d.client.start_episode(max_steps=10)
    st = d.wait_for(lambda s: s.state == pb.IDLE and s.step == 10, feed=feed, timeout=30,
                    what="10 PAC steps on AMX")
    assert st.has_q_value
    d.stop()
    steps = cat_steps(d.logs()[0])
    assert len(steps) == 10
    for s in steps:
        assert s["q_value"] == s["q_value"]   # not NaN
        assert all(v == v for v in s["policy_action"])


@realtime
def test_pac_sampling_is_seeded_and_logged(daemon, pac_checkpoint):
    d = daemon(checkpoint=pac_checkpoint, cameras=("front", "wrist"),
               extra="[policy]\nsample = true\ntemperature = 0.5\nseed = 11\n")
    feed = TwoCameras(d)
    d.client.start_episode(max_steps=10)
    d.wait_for(lambda s: s.state == pb.IDLE and s.step == 10, feed=feed, timeout=30,
               what="10 sampled steps")
    d.stop()
    doc = node_read(d.logs()[0])
    meta = {m["name"]: m["metadata"] for m in doc["metadata"]}["pacd"]
    assert meta["policy_sampling"] == "sample temperature=0.5 seed=11"


def with_action_repeat(src, out, repeat):
    """A copy of checkpoint `src` whose pacd.action says "repeat": repeat."""
    import json
    import sys
    sys.path.insert(0, os.path.join(SRC, "policy", "torch"))
    from pacd_torch import safetensors
    tensors, meta = safetensors.read(src)
    action = json.loads(meta["pacd.action"])
    action["repeat"] = repeat
    meta["pacd.action"] = json.dumps(action)
    safetensors.write(str(out), tensors, meta)
    return str(out)


def test_action_repeat_holds_each_decision(daemon, pac_checkpoint, tmp_path):
    """A checkpoint with "repeat": 3 runs the policy on the first period of
    each decision and executes that action on the next two (inference 0, no
    Q); a stale step ends a decision early. Sampling at temperature 1 makes
    consecutive decisions differ, so a loop that ran the policy every period
    would fail this."""
    ckpt = with_action_repeat(pac_checkpoint, tmp_path / "pac-r3.safetensors", 3)
    d = daemon(checkpoint=ckpt, cameras=("front", "wrist"),
               extra="[policy]\nsample = true\ntemperature = 1\nseed = 5\n")
    feed = TwoCameras(d)
    d.client.start_episode(max_steps=14)
    d.wait_for(lambda s: s.state == pb.IDLE and s.step == 14, feed=feed, timeout=60,
               what="14 steps")
    d.stop()
    steps = cat_steps(d.logs()[0])
    assert len(steps) == 14
    left, decision, decisions, held = 0, None, [], 0
    for s in steps:
        if s.get("stale"):
            left = 0
            continue
        if left > 0:
            assert s.get("inference_us", 0) == 0, s
            assert "q_value" not in s, s
            assert s["policy_action"] == pytest.approx(decision, abs=1e-6), s
            left -= 1
            held += 1
        else:
            assert s.get("inference_us", 0) > 0, s
            assert "q_value" in s, s
            decision = s["policy_action"]
            decisions.append(decision)
            left = 2
    assert held >= 6 and len(decisions) >= 3, (held, len(decisions))
    assert any(a != pytest.approx(b, abs=1e-6) for a, b in zip(decisions, decisions[1:])), \
        "sampled decisions should differ"
