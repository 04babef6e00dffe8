"""The synthetic reaching cell (pacd_torch.synthetic): its reward and
termination rules, its scripted operator's two data sets (failures sharing
states with successes, or not), and that the data set it writes is read by
pacd_torch.dataset as a pacd data set.

No training here: a short PAC run (the tiny size, 600 steps, about 20 s of
CPU) did not give Q(towards the goal) > Q(away) reliably over seeds 0-2
(SYNTH_RESULTS.md); the lowdim size at 3,000 steps does, in minutes.

Run: cd tests/integration && /usr/bin/python3 -m pytest -q test_synthetic.py
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "policy" / "torch"))

h5py = pytest.importorskip("h5py")

from pacd_torch import dataset as pds  # noqa: E402
from pacd_torch import synthetic as syn  # noqa: E402


def test_reaching_the_goal_pays_once_and_ends():
    g = np.array([[0.1, 0.0], [0.1, 0.0], [0.1, 0.0]])
    p = np.array([[0.1 - 0.0149, 0.0],      # one step of +0.3 m/s (clamped to 0.15) lands at 0.0001 m
                  [0.05, 0.0],              # far: no reward
                  [0.1 - 0.011, 0.0]])      # 0.15 m/s backwards: moves away
    v = np.array([[0.3, 0.0], [0.15, 0.0], [-0.15, 0.0]])
    p2, r, ok = syn.step(p, g, v)
    assert np.allclose(p2[:, 0], [0.1 - 0.0149 + 0.0075, 0.0575, 0.1 - 0.011 - 0.0075])
    assert r.tolist() == [1.0, 0.0, 0.0] and ok.tolist() == [True, False, False]


def test_operator_episodes_follow_the_step_contract():
    for mode in syn.MODES:
        for seed in range(30):
            e = syn.operator_episode(seed, mode)
            t = len(e["observation"])
            assert 2 <= t <= syn.MAX_STEPS
            assert e["is_last"].tolist() == [0] * (t - 1) + [1]
            term = e["is_terminal"]
            assert term[:-1].sum() == 0
            # reward 1 exactly on a terminal (success) step, received with its observation
            assert e["rewards"].tolist() == term.astype(float).tolist()
            d = np.linalg.norm(e["observation"][:, :2] - e["goal"], axis=1)
            assert (d[:-1] >= syn.RADIUS).all()
            assert (d[-1] < syn.RADIUS) == bool(term[-1])
            if not term[-1]:
                assert t == syn.MAX_STEPS          # a failure runs to the step limit
            # the observation: pose, goal pose, point minus goal
            o = e["observation"]
            assert np.allclose(o[:, 14:16], o[:, :2] - o[:, 7:9], atol=1e-6)
            assert np.allclose(o[:, 7:9], e["goal"], atol=1e-6)
            # the actions: bounded x-y velocities that moved the point; the rest constant
            a = e["actions"]
            assert (np.abs(a[:, :2]) <= syn.VMAX + 1e-7).all()
            assert np.allclose(o[1:, :2], o[:-1, :2] + a[:-1, :2] * syn.DT, atol=1e-6)
            assert (a[:, 2:4] == 0).all() and (a[:, 4] == syn.OPEN).all()
            assert (a[-1, :2] == 0).all()          # the arm holds on the last step


def test_same_seed_same_episode():
    a, b = syn.operator_episode(7, "shared"), syn.operator_episode(7, "shared")
    assert np.array_equal(a["observation"], b["observation"])
    assert np.array_equal(a["actions"], b["actions"])


def test_intents_decide_the_outcome():
    """The good intent alone reaches the goal, the offset intent alone never."""
    for seed in range(20):
        p, g, o = syn.start(seed)
        assert syn.OFFSET[0] - 1e-9 <= np.linalg.norm(o - g) <= syn.OFFSET[1] + 1e-9
        for target, want in ((g, True), (o, False)):
            q, reached = p[None], False
            for _ in range(syn.MAX_STEPS - 1):
                q, _, ok = syn.step(q, g[None], syn.toward(q, target[None]))
                reached |= bool(ok[0])
            assert reached == want


def near_offset_outcomes(episodes, within=0.01):
    """Outcome (1 success) of every step within `within` m of its episode's offset point."""
    out = []
    for e in episodes:
        d = np.linalg.norm(e["observation"][:, :2] - e["offset"], axis=1)
        out += [int(e["is_terminal"][-1])] * int((d < within).sum())
    return np.asarray(out)


def test_shared_failures_share_states_and_separated_do_not():
    """shared: failed episodes also carried the good intent for a while and
    successful ones the offset intent, and the states at the offset point are
    visited by both; separated: one intent per episode, and only failed
    episodes go to the offset point."""
    sh = syn.make_episodes(60, 0, "shared")
    fails = [e for e in sh if not e["is_terminal"][-1]]
    wins = [e for e in sh if e["is_terminal"][-1]]
    assert fails and wins
    assert np.mean([e["good"].any() for e in fails]) > 0.6
    assert np.mean([(~e["good"]).any() for e in wins]) > 0.8
    near = near_offset_outcomes(sh)
    assert len(near) > 100 and 0.05 < near.mean() < 0.8, (len(near), near.mean())
    sep = syn.make_episodes(60, 0, "separated")
    for e in sep:
        assert e["good"].all() == bool(e["is_terminal"][-1])
        assert e["good"].all() or not e["good"].any()
    near = near_offset_outcomes(sep)
    assert len(near) > 100 and near.mean() == 0.0, (len(near), near.mean())


def test_the_data_set_loads_with_the_trainers_reader(tmp_path):
    eps = syn.make_episodes(12, 100, "shared")
    path = tmp_path / "synth.hdf5"
    syn.write_dataset(path, eps)
    ds = pds.read(str(path))
    assert ds["robot"] == "" and ds["action"] == syn.ACTION
    assert ds["observation"] == syn.observation_spec()
    assert ds["attrs"]["task"] == syn.TASK and ds["attrs"]["rate_hz"] == syn.RATE_HZ
    assert len(ds["demos"]) == 12
    for d, e in zip(ds["demos"], eps):
        n = len(e["observation"]) - 1
        assert d["attrs"]["num_samples"] == n and d["attrs"]["seed"] == e["seed"]
        assert np.array_equal(d["obs"]["observation"], e["observation"][:-1])
        assert np.array_equal(d["next_obs"]["observation"], e["observation"][1:])
        assert np.allclose(d["actions"], e["actions"][:-1])
        assert np.array_equal(d["rewards"], e["rewards"][1:].astype(np.float32))
        assert d["is_terminal"][-1] == e["is_terminal"][-1] and d["is_last"][-1] == 1
    with h5py.File(path, "r") as h:
        assert json.loads(h["data"].attrs["action"])["low"][:2] == [-syn.VMAX, -syn.VMAX]
    fields = pds.select_fields(ds["observation"], "lowdim")
    tr = pds.load_transitions(str(path), fields)
    assert len(tr["actions"]) == sum(len(e["observation"]) - 1 for e in eps)
    assert tr["successes"] == sum(int(e["is_terminal"][-1]) for e in eps)
