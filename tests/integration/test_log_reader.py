"""Episode logs written by the real logger, read back by an independent reader.

Writes logs with tests/logger/log_writer_tool (values given by formulas, see
its header comment), reads every record with Node's @mcap/core and protobufjs
(tests/integration/mcap_read.mjs, protobuf types built from the schema
embedded in the file) and checks every value against the formulas; checks
`pacctl log verify|cat` (tests/logger/pacctl_log_tool) against the same; and
kills the writer with SIGKILL mid-episode to check crash recovery.

Needs PACD_BUILD_DIR (the meson build dir) and
`npm ci --prefix tests/integration`.
"""
import json
import os
import shutil
import signal
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
T0 = 1700000000000000000
PERIOD = 50000000
CAMERAS = 2
WIDTH, HEIGHT = 20, 8


def build_dir():
    d = os.environ.get("PACD_BUILD_DIR")
    if not d:
        pytest.fail("PACD_BUILD_DIR is not set: point it at the meson build directory "
                    "(meson test sets it)")
    return Path(d)


@pytest.fixture(scope="session")
def tools():
    b = build_dir()
    writer = b / "tests" / "logger" / "log_writer_tool"
    pacctl = b / "tests" / "logger" / "pacctl_log_tool"
    for t in (writer, pacctl):
        if not t.exists():
            pytest.fail(f"{t} is missing: build first (ninja -C {b})")
    if not (HERE / "node_modules" / "@mcap" / "core").is_dir() or \
            not (HERE / "node_modules" / "protobufjs").is_dir():
        pytest.fail("Node packages missing: run `npm ci --prefix tests/integration` "
                    "(installs @mcap/core and protobufjs from package-lock.json)")
    if shutil.which("node") is None:
        pytest.fail("node is not on PATH: install Node.js 20 (Debian package nodejs)")
    return {"writer": str(writer), "pacctl": str(pacctl)}


def write_log(tools, tmp_path, episode_id, steps, kill_after=None):
    args = [tools["writer"], "--dir", str(tmp_path), "--id", episode_id, "--steps", str(steps),
            "--cameras", str(CAMERAS), "--width", str(WIDTH), "--height", str(HEIGHT)]
    if kill_after is not None:
        args += ["--kill-after", str(kill_after)]
    p = subprocess.run(args, capture_output=True, text=True, timeout=120)
    path = tmp_path / f"{episode_id}.mcap"
    return p, path


def node_read(path):
    p = subprocess.run(["node", str(HERE / "mcap_read.mjs"), str(path)], capture_output=True,
                       text=True, timeout=120, cwd=HERE)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def pacctl(tools, *args):
    return subprocess.run([tools["pacctl"], "log", *args], capture_output=True, text=True,
                          timeout=120)


def f32(x):
    return float(np.float32(x))


def expected_step(s, n):
    obs = [f32(0.25 * s - 0.125 * i) for i in range(18)]
    action = [f32(0.01 * (j + 1) * ((s % 5) - 2)) for j in range(7)]
    final = s == n - 1
    return {
        "episode_id": None,
        "step": s,
        "observation": {"joint_positions": obs[0:7], "joint_velocities": obs[7:14], "task": obs[14:18]},
        "shapes": {"joint_positions": [7], "joint_velocities": [7], "task": [1, 4]},
        "action": action,
        "policy_action": [f32(np.float32(2.0) * np.float32(a)) for a in action],
        "action_space": 2,
        "reward": 1.0 if final else 0.0,
        "discount": 0.0 if final else 1.0,
        "is_first": s == 0,
        "is_last": final,
        "is_terminal": final,
        "stale": s % 7 == 3,
        "held": s % 7 == 3,
        "safety_flags": s % 4,
        "has_q_value": s % 2 == 0,
        "q_value": f32(0.5 * s),
        "frames": [{"camera": f"cam{c}", "seq": s, "capture": T0 + s * PERIOD - 1000000,
                    "age_us": 1000 + s} for c in range(CAMERAS)],
        "tick_mono_ns": 1000000000 + s * PERIOD,
        "time_unix_ns": T0 + s * PERIOD,
        "inference_us": 100 + s,
        "robot_state_seq": s,
    }


def pixel_sum(s, c):
    return sum((31 * s + 17 * c + k) & 0xFF for k in range(WIDTH * HEIGHT * 3))


def check_node_step(msg, s, n, episode_id):
    want = expected_step(s, n)
    m = msg["message"]
    assert msg["topic"] == "/pacd/step"
    assert int(msg["logTime"]) == want["time_unix_ns"]
    assert m["episodeId"] == episode_id
    assert int(m["step"]) == s
    obs = {t["name"]: t for t in m["observation"]}
    assert list(obs) == ["joint_positions", "joint_velocities", "task"]
    for name, values in want["observation"].items():
        assert obs[name]["values"] == values, name
        assert obs[name]["shape"] == want["shapes"][name]
    assert m["action"]["values"] == want["action"]
    assert m["action"]["space"] == want["action_space"]
    assert int(m["action"]["timeUnixNs"]) == want["time_unix_ns"]
    assert m["policyAction"] == want["policy_action"]
    assert m["reward"] == want["reward"]
    assert m["discount"] == want["discount"]
    for k_node, k in (("isFirst", "is_first"), ("isLast", "is_last"), ("isTerminal", "is_terminal"),
                      ("stale", "stale"), ("held", "held"), ("hasQValue", "has_q_value")):
        assert m[k_node] == want[k], k
    assert m["safetyFlags"] == want["safety_flags"]
    assert m["qValue"] == want["q_value"]
    assert [(f["camera"], int(f["seq"]), int(f["captureTimeUnixNs"]), f["ageUs"]) for f in m["frames"]] == \
        [(f["camera"], f["seq"], f["capture"], f["age_us"]) for f in want["frames"]]
    assert int(m["tickMonoNs"]) == want["tick_mono_ns"]
    assert int(m["timeUnixNs"]) == want["time_unix_ns"]
    assert m["inferenceUs"] == want["inference_us"]
    assert int(m["robotStateSeq"]) == want["robot_state_seq"]


def check_node_frame(msg, s, c):
    m = msg["message"]
    assert msg["topic"] == f"/pacd/camera/cam{c}"
    assert m["camera"] == f"cam{c}"
    assert (m["width"], m["height"], m["encoding"]) == (WIDTH, HEIGHT, 1)
    assert m["data"] == {"length": WIDTH * HEIGHT * 3, "sum": pixel_sum(s, c)}
    assert int(m["seq"]) == s
    assert int(m["captureTimeUnixNs"]) == T0 + s * PERIOD - 1000000
    assert int(msg["logTime"]) == T0 + s * PERIOD - 1000000


def check_node_state(msg, s):
    m = msg["message"]
    assert msg["topic"] == "/pacd/robot_state"
    assert m["robot"] == "panda"
    assert m["jointPositions"] == [0.1 * j + 0.001 * s for j in range(7)]
    assert m["jointVelocities"] == [-0.01 * j for j in range(7)]
    assert m["gripperPosition"] == 0.04
    assert m["grasp"] == (s % 2 == 1)
    assert m["endEffector"] == {"x": 0.5, "y": 0, "z": 0.3, "qw": 1, "qx": 0, "qy": 0, "qz": 0}
    assert int(m["timeUnixNs"]) == T0 + s * PERIOD
    assert int(m["seq"]) == s


def check_messages(doc, n_steps, episode_id):
    """Every message, in file order: state, frames, step for each step."""
    msgs = doc["messages"]
    per_step = 2 + CAMERAS
    assert len(msgs) == n_steps * per_step
    seq = {}
    for s in range(n_steps):
        group = msgs[s * per_step:(s + 1) * per_step]
        check_node_state(group[0], s)
        for c in range(CAMERAS):
            check_node_frame(group[1 + c], s, c)
        check_node_step(group[-1], s, n_steps, episode_id)
    for m in msgs:  # per-channel sequence numbers count from 0
        assert m["sequence"] == seq.get(m["channelId"], 0)
        seq[m["channelId"]] = m["sequence"] + 1


def check_head(doc, episode_id, tmp_path):
    assert doc["header"] == {"profile": "pacd", "library": "pacd 0.1.0"} or \
        doc["header"]["library"].startswith("pacd ")
    names = {s["name"] for s in doc["schemas"]}
    assert names == {"pacd.v1.Step", "pacd.v1.CameraFrame", "pacd.v1.RobotState"}
    assert all(s["encoding"] == "protobuf" for s in doc["schemas"])
    topics = sorted(c["topic"] for c in doc["channels"])
    assert topics == sorted(["/pacd/step", "/pacd/robot_state"] +
                            [f"/pacd/camera/cam{c}" for c in range(CAMERAS)])
    assert all(c["messageEncoding"] == "protobuf" for c in doc["channels"])
    assert len(doc["metadata"]) == 1 and doc["metadata"][0]["name"] == "pacd"
    md = doc["metadata"][0]["metadata"]
    assert md["episode_id"] == episode_id
    assert md["robot"] == "panda"
    assert md["backend"] == "sim"
    assert md["checkpoint_path"] == "/tmp/pacd-test.safetensors"
    assert md["checkpoint_sha256"] == "ab" * 32
    assert md["config"] == f"[logger]\ndirectory = {tmp_path}\n"
    assert float(md["rate_hz"]) == 20.0
    assert md["log_format_version"] == "1"
    layout = json.loads(md["observation_layout"])
    assert [(f["name"], f["shape"], f["offset"], f["size"]) for f in layout] == \
        [("joint_positions", [7], 0, 7), ("joint_velocities", [7], 7, 7), ("task", [1, 4], 14, 4)]


def test_closed_episode_read_by_independent_reader(tools, tmp_path):
    episode_id = "20261122T023000Z-panda-0001"
    n = 25
    p, path = write_log(tools, tmp_path, episode_id, n)
    assert p.returncode == 0, p.stderr
    stats = json.loads(p.stdout)
    assert stats["steps_written"] == n
    assert stats["frames_written"] == n * CAMERAS
    assert stats["states_written"] == n
    assert stats["write_errors"] == 0

    doc = node_read(path)
    assert doc["error"] is None
    assert doc["done"] is True
    assert doc["bytes_remaining"] == 0
    check_head(doc, episode_id, tmp_path)
    check_messages(doc, n, episode_id)

    # summary: statistics agree, indexed reader accepts footer + summary CRC
    st = doc["statistics"]
    assert int(st["messageCount"]) == n * (2 + CAMERAS)
    assert st["schemaCount"] == 3 and st["channelCount"] == 2 + CAMERAS
    counts = {int(k): int(v) for k, v in st["channelMessageCounts"].items()}
    by_topic = {c["topic"]: counts[c["id"]] for c in doc["channels"]}
    assert by_topic["/pacd/step"] == n and by_topic["/pacd/robot_state"] == n
    assert int(st["messageStartTime"]) == T0 - 1000000
    assert int(st["messageEndTime"]) == T0 + (n - 1) * PERIOD
    assert doc["indexed"]["ok"], doc["indexed"]
    assert doc["indexed"]["messageCount"] == str(n * (2 + CAMERAS))

    # data section CRC, computed here with zlib over the bytes before DataEnd
    data = path.read_bytes()
    summary_start = int(doc["footer"]["summaryStart"])
    data_end = summary_start - 13  # DataEnd: opcode, u64 length, u32 crc
    assert data[data_end] == 0x0F
    assert doc["indexed"]["dataSectionCrc"] == zlib.crc32(data[:data_end])

    v = pacctl(tools, "verify", "--json", str(path))
    assert v.returncode == 0, v.stdout + v.stderr
    rep = json.loads(v.stdout)
    assert rep["status"] == "ok" and rep["closed"] is True and rep["has_summary"] is True
    assert rep["records"] == doc["records"]
    assert rep["messages"] == len(doc["messages"])
    assert rep["steps"] == n
    assert rep["episode_id"] == episode_id
    assert rep["first_time_unix_ns"] == T0 - 1000000
    assert rep["last_time_unix_ns"] == T0 + (n - 1) * PERIOD
    assert {c["topic"]: c["messages"] for c in rep["channels"]} == by_topic

    # `log cat`: one JSON line per step, equal to the Node-decoded messages
    c = pacctl(tools, "cat", str(path))
    assert c.returncode == 0, c.stderr
    lines = [json.loads(l) for l in c.stdout.splitlines()]
    node_steps = [m["message"] for m in doc["messages"] if m["topic"] == "/pacd/step"]
    assert len(lines) == n
    for s, (line, nm) in enumerate(zip(lines, node_steps)):
        want = expected_step(s, n)
        assert line["episode_id"] == episode_id
        assert line["step"] == s
        assert line["observation"] == {t["name"]: [f32(x) for x in t["values"]] for t in nm["observation"]}
        assert [f32(x) for x in line["action"]] == want["action"]
        assert [f32(x) for x in line["policy_action"]] == want["policy_action"]
        assert line["reward"] == want["reward"] and line["discount"] == want["discount"]
        for k in ("is_first", "is_last", "is_terminal", "stale", "held", "safety_flags",
                  "tick_mono_ns", "time_unix_ns", "inference_us", "robot_state_seq"):
            assert line[k] == want[k], k
        if want["has_q_value"]:
            assert f32(line["q_value"]) == want["q_value"]
        else:
            assert "q_value" not in line
    c = pacctl(tools, "cat", "--topic", "/pacd/camera/cam1", str(path))
    frames = [json.loads(l) for l in c.stdout.splitlines()]
    assert [f["seq"] for f in frames] == list(range(n))
    assert all(f["data_bytes"] == WIDTH * HEIGHT * 3 for f in frames)


def test_sigkill_leaves_a_readable_unfinished_file(tools, tmp_path):
    episode_id = "20261122T023100Z-panda-0002"
    k = 17
    p, path = write_log(tools, tmp_path, episode_id, 40, kill_after=k)
    assert p.returncode == -signal.SIGKILL, (p.returncode, p.stderr)
    assert path.exists()

    doc = node_read(path)
    assert doc["error"] is None
    assert doc["done"] is False
    assert doc["statistics"] is None and doc["footer"] is None
    check_head(doc, episode_id, tmp_path)
    # everything pushed before the kill was flushed to the kernel: all k steps
    msgs = doc["messages"]
    assert len(msgs) == k * (2 + CAMERAS)
    per_step = 2 + CAMERAS
    for s in range(k):
        group = msgs[s * per_step:(s + 1) * per_step]
        check_node_state(group[0], s)
        for c in range(CAMERAS):
            check_node_frame(group[1 + c], s, c)
        check_node_step(group[-1], s, 40, episode_id)

    v = pacctl(tools, "verify", str(path))
    assert v.returncode == 0, v.stdout + v.stderr
    assert f"unfinished: {doc['records']} complete records recovered" in v.stdout
    v = pacctl(tools, "verify", "--json", str(path))
    rep = json.loads(v.stdout)
    assert rep["status"] == "unfinished" and rep["closed"] is False
    assert rep["records"] == doc["records"]
    assert rep["steps"] == k
    assert rep["trailing_bytes"] == doc["bytes_remaining"]
    assert pacctl(tools, "verify", "--strict", str(path)).returncode == 3

    # a crash in the middle of a record: cut the file inside its last record
    data = path.read_bytes()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[:-7])
    doc2 = node_read(cut)
    assert doc2["error"] is None and doc2["done"] is False
    assert doc2["records"] == doc["records"] - 1
    assert doc2["bytes_remaining"] > 0
    v = pacctl(tools, "verify", "--json", str(cut))
    assert v.returncode == 0
    rep = json.loads(v.stdout)
    assert rep["status"] == "unfinished"
    assert rep["records"] == doc2["records"]
    assert rep["trailing_bytes"] == doc2["bytes_remaining"]
    # `log cat` prints every complete step of the cut file
    c = pacctl(tools, "cat", str(cut))
    assert c.returncode == 0
    steps = [json.loads(l)["step"] for l in c.stdout.splitlines()]
    assert steps == list(range(len([m for m in doc2["messages"] if m["topic"] == "/pacd/step"])))


def test_corruption_exits_1_with_offset(tools, tmp_path):
    episode_id = "20261122T023200Z-panda-0003"
    p, path = write_log(tools, tmp_path, episode_id, 6)
    assert p.returncode == 0, p.stderr
    doc = node_read(path)
    data = bytearray(path.read_bytes())
    # find a message record in the middle by walking records here
    pos, offsets = 8, []
    while pos + 9 <= len(data):
        length = int.from_bytes(data[pos + 1:pos + 9], "little")
        offsets.append((pos, data[pos]))
        if data[pos] == 0x02:
            break
        pos += 9 + length
    assert len(offsets) == doc["records"]
    msg_offsets = [o for o, op in offsets if op == 0x05]
    target = msg_offsets[len(msg_offsets) // 2]
    data[target] = 0x99
    bad = tmp_path / "bad.mcap"
    bad.write_bytes(bytes(data))
    v = pacctl(tools, "verify", str(bad))
    assert v.returncode == 1
    assert f"CORRUPT at byte {target}" in v.stdout
    rep = json.loads(pacctl(tools, "verify", "--json", str(bad)).stdout)
    assert rep["status"] == "corrupt" and rep["error"]["offset"] == target
