"""`pacctl log plot` on episodes the real daemon logged (sim Panda): the PNG
decodes at its size, the series it plotted equal the log's (`pacctl log cat`),
--compare overlays a second episode, and bad input (missing, corrupt,
unfinished, no steps, a broken plotter) is one clear line and an exit code."""
import json
import os
import shutil
import subprocess

import pytest
from PIL import Image

import pacd_client
from conftest import BUILD, MAX_AGE_MS, Daemon, FrameFeeder, pacctl, scaled

# the second episode's length: 5 fed steps, then room for the paused camera's
# frame to age past max_age_ms (20 steps a second) and for 20 more steps
SECOND_STEPS = 5 + MAX_AGE_MS // 50 + 20

pb = pacd_client.pb

PNG_SIZE = (1600, 2000)  # clients/pacd_plot.py: 16 x 20 in at 100 dpi
PANDA_Q_MIN = [-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973]  # Franka datasheet


@pytest.fixture(scope="module")
def episodes(tmp_path_factory, example_checkpoint):
    """Two episodes of the sim Panda: 30 steps, then SECOND_STEPS steps with
    the camera paused for a while in the middle (stale, held steps)."""
    tmp = tmp_path_factory.mktemp("plot")
    d = Daemon(tmp, example_checkpoint)
    try:
        d.start()
        feed = FrameFeeder(d.camera())
        d.wait_for(lambda s: s.frames_received >= 2, feed=feed, what="frames flowing")
        assert d.client.start_episode(max_steps=30).ok
        d.wait_for(lambda s: s.state == pb.IDLE and s.step == 30, feed=feed, what="30 steps")
        assert d.client.start_episode(max_steps=SECOND_STEPS).ok
        st = d.wait_for(lambda s: s.state == pb.RUNNING and s.step >= 5, feed=feed, what="5 steps")
        base = st.stale_steps
        d.wait_for(lambda s: s.stale_steps >= base + 3, what="stale steps")
        d.wait_for(lambda s: s.state == pb.IDLE and s.step == SECOND_STEPS, feed=feed,
                   what="the second episode's end")
    except Exception:
        print(d.stderr())
        raise
    finally:
        d.stop()
    logs = d.logs()
    assert len(logs) == 2, logs
    return logs


def cat(path, topic="/pacd/step"):
    r = pacctl("log", "cat", "--topic", topic, path)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def plot(*args, env=None):
    return subprocess.run([os.path.join(BUILD, "clients", "pacctl"), "log", "plot", *args],
                          capture_output=True, text=True, timeout=scaled(120),
                          env=dict(os.environ, **(env or {})))


def approx_rows(rows):
    return [pytest.approx(r, rel=1e-6, abs=1e-6) if r is not None else None for r in rows]


def check_series(e, path):
    """The plotted series of one episode equal what `pacctl log cat` prints."""
    steps = cat(path)
    states = {s["seq"]: s for s in cat(path, "/pacd/robot_state")}
    assert e["steps"] == [s["step"] for s in steps]
    assert e["episode_id"] == steps[0]["episode_id"]
    assert e["robot"] == "panda" and e["backend"] == "sim"
    assert e["joint_source"] == ["robot_state"] * len(steps)
    assert e["joint_positions"] == approx_rows(
        [states[s["robot_state_seq"]]["joint_positions"] for s in steps])
    assert e["joint_velocities"] == approx_rows(
        [states[s["robot_state_seq"]]["joint_velocities"] for s in steps])
    # the state a step used is also its observation's joint positions
    assert e["joint_positions"] == [pytest.approx(s["observation"]["joint_positions"], abs=1e-5)
                                    for s in steps]
    assert e["policy_action"] == approx_rows([s["policy_action"] for s in steps])
    assert e["action"] == approx_rows([s["action"] for s in steps])
    assert e["reward"] == pytest.approx([s["reward"] for s in steps])
    assert e["q_value"] == [s.get("q_value") for s in steps]  # the example MLP has no critic
    assert e["teleop_action"] == [None] * len(steps)
    assert e["stale_steps"] == [s["step"] for s in steps if s["stale"]]
    assert e["held_steps"] == [s["step"] for s in steps if s["held"]]
    assert e["flag_steps"]["clamped"] == [s["step"] for s in steps if s["safety_flags"] & 0x08]
    assert e["inference_ms"] == pytest.approx([s["inference_us"] / 1000 for s in steps])
    late = [s["time_unix_ns"] - s["tick_mono_ns"] for s in steps]
    assert e["step_delay_ms"] == pytest.approx([(x - min(late)) / 1e6 for x in late])
    assert min(e["step_delay_ms"]) == 0
    assert e["limits"]["q_min"] == pytest.approx(PANDA_Q_MIN)
    assert len(e["limits"]["q_max"]) == len(e["limits"]["dq_max"]) == 7
    return steps


def decode_png(path):
    with Image.open(path) as im:
        im.load()
        assert im.format == "PNG"
        assert im.size == PNG_SIZE
        # a drawn figure, not a blank page
        lo, hi = im.convert("L").getextrema()
        assert lo < 80 and hi > 240


def test_plot_one_episode_and_compare_two(episodes, tmp_path):
    first, second = episodes
    out, dump = tmp_path / "one.png", tmp_path / "one.json"
    r = plot("-o", str(out), "--dump-json", str(dump), first)
    assert r.returncode == 0, r.stderr
    decode_png(out)
    doc = json.loads(dump.read_text())
    assert len(doc["episodes"]) == 1
    check_series(doc["episodes"][0], first)

    out2, dump2 = tmp_path / "two.png", tmp_path / "two.json"
    r = plot(first, "--compare", second, "-o", str(out2), "--dump-json", str(dump2))
    assert r.returncode == 0, r.stderr
    decode_png(out2)
    a, b = json.loads(dump2.read_text())["episodes"]
    check_series(a, first)
    steps = check_series(b, second)
    assert len(a["steps"]) == 30 and len(b["steps"]) == SECOND_STEPS
    # the paused camera made stale, held steps: they are marked
    assert len(b["stale_steps"]) >= 3 and set(b["stale_steps"]) <= set(b["held_steps"])
    assert steps[-1]["is_last"]

    # the plotter called directly on `pacctl log plot --data`: the same series
    r = plot("--data", first, "--compare", second)
    assert r.returncode == 0, r.stderr
    (tmp_path / "doc.json").write_text(r.stdout)
    p = subprocess.run(["/usr/bin/python3", os.path.join(BUILD, "clients", "pacd_plot.py"),
                        "--input", str(tmp_path / "doc.json"), "-o", str(tmp_path / "direct.png"),
                        "--dump-json", str(tmp_path / "direct.json")],
                       capture_output=True, text=True, timeout=scaled(120))
    assert p.returncode == 0, p.stderr
    decode_png(tmp_path / "direct.png")
    assert json.loads((tmp_path / "direct.json").read_text()) == json.loads(dump2.read_text())
    # a critic's Q values (the example MLP has none: put some into the document)
    # are plotted as given, a step without one as a gap
    doc = json.loads(r.stdout)
    q = [0.1 * i if i % 7 else None for i in range(30)]
    doc["episodes"][0]["steps"]["q_value"] = q
    (tmp_path / "q.json").write_text(json.dumps(doc))
    p = subprocess.run(["/usr/bin/python3", os.path.join(BUILD, "clients", "pacd_plot.py"),
                        "--input", str(tmp_path / "q.json"), "-o", str(tmp_path / "q.png"),
                        "--dump-json", str(tmp_path / "q-plotted.json")],
                       capture_output=True, text=True, timeout=scaled(120))
    assert p.returncode == 0, p.stderr
    decode_png(tmp_path / "q.png")
    assert json.loads((tmp_path / "q-plotted.json").read_text())["episodes"][0]["q_value"] == \
        pytest.approx(q)


def largest_prefix_without_steps(src, dst):
    """Write to dst the longest prefix of src that holds no complete step."""
    data = open(src, "rb").read()
    lo, hi = 8, len(data)  # lo: has no step (the magic alone); hi: has steps
    while hi - lo > 1:
        mid = (lo + hi) // 2
        with open(dst, "wb") as f:
            f.write(data[:mid])
        r = pacctl("log", "verify", "--json", str(dst))
        if json.loads(r.stdout)["steps"] == 0:
            lo = mid
        else:
            hi = mid
    with open(dst, "wb") as f:
        f.write(data[:lo])
    return json.loads(pacctl("log", "verify", "--json", str(dst)).stdout)


def assert_clean_error(r, code, *words):
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    assert r.stderr.startswith("pacctl log plot: "), r.stderr
    for w in words:
        assert w in r.stderr, r.stderr


def test_bad_input_is_a_clear_error(episodes, tmp_path):
    good = episodes[0]
    out = tmp_path / "x.png"
    # a missing file; no argument; an unknown option
    assert_clean_error(plot("-o", str(out), str(tmp_path / "nope.mcap")), 2, "nope.mcap",
                       "No such file")
    assert_clean_error(plot("-o", str(out)), 2, "no file given", "usage:")
    assert_clean_error(plot("--bogus", good), 2, "--bogus")
    # --compare with a missing second file
    assert_clean_error(plot(good, "--compare", str(tmp_path / "other.mcap"), "-o", str(out)), 2,
                       "other.mcap")
    # corrupt: a byte of the first step's record changed in the middle of the file
    data = bytearray(open(good, "rb").read())
    corrupt = tmp_path / "corrupt.mcap"
    data[len(data) // 2] ^= 0xFF
    data[len(data) // 2 + 1] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    assert pacctl("log", "verify", str(corrupt)).returncode == 1
    assert_clean_error(plot("-o", str(out), str(corrupt)), 1, "corrupt at byte")
    # unfinished: the file cut (a crash): refused, unless --unfinished
    raw = open(good, "rb").read()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(raw[: len(raw) * 2 // 3])
    assert_clean_error(plot("-o", str(out), str(cut)), 3, "unfinished", "--unfinished")
    r = plot("--unfinished", "-o", str(out), "--dump-json", str(tmp_path / "cut.json"), str(cut))
    assert r.returncode == 0, r.stderr
    decode_png(out)
    partial = json.loads((tmp_path / "cut.json").read_text())["episodes"][0]
    assert partial["status"] == "unfinished"
    assert 0 < len(partial["steps"]) < 30
    assert partial["steps"] == list(range(len(partial["steps"])))
    # an episode with no steps (cut before its first step)
    empty = tmp_path / "empty.mcap"
    report = largest_prefix_without_steps(good, empty)
    assert report["steps"] == 0 and report["records"] > 3  # header, schemas, metadata are there
    assert_clean_error(plot("--unfinished", "-o", str(out), str(empty)), 4, "no steps")
    # a broken or missing plotter: an exit code and its message, no traceback from us
    os.unlink(out)
    bad = tmp_path / "bad_plot.py"
    bad.write_text("import sys\nsys.exit(7)\n")
    assert_clean_error(plot("-o", str(out), good, env={"PACD_PLOT_SCRIPT": str(bad)}), 5,
                       "exited with 7")
    assert_clean_error(plot("-o", str(out), good,
                            env={"PACD_PLOT_SCRIPT": str(tmp_path / "none.py")}), 5, "not found")
    assert_clean_error(plot("-o", str(out), good, env={"PACD_PYTHON": str(tmp_path / "python")}),
                       5, "cannot run")
    # the PNG cannot be written (no such directory): the plotter says so
    r = plot("-o", str(tmp_path / "no" / "dir" / "x.png"), good)
    assert r.returncode == 5 and "Traceback" not in r.stderr, r.stderr
    assert "pacd_plot: cannot write" in r.stderr and "No such file" in r.stderr, r.stderr
    assert not out.exists()
    # not a document: the plotter called directly with bad JSON
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    p = subprocess.run(["/usr/bin/python3", os.path.join(BUILD, "clients", "pacd_plot.py"),
                        "--input", str(junk), "-o", str(out)], capture_output=True, text=True,
                       timeout=scaled(60))
    assert p.returncode == 2 and "Traceback" not in p.stderr and "bad input" in p.stderr, p.stderr
    shutil.rmtree(tmp_path / "no", ignore_errors=True)
