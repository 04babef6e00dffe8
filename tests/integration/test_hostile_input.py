"""The real pacd against hostile input (issue 13): a poisoned JPEG, JPEG
bombs, non-finite and absurd numbers, camera names with a NUL. Each test
waits for counters (never times things) and prints pacd's stderr on failure
(Daemon.wait_for does)."""
import io
import math
import os
import time

import pacd_client
from conftest import FrameFeeder

pb = pacd_client.pb


def jpeg(img):
    from PIL import Image
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def good_jpeg():
    from PIL import Image
    return jpeg(Image.frombytes("RGB", (128, 128), pacd_client.synthetic_image(128, 128, 0)))


def poisoned_jpeg():
    """A valid JPEG whose first quantisation table (DQT) claims index 15:
    libjpeg-turbo fails with "Bogus DQT index 15"."""
    data = bytearray(good_jpeg())
    i = data.index(b"\xff\xdb")
    data[i + 4] = (data[i + 4] & 0xF0) | 15  # marker(2) length(2) Pq|Tq
    return bytes(data)


def vm_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def test_poisoned_jpeg_does_not_disable_jpeg_input(daemon):
    d = daemon()
    cam = d.camera()
    good, bad = good_jpeg(), poisoned_jpeg()
    d.client.start_episode(max_steps=0)
    feed_good = lambda: (cam.send_jpeg(good), time.sleep(0.02))  # noqa: E731
    st = d.wait_for(lambda s: s.frames_received >= 5 and s.state == pb.RUNNING, feed=feed_good,
                    what="JPEG frames accepted and the episode running")
    cam.send_jpeg(bad)
    st = d.wait_for(lambda s: s.frames_malformed >= 1, feed=lambda: time.sleep(0.02),
                    what="the poisoned JPEG counted")
    assert st.frames_malformed == 1
    before = st.frames_received
    # every good JPEG after it is accepted: the arm is driven, not held as stale
    st = d.wait_for(lambda s: s.frames_received >= before + 20 and s.state == pb.RUNNING,
                    feed=feed_good, what="good JPEGs accepted after the poisoned one")
    assert st.frames_malformed == 1, st
    step = st.step
    d.wait_for(lambda s: s.step >= step + 10 and s.state == pb.RUNNING, feed=feed_good,
               what="steps go on with fresh frames")
    assert d.proc.poll() is None


def test_jpeg_bombs_are_refused_and_memory_stays_bounded(daemon):
    from PIL import Image
    # ASan keeps freed memory in its quarantine (256 MiB by default): the
    # 40 received messages would look like growth; keep it small here
    asan = ":".join(o for o in (os.environ.get("ASAN_OPTIONS", ""), "quarantine_size_mb=16") if o)
    d = daemon(extra="[camera.front]\nresize = true\n", env={"ASAN_OPTIONS": asan})
    cam = d.camera()
    good = good_jpeg()
    # warm up: good frames, then a resized one (the decode buffer is in use)
    big = jpeg(Image.new("RGB", (512, 512), (30, 60, 90)))
    feed = lambda: (cam.send_jpeg(good), cam.send_jpeg(big, width=512, height=512),  # noqa: E731
                    time.sleep(0.03))
    d.wait_for(lambda s: s.frames_received >= 10 and s.frames_resized >= 5, feed=feed,
               what="good and resized frames")
    rss0 = vm_rss_kib(d.proc.pid)
    # 8192 x 8192 (a grey one fits under max_message_bytes = 1 MiB): above the
    # default max_frame_pixels of 2048 x 2048
    bomb = Image.new("L", (8192, 8192), 100)
    buf = io.BytesIO()
    bomb.save(buf, format="JPEG", quality=20)
    bomb = buf.getvalue()
    assert len(bomb) < 1000000
    n = 40
    for _ in range(n):
        cam.send_jpeg(bomb, width=8192, height=8192)
        time.sleep(0.03)  # stay under the publisher's send high-water mark
    # and small ones that lie: the message says 128 x 128, the JPEG header
    # (SOF0: length(2) precision(1) height(2) width(2)) 8192 x 8192
    liar = bytearray(good)
    i = liar.index(b"\xff\xc0") + 2
    liar[i + 3:i + 7] = b"\x20\x00\x20\x00"
    for _ in range(5):
        cam.send_jpeg(bytes(liar))
        time.sleep(0.03)
    st = d.wait_for(lambda s: s.frames_too_large >= n and s.frames_misshaped >= 5,
                    feed=lambda: time.sleep(0.05), timeout=60, what="JPEG bombs refused")
    assert st.frames_too_large == n
    assert st.frames_oversized >= n
    rss1 = vm_rss_kib(d.proc.pid)
    # decoding one 8192 x 8192 frame alone needs 192 MiB; nothing near that
    # (ThreadSanitizer's shadow memory follows the messages received)
    bound = 128 if os.environ.get("PACD_SANITIZER") == "thread" else 64
    assert rss1 - rss0 < bound * 1024, "pacd's RSS grew from %d to %d KiB\n%s" % (
        rss0, rss1, d.stderr())
    # good frames are still accepted
    before = st.frames_received
    d.wait_for(lambda s: s.frames_received >= before + 10, feed=feed,
               what="good frames after the bombs")
    assert d.proc.poll() is None


def test_nonfinite_and_absurd_values_are_refused_and_counted(daemon):
    d = daemon()
    feed = FrameFeeder(d.camera())
    sp = d.state_publisher()
    c = d.client
    c.start_episode(max_steps=0)
    d.wait_for(lambda s: s.state == pb.RUNNING and s.step >= 3, feed=feed, what="episode runs")
    # END_EPISODE with a non-finite or absurd final reward is refused
    for bad in (float("nan"), float("inf"), -float("inf"), 3e38):
        r = c.end_episode(final_reward=bad, check=False)
        assert not r.ok and "final_reward" in r.error, r
    r = c.start_episode(max_steps=2 ** 63, check=False)
    assert not r.ok and "max_steps" in r.error, r
    st = d.wait_for(lambda s: s.state == pb.RUNNING, feed=feed, what="the episode goes on")
    assert st.values_rejected >= 5 and st.commands_rejected >= 5, st
    # rewards: NaN, a forged terminal 3e38, a discount of 2, an Inf task value
    q = [0.0] * 7
    info = pb.Reward(reward=1.0, discount=1.0, info=[pb.TaskValue(name="h", value=math.inf)])
    sends = [
        lambda: sp.send_reward(float("nan")),
        lambda: sp.send_reward(3e38, discount=0.0, is_terminal=True),
        lambda: sp.send_reward(1.0, discount=2.0),
        lambda: sp.send_raw([b"reward", info.SerializeToString()]),
        # robot states with NaN / Inf in the gripper and end-effector fields
        lambda: sp.send_state(q, q, gripper_position=float("nan")),
        lambda: sp.send_state(q, q, gripper_velocity=float("inf")),
        lambda: sp.send_state(q, q, end_effector=pb.Pose(x=float("nan"), qw=1.0)),
        lambda: sp.send_state(q, q, end_effector=pb.Pose(x=0.3, qw=float("-inf"))),
    ]
    # teleop actions: NaN and absurd values
    for vals in ([float("nan")] * 7, [1e30] * 7):
        a = pb.Action(space=pb.JOINT_VELOCITY, values=vals)
        sends.append(lambda a=a: sp.send_raw([b"teleop_action", a.SerializeToString()]))
    for send in sends:
        send()
        feed()
        time.sleep(0.03)  # stay under the high-water marks
    st = d.wait_for(lambda s: s.rewards_rejected >= 4 and s.states_rejected >= 10, feed=feed,
                    what="bad rewards, states and actions counted")
    assert st.rewards_rejected == 4 and st.states_rejected == 10, st
    assert st.values_rejected >= 5 + 10, st
    assert st.states_received == 0
    assert st.teleop_actions_received == 0
    # the forged terminal reward did not end the episode; good input still works
    assert st.state in (pb.RUNNING, pb.HOLDING), st
    sp.send_state(q, q, gripper_position=0.04, end_effector=pb.Pose(x=0.3, qw=1.0))
    d.wait_for(lambda s: s.states_received >= 1, feed=feed, what="a good state accepted")
    r = c.end_episode(final_reward=2.5)
    assert r.ok
    d.wait_for(lambda s: s.state == pb.IDLE, feed=feed, what="episode ended")
    d.stop()
    from test_daemon import cat_steps
    steps = cat_steps(d.logs()[0])
    assert steps[-1]["is_last"] and steps[-1]["reward"] == 2.5
    assert all(math.isfinite(s["reward"]) and abs(s["reward"]) <= 1e6 for s in steps)


def test_camera_name_with_nul_is_refused(daemon):
    d = daemon()
    cam = d.camera()
    img = pacd_client.synthetic_image(128, 128, 0)
    time.sleep(0.3)  # PUB connect
    f = cam.frame(img)
    f.camera = "front\0x"  # protobuf-c would hand this over as "front"
    cam.send_raw([b"camera/front", f.SerializeToString()])
    time.sleep(0.03)
    cam.send_raw([b"camera/front\0x", cam.frame(img).SerializeToString()])
    time.sleep(0.03)
    cam.send_raw([b"camera/front\x1b[2J", cam.frame(img).SerializeToString()])
    st = d.wait_for(lambda s: s.names_refused >= 3, what="bad names counted")
    assert st.names_refused == 3 and st.frames_received == 0, st
    assert st.frames_malformed == 3, st
    cam.send(img)
    d.wait_for(lambda s: s.frames_received >= 1, what="the good name accepted")
