"""pacd on the MuJoCo Menagerie Panda (mujoco backend): physics in its own
thread, the scene's camera rendered offscreen and published over ZeroMQ to
pacd's camera socket like a real camera, closed-loop episodes logged."""
import os
import subprocess

import pytest

import pacd_client
from conftest import PACD, SRC
from test_daemon import cat_steps, node_read

pb = pacd_client.pb
SHARED = os.path.abspath(os.path.join(SRC, "..", "shared", "data"))
PANDA_SCENE = os.path.join(SHARED, "menagerie", "franka_emika_panda", "scene_cam.xml")

version = subprocess.run([PACD, "--version"], capture_output=True, text=True).stdout
pytestmark = pytest.mark.skipif("mujoco" not in version,
                                reason="pacd was built without MuJoCo (install libmujoco-dev)")


def mujoco_extra(scene=PANDA_SCENE, cameras="front"):
    return "[robot]\nbackend = mujoco\nscene = %s\nrender_cameras = %s\nseed = 1\n" % (scene, cameras)


def test_mujoco_panda_closed_loop_with_rendered_camera(daemon):
    assert os.path.exists(PANDA_SCENE), "../shared/data must be beside the repository"
    d = daemon(extra=mujoco_extra())
    # nobody publishes frames but the backend's renderer; start once it renders
    d.wait_for(lambda s: s.frames_received >= 5, timeout=30, what="rendered frames")
    d.client.start_episode(max_steps=40)
    st = d.wait_for(lambda s: s.state == pb.IDLE and s.step == 40, timeout=60, what="40 steps")
    assert st.backend == "mujoco"
    # the renderer goes on at its own pace (slower on a loaded machine)
    st = d.wait_for(lambda s: s.frames_received >= 30, timeout=60, what="30 rendered frames")
    assert st.frames_dropped == 0
    d.stop()
    log = d.logs()[0]
    steps = cat_steps(log)
    live = [s for s in steps if not s["stale"]]
    assert len(live) >= 35, "rendered frames keep the camera fresh"
    q0 = steps[0]["observation"]["joint_positions"]
    q1 = steps[-1]["observation"]["joint_positions"]
    assert max(abs(a - b) for a, b in zip(q0, q1)) > 0.01, "the policy moved the simulated arm"
    doc = node_read(log)
    frames = [m["message"] for m in doc["messages"] if m["topic"] == "/pacd/camera/front"]
    # each rendered frame a step used is logged once
    used = {(f["camera"], f["seq"]) for s in steps for f in s["frames"]}
    assert len(frames) == len(used)
    assert all(f["width"] == 128 and f["height"] == 128 for f in frames)
    # a rendered scene, not a blank image: the byte sums differ as the arm moves
    sums = {f["data"]["sum"] for f in frames}
    assert len(sums) > 5 and min(sums) > 0


def test_mujoco_bad_scene_is_a_clear_error(tmp_path, example_checkpoint):
    from conftest import write_config
    ports = {"camera": 1, "state": 2, "telemetry": 3, "control": 4}
    cfg = write_config(str(tmp_path / "m.conf"), example_checkpoint, str(tmp_path), ports,
                       extra=mujoco_extra(scene=str(tmp_path / "nope.xml")))
    r = subprocess.run([PACD, "--config", cfg], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "nope.xml" in r.stderr
