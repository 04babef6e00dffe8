"""The loop's smoke runs (deploy/run-loop.sh --smoke, low-dim and camera): collect with the
scripted operator through pacd, export, train BC, PAC and two-stage PAC,
load the checkpoints in pacd and evaluate them, let two-stage PAC collect its
own episodes and retrain. Tiny stages: it checks the whole path, not the success rates
(docs/loop.md). Runs in the plain build only: the sanitizer builds cover
pacd's part of it in test_lift_cell.py, and the rest is Python."""
import json
import os
import subprocess

import h5py
import numpy as np
import pytest

from conftest import PACD, SRC, scaled
from pacd_torch.safetensors import read as read_safetensors

version = subprocess.run([PACD, "--version"], capture_output=True, text=True).stdout
pytestmark = [
    pytest.mark.skipif("mujoco" not in version, reason="pacd was built without MuJoCo"),
    pytest.mark.skipif(os.environ.get("PACD_TEST_TIME_FACTOR", "1") != "1",
                       reason="plain build only (the sanitizer builds run test_lift_cell.py)"),
]


def metadata(path, key):
    """One JSON value of a checkpoint's metadata (pacd.training, pacd.observation...)."""
    return json.loads(read_safetensors(path)[1][key])


def run_loop(out, *args):
    """deploy/run-loop.sh --smoke ARGS into `out`; returns results.json's rows."""
    r = subprocess.run(["/usr/bin/python3", os.path.join(SRC, "clients", "pacd_lift_loop.py"),
                        "--smoke", *args, "--out", str(out),
                        "--build", os.environ.get("PACD_BUILD_DIR", os.path.join(SRC, "build"))],
                       capture_output=True, text=True, timeout=scaled(900))
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    return json.load(open(out / "results.json"))["results"]


def test_loop_smoke_collects_trains_loads_and_evaluates(tmp_path):
    out = tmp_path / "loop"
    rows = run_loop(out, "--algos", "bc,pac,pac-2stage")
    assert list(rows) == ["behaviour data", "bc", "pac", "pac-2stage",
                          "pac's own episodes (sampling)", "pac round 2"]
    # the operator at full skill lifted the cube in the smoke collection
    assert rows["behaviour data"] == {"successes": 3, "episodes": 3}
    assert all(v["episodes"] == 2 for k, v in rows.items() if k != "behaviour data")
    for name in ("bc", "pac", "pac-2stage-critic", "pac-2stage", "pac-round2"):
        assert (out / (name + ".safetensors")).stat().st_size > 0
    assert "| pac round 2 |" in (out / "results.md").read_text()
    # the two stages: the actor started from the critic's checkpoint, critic frozen
    info = metadata(out / "pac-2stage.safetensors", "pacd.training")
    assert info["init"]["checkpoint"] == "pac-2stage-critic.safetensors"
    assert info["init"]["critic_frozen"] is True
    assert info["hyperparameters"]["support"] == 0.1
    assert metadata(out / "pac-2stage-critic.safetensors", "pacd.training")["algo"] == "bcq"
    # joint pac: from the BC row's actor (its support), the critic trained
    # beside it on the target policy's next decision; round 2 goes on from
    # round 1's checkpoint on both data sets
    info = metadata(out / "pac.safetensors", "pacd.training")
    assert info["init"]["checkpoint"] == "bc.safetensors"
    assert info["init"]["critic_frozen"] is False
    assert info["hyperparameters"]["support"] == 0.01 and info["critic"] is True
    assert info["hyperparameters"]["bootstrap"] == "policy"
    assert info["hyperparameters"]["improve_after"] == 0.33
    info = metadata(out / "pac-round2.safetensors", "pacd.training")
    assert info["init"]["checkpoint"] == "pac.safetensors"
    assert info["init"]["critic_frozen"] is False
    assert len(info["data"]) == 2 and info["episodes"] == 3 + 2
    assert not (out / "pac-round2-bc.safetensors").exists()
    # every evaluation episode was logged by pacd, with the checkpoint that acted
    for d in ("eval-bc", "eval-pac", "eval-pac-2stage", "eval-pac round 2", "round2-collect"):
        assert len(os.listdir(out / d / "episodes")) == 2, d


def test_loop_smoke_camera_variant_logs_the_pixels_and_trains_on_them(tmp_path):
    """--variant camera: pacd renders the 64x64 agentview camera on every tick,
    logs the frames, the export carries them, and the camera model (no
    privileged field) trains on them, loads in pacd and acts."""
    out = tmp_path / "loop"
    rows = run_loop(out, "--variant", "camera", "--algos", "bc,pac-2stage")
    assert list(rows) == ["behaviour data", "bc", "pac-2stage",
                          "pac-2stage's own episodes (sampling)", "pac-2stage round 2"]
    with h5py.File(out / "behaviour.hdf5", "r") as f:
        demo = f["data/demo_0"]
        img = demo["obs/agentview_image"][()]
        assert img.dtype == np.uint8 and img.shape[1:] == (64, 64, 3)
        assert img.shape[0] == demo.attrs["num_samples"]
        # rendered pixels, not a zero image: the scene has texture and moves
        assert img.std() > 5 and np.abs(img[-1].astype(int) - img[0]).mean() > 0.5
    for name in ("bc", "pac-2stage", "pac-2stage-round2"):
        seen = [x["name"] for x in metadata(out / (name + ".safetensors"), "pacd.observation")]
        assert "camera/agentview" in seen, (name, seen)
        assert not {"cube_pose", "gripper_to_cube"} & set(seen), (name, seen)
    for d in ("eval-bc", "eval-pac-2stage", "eval-pac-2stage round 2"):
        assert len(os.listdir(out / d / "episodes")) == 2, d
