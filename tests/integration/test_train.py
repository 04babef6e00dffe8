"""Offline training (pacd_torch.train, .dataset, .stats): the losses on
hand-computed cases, the data set contract, and a tiny end to end: a
synthetic data set -> train each algorithm -> export -> read back with
pacd_torch.export.load and run by pacd's C engine (pacd-policy-eval), whose
logits must agree within 1e-4 (Q within 1e-4) as for every checkpoint.

Run: PACD_BUILD_DIR=build /usr/bin/python3 -m pytest tests/integration/test_train.py
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "policy" / "torch"))

h5py = pytest.importorskip("h5py")

from pacd_torch import dataset as pds  # noqa: E402
from pacd_torch import export as pexport  # noqa: E402
from pacd_torch import stats  # noqa: E402
from pacd_torch import train as ptrain  # noqa: E402

torch.set_num_threads(1)
LOGIT_TOL = 1e-4

# Tests of PyTorch code alone (no C from this build): a sanitizer build
# cannot change their outcome, so they run in the plain build only
# (tests/policy/meson.build sets PACD_SANITIZED=1 in the others); the tests
# that run the exported checkpoints in pacd-policy-eval run in every build.
pure_python = pytest.mark.skipif(os.environ.get("PACD_SANITIZED") == "1",
                                 reason="pure Python: run in the plain build only")


def build_dir():
    return Path(os.environ.get("PACD_BUILD_DIR", ROOT / "build"))


@pytest.fixture(scope="module")
def eval_exe():
    exe = build_dir() / "policy" / "pacd-policy-eval"
    if not exe.exists():
        pytest.fail(f"{exe} not found: build first (ninja -C {build_dir()}) or set PACD_BUILD_DIR")
    return exe


# --- the distributional projection (C51) ------------------------------------

SUPPORT = torch.linspace(0.0, 1.0, 5)        # atoms 0, .25, .5, .75, 1


def project(probs, r, d, support=SUPPORT):
    return ptrain.project_distribution(torch.tensor([probs], dtype=torch.float32),
                                       torch.tensor([r]), torch.tensor([d]), support)[0]


def close(got, want):
    torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float32),
                               rtol=0, atol=1e-6)


@pure_python
def test_projection_splits_mass_between_neighbours():
    # atom 0.5 -> 0.1 + 0.9 * 0.5 = 0.55: 1/5 of the way from 0.5 to 0.75
    close(project([0, 0, 1, 0, 0], 0.1, 0.9), [0, 0, 0.8, 0.2, 0])
    # two atoms at once: 0 -> 0 (atom 0), 1 -> 0.5 (atom 2)
    close(project([0.5, 0, 0, 0, 0.5], 0.0, 0.5), [0.5, 0, 0.5, 0, 0])
    # 0.25 -> 0.1 + 0.5 * 0.25 = 0.225 (0.9 of the way from 0 to 0.25) and
    # 0.75 -> 0.475 (0.9 of the way from 0.25 to 0.5), 0.4 and 0.6 of the mass
    close(project([0, 0.4, 0, 0.6, 0], 0.1, 0.5),
          [0.4 * 0.1, 0.4 * 0.9 + 0.6 * 0.1, 0.6 * 0.9, 0, 0])
    # landing exactly on an atom keeps all the mass there
    close(project([0, 0, 0, 1, 0], 0.25, 0.0), [0, 1, 0, 0, 0])


@pure_python
def test_projection_clips_at_the_support_ends():
    # r + d z >= 1 for every atom: everything at the top atom
    close(project([0.2] * 5, 1.0, 0.99), [0, 0, 0, 0, 1])
    # below the support: everything at the bottom atom
    close(project([0, 1, 0, 0, 0], -0.3, 0.2), [1, 0, 0, 0, 0])
    # part clipped: atoms 0.75 and 1 -> 0.2 + 0.9 z = 0.875 (split) and 1.1 (clipped to 1)
    close(project([0, 0, 0, 0.5, 0.5], 0.2, 0.9), [0, 0, 0, 0.25, 0.75])


@pure_python
def test_projection_terminal_transitions_ignore_the_next_state():
    for probs in ([0.2] * 5, [1, 0, 0, 0, 0], [0, 0, 0, 0, 1]):
        close(project(probs, 1.0, 0.0), [0, 0, 0, 0, 1])     # success: return 1
        close(project(probs, 0.0, 0.0), [1, 0, 0, 0, 0])     # failure: return 0
        close(project(probs, 0.3, 0.0), [0, 0.8, 0.2, 0, 0])


@pure_python
def test_projection_batch_rows_and_mass():
    g = torch.Generator().manual_seed(0)
    support = torch.linspace(-2.0, 3.0, 11)
    probs = torch.softmax(torch.randn(64, 11, generator=g), -1)
    r = torch.randn(64, generator=g) * 2
    d = torch.rand(64, generator=g) * (torch.rand(64, generator=g) > 0.3)
    m = ptrain.project_distribution(probs, r, d, support)
    torch.testing.assert_close(m.sum(-1), torch.ones(64), rtol=0, atol=1e-5)
    # the mean is preserved where nothing is clipped
    tz = r[:, None] + d[:, None] * support
    inside = ((tz >= -2) & (tz <= 3)).all(1)
    assert inside.sum() > 5
    torch.testing.assert_close((m * support).sum(-1)[inside], (probs * tz).sum(-1)[inside],
                               rtol=0, atol=1e-5)
    # each row: the same as projecting it alone
    for i in (0, 17, 63):
        torch.testing.assert_close(m[i], ptrain.project_distribution(
            probs[i:i + 1], r[i:i + 1], d[i:i + 1], support)[0])


# --- policy improvement ---------------------------------------------------------

@pure_python
def test_n_step_returns_hand_case():
    # two episodes flattened as load_transitions does (M = 6 transition rows,
    # rows 6 and 7 the appended final observations): episode 0 has rows 0-3 and
    # ends terminal on row 3 (reward 1); episode 1 has rows 4-5, cut (is_last,
    # not terminal) after row 5, reward 0.5 on row 4
    nxt = np.array([1, 2, 3, 6, 5, 7])
    rew = np.array([0, 0, 0, 1, 0.5, 0], np.float32)
    term = np.array([0, 0, 0, 1, 0, 0], np.float32)
    g = 0.9
    ret, disc, boot = ptrain.n_step_returns(nxt, rew, term, 1, g)
    np.testing.assert_allclose(ret, rew, atol=1e-6)
    np.testing.assert_allclose(disc, g * (1 - term), atol=1e-6)
    assert boot.tolist() == nxt.tolist()
    ret, disc, boot = ptrain.n_step_returns(nxt, rew, term, 3, g)
    # row 0: r0 + g r1 + g^2 r2 = 0, bootstrap at row 3 with g^3
    # row 1: r1 + g r2 + g^2 r3 = 0.81, terminal inside: no bootstrap
    # row 2: r2 + g r3 = 0.9, terminal; row 3: 1, terminal
    # row 4: 0.5 + g 0 = 0.5, the episode ends after 2 steps: bootstrap at obs
    # row 7 (its final observation) with g^2; row 5: 0, bootstrap at 7 with g
    np.testing.assert_allclose(ret, [0, 0.81, 0.9, 1, 0.5, 0], atol=1e-6)
    np.testing.assert_allclose(disc, [g ** 3, 0, 0, 0, g ** 2, g], atol=1e-6)
    assert boot.tolist() == [3, 6, 6, 6, 7, 7]
    with pytest.raises(ValueError):
        ptrain.n_step_returns(nxt, rew, term, 0, g)


@pure_python
def test_repeated_actions_hand_case():
    # the same two episodes: rows 0-3 and 4-5; actions [M, 2]
    nxt = np.array([1, 2, 3, 6, 5, 7])
    acts = np.array([[0, 1], [2, 1], [4, -1], [6, -1], [1, 0], [3, 0]], np.float32)
    np.testing.assert_allclose(ptrain.repeated_actions(nxt, acts, 1), acts)
    # k = 3: the mean of rows i .. i+2 within the episode (fewer at its end)
    np.testing.assert_allclose(ptrain.repeated_actions(nxt, acts, 3),
                               [[2, 1 / 3], [4, -1 / 3], [5, -1], [6, -1], [2, 0], [3, 0]],
                               atol=1e-6)
    with pytest.raises(ValueError):
        ptrain.repeated_actions(nxt, acts, 0)


@pure_python
def test_improvement_weights_hand_case():
    eta = 0.5
    # exp(q / eta) = 1, 3, 6 -> weights 0.1, 0.3, 0.6
    q = torch.tensor([[0.0, eta * math.log(3.0), eta * math.log(6.0)]])
    close(ptrain.improvement_weights(q, eta)[0], [0.1, 0.3, 0.6])
    # a higher temperature flattens them, a lower one sharpens them
    w_hot = ptrain.improvement_weights(q, 10 * eta)[0]
    w_cold = ptrain.improvement_weights(q, eta / 10)[0]
    assert w_hot.max() < 0.4 and w_cold[2] > 0.99
    # the improvement term: cross-entropy of those weights against pi
    logits = torch.log(torch.tensor([[[0.2, 0.3, 0.5]]]))              # 1 dim, 3 bins
    samples = torch.tensor([[[0], [1], [2]]])                          # [B=1, N=3, A=1]
    w = torch.tensor([[0.1, 0.3, 0.6]])
    loss, bc, pi = ptrain.actor_loss(logits, torch.tensor([[0]]), samples, w, alpha=0.75)
    want_pi = -(0.1 * math.log(0.2) + 0.3 * math.log(0.3) + 0.6 * math.log(0.5))
    assert abs(pi.item() - want_pi) < 1e-6
    assert abs(bc.item() + math.log(0.2)) < 1e-6
    assert abs(loss.item() - (0.75 * -math.log(0.2) + 0.25 * want_pi)) < 1e-6


@pure_python
def test_support_mask_hand_case():
    """Bins the behaviour gives less than threshold x its best bin's probability
    are removed from the policy's distribution; its best bin always stays."""
    beh = torch.log(torch.tensor([[[0.5, 0.3, 0.15, 0.05], [0.97, 0.01, 0.01, 0.01]]]))
    pol = torch.zeros(1, 2, 4)                       # uniform policy
    got = torch.softmax(ptrain.support_masked(pol, beh, 0.25), -1)
    # dim 0: 0.3 / 0.5 and 0.15 / 0.5 >= 0.25 keep, 0.05 / 0.5 < 0.25 goes
    close(got[0, 0], [1 / 3, 1 / 3, 1 / 3, 0.0])
    close(got[0, 1], [1.0, 0.0, 0.0, 0.0])          # only the best bin
    assert torch.equal(ptrain.support_masked(pol, beh, 0.0), pol)   # 0: every bin
    idx = ptrain.sample_bins(ptrain.support_masked(pol, beh, 0.25), 200,
                             torch.Generator().manual_seed(0))
    assert set(idx[0, :, 0].tolist()) == {0, 1, 2} and set(idx[0, :, 1].tolist()) == {0}


def test_eta_dual_meets_the_kl_bound():
    """Minimising the MPO dual over eta makes KL(w || uniform prior) = epsilon."""
    g = torch.Generator().manual_seed(1)
    q = torch.rand(32, 16, generator=g)
    eps = 0.1
    log_eta = torch.tensor(0.0, requires_grad=True)
    opt = torch.optim.Adam([log_eta], lr=0.05)
    for _ in range(600):
        opt.zero_grad()
        ptrain.eta_dual(q, log_eta.exp(), eps).backward()
        opt.step()
    w = ptrain.improvement_weights(q, log_eta.exp().detach())
    kl = (w * torch.log(w * q.shape[1])).sum(1).mean()
    assert abs(kl.item() - eps) < 0.01, kl.item()


def tiny_model(critic=True, seed=0, action_hidden=0):
    observation = [{"name": "joint_positions", "source": "joint_positions", "shape": [3],
                    "history": 2}]
    action = {"space": "joint_velocity", "dim": 2, "low": [-0.5, -1.0], "high": [0.5, 1.0]}
    hp = dict(ptrain.DEFAULTS, bins=7, value_bins=11, critic_action_hidden=action_hidden)
    torch.manual_seed(seed)
    return ptrain.build_model(observation, action, "tiny", hp, critic), hp


def grads(model, loss):
    model.zero_grad(set_to_none=True)
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pure_python
def test_actor_gradient_with_alpha_one_equals_bc():
    model, hp = tiny_model()
    g = torch.Generator().manual_seed(2)
    obs = torch.randn(8, model.obs_dim, generator=g)
    data_idx = torch.randint(0, 7, (8, 2), generator=g)
    samples = torch.randint(0, 7, (8, 5, 2), generator=g)
    w = torch.softmax(torch.randn(8, 5, generator=g), 1)

    def actor(alpha):
        logits = model(obs)
        return ptrain.actor_loss(logits, data_idx, samples, w, alpha)[0]

    def bc_only():
        logits = model(obs)
        lp = torch.log_softmax(logits, -1).gather(-1, data_idx[..., None])[..., 0]
        return -lp.sum(-1).mean()                 # the BC cross-entropy written out

    g_bc = grads(model, bc_only())
    g_a1 = grads(model, actor(1.0))
    assert g_bc.keys() == g_a1.keys() and len(g_bc) > 10
    for n in g_bc:
        torch.testing.assert_close(g_a1[n], g_bc[n], rtol=0, atol=1e-7, msg=n)
    # alpha < 1 moves the gradient (so the comparison above can fail)
    g_a75 = grads(model, actor(0.75))
    assert max((g_a75[n] - g_bc[n]).abs().max().item() for n in g_bc) > 1e-3


@pure_python
@pytest.mark.parametrize("action_hidden", [0, 8])
def test_batched_critic_equals_the_twin_per_action(action_hidden):
    """N actions per state share one pass over the latents; the values are
    those of pac.PACActor.q_value (what pacd computes) for each action alone
    (with the linear and the MLP action input)."""
    model, _ = tiny_model(seed=3, action_hidden=action_hidden)
    assert isinstance(model.critic.action_proj, torch.nn.Sequential) == (action_hidden > 0)
    from pacd_torch.pac import randomize_
    randomize_(model, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        lat = model.latents(torch.randn(4, model.obs_dim, generator=g))
        a = (torch.rand(4, 5, 2, generator=g) - 0.5) * torch.tensor([1.0, 2.0])
        got = ptrain.expected_q(model, lat, a)
        want = torch.stack([model.q_value(lat, a[:, j]) for j in range(5)], 1)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert want.std() > 1e-3


def synthetic_episodes(n_eps, obs_dim, action, cams=(), seed=0, t_range=(4, 12),
                       success_every=3):
    """Episodes as pacd logs them: T steps, the final one is_last, terminal on success."""
    rng = np.random.default_rng(seed)
    eps = []
    for e in range(n_eps):
        t = int(rng.integers(*t_range))
        ok = e % success_every == 0
        low, high = np.array(action["low"]), np.array(action["high"])
        eps.append({
            "observation": rng.normal(size=(t, obs_dim)).astype(np.float32),
            "images": {c: rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8)
                       for c, (h, w) in cams},
            "actions": rng.uniform(low, high, (t, action["dim"])).astype(np.float32),
            "rewards": np.r_[np.zeros(t - 1), [1.0 if ok else 0.0]],
            "is_terminal": np.r_[np.zeros(t - 1), [int(ok)]],
            "is_last": np.r_[np.zeros(t - 1), [1]],
            "episode_id": f"20261204T180000Z-panda-{e:04d}", "seed": 100 + e,
            "model_sha256": "ab" * 32,
        })
    return eps


OBSERVATION = [
    {"name": "joint_positions", "source": "joint_positions", "shape": [3], "history": 2},
    {"name": "object_pose/cube", "source": "object_pose/cube", "shape": [7], "history": 1},
    {"name": "previous_action", "source": "previous_action", "shape": [2], "history": 1},
    {"name": "camera/agentview", "source": "camera/agentview", "shape": [16, 16, 3],
     "history": 1},
]
ACTION = {"space": "joint_velocity", "dim": 2, "low": [-0.5, -0.5], "high": [0.5, 0.5]}


# --- the data set contract -------------------------------------------------------

@pure_python
def test_dataset_layout_and_round_trip(tmp_path):
    eps = synthetic_episodes(4, 15, ACTION, cams=[("agentview", (16, 16))], seed=3)
    eps[1]["unfinished"] = 1
    eps[1]["is_last"][-1] = 0
    path = tmp_path / "d.hdf5"
    pds.write(path, eps, "sawyer", OBSERVATION, ACTION, rate_hz=20, task="lift")
    with h5py.File(path, "r") as h:
        at = h["data"].attrs
        assert at["pacd_dataset_version"] == 1 and at["robot"] == "sawyer"
        assert json.loads(at["observation"]) == OBSERVATION
        assert json.loads(at["action"]) == ACTION
        assert at["total"] == sum(len(e["actions"]) - 1 for e in eps)
        assert json.loads(at["env_args"])["env_kwargs"]["robot"] == "sawyer"
        assert sorted(h["data"].keys()) == ["demo_0", "demo_1", "demo_2", "demo_3"]
        for k, e in enumerate(eps):
            g = h[f"data/demo_{k}"]
            t = len(e["actions"])
            n = t - 1
            assert g.attrs["num_samples"] == n and g.attrs["seed"] == 100 + k
            assert g.attrs["episode_id"] == e["episode_id"]
            assert g.attrs["model_sha256"] == "ab" * 32
            assert g.attrs["unfinished"] == (k == 1)
            assert g["obs/observation"].dtype == np.float32
            assert g["obs/observation"].shape == (n, 15)
            assert g["obs/agentview_image"].dtype == np.uint8
            assert g["obs/agentview_image"].shape == (n, 16, 16, 3)
            # row i: step i -> step i + 1
            np.testing.assert_array_equal(g["obs/observation"][()], e["observation"][:-1])
            np.testing.assert_array_equal(g["next_obs/observation"][()], e["observation"][1:])
            np.testing.assert_array_equal(g["next_obs/agentview_image"][()],
                                          e["images"]["agentview"][1:])
            np.testing.assert_array_equal(g["actions"][()], e["actions"][:-1])
            np.testing.assert_array_equal(g["rewards"][()], e["rewards"][1:])
            for key in ("dones", "is_terminal"):
                assert g[key].dtype == np.uint8
                np.testing.assert_array_equal(g[key][()], e["is_terminal"][1:])
            np.testing.assert_array_equal(g["is_last"][()], e["is_last"][1:])
            np.testing.assert_array_equal(g["is_first"][()], np.r_[[1], np.zeros(n - 1)])
    ds = pds.read(path)
    assert [d["attrs"]["unfinished"] for d in ds["demos"]] == [0, 1, 0, 0]
    assert [pds.episode_success(d) for d in ds["demos"]] == [True, False, False, True]
    # a terminal step without the success reward is a failure
    ds["demos"][1]["dones"][-1] = 1
    assert not pds.episode_success(ds["demos"][1])


@pure_python
def test_transitions_next_observations_and_field_selection(tmp_path):
    eps = synthetic_episodes(3, 15, ACTION, cams=[("agentview", (16, 16))], seed=4)
    path = tmp_path / "d.hdf5"
    pds.write(path, eps, "sawyer", OBSERVATION, ACTION)
    low = pds.select_fields(OBSERVATION, "lowdim")
    cam = pds.select_fields(OBSERVATION, "camera")
    assert [f["name"] for f in low] == ["joint_positions", "object_pose/cube", "previous_action"]
    # the camera model does not see the privileged cube pose
    assert [f["name"] for f in cam] == ["joint_positions", "previous_action", "camera/agentview"]
    d = pds.load_transitions(path, cam)
    m = sum(len(e["actions"]) - 1 for e in eps)
    assert d["obs"].shape == (m + 3, 8) and d["images"]["agentview_image"].shape[0] == m + 3
    cols = list(range(6)) + [13, 14]          # joint_positions x2, previous_action
    row = 0
    for k, e in enumerate(eps):
        n = len(e["actions"]) - 1
        for i in range(n):
            j = d["next_index"][row + i]
            np.testing.assert_array_equal(d["obs"][row + i], e["observation"][i, cols])
            np.testing.assert_array_equal(d["obs"][j], e["observation"][i + 1, cols])
            np.testing.assert_array_equal(d["images"]["agentview_image"][j],
                                          e["images"]["agentview"][i + 1])
        assert d["next_index"][row + n - 1] == m + k     # the appended final next obs
        row += n
    # filtered BC keeps the successful episodes only (0: success, 1, 2: not)
    f = pds.load_transitions(path, low, only_success=True)
    assert f["kept_episodes"] == 1 and len(f["actions"]) == len(eps[0]["actions"]) - 1
    # excluded fields are left out; an unknown one is an error
    assert [f["name"] for f in pds.select_fields(OBSERVATION, "lowdim",
                                                 exclude=["previous_action"])] == \
        ["joint_positions", "object_pose/cube"]
    with pytest.raises(pds.DatasetError, match="cannot exclude"):
        pds.select_fields(OBSERVATION, "lowdim", exclude=["nonesuch"])


@pure_python
def test_held_rows_are_not_learned_from(tmp_path):
    # the arm held on stale input at steps 0 and 1 of each episode: those rows
    # are kept as transitions but never drawn into a training batch
    eps = synthetic_episodes(3, 15, ACTION, cams=[("agentview", (16, 16))], seed=6)
    for e in eps:
        e["held"] = np.zeros(len(e["actions"]), np.uint8)
        e["held"][:2] = 1
    path = tmp_path / "h.hdf5"
    pds.write(path, eps, "sawyer", OBSERVATION, ACTION)
    low = pds.select_fields(OBSERVATION, "lowdim")
    d = pds.load_transitions(path, low)
    assert d["acted"].tolist() == sum(([False, False] + [True] * (len(e["actions"]) - 3)
                                       for e in eps), [])
    tr = ptrain.Trainer(d, "bc", "tiny")
    drawn = np.concatenate([tr.batch(64)[0].numpy() for _ in range(50)])
    assert not (~d["acted"][drawn]).any()
    assert len(set(drawn.tolist())) == d["acted"].sum()   # every acted row is drawn


@pure_python
def test_several_data_sets_train_together(tmp_path):
    """Round 2 of the loop: the behaviour data plus the policy's own episodes."""
    a, b, c = tmp_path / "a.hdf5", tmp_path / "b.hdf5", tmp_path / "c.hdf5"
    ea = synthetic_episodes(3, 15, ACTION, cams=[("agentview", (16, 16))], seed=6)
    eb = synthetic_episodes(2, 15, ACTION, cams=[("agentview", (16, 16))], seed=7,
                            success_every=1)
    pds.write(a, ea, "sawyer", OBSERVATION, ACTION)
    pds.write(b, eb, "sawyer", OBSERVATION, ACTION)
    fields = pds.select_fields(OBSERVATION, "camera")
    d = pds.load_transitions([a, b], fields)
    assert d["episodes"] == 5 and d["successes"] == 1 + 2
    assert len(d["actions"]) == sum(len(e["actions"]) - 1 for e in ea + eb)
    last = len(eb[1]["actions"]) - 2                 # the final row of b's second episode
    np.testing.assert_array_equal(d["actions"][-1], eb[1]["actions"][last])
    np.testing.assert_array_equal(d["obs"][d["next_index"][-1]],
                                  eb[1]["observation"][last + 1, [0, 1, 2, 3, 4, 5, 13, 14]])
    # a policy's own episodes log only the fields it reads: they train together
    # with the behaviour data on those fields, taken by name from each layout
    own = [OBSERVATION[0], OBSERVATION[3]]            # joint_positions, the camera
    e_own = [dict(e, observation=e["observation"][:, :6]) for e in eb]
    pds.write(c, e_own, "sawyer", own, ACTION)
    d2 = pds.load_transitions([a, c], own)
    np.testing.assert_array_equal(d2["obs"][d2["next_index"][-1]],
                                  eb[1]["observation"][last + 1, :6])
    np.testing.assert_array_equal(d2["obs"][0], ea[0]["observation"][0, :6])
    with pytest.raises(pds.DatasetError, match="previous_action.* is not in the data set"):
        pds.load_transitions([a, c], fields)
    # another action spec is refused, naming the difference
    pds.write(c, ea, "sawyer", OBSERVATION, dict(ACTION, high=[0.4, 0.4]))
    with pytest.raises(pds.DatasetError, match="action .* differs"):
        pds.load_transitions([a, c], fields)


@pure_python
@pytest.mark.parametrize("case", ["no data", "version", "shape", "missing attr", "total"])
def test_dataset_errors_name_the_problem(tmp_path, case):
    path = tmp_path / "d.hdf5"
    pds.write(path, synthetic_episodes(2, 15, ACTION, cams=[("agentview", (16, 16))]),
              "sawyer", OBSERVATION, ACTION)
    with h5py.File(path, "a") as h:
        if case == "no data":
            del h["data"]
            needle = "no group 'data'"
        elif case == "version":
            h["data"].attrs["pacd_dataset_version"] = 2
            needle = "version 2"
        elif case == "shape":
            del h["data/demo_1/actions"]
            h["data/demo_1"].create_dataset("actions", data=np.zeros((3, 2), np.float32))
            needle = "data/demo_1/actions has shape (3, 2)"
        elif case == "total":
            h["data"].attrs["total"] = 3
            needle = "total is 3"
        else:
            del h["data"].attrs["action"]
            needle = "lacks the attribute 'action'"
    with pytest.raises(pds.DatasetError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        pds.read(path)


# --- Wilson interval -----------------------------------------------------------------

@pure_python
def test_wilson_known_values():
    # published values (e.g. Newcombe 1998, Table I; any Wilson calculator)
    for k, n, lo, hi in [(0, 10, 0.0, 0.2775), (1, 10, 0.0179, 0.4042),
                         (5, 10, 0.2366, 0.7634), (10, 10, 0.7225, 1.0),
                         (0, 20, 0.0, 0.1611)]:
        got = stats.wilson(k, n)
        assert abs(got[0] - lo) < 1e-4 and abs(got[1] - hi) < 1e-4, (k, n, got)
    # 90%: z = 1.645 narrows it
    assert stats.wilson(5, 10, z=1.6449)[1] < 0.7634
    assert stats.format_rate(11, 20) == "11/20 = 55% [34%, 74%]"
    assert not stats.overlap(stats.wilson(3, 20), stats.wilson(15, 20))
    assert stats.overlap(stats.wilson(8, 20), stats.wilson(11, 20))
    with pytest.raises(ValueError):
        stats.wilson(3, 0)


# --- end to end: data set -> train -> export -> pacd's C engine -----------------------

def run_eval(exe, ckpt, tmp, values, images=()):
    n = values.shape[0]
    values.astype("<f4").tofile(tmp / "obs.bin")
    args = [str(exe), "--input", str(tmp / "obs.bin"), "--output", str(tmp / "act.bin"),
            "--logits", str(tmp / "logits.bin"), "--q-values", str(tmp / "q.bin")]
    if images:
        np.concatenate([im.reshape(n, -1) for im in images], 1).tofile(tmp / "img.bin")
        args += ["--images", str(tmp / "img.bin")]
    r = subprocess.run(args + [str(ckpt)], capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr.decode()
    return (np.fromfile(tmp / "act.bin", "<f4").reshape(n, -1),
            np.fromfile(tmp / "logits.bin", "<f4").reshape(n, -1),
            np.fromfile(tmp / "q.bin", "<f4"))


E2E_OBS = [f for f in OBSERVATION if f["source"] != "object_pose/cube"]   # pacd knows these


@pytest.fixture(scope="module")
def e2e_data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "d.hdf5"
    pds.write(path, synthetic_episodes(12, 8, ACTION, cams=[("agentview", (16, 16))], seed=5),
              "panda", E2E_OBS, ACTION, task="lift")
    return path


@pytest.mark.parametrize("algo,size", [("bc", "tiny"), ("fbc", "tiny"), ("bcq", "tiny"),
                                       ("pac", "tiny"), ("pac", "tiny-camera")])
def test_train_export_and_run_in_pacd(tmp_path, eval_exe, e2e_data, algo, size):
    out = tmp_path / "ckpt.safetensors"
    hp = {"bins": 11, "value_bins": 21, "batch": 16, "samples": 4}
    tr, info = ptrain.train(str(e2e_data), algo, str(out), size, steps=60, seed=1, hp=hp,
                            device="cpu", progress=False)
    assert (tmp_path / "ckpt.losses.png").stat().st_size > 1000
    hist = json.loads((tmp_path / "ckpt.losses.json").read_text())
    assert len(hist["bc"]) == 60 and all(math.isfinite(v) for v in hist["loss"])
    critic = algo in ("bcq", "pac")
    assert ("td" in hist) == critic and ("pi" in hist) == (algo == "pac")
    if algo == "fbc":
        assert info["episodes_used"] == info["successes"] == 4
    else:
        assert info["episodes_used"] == 12
    # the checkpoint: read back by the twin ...
    model, meta = pexport.load(out)
    assert json.loads(meta["pacd.training"])["algo"] == algo
    assert (model.critic is not None) == critic
    fields = json.loads(meta["pacd.observation"])
    cams = [f for f in fields if pds.is_camera(f)]
    assert len(cams) == (1 if size == "tiny-camera" else 0)
    sd = tr.model.state_dict()
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, sd[k], rtol=0, atol=0, msg=k)
    # ... and run by pacd's engine on the data set's own observations
    d = pds.load_transitions(str(e2e_data), fields)
    values = d["obs"][:10]
    images = [d["images"][pds.camera_key(f)][:10] for f in cams]
    with torch.no_grad():
        logits, act, q = model.act(torch.as_tensor(values),
                                   [torch.as_tensor(im) for im in images])
    got_act, got_logits, got_q = run_eval(eval_exe, out, tmp_path, values, images)
    err = np.abs(got_logits - logits.reshape(10, -1).numpy()).max()
    assert err <= LOGIT_TOL, f"max |C - torch| logits = {err}"
    np.testing.assert_array_equal(got_act, act.numpy())
    if critic:
        np.testing.assert_allclose(got_q, q.numpy(), atol=1e-4, rtol=0)
    else:
        assert np.isnan(got_q).all()
    spec = json.loads(subprocess.run([str(eval_exe), "--spec", str(out)], capture_output=True,
                                     check=True).stdout)
    assert spec["has_critic"] is critic and spec["robot"] == "panda"


def test_cli_writes_checkpoint_and_plot(tmp_path, eval_exe, e2e_data, capsys):
    out = tmp_path / "cli.safetensors"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "policy" / "torch"))
    r = subprocess.run([sys.executable, "-m", "pacd_torch.train", "--data", str(e2e_data),
                        "--algo", "pac", "--size", "tiny-camera", "--steps", "30",
                        "--threads", "1", "--bins", "5", "--batch", "8", "--samples", "4",
                        "--out", str(out)], env=env, capture_output=True, timeout=600)
    err = r.stderr.decode()
    assert r.returncode == 0, err
    assert "30/30" in err and "td" in err and "wrote" in err     # progress with losses
    assert (tmp_path / "cli.losses.png").exists()
    spec = json.loads(subprocess.run([str(eval_exe), "--spec", str(out)], capture_output=True,
                                     check=True).stdout)
    assert spec["has_critic"] is True
    # --action-repeat: the checkpoint tells pacd to hold each action 3 periods,
    # and the data set's spec (rows are periods) still matches the behaviour's
    out3 = tmp_path / "r3.safetensors"
    rc = ptrain.main(["--data", str(e2e_data), "--algo", "bc", "--size", "tiny", "--steps", "5",
                      "--threads", "1", "--action-repeat", "3", "--quiet", "--out", str(out3)])
    assert rc == 0
    _, meta3 = pexport.load(str(out3))
    assert json.loads(meta3["pacd.action"])["repeat"] == 3
    assert json.loads(meta3["pacd.training"])["hyperparameters"]["action_repeat"] == 3
    spec3 = json.loads(subprocess.run([str(eval_exe), "--spec", str(out3)], capture_output=True,
                                      check=True).stdout)
    assert spec3["action_repeat"] == 3
    # a data set without successes: filtered BC refuses with a message
    path = tmp_path / "fail.hdf5"
    pds.write(path, synthetic_episodes(3, 8, ACTION, cams=[("agentview", (16, 16))],
                                       success_every=99)[1:],
              "panda", E2E_OBS, ACTION)
    rc = ptrain.main(["--data", str(path), "--algo", "fbc", "--size", "tiny", "--steps", "5",
                      "--out", str(tmp_path / "x.safetensors")])
    assert rc == 1 and "no successful episode" in capsys.readouterr().err
    assert not (tmp_path / "x.safetensors").exists()


def test_critic_action_hidden_trains_and_runs_in_pacd(tmp_path, eval_exe, e2e_data, capsys):
    """--critic-action-hidden H: the critic's action input is the MLP Linear(A, H),
    GELU, Linear(H, d); the export records it (critic "action_hidden") and pacd
    loads it and computes the twin's Q. Without the flag the key is absent
    (the linear input, metadata as before)."""
    out = tmp_path / "mlp.safetensors"
    rc = ptrain.main(["--data", str(e2e_data), "--algo", "pac", "--size", "tiny", "--steps",
                      "8", "--threads", "1", "--bins", "5", "--batch", "8", "--samples", "4",
                      "--critic-action-hidden", "12", "--seed", "3", "--quiet",
                      "--out", str(out)])
    assert rc == 0
    model, meta = pexport.load(str(out))
    critic = json.loads(meta["pacd.model"])["critic"]
    assert critic["action_hidden"] == 12
    assert json.loads(meta["pacd.training"])["hyperparameters"]["critic_action_hidden"] == 12
    sd = model.state_dict()
    d = json.loads(meta["pacd.model"])["width"]
    assert sd["critic.action_proj.0.weight"].shape == (12, ACTION["dim"])
    assert sd["critic.action_proj.2.weight"].shape == (d, 12)
    assert "critic.action_proj.weight" not in sd
    spec = json.loads(subprocess.run([str(eval_exe), "--spec", str(out)], capture_output=True,
                                     check=True).stdout)
    assert spec["has_critic"] is True
    fields = json.loads(meta["pacd.observation"])
    values = pds.load_transitions(str(e2e_data), fields)["obs"][:10]
    with torch.no_grad():
        logits, act, q = model.act(torch.as_tensor(values))
    got_act, got_logits, got_q = run_eval(eval_exe, out, tmp_path, values)
    assert np.abs(got_logits - logits.reshape(10, -1).numpy()).max() <= LOGIT_TOL
    np.testing.assert_array_equal(got_act, act.numpy())
    np.testing.assert_allclose(got_q, q.numpy(), atol=1e-4, rtol=0)
    # the default: the linear input, no "action_hidden" in the metadata
    out0 = tmp_path / "lin.safetensors"
    assert ptrain.main(["--data", str(e2e_data), "--algo", "bcq", "--size", "tiny", "--steps",
                        "2", "--threads", "1", "--bins", "5", "--batch", "8", "--quiet",
                        "--out", str(out0)]) == 0
    m0, meta0 = pexport.load(str(out0))
    assert "action_hidden" not in json.loads(meta0["pacd.model"])["critic"]
    assert "critic.action_proj.weight" in m0.state_dict()
    # out of range or not an integer: refused before training
    capsys.readouterr()
    for bad in ("-1", "0.5", "5000"):
        with pytest.raises(SystemExit) as e:
            ptrain.main(["--data", str(e2e_data), "--critic-action-hidden", bad,
                         "--out", str(tmp_path / "x.safetensors")])
        assert e.value.code == 2
        assert "--critic-action-hidden: must be an integer in [0, 4096]" in \
            capsys.readouterr().err
    assert not (tmp_path / "x.safetensors").exists()


# --- it learns: a contextual bandit where the critic shows which action pays -------------

@pure_python
def bandit_data(tmp_path):
    """One-step episodes: observation x = +-1, random actions; reward 1 (terminal)
    when the action has the sign of x and |a| >= 0.25, else 0 (terminal).
    Returns (path, the data's success rate)."""
    rng = np.random.default_rng(7)
    action = {"space": "joint_velocity", "dim": 1, "low": [-0.5], "high": [0.5]}
    observation = [{"name": "joint_positions", "source": "joint_positions", "shape": [1],
                    "history": 1}]
    eps = []
    for e in range(400):
        x = rng.choice([-1.0, 1.0])
        a = rng.choice(np.linspace(-0.5, 0.5, 5))
        ok = float(np.sign(a) == np.sign(x) and abs(a) >= 0.25)
        eps.append({"observation": np.array([[x], [x]], np.float32),
                    "actions": np.array([[a], [0.0]], np.float32),
                    "rewards": np.array([0.0, ok]), "is_terminal": np.array([0, 1]),
                    "is_last": np.array([0, 1])})
    path = tmp_path / "bandit.hdf5"
    pds.write(path, eps, "", observation, action)
    return path, np.mean([e["rewards"][1] for e in eps])


BANDIT_HP = {"bins": 5, "value_bins": 11, "batch": 32, "samples": 8, "lr": 3e-3,
             "warmup": 0.02, "tau": 0.05}


def bandit_success_mass(model):
    """(The policy's mass on rewarded bins averaged over x = -1 and +1, whether
    the argmax bin is a rewarded one for both)."""
    with torch.no_grad():
        p = torch.softmax(model(torch.tensor([[-1.0], [1.0]])), -1)[:, 0]   # [2, 5]
    # rewarded bins: 0, 1 for x = -1 (a = -0.5, -0.25); 3, 4 for x = +1
    best = p.argmax(-1).tolist()
    return (0.5 * (p[0, :2].sum() + p[1, 3:].sum()).item(),
            best[0] in (0, 1) and best[1] in (3, 4))


def test_pac_improves_on_the_data_where_bc_cannot(tmp_path):
    """The bandit above: the data succeeds ~40% of the time; BC copies the
    uniform behaviour, PAC moves the policy's mass towards the rewarded actions."""
    path, data_rate = bandit_data(tmp_path)

    def success_mass(algo):
        tr, _ = ptrain.train(str(path), algo, str(tmp_path / f"{algo}.safetensors"), "tiny",
                             steps=300, seed=0, hp=BANDIT_HP, device="cpu", progress=False)
        return bandit_success_mass(tr.model)

    (bc, _), (pac, pac_best) = success_mass("bc"), success_mass("pac")
    assert abs(bc - data_rate) < 0.08, (bc, data_rate)     # BC: the behaviour's own rate
    # PAC's loss alpha CE(behaviour) + (1 - alpha) CE(pi_imp) is minimised by the
    # mixture alpha b + (1 - alpha) pi_imp; pi_imp puts (almost) all its mass on
    # rewarded actions, so the mass reaches alpha * rate + (1 - alpha) ...
    assert abs(pac - (0.75 * data_rate + 0.25)) < 0.05, (bc, pac, data_rate)
    assert pac > bc + 0.1
    # ... and the deployed (argmax) action is a rewarded one for both contexts
    assert pac_best


def test_frozen_critic_stage_improves_the_actor_only(tmp_path, capsys):
    """Two stages: bcq trains the critic beside BC; pac --init that checkpoint
    --freeze-critic then trains only the policy decoder against the loaded Q.
    The encoder and the critic come out bit for bit as loaded, the policy
    moves to the rewarded actions as PAC's does, and the checkpoint records
    where it started."""
    path, data_rate = bandit_data(tmp_path)
    first = tmp_path / "bcq.safetensors"
    tr1, _ = ptrain.train(str(path), "bcq", str(first), "tiny", steps=300, seed=0,
                          hp=BANDIT_HP, device="cpu", progress=False)
    bcq_mass, _ = bandit_success_mass(tr1.model)
    assert abs(bcq_mass - data_rate) < 0.08, (bcq_mass, data_rate)   # alpha 1: BC's policy
    out = tmp_path / "frozen.safetensors"
    rc = ptrain.main(["--data", str(path), "--algo", "pac", "--init", str(first),
                      "--freeze-critic", "--steps", "300", "--threads", "1", "--quiet",
                      "--samples", "8", "--lr", "3e-3", "--warmup", "0.02", "--tau", "0.05",
                      "--batch", "32", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    before, _ = pexport.load(str(first))
    after, meta = pexport.load(str(out))
    changed = set()
    for (k, v), w in zip(before.state_dict().items(), after.state_dict().values()):
        if not torch.equal(v, w):
            changed.add(k.split(".")[0])
    assert changed == {"policy"}, changed
    mass, best = bandit_success_mass(after)
    assert abs(mass - (0.75 * data_rate + 0.25)) < 0.05, (mass, data_rate)
    assert best
    info = json.loads(meta["pacd.training"])
    assert info["init"] == {"checkpoint": "bcq.safetensors", "critic_frozen": True,
                            "sha256": ptrain.file_sha256(first)}
    assert info["hyperparameters"]["bins"] == 5 and info["hyperparameters"]["value_bins"] == 11
    assert "td" not in json.loads((tmp_path / "frozen.losses.json").read_text())
    # with the support constraint (the bcq actor as the behaviour model: it
    # gives every bin some probability here, so 0.1 keeps the rewarded ones)
    tr2, info2 = ptrain.train(str(path), "pac", str(tmp_path / "sup.safetensors"), steps=300,
                              seed=0, hp=dict(BANDIT_HP, support=0.1), device="cpu",
                              progress=False, init=str(first), freeze_critic=True)
    assert info2["hyperparameters"]["support"] == 0.1
    mass2, best2 = bandit_success_mass(tr2.model)
    assert mass2 > bcq_mass + 0.1 and best2, (mass2, bcq_mass)
    with pytest.raises(ValueError, match="support needs an init"):
        ptrain.train(str(path), "pac", str(tmp_path / "x.safetensors"), "tiny", steps=5,
                     hp=dict(BANDIT_HP, support=0.1), device="cpu", progress=False)
    # refusals: no init, a bc checkpoint (no critic) for pac
    with pytest.raises(SystemExit):
        ptrain.main(["--data", str(path), "--algo", "pac", "--freeze-critic",
                     "--out", str(tmp_path / "x.safetensors")])
    ptrain.train(str(path), "bc", str(tmp_path / "bc.safetensors"), "tiny", steps=5,
                 hp=BANDIT_HP, device="cpu", progress=False)
    capsys.readouterr()
    rc = ptrain.main(["--data", str(path), "--algo", "pac", "--init",
                      str(tmp_path / "bc.safetensors"), "--freeze-critic", "--steps", "5",
                      "--out", str(tmp_path / "x.safetensors")])
    assert rc == 1 and "has no critic" in capsys.readouterr().err
    assert not (tmp_path / "x.safetensors").exists()
    # joint training from an actor-only init: the critic starts at random
    # weights and trains beside the actor, which improves from BC's start
    bc_mass, _ = bandit_success_mass(pexport.load(str(tmp_path / "bc.safetensors"))[0])
    tr3, info3 = ptrain.train(str(path), "pac", str(tmp_path / "joint.safetensors"), steps=300,
                              seed=0, hp=dict(BANDIT_HP, support=0.1), device="cpu",
                              progress=False, init=str(tmp_path / "bc.safetensors"))
    assert info3["init"]["critic_frozen"] is False and "td" in tr3.history
    joint, _ = pexport.load(str(tmp_path / "joint.safetensors"))
    assert any(k.startswith("critic.") for k in joint.state_dict())
    mass3, best3 = bandit_success_mass(joint)
    assert mass3 > bc_mass + 0.1 and best3, (mass3, bc_mass)
    # the support is the BC actor's as loaded, encoder included: after 300
    # joint steps the trained encoder has moved (the TD loss shapes it), yet
    # the behaviour model still gives the init actor's logits; its decoder
    # alone on the trained encoder's latents would not
    bc_model = pexport.load(str(tmp_path / "bc.safetensors"))[0]
    obs = torch.tensor([[-1.0], [1.0]])
    with torch.no_grad():
        want = bc_model.logits_from_latents(bc_model.latents(obs))
        beh = tr3.behaviour
        torch.testing.assert_close(beh.logits_from_latents(beh.latents(obs)), want)
        assert not torch.allclose(joint.latents(obs), bc_model.latents(obs), atol=1e-3)
        assert not torch.allclose(beh.logits_from_latents(joint.latents(obs)), want, atol=1e-3)
    assert 1.0 <= np.mean(tr3.history["support_bins"]) <= 5.0
    assert "support_drift" in tr3.history


@pure_python
def test_critic_bootstraps_values_over_several_steps(tmp_path):
    """A chain: position p in {0, 1, 2, 3}, actions -0.5 / 0 / +0.5 move left /
    stay / right; reaching 3 pays 1 and ends the episode (terminal); episodes
    are cut after 6 steps (is_last, not terminal); random behaviour (44%
    success). Only the step into 3 is rewarded, so any value at p = 0 or 1
    comes from bootstrapping through the projected TD target."""
    rng = np.random.default_rng(8)
    action = {"space": "joint_velocity", "dim": 1, "low": [-0.5], "high": [0.5]}
    observation = [{"name": "joint_positions", "source": "joint_positions", "shape": [1],
                    "history": 1}]
    goal = 3
    eps = []
    for _ in range(300):
        p = int(rng.integers(0, goal))
        obs, acts, rew, term = [p], [], [0.0], [0]
        for _ in range(6):
            a = rng.choice([-0.5, 0.0, 0.5])
            acts.append(a)
            p = min(goal, max(0, p + int(np.sign(a))))
            obs.append(p)
            rew.append(float(p == goal))
            term.append(int(p == goal))
            if p == goal:
                break
        acts.append(0.0)
        eps.append({"observation": np.array(obs, np.float32)[:, None],
                    "actions": np.array(acts, np.float32)[:, None],
                    "rewards": np.array(rew), "is_terminal": np.array(term),
                    "is_last": np.r_[np.zeros(len(obs) - 1), [1]]})
    path = tmp_path / "chain.hdf5"
    pds.write(path, eps, "", observation, action)
    hp = {"bins": 3, "value_bins": 11, "batch": 32, "samples": 8, "lr": 3e-3,
          "warmup": 0.02, "tau": 0.05, "gamma": 0.9}
    tr, _ = ptrain.train(str(path), "pac", str(tmp_path / "c.safetensors"), "tiny",
                         steps=400, seed=0, hp=hp, device="cpu", progress=False)
    with torch.no_grad():
        s = torch.arange(goal, dtype=torch.float32)[:, None]
        acts = torch.tensor([-0.5, 0.0, 0.5])[None, :, None].expand(goal, 3, 1)
        q = ptrain.expected_q(tr.model, tr.model.latents(s), acts)      # [state, left/stay/right]
        p = torch.softmax(tr.model(s), -1)[:, 0]
    assert q[2, 2] > 0.9, q                          # the rewarded, terminal step: return 1
    for i in range(goal):
        assert q[i, 2] > q[i, 0] + 0.05, q           # right beats left everywhere ...
    assert q[0, 2] > 0.2 and q[1, 2] > q[0, 2], q    # ... by bootstrapping, decaying with distance
    assert (p[1:].argmax(-1) == 2).all(), p          # the actor follows the critic


@pure_python
def test_bootstrap_data_values_the_behaviours_continuation(tmp_path):
    """Two steps from the same start: the first action (-0.5 / +0.5) leaves
    the state unchanged, and the behaviour then repeats it; only +0.5 at the
    second step pays. With the logged next action in the TD target (bootstrap
    "data", the behaviour's Q) the first +0.5 is worth gamma and -0.5 nothing;
    with the target policy's sample (bootstrap "policy", BC at alpha 1: half
    and half at the second step) both are worth about gamma / 2."""
    rng = np.random.default_rng(3)
    action = {"space": "joint_velocity", "dim": 1, "low": [-0.5], "high": [0.5]}
    observation = [{"name": "joint_positions", "source": "joint_positions", "shape": [1],
                    "history": 1}]
    eps = []
    for _ in range(200):
        a = float(rng.choice([-0.5, 0.5]))
        r = float(a > 0)
        eps.append({"observation": np.array([[0.0], [1.0], [2.0]], np.float32),
                    "actions": np.array([[a], [a], [0.0]], np.float32),
                    "rewards": np.array([0.0, 0.0, r]),
                    "is_terminal": np.array([0, 0, 1]), "is_last": np.array([0, 0, 1])})
    path = tmp_path / "intent.hdf5"
    pds.write(path, eps, "", observation, action)
    hp = {"bins": 3, "value_bins": 11, "batch": 32, "lr": 3e-3, "warmup": 0.02,
          "tau": 0.05, "gamma": 0.9}
    gap = {}
    for boot in ("data", "policy"):
        tr, _ = ptrain.train(str(path), "bcq", str(tmp_path / f"{boot}.safetensors"), "tiny",
                             steps=400, seed=0, hp=dict(hp, bootstrap=boot), device="cpu",
                             progress=False)
        with torch.no_grad():
            s = torch.zeros(1, 1)
            q = ptrain.expected_q(tr.model, tr.model.latents(s),
                                  torch.tensor([[[-0.5], [0.5]]]))[0]
        gap[boot] = float(q[1] - q[0])
    assert gap["data"] > 0.6, gap
    assert abs(gap["policy"]) < 0.25, gap


def test_improvement_waits_for_the_critic(tmp_path):
    """--improve-after F: for the first F of the steps the actor learns BC
    alone while the critic trains; the improvement term then joins. With F = 1
    it never does and the policy stays the behaviour's (the bandit's rate)."""
    path, data_rate = bandit_data(tmp_path)
    tr, info = ptrain.train(str(path), "pac", str(tmp_path / "half.safetensors"), "tiny",
                            steps=300, seed=0, hp=dict(BANDIT_HP, improve_after=0.5),
                            device="cpu", progress=False)
    assert info["hyperparameters"]["improve_after"] == 0.5
    assert len(tr.history["td"]) == 300 and len(tr.history["pi"]) == 150
    tr1, _ = ptrain.train(str(path), "pac", str(tmp_path / "never.safetensors"), "tiny",
                          steps=300, seed=0, hp=dict(BANDIT_HP, improve_after=1.0),
                          device="cpu", progress=False)
    assert "pi" not in tr1.history and len(tr1.history["td"]) == 300
    never, _ = bandit_success_mass(tr1.model)
    assert abs(never - data_rate) < 0.08, (never, data_rate)
    half, _ = bandit_success_mass(tr.model)
    assert half > never + 0.1, (half, never)


@pure_python
def test_auxiliary_targets_are_the_privileged_fields(tmp_path):
    """--aux W: the camera model does not read the privileged cube pose, but a
    linear head on its mean latent learns to predict it (training only). The
    targets are the data's values; rows of a data set without them (a
    policy's own episodes) carry NaN and are left out of the loss."""
    a, c = tmp_path / "a.hdf5", tmp_path / "c.hdf5"
    ea = synthetic_episodes(6, 15, ACTION, cams=[("agentview", (16, 16))], seed=8,
                            t_range=(20, 30))
    for e in ea:
        # a cube pose the model can infer from what it reads (joint_positions)
        e["observation"][:, 6:13] = e["observation"][:, [0, 1, 2, 3, 4, 5, 0]] * 2.0 + 1.0
    pds.write(a, ea, "sawyer", OBSERVATION, ACTION)
    own = [OBSERVATION[0], OBSERVATION[3]]
    e_own = [dict(e, observation=e["observation"][:, :6]) for e in ea[:2]]
    pds.write(c, e_own, "sawyer", own, ACTION)
    d = pds.load_transitions([a, c], own, aux=[OBSERVATION[1]])
    m_a = sum(len(e["actions"]) - 1 for e in ea)
    assert d["aux"].shape == (len(d["actions"]), 7)
    np.testing.assert_array_equal(d["aux"][0], ea[0]["observation"][0, 6:13])
    np.testing.assert_array_equal(d["aux"][m_a - 1], ea[-1]["observation"][-2, 6:13])
    assert np.isfinite(d["aux"][:m_a]).all() and np.isnan(d["aux"][m_a:]).all()

    out = tmp_path / "aux.safetensors"
    tr, info = ptrain.train([str(a), str(c)], "bc", str(out), "tiny-camera", steps=400,
                            seed=0, hp={"aux": 1.0, "lr": 3e-3}, device="cpu", progress=False,
                            exclude=["previous_action"])
    assert info["aux_fields"] == ["object_pose/cube"]
    assert info["fields"] == ["joint_positions", "camera/agentview"]
    h = tr.history["aux"]
    assert len(h) == 400
    # standardised targets: predicting their mean costs about 1
    print("aux loss first 20 %.3f, last 50 %.3f" % (np.mean(h[:20]), np.mean(h[-50:])))
    assert np.mean(h[:20]) > 0.7 and np.mean(h[-50:]) < 0.35 * np.mean(h[:20]), \
        (np.mean(h[:20]), np.mean(h[-50:]))
    # the head is not part of the checkpoint: the same tensors as without --aux
    plain = tmp_path / "plain.safetensors"
    ptrain.train([str(a)], "bc", str(plain), "tiny-camera", steps=2, seed=0, device="cpu",
                 progress=False, exclude=["previous_action"])
    shapes = [{k: tuple(v.shape) for k, v in pexport.load(p)[0].state_dict().items()}
              for p in (out, plain)]
    assert shapes[0] == shapes[1]
    # a model that reads every privileged field has nothing to predict
    with pytest.raises(ValueError, match="--aux needs privileged fields"):
        ptrain.train([str(a)], "bc", str(tmp_path / "x.safetensors"), "tiny", steps=2,
                     hp={"aux": 1.0}, device="cpu", progress=False)
    assert not (tmp_path / "x.safetensors").exists()
