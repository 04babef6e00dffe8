"""The disk guard (docs/episode-log.md, "Disk space"): on a small tmpfs made
for the test, pacd refuses to start an episode when the log directory has
less free space than [logger] min_free_mb; when the disk fills mid-episode the
episode ends with the arm held, telemetry says why, the file keeps every step
written before, and pacd goes on. Also retention ([logger] keep_gb).

Needs root (mount -t tmpfs); the tmpfs tests are skipped otherwise."""
import json
import os
import subprocess
import time

import pytest

import pacd_client
from conftest import FrameFeeder, pacctl, wait_until

pb = pacd_client.pb

MiB = 1024 * 1024
FILLER = "filler.bin"  # not *.mcap: neither an episode log nor retention's


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs at tmp_path/episodes (the daemon fixture's log
    directory); unmounted and removed afterwards, whatever happens."""
    path = str(tmp_path / "episodes")
    os.makedirs(path)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", path],
                       capture_output=True, text=True)
    if r.returncode != 0:
        os.rmdir(path)
        pytest.skip("cannot mount a tmpfs for the small disk (needs root): %s" % r.stderr.strip())
    try:
        yield path
    finally:
        if subprocess.run(["umount", path], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", path], capture_output=True)
        os.rmdir(path)


def free_bytes(path):
    s = os.statvfs(path)
    return s.f_bavail * s.f_frsize


def fill(path, leave):
    """Write FILLER into path until only about `leave` bytes are free."""
    with open(os.path.join(path, FILLER), "ab") as f:
        while free_bytes(path) > leave:
            n = min(free_bytes(path) - leave, 256 * 1024)
            f.write(b"\0" * max(n, 4096))
            f.flush()
    return free_bytes(path)


def unfill(path):
    os.unlink(os.path.join(path, FILLER))


def cat_steps(path):
    r = pacctl("log", "cat", path)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def test_start_refused_below_min_free(small_disk, daemon):
    d = daemon(extra="[logger]\nmin_free_mb = 2\n")
    st = d.client.status()
    assert st.episodes_refused_disk == 0
    assert 3 * MiB < st.log_free_bytes <= 4 * MiB, st.log_free_bytes
    left = fill(small_disk, MiB)
    assert left < 2 * MiB
    r = d.client.start_episode(check=False)
    assert not r.ok
    assert "min_free_mb = 2" in r.error and small_disk in r.error and "free" in r.error, r.error
    st = r.status
    assert st.state == pb.IDLE and st.episodes == 0
    assert st.episodes_refused_disk == 1
    assert st.log_free_bytes < 2 * MiB
    assert d.logs() == []
    # room again: the episode starts and is logged
    unfill(small_disk)
    r = d.client.start_episode(max_steps=5)
    assert r.ok, r.error
    st = d.wait_for(lambda s: s.state == pb.IDLE and s.episodes == 1 and s.step == 5,
                    what="the 5-step episode to end")
    assert st.last_episode_end == pb.EPISODE_END_MAX_STEPS
    assert st.episodes_refused_disk == 1
    d.stop()
    assert len(d.logs()) == 1
    assert pacctl("log", "verify", "--strict", d.logs()[0]).returncode == 0


def test_disk_full_mid_episode(small_disk, daemon):
    d = daemon(extra="[logger]\nmin_free_mb = 1\n")
    feed = FrameFeeder(d.camera())  # 48 KiB frames: the disk fills within a second or two
    d.wait_for(lambda s: s.frames_received >= 2, feed=feed, what="frames flowing")
    fill(small_disk, 3 * MiB // 2)
    r = d.client.start_episode(max_steps=100000)
    assert r.ok, r.error
    episode = r.episode_id
    st = d.wait_for(lambda s: s.episodes_log_failed == 1 and s.state == pb.IDLE, timeout=60,
                    feed=feed, what="the episode to end on a full disk")
    assert st.last_episode_end == pb.EPISODE_END_LOG_FAILED
    assert st.episode_id == episode
    assert st.log_write_errors >= 1
    assert "No space left on device" in st.log_error, st.log_error
    # the arm holds: idle, nothing commanded
    assert all(a == 0.0 for a in st.last_action), list(st.last_action)
    # pacd's stderr says so too (events are printed at the telemetry rate)
    wait_until(lambda: "its log could not be written" in d.stderr(), what="the event on stderr")
    # what was written is there, up to the last complete record
    logs = d.logs()
    assert len(logs) == 1 and episode in logs[0]
    r = pacctl("log", "verify", logs[0])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "unfinished" in r.stdout, r.stdout
    steps = cat_steps(logs[0])
    assert len(steps) >= 1
    assert [s["step"] for s in steps] == list(range(len(steps)))
    assert len(steps) == st.log_steps_written, (len(steps), st.log_steps_written)
    assert st.step > len(steps)  # the steps after the failure were not logged

    # pacd goes on: with room again a new episode starts and is logged whole
    unfill(small_disk)
    r = d.client.start_episode(max_steps=100000)
    assert r.ok, r.error
    written = st.log_steps_written
    d.wait_for(lambda s: s.state == pb.RUNNING and s.log_steps_written >= written + 5,
               timeout=60, feed=feed, what="the next episode logging steps")
    assert d.client.end_episode().ok
    st = d.wait_for(lambda s: s.state == pb.IDLE and s.episodes == 2, feed=feed,
                    what="the next episode to end")
    assert st.last_episode_end == pb.EPISODE_END_REQUESTED
    assert st.episodes_log_failed == 1
    d.stop()
    logs = d.logs()
    assert len(logs) == 2
    second = [p for p in logs if episode not in p][0]
    r = pacctl("log", "verify", "--strict", second)
    assert r.returncode == 0, r.stdout + r.stderr
    # the failed one is still what it was
    assert [s["step"] for s in cat_steps([p for p in logs if episode in p][0])] == \
        list(range(len(steps)))


def test_retention_keeps_the_newest_logs(tmp_path, daemon):
    logdir = tmp_path / "episodes"
    logdir.mkdir()
    now = time.time()
    for i, name in enumerate(["old-a.mcap", "old-b.mcap", "old-c.mcap"]):
        p = logdir / name
        p.write_bytes(b"x" * 100000)
        os.utime(p, (now - 300 + 100 * i, now - 300 + 100 * i))
    (logdir / "notes.txt").write_bytes(b"y" * 500000)  # not an episode log: never deleted
    keep = 250000
    d = daemon(cameras=(), extra="[logger]\nkeep_gb = %.12f\n" % (keep / 2.0**30))
    # at start: 300000 > 250000, the oldest goes
    st = d.wait_for(lambda s: s.log_files_deleted >= 1, what="retention at start")
    assert st.log_files_deleted == 1
    assert sorted(os.listdir(logdir)) == ["notes.txt", "old-b.mcap", "old-c.mcap"]
    assert d.client.start_episode(max_steps=5).ok
    st = d.wait_for(lambda s: s.state == pb.IDLE and s.episodes == 1, what="the episode to end")
    new = [f for f in os.listdir(logdir) if f.endswith(".mcap") and not f.startswith("old-")]
    assert len(new) == 1
    # closed (footer written) before its size counts
    wait_until(lambda: pacctl("log", "verify", "--strict", str(logdir / new[0])).returncode == 0,
               what="the episode log to be closed")
    # after the episode: oldest first until the logs fit (the newest always stays)
    size = os.path.getsize(logdir / new[0])
    expect = ["old-b.mcap", "old-c.mcap"]
    total = 200000 + size
    while expect and total > keep:
        expect.pop(0)
        total -= 100000
    d.wait_for(lambda s: s.log_files_deleted == 1 + 2 - len(expect), what="retention after it")
    assert sorted(os.listdir(logdir)) == sorted(["notes.txt"] + expect + new)
