"""clients/pacd_lift_failure_modes.py on hand-built Lift data sets: the
counts of successes, never-closing failures and where the first close is,
with the cube's centre from the data or, for a camera model's data, from a
reference data set of the same seeds."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import SRC

sys.path.insert(0, os.path.join(SRC, "clients"))
sys.path.insert(0, os.path.join(SRC, "policy", "torch"))
import pacd_lift_failure_modes as fm  # noqa: E402
from pacd_torch import dataset as pds  # noqa: E402

# pure Python: a sanitizer build cannot change the outcome (as test_train.py)
pytestmark = pytest.mark.skipif(os.environ.get("PACD_SANITIZED") == "1",
                                reason="pure Python: run in the plain build only")

ACTION = {"space": "cartesian_velocity", "dim": 5, "low": [-0.15, -0.15, -0.15, -1, -1],
          "high": [0.15, 0.15, 0.15, 1, 1]}
EE = {"name": "end_effector_pose", "source": "end_effector_pose", "shape": [7], "history": 1}
G2C = {"name": "gripper_to_cube", "source": "gripper_to_object/cube", "shape": [3],
       "history": 1}
CUBE = np.array([0.6, 0.05, -0.1])


def episode(seed, path_xyz, close_at=None, success=False):
    """An episode whose end effector follows path_xyz [T, 3] (m), closing the
    gripper from step close_at on (None: never). A final step repeats the
    last position: a logged episode's last action is not in the data set."""
    path_xyz = np.r_[path_xyz, path_xyz[-1:]]
    t = len(path_xyz)
    pose = np.zeros((t, 7), np.float32)
    pose[:, :3] = path_xyz
    pose[:, 3] = 1.0
    g2c = (np.asarray(path_xyz) - CUBE).astype(np.float32)
    act = np.zeros((t, 5), np.float32)
    act[:, 4] = 1.0
    if close_at is not None:
        act[close_at:, 4] = -1.0
    rew = np.zeros(t)
    if success:
        rew[-1] = 1.0
    return {"observation": np.concatenate([pose, g2c], 1), "actions": act, "rewards": rew,
            "is_terminal": np.r_[np.zeros(t - 1), [int(success)]],
            "is_last": np.r_[np.zeros(t - 1), [1]], "seed": seed}


def line(start, end, n=6):
    return np.linspace(start, end, n)


def episodes():
    above = CUBE + [0, 0, 0.1]
    return [
        # a success: down onto the cube, closes 5 mm off in x, at the centre's height
        episode(1, line(above + [0.005, 0, 0], CUBE + [0.005, 0, 0]), close_at=5,
                success=True),
        # never closes; the closest it gets is 2 cm off in y
        episode(2, line(above + [0, 0.02, 0], CUBE + [0, 0.02, 0])),
        # closes 4 cm off in x and 3 cm above; passed 1 cm off on the way
        episode(3, np.r_[line(above + [0.01, 0, 0], CUBE + [0.01, 0, 0.05], 3),
                         line(CUBE + [0.04, 0, 0.03], CUBE + [0.04, 0, 0.03], 3)],
                close_at=4),
    ]


@pytest.fixture
def data(tmp_path):
    full = tmp_path / "lowdim.hdf5"
    pds.write(full, episodes(), "sawyer", [EE, G2C], ACTION)
    cam = tmp_path / "camera.hdf5"                  # only the end-effector pose logged
    eps = episodes()
    for e in eps:
        e["observation"] = e["observation"][:, :7]
    eps.append(dict(eps[0], seed=99))              # a success on a seed REF lacks
    pds.write(cam, eps, "sawyer", [EE], ACTION)
    return full, cam


def check(r, skipped=0):
    assert r["episodes"] == 3 + skipped and r["successes"] == 1
    assert r["failures"] == 2 and r["skipped"] == skipped
    assert r["never_closed"] == 1 and r["closed"] == 2 and r["close_within"] == 1
    # first closes: 0.005 m and 0.04 m off in x-y -> median 0.0225; heights 0 and 0.03
    assert r["close_xy_median_m"] == pytest.approx(0.0225, abs=1e-6)
    assert r["close_dz_median_m"] == pytest.approx(0.015, abs=1e-6)
    # closest before the first close: 0.005, 0.02 (never closes), 0.01 -> 0.01
    assert r["closest_xy_median_m"] == pytest.approx(0.01, abs=1e-6)


def test_counts_from_the_data_sets_cube_pose(data):
    check(fm.failure_modes(str(data[0])))


def test_camera_data_takes_the_cube_from_a_reference(data):
    full, cam = data
    ref = fm.cube_positions(str(full))
    assert sorted(ref) == [1, 2, 3]
    np.testing.assert_allclose(ref[2], CUBE, atol=1e-6)
    # seed 99 is not in the reference: skipped, not counted as a success
    check(fm.failure_modes(str(cam), ref), skipped=1)
    with pytest.raises(fm.FailureModeError, match="no gripper_to_cube field"):
        fm.failure_modes(str(cam))


def test_command_line(data):
    full, cam = data
    exe = [sys.executable, os.path.join(SRC, "clients", "pacd_lift_failure_modes.py")]
    out = subprocess.run(exe + [str(full), "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    check(json.loads(out.stdout))
    out = subprocess.run(exe + [str(cam)], capture_output=True, text=True)
    assert out.returncode == 1 and "give --cube-from" in out.stderr
    out = subprocess.run(exe + [str(cam), "--cube-from", str(full)], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    assert "1/3 successful" in out.stdout and "1 episodes without a cube pose" in out.stdout
    assert "1 never close" in out.stdout and "1 within 1.5 cm" in out.stdout
