"""`pacctl log export`: pacd's episode logs -> one HDF5 data set (docs/loop.md,
"Data set"). Runs the real pacd, exports its logs and checks the file with
h5py and the trainer's own reader (pacd_torch.dataset.read) against what
`pacctl log cat` prints for the same steps."""
import json
import os
import resource
import signal
import subprocess
import time

import h5py
import numpy as np
import pytest

import pacd_client
from conftest import Daemon
from conftest import PACCTL, PY, SRC, FrameFeeder, pacctl, realtime
from test_daemon import cat_steps
from test_pac_daemon import TwoCameras, make_pac_s

from pacd_torch import dataset
from pacd_torch.safetensors import read as read_safetensors


def load_metadata(path):
    return read_safetensors(path)[1]

pb = pacd_client.pb


def export(out, *args):
    return pacctl("log", "export", "-o", str(out), *map(str, args))


def flat_obs(step):
    return np.concatenate([np.asarray(v, np.float32).ravel()
                           for v in step["observation"].values()])


class RewardFeed:
    """Frames as FrameFeeder does, plus a reward that changes on every call, so
    that each logged step carries its own reward."""

    def __init__(self, d, feed):
        self.feed, self.sp, self.k = feed, d.state_publisher(), 0

    def __call__(self):
        self.feed()
        self.k += 1
        self.sp.send_reward((self.k % 17) * 0.0625)

    def terminal(self):
        self.sp.send_reward(1.0, discount=0.0, is_terminal=True)


def run_episodes(d, feed, lengths):
    """Episodes of the given step counts; "terminal": an episode ended by a
    terminal reward after at least 5 steps (feed must be a RewardFeed)."""
    d.wait_for(lambda s: s.frames_received >= 2, feed=feed, what="frames flowing")
    done = 0
    for n in lengths:
        done += 1
        if n == "terminal":
            d.client.start_episode(max_steps=0)
            d.wait_for(lambda s: s.step >= 5, feed=feed, what="5 steps")
            for _ in range(200):
                feed.terminal()
                feed.feed()
                time.sleep(0.03)
                if d.client.status().state == pb.IDLE:
                    break
            d.wait_for(lambda s, k=done: s.state == pb.IDLE and s.episodes == k, feed=feed.feed,
                       timeout=60, what=f"episode {done} ended by a terminal reward")
            continue
        d.client.start_episode(max_steps=n)
        d.wait_for(lambda s, k=done, n=n: s.state == pb.IDLE and s.episodes == k and s.step == n,
                   feed=feed, timeout=60, what=f"episode {done} of {n} steps")
    d.stop()
    logs = d.logs()
    assert len(logs) == len(lengths), d.stderr()
    return logs


def check_round_trip(path, logs, ckpt_sha):
    """Every row of the data set equals the logged steps (pacctl log cat)."""
    data = dataset.read(str(path))          # the trainer's checker
    assert len(data["demos"]) == len(logs)
    with h5py.File(path, "r") as h:
        at = h["data"].attrs
        assert at["pacd_dataset_version"] == 1 and at["pacd_dataset_version"].dtype == np.int64
        assert at["robot"] == "panda"
        assert at["rate_hz"] == 20.0 and at["rate_hz"].dtype == np.float64
        assert isinstance(at["observation"], str) and isinstance(at["env_args"], str)
        assert json.loads(at["env_args"])["env_kwargs"]["robot"] == "panda"
        total = 0
        for k, log in enumerate(logs):
            steps = cat_steps(log)
            t = len(steps)
            g = h["data"][f"demo_{k}"]
            assert g.attrs["num_samples"] == t - 1
            assert g.attrs["episode_id"] == os.path.basename(log)[:-len(".mcap")]
            assert g.attrs["model_sha256"] == ckpt_sha
            assert g.attrs["seed"] == -1 and g.attrs["unfinished"] == 0
            assert g["obs/observation"].dtype == np.float32
            assert g["actions"].dtype == np.float32 and g["rewards"].dtype == np.float32
            for key in ("dones", "is_first", "is_last", "is_terminal", "held"):
                assert g[key].dtype == np.uint8
            obs = np.stack([flat_obs(s) for s in steps])
            act = np.asarray([s["action"] for s in steps], np.float32)
            np.testing.assert_array_equal(g["obs/observation"][()], obs[:-1])
            np.testing.assert_array_equal(g["next_obs/observation"][()], obs[1:])
            np.testing.assert_array_equal(g["actions"][()], act[:-1])
            np.testing.assert_array_equal(g["rewards"][()],
                                          np.asarray([s["reward"] for s in steps[1:]], np.float32))
            for key, src in (("is_last", "is_last"), ("is_terminal", "is_terminal"),
                             ("dones", "is_terminal")):
                assert g[key][()].tolist() == [int(s[src]) for s in steps[1:]], key
            assert g["is_first"][()].tolist() == [int(s["is_first"]) for s in steps[:-1]]
            assert g["held"][()].tolist() == [int(s["held"]) for s in steps[:-1]]
            assert g["is_last"][-1] == 1 and g["is_first"][0] == 1
            demo = data["demos"][k]
            np.testing.assert_array_equal(demo["actions"], act[:-1])
            total += t - 1
        assert at["total"] == total


def test_two_episodes_round_trip_and_train(daemon, example_checkpoint, tmp_path):
    d = daemon()
    logs = run_episodes(d, RewardFeed(d, FrameFeeder(d.camera())), [12, "terminal"])
    steps = [cat_steps(log) for log in logs]
    assert len({s["reward"] for s in steps[0]}) > 3, "rewards vary from step to step"
    assert steps[1][-1]["is_terminal"] and not steps[0][-1]["is_terminal"]
    out = tmp_path / "set.hdf5"
    # the log has the observation layout, not the full spec: the checkpoint is needed
    r = export(out, *logs)
    assert r.returncode == 1 and "--checkpoint" in r.stderr, r.stderr
    assert not out.exists()
    r = export(out, "--checkpoint", example_checkpoint, *logs, logs[0])
    assert r.returncode == 1 and "same episode" in r.stderr, r.stderr
    assert not out.exists()
    r = export(out, "--checkpoint", example_checkpoint, *logs)
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(tmp_path / "episodes")) == sorted(map(os.path.basename, logs))
    assert [f for f in os.listdir(tmp_path) if f.startswith(".pacctl-export")] == []
    meta = load_metadata(example_checkpoint)
    with h5py.File(out, "r") as h:
        assert json.loads(h["data"].attrs["observation"]) == json.loads(meta["pacd.observation"])
        assert json.loads(h["data"].attrs["action"]) == json.loads(meta["pacd.action"])
    sha = subprocess.run(["sha256sum", example_checkpoint], capture_output=True, text=True,
                         check=True).stdout.split()[0]
    check_round_trip(out, logs, sha)
    with h5py.File(out, "r") as h:
        assert h["data/demo_1/dones"][-1] == 1 and h["data/demo_0/dones"][-1] == 0

    # the exported file trains, and the checkpoint it gives loads back
    ckpt = tmp_path / "bc.safetensors"
    env = dict(os.environ, PYTHONPATH=os.path.join(SRC, "policy", "torch"))
    r = subprocess.run([PY, "-m", "pacd_torch.train", "--data", str(out), "--algo", "bc",
                        "--size", "tiny", "--steps", "20", "--threads", "1", "--quiet",
                        "--out", str(ckpt)], capture_output=True, text=True, env=env,
                       timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    # pacd's own loader (pacd-policy-eval) loads it and acts on an exported observation
    ev = os.path.join(os.environ["PACD_BUILD_DIR"], "policy", "pacd-policy-eval")
    r = subprocess.run([ev, "--spec", str(ckpt)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    with h5py.File(out, "r") as h:
        row = h["data/demo_0/obs/observation"][0]
    r = subprocess.run([ev, str(ckpt)], input=row.astype("<f4").tobytes(),
                       capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr
    act = np.frombuffer(r.stdout, "<f4")
    assert act.shape == (7,) and np.isfinite(act).all()
    meta2 = load_metadata(str(ckpt))
    assert json.loads(meta2["pacd.action"]) == json.loads(meta["pacd.action"])


@realtime
def test_camera_frames_the_steps_used_are_exported(daemon, tmp_path):
    ckpt = make_pac_s(tmp_path / "pac-s.safetensors", "--seed", "5")
    d = daemon(checkpoint=ckpt, cameras=("front", "wrist"))
    feed = TwoCameras(d)
    logs = run_episodes(d, feed, [6])
    out = tmp_path / "cams.hdf5"
    r = export(out, "--checkpoint", ckpt, *logs)
    assert r.returncode == 0, r.stderr
    data = dataset.read(str(out))
    steps = cat_steps(logs[0])
    frames = {}
    for cam in ("front", "wrist"):
        r = pacctl("log", "cat", "--topic", f"/pacd/camera/{cam}", logs[0])
        assert r.returncode == 0, r.stderr
        frames[cam] = {json.loads(x)["seq"] for x in r.stdout.splitlines()}
    demo = data["demos"][0]
    for i, s in enumerate(steps[:-1]):
        for ref in s["frames"]:
            assert ref["seq"] in frames[ref["camera"]]
            img = demo["obs"][f"{ref['camera']}_image"][i]
            # the publishers send fixed synthetic images, different per camera
            want = feed.feeds[0 if ref["camera"] == "front" else 1].img
            np.testing.assert_array_equal(img, np.frombuffer(want, np.uint8).reshape(128, 128, 3))
    np.testing.assert_array_equal(demo["obs"]["observation"],
                                  np.stack([flat_obs(s) for s in steps[:-1]]))


def test_unfinished_log_exports_its_complete_steps(daemon, example_checkpoint, tmp_path):
    d = daemon()
    feed = FrameFeeder(d.camera())
    d.wait_for(lambda s: s.frames_received >= 2, feed=feed, what="frames flowing")
    d.client.start_episode(max_steps=0)
    d.wait_for(lambda s: s.step >= 15, feed=feed, what="15 steps")
    d.signal(signal.SIGKILL)
    d.wait()
    logs = d.logs()
    assert "unfinished" in pacctl("log", "verify", logs[0]).stdout
    steps = cat_steps(logs[0])
    assert len(steps) >= 3
    out = tmp_path / "cut.hdf5"
    r = export(out, "--checkpoint", example_checkpoint, logs[0])
    assert r.returncode == 0, r.stderr
    assert "unfinished" in r.stderr and f"{len(steps)} complete steps" in r.stderr
    data = dataset.read(str(out))
    demo = data["demos"][0]
    assert demo["attrs"]["unfinished"] == 1
    assert len(demo["actions"]) == len(steps) - 1
    assert demo["is_last"][-1] == 0
    np.testing.assert_array_equal(demo["obs"]["observation"],
                                  np.stack([flat_obs(s) for s in steps[:-1]]))
    np.testing.assert_array_equal(demo["next_obs"]["observation"][-1], flat_obs(steps[-1]))

    # a write that fails half-way (file size limit: EFBIG) leaves no file behind
    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    out2 = tmp_path / "full" / "cut.hdf5"
    out2.parent.mkdir()
    r = subprocess.run([PACCTL, "log", "export", "-o", str(out2), "--checkpoint",
                        example_checkpoint, logs[0]], capture_output=True, text=True,
                       preexec_fn=small_files)
    assert r.returncode == 1, r.stderr
    assert "failed" in r.stderr, r.stderr
    assert os.listdir(out2.parent) == []


def test_mismatched_logs_are_refused_without_output(daemon, example_checkpoint, tmp_path):
    mlp = daemon()
    mlp_logs = run_episodes(mlp, FrameFeeder(mlp.camera()), [4])
    # a checkpoint with another observation spec (proprioception stacked, cameras)
    ckpt = make_pac_s(tmp_path / "pac-s.safetensors", "--seed", "6")
    out = tmp_path / "mixed.hdf5"
    # a wrong checkpoint for the log: refused, naming both hashes
    r = export(out, "--checkpoint", ckpt, *mlp_logs)
    assert r.returncode == 1 and "sha256" in r.stderr and mlp_logs[0] in r.stderr, r.stderr
    assert not out.exists()
    pac_logs = run_pac_episode(tmp_path, ckpt)
    r = export(out, "--checkpoint", example_checkpoint, "--checkpoint", ckpt,
               *mlp_logs, *pac_logs)
    assert r.returncode == 1, r.stderr
    assert "observation spec differs" in r.stderr and pac_logs[0] in r.stderr, r.stderr
    assert "field 0" in r.stderr, r.stderr
    assert not out.exists()
    assert [f for f in os.listdir(tmp_path) if f.startswith(".pacctl-export")] == []
    # an existing output is left as it was
    out.write_bytes(b"keep")
    r = export(out, "--checkpoint", example_checkpoint, "--checkpoint", ckpt,
               *pac_logs, *mlp_logs)
    assert r.returncode == 1 and mlp_logs[0] in r.stderr, r.stderr
    assert out.read_bytes() == b"keep"


def run_pac_episode(tmp_path, ckpt):
    """One 4-step episode of a pac-s checkpoint in a second pacd (own log directory)."""
    os.makedirs(tmp_path / "pacd2")
    d = Daemon(tmp_path / "pacd2", ckpt, cameras=("front", "wrist"))
    try:
        d.start()
        return run_episodes(d, TwoCameras(d), [4])
    finally:
        d.stop()
