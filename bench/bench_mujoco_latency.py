#!/usr/bin/python3
"""pacd's end-to-end latency on rendered MuJoCo frames: from a frame's capture
time to the action that used it (tick wall time + inference), p50/p99, over a
200-step episode. Peer in the same run: the same pacd fed by a plain Python
publisher of synthetic frames (no rendering) at 50 Hz. Prints, asserts nothing.

pacd: sim panda arm, example checkpoint, camera `front` 128x128; frames from
tests/hal/hal-mujoco-tool (mujoco backend, menagerie Panda scene_cam.xml,
rendered at 20 Hz, unsynchronised with pacd's 20 Hz loop, so a frame waits
0..50 ms for the tick that uses it).
usage: PACD_BUILD_DIR=build bench/bench_mujoco_latency.py [DATA_DIR]
"""
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SRC = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(SRC / "tests" / "integration"))
os.environ.setdefault("PACD_SOURCE_DIR", str(SRC))
import conftest  # noqa: E402
from test_daemon import cat_steps  # noqa: E402

DATA = sys.argv[1] if len(sys.argv) > 1 else str(SRC.parent / "shared" / "data")
SCENE = os.path.join(DATA, "menagerie", "franka_emika_panda", "scene_cam.xml")
TOOL = os.path.join(conftest.BUILD, "tests", "hal", "hal-mujoco-tool")
STEPS = 200


def make_checkpoint(tmp):
    out = Path(tmp) / "example-panda.safetensors"
    env = dict(os.environ, PYTHONPATH=str(SRC / "policy" / "torch"))
    subprocess.run([conftest.PY, "-m", "pacd_torch.make_example", "--robot", "panda", "--out", str(out)],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    return str(out)


def episode(tmp, ckpt, source):
    d = conftest.Daemon(Path(tmp), ckpt)
    d.start()
    tool = feeder = None
    try:
        if source == "mujoco":
            junk = "tcp://127.0.0.1:%d" % conftest.free_port()
            tool = subprocess.Popen([TOOL, "panda", SCENE, "joint", "0.2,0,0,0,0,0,0", str(STEPS / 20 + 6),
                                     "front", "128x128", d.ep("camera"), junk],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            feed = None
        else:
            feeder = conftest.FrameFeeder(d.camera(), period_s=0.02)
            feed = feeder
        t_end = time.monotonic() + 1.5
        while time.monotonic() < t_end:
            if feed:
                feed()
            time.sleep(0.005)
        d.client.start_episode(max_steps=STEPS)
        d.wait_for(lambda s: s.state == conftest.pacd_client.pb.IDLE and s.step == STEPS, timeout=STEPS / 20 + 20,
                   feed=feed, what="episode")
    finally:
        if tool:
            tool.wait(timeout=60)
        d.stop()
    steps = cat_steps(d.logs()[-1])
    e2e, age = [], []
    for s in steps:
        for f in s["frames"]:
            e2e.append((s["time_unix_ns"] - f["capture_time_unix_ns"]) / 1e3 + s["inference_us"])
            age.append(f["age_us"])
    return np.array(e2e), np.array(age)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = make_checkpoint(tmp)
        for source in ("mujoco", "python-synthetic-50Hz"):
            sub = Path(tmp) / source
            sub.mkdir()
            e2e, age = episode(sub, ckpt, source)
            print("%-22s %3d steps: capture->action p50 %6.1f ms p99 %6.1f ms max %6.1f ms | frame age at tick "
                  "p50 %6.1f ms p99 %6.1f ms" % (source, len(e2e), np.percentile(e2e, 50) / 1e3,
                                                 np.percentile(e2e, 99) / 1e3, e2e.max() / 1e3,
                                                 np.percentile(age, 50) / 1e3, np.percentile(age, 99) / 1e3))


if __name__ == "__main__":
    main()
