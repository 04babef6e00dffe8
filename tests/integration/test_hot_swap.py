"""Checkpoint hot swap (docs/protocol.md, "Reloading the checkpoint"): RELOAD
and SIGHUP load and check a checkpoint off the control loop and swap it in at
the next episode boundary; a refused one leaves the running one in place.
Which checkpoint acted is read back from each episode log's header
(checkpoint_sha256) and from the actions it logged."""
import hashlib
import json
import math
import os
import shutil
import signal
import subprocess

import pytest

import pacd_client
from test_daemon import node_read
from conftest import Daemon, FrameFeeder, PACCTL, attach_log, pacctl

pb = pacd_client.pb

OBS = [{"name": "joint_positions", "source": "joint_positions", "shape": [7], "history": 1},
       {"name": "joint_velocities", "source": "joint_velocities", "shape": [7], "history": 1}]
ACTION = {"space": "joint_velocity", "dim": 7, "low": [-0.5] * 7, "high": [0.5] * 7}
CONSTANT = 0.05  # rad/s: what the "new" checkpoint commands on every joint
OLD_CONSTANT = -0.02  # and the one pacd starts with


def constant_checkpoint(path, velocity, observation=OBS, bound=0.5):
    """An MLP with the example checkpoint's spec (unless `observation` says
    otherwise) whose action is `velocity` on every joint, whatever it sees."""
    import torch
    from pacd_torch.export import export
    from pacd_torch.mlp import MLPActor

    n_obs = sum(f["shape"][0] * f["history"] for f in observation)
    action = dict(ACTION, low=[-bound] * 7, high=[bound] * 7)
    model = MLPActor(n_obs, 7, [8], activation="relu", head="tanh", low=action["low"],
                     high=action["high"])
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for i in range(7):
            model.head.bias[i] = math.atanh(velocity / bound)
    export(model, str(path), "panda", observation, action)
    return str(path)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    d = tmp_path_factory.mktemp("hot-swap-ckpt")
    return {
        "old": constant_checkpoint(d / "old.safetensors", OLD_CONSTANT),
        "constant": constant_checkpoint(d / "constant.safetensors", CONSTANT),
        # joint positions only: 7 observation values where pacd plans for 14
        "other_spec": constant_checkpoint(d / "other-spec.safetensors", CONSTANT,
                                          observation=OBS[:1]),
        # the same observation, narrower action bounds (the safety filter's)
        "other_bounds": constant_checkpoint(d / "other-bounds.safetensors", CONSTANT,
                                            bound=0.4),
    }


@pytest.fixture
def daemon(request, tmp_path, checkpoints):
    """conftest's daemon factory, started with checkpoints["old"] (no
    example checkpoint to train: this file stays fast)."""
    started = []

    def make(**kw):
        d = Daemon(tmp_path, kw.pop("checkpoint", checkpoints["old"]), **kw)
        started.append(d)
        attach_log(request, "pacd stderr (%s)" % d.stderr_path, d.stderr_path)
        return d.start()

    yield make
    for d in started:
        d.stop()


@pytest.fixture
def example_checkpoint(checkpoints):
    return checkpoints["old"]


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def header(path):
    """The episode log's "pacd" metadata, through the independent reader."""
    return {m["name"]: m["metadata"] for m in node_read(path)["metadata"]}["pacd"]


def policy_actions(path):
    """The policy's action of every step the policy ran (not stale)."""
    r = pacctl("log", "cat", path)
    assert r.returncode == 0, r.stderr
    steps = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    return [s["policy_action"] for s in steps if not s["stale"]]


def is_constant(actions):
    return bool(actions) and all(abs(v - CONSTANT) < 1e-4 for a in actions for v in a)


def run_episode(d, feed, steps=10):
    """One whole episode of `steps` steps; its id."""
    n = d.client.status().episodes
    reply = d.client.start_episode(max_steps=steps)
    d.wait_for(lambda s: s.episodes == n + 1 and s.state == pb.IDLE and s.step == steps,
               feed=feed, what="an episode of %d steps" % steps)
    return reply.episode_id


def log_of(d, episode_id):
    logs = [p for p in d.logs() if episode_id in os.path.basename(p)]
    assert len(logs) == 1, (episode_id, d.logs())
    return logs[0]


def test_reload_while_idle_runs_the_new_checkpoint_from_the_next_episode(daemon, checkpoints,
                                                                         example_checkpoint,
                                                                         tmp_path):
    d = daemon()
    feed = FrameFeeder(d.camera())
    old, new = sha256(example_checkpoint), sha256(checkpoints["constant"])
    assert d.client.status().checkpoint_sha256 == old
    first = run_episode(d, feed)
    # pacctl sends a relative path as its absolute one
    shutil.copy(checkpoints["constant"], tmp_path / "retrained.safetensors")
    r = subprocess.run([PACCTL, "--control", d.ep("control"), "reload", "retrained.safetensors"],
                       capture_output=True, text=True, cwd=str(tmp_path))
    assert r.returncode == 0 and r.stdout.startswith("ok: loaded ") and new in r.stdout, \
        r.stdout + r.stderr
    # idle: it swaps in at once; telemetry (PUB and status) says so
    st = d.wait_for(lambda s: s.checkpoint_sha256 == new and s.reloads == 1, feed=feed,
                    what="the new checkpoint swapped in")
    assert st.reload_pending_sha256 == "" and st.reload_error == ""
    assert st.checkpoint_path == str(tmp_path / "retrained.safetensors")
    assert d.telemetry(count=1)[-1].checkpoint_sha256 == new
    second = run_episode(d, feed)
    d.stop()
    h1, h2 = header(log_of(d, first)), header(log_of(d, second))
    assert h1["checkpoint_sha256"] == old and h1["checkpoint_path"] == example_checkpoint
    assert h2["checkpoint_sha256"] == new
    assert h2["checkpoint_path"] == str(tmp_path / "retrained.safetensors")
    # the new policy acted, not only its name: every step is its constant action
    assert not is_constant(policy_actions(log_of(d, first)))
    assert is_constant(policy_actions(log_of(d, second)))
    assert "checkpoint swapped in" in d.stderr()


def test_reload_during_an_episode_waits_for_its_end(daemon, checkpoints, example_checkpoint):
    d = daemon()
    feed = FrameFeeder(d.camera())
    old, new = sha256(example_checkpoint), sha256(checkpoints["constant"])
    running = d.client.start_episode(max_steps=100000).episode_id
    st = d.wait_for(lambda s: s.state == pb.RUNNING and s.step >= 5, feed=feed, what="5 steps")
    reply = d.client.reload(checkpoints["constant"])
    assert reply.ok and "after the running one" in reply.message, reply
    # loaded and checked, but the running episode keeps its policy
    base = d.wait_for(lambda s: s.step >= st.step + 10, feed=feed, what="10 more steps")
    assert base.state == pb.RUNNING and base.episode_id == running
    assert base.checkpoint_sha256 == old and base.reload_pending_sha256 == new
    assert base.reloads == 0
    assert d.client.end_episode().ok
    st = d.wait_for(lambda s: s.state == pb.IDLE and s.checkpoint_sha256 == new, feed=feed,
                    what="the new checkpoint swapped in at the episode's end")
    assert st.reloads == 1 and st.reload_pending_sha256 == ""
    after = run_episode(d, feed)
    d.stop()
    h1, h2 = header(log_of(d, running)), header(log_of(d, after))
    assert h1["checkpoint_sha256"] == old and h2["checkpoint_sha256"] == new
    steps = policy_actions(log_of(d, running))
    assert steps and not any(is_constant([a]) for a in steps)
    assert is_constant(policy_actions(log_of(d, after)))


def test_refused_reloads_keep_the_running_checkpoint(daemon, checkpoints, example_checkpoint,
                                                     tmp_path):
    d = daemon()
    feed = FrameFeeder(d.camera())
    old = sha256(example_checkpoint)
    corrupt = tmp_path / "corrupt.safetensors"
    with open(checkpoints["constant"], "rb") as f:
        data = bytearray(f.read())
    data[8:24] = b"\x00\xff" * 8  # the JSON header is no longer JSON
    corrupt.write_bytes(bytes(data))
    cases = [
        (str(corrupt), "corrupt.safetensors"),
        (str(tmp_path / "missing.safetensors"), "missing.safetensors"),
        (checkpoints["other_spec"], "needs a restart of pacd"),
        (checkpoints["other_bounds"], "action bounds of dimension 0 are [-0.4, 0.4]"),
        ("relative/model.safetensors", "must be absolute"),
        ("/tmp/bad\nname.safetensors", "control character"),
        ("/nowhere/caf\u00e9.safetensors", "No such file"),
    ]
    for n, (path, why) in enumerate(cases, 1):
        reply = d.client.reload(path, check=False)
        assert not reply.ok and why in reply.error, (path, reply.error)
        assert reply.status.checkpoint_sha256 == old
    assert "observation field(s)" in d.client.reload(checkpoints["other_spec"], check=False).error
    st = d.client.status()
    # the path checks are refused before loading (values_rejected), the others
    # counted as refused reloads with the last reason
    assert st.reloads_failed == 6 and "needs a restart" in st.reload_error, st
    assert st.reloads == 0 and st.reload_pending_sha256 == "" and st.checkpoint_sha256 == old
    # the old policy keeps running
    ep = run_episode(d, feed)
    d.stop()
    assert header(log_of(d, ep))["checkpoint_sha256"] == old
    err = d.stderr()
    assert "other-spec.safetensors by pacd_client.py refused" in err, err
    # a peer's path is printed escaped
    assert "\nname.safetensors" not in err and "/nowhere/caf\\xc3\\xa9.safetensors" in err, err


def test_sighup_reloads_the_configured_checkpoint(daemon, checkpoints, example_checkpoint,
                                                  tmp_path):
    configured = tmp_path / "deployed.safetensors"
    shutil.copy(example_checkpoint, configured)
    d = daemon(checkpoint=str(configured))
    feed = FrameFeeder(d.camera())
    old, new = sha256(example_checkpoint), sha256(checkpoints["constant"])
    first = run_episode(d, feed)
    # deploy the retrained policy as a new file renamed over the old one
    # (pacd maps the running checkpoint: never write into it in place)
    shutil.copy(checkpoints["constant"], tmp_path / "deployed.tmp")
    os.replace(tmp_path / "deployed.tmp", configured)
    d.signal(signal.SIGHUP)
    d.wait_for(lambda s: s.checkpoint_sha256 == new and s.reloads == 1, feed=feed,
               what="SIGHUP swapped the configured checkpoint in")
    second = run_episode(d, feed)
    # a broken file at the configured path: refused, the running one stays
    (tmp_path / "deployed.tmp").write_bytes(b"not a checkpoint")
    os.replace(tmp_path / "deployed.tmp", configured)
    d.signal(signal.SIGHUP)
    st = d.wait_for(lambda s: s.reloads_failed == 1, feed=feed, what="the broken file refused")
    assert st.checkpoint_sha256 == new and st.reload_error
    third = run_episode(d, feed)
    d.stop()
    assert d.proc.returncode == 0
    assert header(log_of(d, first))["checkpoint_sha256"] == old
    assert header(log_of(d, second))["checkpoint_sha256"] == new
    assert header(log_of(d, third))["checkpoint_sha256"] == new
