"""Train a PAC actor (and critic) offline from a pacd data set, export it.

    python3 -m pacd_torch.train --data D.hdf5 --algo {bc,fbc,bcq,pac} \\
        --out ckpt.safetensors [--size lowdim|camera|tiny] [--steps N] [--seed S]

The model is pacd_torch.pac.PACActor (the C engine's twin): categorical
actor over action bins per dimension (queries per_dimension), and for bcq
and pac the critic's Q decoder, a categorical distribution over return bins
(its action input linear, or an MLP with --critic-action-hidden H).
The losses (docs/loop.md, "Algorithm"), with B the batch:

  BC   = -1/B sum_b sum_j log pi_j(k_j(a_b) | s_b)       data action a -> nearest bins k
  TD   = -1/B sum_b sum_i m_{b,i} log q_i(s_b, a_b)      m: C51 projection of
         r + gamma (1 - terminal) z, z ~ target critic at (s', a'), a' ~ target policy(s')
  PI   = -1/B sum_b sum_n w_{b,n} log pi(a_{b,n} | s_b)  a_{b,n} ~ target policy(s_b), n < N,
         w_{b,.} = softmax_n(Q(s_b, a_{b,n}) / eta)       (MPO's non-parametric E-step)
  loss = alpha BC + (1 - alpha) PI + beta TD (+ eta's MPO dual when eta is learned)

Algorithms: pac (alpha 0.75, beta 38), bc (alpha 1, no critic), fbc (bc on
successful episodes only), bcq (alpha 1, critic trained and exported).
--init CKPT starts from a pac checkpoint (an actor-only one, e.g. bc, leaves
a critic algo's critic at random weights); with --freeze-critic (pac) its
encoder and critic stay fixed and only the policy decoder learns (no TD);
--support T (with --init) draws the improvement's samples only from bins the
init actor gives >= T x its best bin's probability (support_masked).
Writes the checkpoint (with the critic when one was trained), a PNG of the
loss curves beside it (<out without .safetensors>.losses.png) and the loss
history as JSON (<...>.losses.json).
"""

import argparse
import copy
import hashlib
import json
import math
import os
import sys
import time

import numpy as np
import torch

from . import dataset as pds
from .export import export, load as load_checkpoint
from .pac import MAX_ACTION_HIDDEN, PACActor, valid_action_hidden

ALGOS = ("bc", "fbc", "bcq", "pac")

# Model sizes. lowdim: proprioception + privileged fields, quick on a CPU;
# camera: plus one camera, 64x64 pixels -> 16x16 -> 8x8 grid (64 tokens);
# tiny: for tests.
SMALL_IMAGE_ENCODER = {
    "convs": [{"kernel": 4, "stride": 4, "padding": 0, "channels": 16},
              {"kernel": 3, "stride": 2, "padding": 1, "channels": 32}],
    "groups": 4, "activation": "gelu", "residual_blocks": 0,
}
SIZES = {
    "lowdim": {"variant": "lowdim", "steps": 3000, "width": 64, "heads": 4, "latents": 16,
               "blocks": 2, "mlp_ratio": 2},
    "camera": {"variant": "camera", "steps": 5000, "width": 64, "heads": 4, "latents": 16,
               "blocks": 2, "mlp_ratio": 2, "image_encoder": SMALL_IMAGE_ENCODER},
    "tiny": {"variant": "lowdim", "steps": 200, "width": 16, "heads": 2, "latents": 4,
             "blocks": 1, "mlp_ratio": 1},
    "tiny-camera": {"variant": "camera", "steps": 200, "width": 16, "heads": 2, "latents": 4,
                    "blocks": 1, "mlp_ratio": 1,
                    "image_encoder": {"convs": [{"kernel": 4, "stride": 4, "padding": 0,
                                                 "channels": 4}],
                                      "groups": 2, "activation": "gelu",
                                      "residual_blocks": 0}},
}

DEFAULTS = {
    "alpha": 0.75,          # weight of BC; 1 - alpha weighs policy improvement (PAC paper)
    "beta": 38.0,           # TD loss scale (PAC paper)
    "gamma": 0.99,          # discount
    "n_step": 1,            # TD target over n decisions (1: the one-step target)
    "action_repeat": 1,     # control periods each decision is held for (1: every period)
    "bootstrap": "policy",  # next action of the TD target: "policy" (the target policy's
                            # sample: Q of the policy being learned) or "data" (the logged
                            # next decision: Q of the behaviour, one-step improvement)
    "bins": 21,             # action bins per dimension
    "value_bins": 51,       # return bins of the critic
    "critic_action_hidden": 0,  # the critic's action input: 0 Linear(A, d); H >= 1 the MLP
                                # Linear(A, H), GELU, Linear(H, d) (pacd.model critic
                                # "action_hidden")
    "vmin": 0.0, "vmax": 1.0,   # return support (sparse 0/1 reward: returns in [0, 1])
    "samples": 16,          # N actions sampled per state for policy improvement
    "eta": None,            # None: learned by the MPO dual; a number: fixed temperature
    "eta_init": 0.1,
    "epsilon": 0.1,         # MPO KL bound of the dual
    "lr": 3e-4, "eta_lr": 1e-2, "weight_decay": 0.01,
    "warmup": 0.05,         # fraction of the steps with a linear learning-rate warm-up
    "batch": 64,
    "tau": 0.005,           # Polyak rate of the target network
    "clip": 1.0,            # gradient-norm clip
    "support": 0.0,         # with an init checkpoint: improvement samples only from bins
                            # its actor gives >= support x its best bin's probability (0: off)
    "improve_after": 0.0,   # the improvement term starts after this fraction of the steps;
                            # before it the actor learns BC alone while the critic trains (0: at once)
    "aux": 0.0,             # weight of the auxiliary loss: a linear head on the mean latent
                            # predicts the data's privileged fields the model does not read
                            # (the cube pose; training only, not exported; 0: off)
}
NOT_MODEL_KEYS = ("variant", "steps")


# --- pieces of the losses (pure functions; tests check them by hand) ---------

def action_to_bins(actions, low, high, k):
    """Nearest bin index [B, A] (long) of continuous actions [B, A]; bin i of
    dimension j is low_j + (high_j - low_j) i / (k - 1) (as pacd's argmax -> action)."""
    t = (actions - low) / (high - low) * (k - 1)
    return torch.round(t).clamp(0, k - 1).long()


def bins_to_action(idx, low, high, k):
    """Bin centres [B, A] of indices [B, A]."""
    return low + (high - low) * idx.float() / (k - 1)


def project_distribution(probs, rewards, discounts, support):
    """C51 projection (Bellemare et al. 2017, Algorithm 1) of the distribution
    of r + discount * Z, Z ~ probs over `support`, back onto `support`.

    probs [B, n] (rows sum to 1), rewards [B], discounts [B] (gamma (1 - terminal)),
    support [n] evenly spaced. Each shifted atom r + d z_i is clipped to
    [z_0, z_{n-1}] and its mass split between its two neighbouring atoms in
    proportion to closeness. Returns [B, n], rows summing to 1."""
    n = support.numel()
    vmin, vmax = support[0], support[-1]
    dz = (vmax - vmin) / (n - 1)
    tz = (rewards[:, None] + discounts[:, None] * support[None, :]).clamp(vmin, vmax)
    b = (tz - vmin) / dz
    lo = b.floor()
    hi = b.ceil()
    w_hi = b - lo
    w_lo = 1.0 - w_hi           # b on an atom: lo == hi, all mass on it
    li = lo.long().clamp(0, n - 1)
    ui = hi.long().clamp(0, n - 1)
    m = torch.zeros_like(probs)
    m.scatter_add_(1, li, probs * w_lo)
    m.scatter_add_(1, ui, probs * w_hi)
    return m


def improvement_weights(q, eta):
    """MPO E-step weights [B, N] of N sampled actions with values q [B, N]:
    pi_imp(a|s) ∝ pi(a|s) exp(Q(s,a)/eta) over samples a ~ pi, so
    w = softmax_n(q / eta)."""
    return torch.softmax(q / eta, dim=1)


def eta_dual(q, eta, epsilon):
    """MPO temperature dual g(eta) = eta epsilon + eta mean_b log mean_n exp(q_bn / eta)
    (Abdolmaleki et al. 2018, eq. 9 with samples); minimised over eta > 0."""
    n = q.shape[1]
    return eta * epsilon + eta * (torch.logsumexp(q / eta, dim=1) - math.log(n)).mean()


def n_step_returns(next_index, rewards, terminal, n, gamma):
    """n-step TD targets' parts for every transition row (numpy, float64 sums).

    Transition rows 0..M-1 of one data set (pds.load_transitions): row i's next
    observation is obs row next_index[i]; a next_index >= M is an episode's
    appended final observation (the episode ends there). Walking at most n
    steps from row i, stopping after a terminal step or at the episode's end:

      returns[i]   = sum_{k<m} gamma^k r_{i+k}       (m <= n steps taken)
      discounts[i] = gamma^m, or 0 when step i+m-1 was terminal
      bootstrap[i] = next_index[i+m-1], the obs row the target is taken at

    so the TD target is returns + discounts * Z(bootstrap, a'); n = 1 gives
    (r, gamma (1 - terminal), next_index), the one-step target. Returns
    (returns float32 [M], discounts float32 [M], bootstrap int64 [M]).
    Raises ValueError for n < 1."""
    if n < 1:
        raise ValueError(f"n_step must be >= 1, got {n}")
    next_index = np.asarray(next_index, np.int64)
    rewards = np.asarray(rewards, np.float64)
    terminal = np.asarray(terminal) > 0
    m = len(next_index)
    cur = np.arange(m)
    alive = np.ones(m, bool)
    ret = np.zeros(m)
    disc = np.ones(m)
    boot = next_index.copy()
    for k in range(n):
        ret[alive] += gamma ** k * rewards[cur[alive]]
        nxt = next_index[cur]
        boot[alive] = nxt[alive]
        disc[alive] = np.where(terminal[cur[alive]], 0.0, gamma ** (k + 1))
        alive &= ~terminal[cur] & (nxt < m)
        cur = np.where(alive, nxt, cur)
    return ret.astype(np.float32), disc.astype(np.float32), boot


def repeated_actions(next_index, actions, k):
    """The decision each row stands for when one action is held for k control
    periods (numpy): row i's action becomes the mean of the logged actions of
    rows i .. i+k-1 (fewer where the episode ends first; next_index as in
    n_step_returns). Every action dimension is a rate (m/s, rad/s, the
    gripper's opening speed), so holding the mean for k periods moves the arm
    as the k logged actions did. actions [M, A]; returns float32 [M, A].
    Raises ValueError for k < 1."""
    if k < 1:
        raise ValueError(f"action_repeat must be >= 1, got {k}")
    next_index = np.asarray(next_index, np.int64)
    acts = np.asarray(actions, np.float64)
    m = len(next_index)
    cur = np.arange(m)
    alive = np.ones(m, bool)
    total = acts.copy()
    count = np.ones(m)
    for _ in range(k - 1):
        nxt = next_index[cur]
        alive &= nxt < m
        cur = np.where(alive, nxt, cur)
        total[alive] += acts[cur[alive]]
        count[alive] += 1
    return (total / count[:, None]).astype(np.float32)


def log_prob(logits, idx):
    """log pi(a|s) [B, ...] of bin indices idx [B, ..., A] under per-dimension
    categorical logits [B, A, K] (dimensions independent)."""
    logp = torch.log_softmax(logits, -1)                   # [B, A, K]
    if idx.dim() == 2:
        return logp.gather(-1, idx[..., None])[..., 0].sum(-1)
    # idx [B, N, A]
    lp = logp[:, None].expand(-1, idx.shape[1], -1, -1)    # [B, N, A, K]
    return lp.gather(-1, idx[..., None])[..., 0].sum(-1)   # [B, N]


def actor_loss(logits, data_idx, sample_idx=None, weights=None, alpha=1.0):
    """alpha BC + (1 - alpha) PI. logits [B, A, K]; data_idx [B, A]; sample_idx
    [B, N, A] and weights [B, N] (constants) for the improvement term.
    Returns (loss, bc, pi) (pi = 0 without samples)."""
    bc = -log_prob(logits, data_idx).mean()
    if sample_idx is None:
        if alpha != 1.0:
            raise ValueError("alpha < 1 needs sampled actions and their weights")
        return bc, bc, torch.zeros((), device=logits.device)
    pi = -(weights * log_prob(logits, sample_idx)).sum(1).mean()
    return alpha * bc + (1.0 - alpha) * pi, bc, pi


def support_masked(logits, behaviour_logits, threshold):
    """Policy logits [B, A, K] with the bins outside the behaviour's support
    set to -inf: per dimension, bins whose behaviour probability is below
    threshold times that dimension's most probable bin's (the batch
    constraint of Fujimoto et al. 2019, "Benchmarking Batch Deep RL
    Algorithms", discrete BCQ). The behaviour's best bin always stays, so
    every dimension keeps at least one bin."""
    bp = torch.softmax(behaviour_logits, -1)
    keep = bp >= threshold * bp.amax(-1, keepdim=True)
    return logits.masked_fill(~keep, float("-inf"))


def sample_bins(logits, n, generator=None):
    """n independent draws [B, n, A] of bin indices from categorical logits [B, A, K]."""
    b, a, k = logits.shape
    p = torch.softmax(logits, -1).reshape(b * a, k)
    s = torch.multinomial(p, n, replacement=True, generator=generator)   # [B*A, n]
    return s.reshape(b, a, n).permute(0, 2, 1)


def critic_logits(model, lat, actions):
    """Value logits [B, N, n_bins] of N actions per state, actions [B, N, A]
    (action units), latents [B, L, d]. The same as model.critic(lat, a_unit)
    for each action alone (pac.Critic): the N action queries cross-attend to
    the same latents independently, so they share one K/V projection of them
    instead of N."""
    c = model.critic
    a_unit = 2.0 * (actions - model.low) / (model.high - model.low) - 1.0
    q = c.query + c.action_proj(a_unit)                    # [B, N, d]
    return c.out(c.ln(c.cross(q, lat)))


def expected_q(model, lat, actions):
    """E[Q] [B, N] of actions [B, N, A] under the critic's value distribution."""
    return (torch.softmax(critic_logits(model, lat, actions), -1) * model.value_support).sum(-1)


def lr_factor(step, steps, warmup_steps):
    """Linear warm-up over warmup_steps, then cosine decay to 0 at `steps`."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    t = (step - warmup_steps) / max(1, steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))


# --- training -----------------------------------------------------------------

def algo_config(algo, hp):
    """(alpha, train_critic, only_success) of an algorithm."""
    if algo == "pac":
        return hp["alpha"], True, False
    if algo == "bc":
        return 1.0, False, False
    if algo == "fbc":
        return 1.0, False, True
    if algo == "bcq":
        return 1.0, True, False
    raise ValueError(f"algo must be one of {ALGOS}")


def build_model(fields, action, size, hp, critic):
    cfg = {k: v for k, v in SIZES[size].items() if k not in NOT_MODEL_KEYS} \
        if isinstance(size, str) else dict(size)
    cfg.setdefault("mlp_ratio", 2)
    if not any(pds.is_camera(f) for f in fields):
        cfg["image_encoder"] = None
    cfg["queries"] = "per_dimension"
    cfg["head"] = {"type": "categorical", "bins": hp["bins"]}
    cfg["critic"] = ({"value_bins": hp["value_bins"], "value_min": hp["vmin"],
                      "value_max": hp["vmax"]} if critic else None)
    h = hp.get("critic_action_hidden", 0)
    if critic and h:
        # absent for the linear input, so such checkpoints keep the metadata
        # older pacd builds know
        cfg["critic"]["action_hidden"] = h
    return PACActor(fields, action, cfg)


class Trainer:
    """One training run over loaded transitions (pds.load_transitions)."""

    def __init__(self, data, algo, size="lowdim", hp=None, seed=0, device="cpu", init=None,
                 freeze_critic=False):
        """init: a state_dict (pacd_torch.export.load's model) to start from
        instead of random weights, the same model configuration; its
        observation normalisation is kept. freeze_critic (pac only, needs
        init with a critic): the encoder and the critic stay as loaded (no TD
        loss, no gradient); only the policy decoder learns, improving against
        the fixed Q (a two-stage run: a critic trained first, e.g. by bcq,
        then the actor)."""
        self.hp = dict(DEFAULTS)
        self.hp.update(hp or {})
        self.algo = algo
        self.alpha, self.train_critic, _ = algo_config(algo, self.hp)
        if freeze_critic and (algo != "pac" or init is None):
            raise ValueError("freeze_critic needs algo pac and an init checkpoint with a critic")
        self.freeze_critic = bool(freeze_critic)
        self.device = torch.device(device)
        torch.manual_seed(seed)
        self.gen = torch.Generator(device=self.device).manual_seed(seed + 1)
        self.np_rng = np.random.default_rng(seed + 2)
        self.data = data
        self.fields = data["observation"]
        self.action = data["action"]
        self.model = build_model(self.fields, self.action, size, self.hp,
                                 self.train_critic).to(self.device)
        with torch.no_grad():
            obs = torch.as_tensor(data["obs"][:len(data["actions"])])
            std = obs.std(0, unbiased=False)
            self.model.obs_norm.mean.copy_(obs.mean(0))
            # a value constant in the data is only centred (std 1), so that a
            # different value at deployment is not blown up by 1 / 1e-6
            self.model.obs_norm.std.copy_(torch.where(std < 1e-6, torch.ones_like(std), std))
        if init is not None:
            missing, unexpected = self.model.load_state_dict(init, strict=False)
            if self.train_critic and not self.freeze_critic and \
                    not any(k.startswith("critic.") for k in init):
                # an actor-only init (bc, fbc) for a critic algo: the critic
                # starts from this run's random weights
                missing = [k for k in missing if not k.startswith("critic.")]
            if missing or unexpected:
                raise ValueError("the init checkpoint's model differs from this run's: "
                                 f"missing {sorted(missing)[:4]}, unexpected "
                                 f"{sorted(unexpected)[:4]}")
        if self.freeze_critic:
            for name, p in self.model.named_parameters():
                p.requires_grad_(name.startswith("policy."))
        # the support constraint's behaviour model: the init checkpoint's actor,
        # encoder and policy decoder both frozen as loaded. (Its decoder alone on
        # the trained encoder's latents would drift away from that actor as the
        # TD loss reshapes the shared encoder.)
        self.support = float(self.hp["support"])
        if self.support and init is None:
            raise ValueError("support needs an init checkpoint (its actor is the behaviour model)")
        self.behaviour = copy.deepcopy(self.model).requires_grad_(False).eval() \
            if self.support else None
        self.target = copy.deepcopy(self.model).requires_grad_(False) \
            if self.train_critic else None
        self.cams = [pds.camera_key(f) for f in self.fields if pds.is_camera(f)]
        dev = self.device
        self.obs = torch.as_tensor(data["obs"], device=dev)
        self.images = [torch.as_tensor(data["images"][c], device=dev) for c in self.cams]
        self.next_index = torch.as_tensor(data["next_index"], device=dev)
        repeat = int(self.hp["action_repeat"])
        self.actions = torch.as_tensor(
            repeated_actions(data["next_index"], data["actions"], repeat)
            if repeat > 1 else data["actions"], device=dev)
        self.rewards = torch.as_tensor(data["rewards"], device=dev)
        self.terminal = torch.as_tensor(data["terminal"], device=dev)
        # n decisions of `repeat` periods each: the target is taken n * repeat
        # logged steps on, where the next decision's action is the target policy's
        ret, disc, boot = n_step_returns(data["next_index"], data["rewards"],
                                         data["terminal"], int(self.hp["n_step"]) * repeat,
                                         self.hp["gamma"])
        self.td_return = torch.as_tensor(ret, device=dev)
        self.td_discount = torch.as_tensor(disc, device=dev)
        self.td_bootstrap = torch.as_tensor(boot, device=dev)
        acted = data.get("acted")
        self.rows = np.flatnonzero(acted) if acted is not None else \
            np.arange(len(data["actions"]))
        if len(self.rows) == 0:
            raise pds.DatasetError("every transition is a hold: nothing to learn from")
        k = self.hp["bins"]
        self.act_idx = action_to_bins(self.actions, self.model.low, self.model.high, k)
        self.learn_eta = self.alpha < 1.0 and self.hp["eta"] is None
        self.log_eta = torch.tensor(math.log(self.hp["eta_init"] if self.hp["eta"] is None
                                             else self.hp["eta"]),
                                    device=dev, requires_grad=self.learn_eta)
        groups = [{"params": [p for p in self.model.parameters() if p.requires_grad],
                   "weight_decay": self.hp["weight_decay"]}]
        if self.learn_eta:
            groups.append({"params": [self.log_eta], "weight_decay": 0.0,
                           "lr": self.hp["eta_lr"]})
        # the auxiliary targets (data["aux"], standardised; NaN rows have none)
        # and their linear head, trained with the encoder, never exported
        self.aux_head = None
        if self.hp["aux"] and not self.freeze_critic:
            if data.get("aux") is None:
                raise ValueError("aux needs auxiliary targets in the data (privileged fields)")
            a = torch.as_tensor(data["aux"])
            have = torch.isfinite(a).all(-1)
            if not have.any():
                raise pds.DatasetError("aux: no row of the data has the auxiliary fields")
            mu, sd = a[have].mean(0), a[have].std(0, unbiased=False).clamp(min=1e-6)
            self.aux_target = ((a - mu) / sd).to(dev)
            self.aux_head = torch.nn.Linear(self.model.cfg["width"], a.shape[1]).to(dev)
            groups[0]["params"] += list(self.aux_head.parameters())
        self.opt = torch.optim.AdamW(groups, lr=self.hp["lr"])
        self.base_lrs = [g["lr"] for g in self.opt.param_groups]
        self.history = {}
        self.progress = 0.0     # the share of the run's steps done (step())

    def batch(self, n):
        """n transition rows drawn uniformly from those whose action was chosen
        (held rows are not the behaviour's choice: the arm held on stale input)."""
        idx = torch.as_tensor(self.rows[self.np_rng.integers(0, len(self.rows), n)],
                              device=self.device)
        nxt = self.td_bootstrap[idx]
        return idx, nxt

    def losses(self, idx, nxt):
        """Total loss and a dict of logged values for one batch of transition rows."""
        m, hp = self.model, self.hp
        k = hp["bins"]
        imgs = [im[idx] for im in self.images]
        with torch.set_grad_enabled(not self.freeze_critic):   # a frozen encoder: no graph
            lat = m.latents(self.obs[idx], imgs)
        logits = m.logits_from_latents(lat)                    # [B, A, K]
        data_idx = self.act_idx[idx]
        log = {}
        total = torch.zeros((), device=self.device)
        if self.aux_head is not None:
            tgt = self.aux_target[idx]
            have = torch.isfinite(tgt).all(-1)
            log["aux"] = float("nan")          # no row of this batch has a target
            if bool(have.any()):
                pred = self.aux_head(lat.mean(1)[have])
                aux = ((pred - tgt[have]) ** 2).mean()
                total = total + self.hp["aux"] * aux
                log["aux"] = aux.item()
        sample_idx = weights = None
        if self.train_critic:
            t = self.target
            b = idx.shape[0]
            pi_on = self.alpha < 1.0 and self.progress >= self.hp["improve_after"]
            td_on = not self.freeze_critic
            with torch.no_grad():
                # one target forward for s' (TD) and, with policy improvement, s
                if td_on:
                    rows = torch.cat([nxt, idx]) if pi_on else nxt
                    tlat_all = t.latents(self.obs[rows], [im[rows] for im in self.images])
                else:
                    tlat_all = lat      # the frozen encoder's latents of s, as the target's
                tlogits_all = t.logits_from_latents(tlat_all)
            if td_on:
                with torch.no_grad():
                    nlat, nlogits = tlat_all[:b], tlogits_all[:b]
                    na = bins_to_action(sample_bins(nlogits, 1, self.gen), m.low, m.high, k)
                    if hp["bootstrap"] == "data":
                        # the logged decision at the bootstrap row where there is one
                        # (an episode's appended final observation has none)
                        has = nxt < len(self.actions)
                        logged = self.actions[nxt.clamp(max=len(self.actions) - 1)]
                        na = torch.where(has[:, None], bins_to_action(
                            action_to_bins(logged, m.low, m.high, k), m.low, m.high, k),
                            na[:, 0])[:, None]
                    nprobs = torch.softmax(critic_logits(t, nlat, na)[:, 0], -1)
                    target = project_distribution(nprobs, self.td_return[idx],
                                                  self.td_discount[idx], m.value_support)
                data_a = bins_to_action(data_idx, m.low, m.high, k)
                vl = critic_logits(m, lat, data_a[:, None])[:, 0]
                td = -(target * torch.log_softmax(vl, -1)).sum(-1).mean()
                total = total + hp["beta"] * td
                log["td"] = td.item()
                log["q_data"] = (torch.softmax(vl, -1) * m.value_support).sum(-1).mean().item()
            if pi_on:
                with torch.no_grad():
                    s0 = b if td_on else 0     # where the rows of s start
                    tlat, tlogits = tlat_all[s0:], tlogits_all[s0:]
                    if self.behaviour is not None:
                        bm = self.behaviour
                        masked = support_masked(
                            tlogits, bm.logits_from_latents(bm.latents(self.obs[idx], imgs)),
                            self.support)
                        kept = torch.isfinite(masked)                  # [B, A, K]
                        # how wide the support is: kept bins per action dimension
                        log["support_bins"] = kept.sum(-1).float().mean().item()
                        # the share of action dimensions where the frozen decoder on
                        # the trained encoder's latents would keep other bins (a
                        # measure of encoder drift)
                        drifted = torch.isfinite(support_masked(tlogits, bm.policy(tlat),
                                                                self.support))
                        log["support_drift"] = (drifted != kept).any(-1).float().mean().item()
                        tlogits = masked
                    sample_idx = sample_bins(tlogits, hp["samples"], self.gen)  # [B, N, A]
                    sq = expected_q(t, tlat, bins_to_action(sample_idx, m.low, m.high, k))
                eta = self.log_eta.exp()
                weights = improvement_weights(sq, eta.detach())
                if self.learn_eta:
                    dual = eta_dual(sq, eta, hp["epsilon"])
                    total = total + dual
                log["eta"] = eta.item()
                log["q_sampled"] = sq.mean().item()
        loss, bc, pi = actor_loss(logits, data_idx, sample_idx, weights,
                                  self.alpha if sample_idx is not None else 1.0)
        total = total + loss
        log["bc"] = bc.item()
        if sample_idx is not None:
            log["pi"] = pi.item()
        with torch.no_grad():
            log["acc"] = (logits.argmax(-1) == data_idx).float().mean().item()
        log["loss"] = total.item()
        return total, log

    def step(self, i, steps):
        warm = max(1, int(self.hp["warmup"] * steps))
        f = lr_factor(i, steps, warm)
        for g, base in zip(self.opt.param_groups, self.base_lrs):
            g["lr"] = base * f
        self.model.train()
        self.progress = i / steps
        idx, nxt = self.batch(self.hp["batch"])
        total, log = self.losses(idx, nxt)
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        if self.hp["clip"]:
            params = list(self.model.parameters())
            if self.aux_head is not None:
                params += list(self.aux_head.parameters())
            torch.nn.utils.clip_grad_norm_(params, self.hp["clip"])
        self.opt.step()
        if self.learn_eta:
            with torch.no_grad():
                self.log_eta.clamp_(math.log(1e-3), math.log(1e3))
        if self.target is not None:
            with torch.no_grad():
                tau = self.hp["tau"]
                for p, tp in zip(self.model.parameters(), self.target.parameters()):
                    tp.mul_(1.0 - tau).add_(p, alpha=tau)
                for b, tb in zip(self.model.buffers(), self.target.buffers()):
                    tb.copy_(b)
        log["lr"] = self.opt.param_groups[0]["lr"]
        for k, v in log.items():
            self.history.setdefault(k, []).append(v)
        return log

    def run(self, steps, progress=True, every=None):
        bar = None
        if progress:
            try:
                from tqdm import tqdm
                bar = tqdm(total=steps, file=sys.stderr, dynamic_ncols=True,
                           desc=f"{self.algo}")
            except ImportError:
                bar = None
        every = every or max(1, steps // 20)
        t0 = time.monotonic()
        for i in range(steps):
            log = self.step(i, steps)
            keys = [k for k in ("loss", "bc", "pi", "td", "eta", "acc", "aux") if k in log]
            if bar is not None:
                bar.update(1)
                if i % 10 == 0 or i == steps - 1:
                    bar.set_postfix({k: f"{log[k]:.3g}" for k in keys}, refresh=False)
            elif progress and (i % every == 0 or i == steps - 1):
                print(f"{self.algo} step {i + 1}/{steps} " +
                      " ".join(f"{k} {log[k]:.4g}" for k in keys) +
                      f" ({time.monotonic() - t0:.0f} s)", file=sys.stderr, flush=True)
        if bar is not None:
            bar.close()
        self.model.eval()
        return self.history


def plot_losses(history, path, title=""):
    """PNG of the loss curves (matplotlib, Agg). Returns False without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    panels = [k for k in ("loss", "bc", "pi", "td", "eta", "acc", "q_data", "q_sampled",
                        "support_bins", "support_drift", "aux")
              if k in history]
    cols = min(4, len(panels))
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for ax, k in zip(axes.flat, panels):
        y = np.asarray(history[k], float)
        x = np.flatnonzero(np.isfinite(y))     # aux: NaN at steps without a target
        y = y[x]
        ax.plot(x, y, lw=0.5, alpha=0.4)
        w = max(1, len(y) // 50)
        if w > 1:
            ax.plot(x[w - 1:], np.convolve(y, np.ones(w) / w, "valid"), lw=1.5)
        ax.set_title(k)
        ax.set_xlabel("step")
        if k in ("loss", "bc", "pi", "td") and (y > 0).all():
            ax.set_yscale("log")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return True


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def side_path(out, suffix):
    base = out[:-len(".safetensors")] if out.endswith(".safetensors") else out
    return base + suffix


def train(data_path, algo, out, size="lowdim", steps=None, seed=0, hp=None, camera=None,
          device=None, progress=True, dtype="f32", exclude=(), init=None, freeze_critic=False):
    """Train on a data set (a path, or a list of paths with the same specs) and
    export the checkpoint; returns (trainer, the pacd.training metadata dict).
    init: a pac checkpoint to start from (its model configuration and
    observation fields replace size and exclude; its critic_action_hidden
    too); freeze_critic: see Trainer. Raises pds.DatasetError for unusable
    data, ValueError for an init checkpoint that does not fit."""
    hp = dict(DEFAULTS, **(hp or {}))
    if steps is None:
        steps = SIZES[size]["steps"] if isinstance(size, str) else 1000
    alpha, critic, only_success = algo_config(algo, hp)
    variant = SIZES[size]["variant"] if isinstance(size, str) else \
        ("camera" if size.get("image_encoder") else "lowdim")
    paths = [data_path] if isinstance(data_path, (str, os.PathLike)) else list(data_path)
    robot, observation, action, _ = pds.read_spec(paths[0])
    fields = pds.select_fields(observation, variant, camera, exclude)
    init_state = None
    if init is not None:
        init_model, init_meta = load_checkpoint(init)
        if init_meta.get("pacd.architecture") != "pac":
            raise ValueError(f"{init}: not a pac checkpoint")
        init_fields = json.loads(init_meta["pacd.observation"])
        names = {f["name"] for f in init_fields}
        fields = [f for f in observation if f["name"] in names]
        if [f["name"] for f in fields] != [f["name"] for f in init_fields]:
            raise ValueError(f"{init}: its observation fields "
                             f"{[f['name'] for f in init_fields]} are not the data set's")
        cfg = init_model.model_metadata()
        size = {k: cfg[k] for k in cfg if k not in ("queries", "head", "critic", "task")}
        hp["bins"] = cfg["head"]["bins"]
        if cfg.get("critic"):
            c = cfg["critic"]
            hp.update(value_bins=c["value_bins"], vmin=c["value_min"], vmax=c["value_max"],
                      critic_action_hidden=c.get("action_hidden", 0))
        elif freeze_critic:
            raise ValueError(f"{init}: has no critic to freeze")
        init_state = init_model.state_dict()
    aux = ()
    if hp["aux"] and freeze_critic:
        # a frozen encoder has nothing to learn from it (two-stage PAC's stage 2)
        print("pacd_torch.train: --aux is ignored with --freeze-critic (the encoder is frozen)",
              file=sys.stderr)
        hp["aux"] = 0.0
    if hp["aux"]:
        # the privileged fields the model does not read: auxiliary targets only
        aux = [f for f in observation if pds.is_privileged(f) and f not in fields]
        if not aux:
            raise ValueError(f"{paths[0]}: --aux needs privileged fields (e.g. the cube pose) "
                             "in the data set that the model does not read")
    data = pds.load_transitions(paths, fields, only_success=only_success, aux=aux)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    tr = Trainer(data, algo, size, hp, seed, device, init_state, freeze_critic)
    names = ", ".join(map(str, paths))
    print(f"pacd_torch.train: {algo} on {names}: {len(data['actions'])} transitions from "
          f"{data['kept_episodes']} of {data['episodes']} episodes ({data['successes']} "
          f"successful); size {size if isinstance(size, str) else 'custom'}, "
          f"{sum(p.numel() for p in tr.model.parameters())} parameters, {steps} steps on "
          f"{device}", file=sys.stderr)
    tr.run(steps, progress=progress)
    model = tr.model.to("cpu")
    info = {"algo": algo, "alpha": alpha, "critic": critic, "steps": steps, "seed": seed,
            "size": size if isinstance(size, str) else "custom",
            "fields": [f["name"] for f in fields],
            "data": [os.path.basename(p) for p in paths],
            "data_sha256": [file_sha256(p) for p in paths],
            "transitions": len(data["actions"]), "episodes": data["episodes"],
            "held_transitions": int(len(data["actions"]) - len(tr.rows)),
            "episodes_used": data["kept_episodes"], "successes": data["successes"],
            "init": ({"checkpoint": os.path.basename(init), "sha256": file_sha256(init),
                      "critic_frozen": bool(freeze_critic)} if init else None),
            "hyperparameters": {k: hp[k] for k in sorted(hp)},
            "aux_fields": [f["name"] for f in aux],
            "final": {k: v[-1] for k, v in tr.history.items()}}
    if int(hp["action_repeat"]) > 1:
        # pacd holds each action for this many control periods
        action = dict(action, repeat=int(hp["action_repeat"]))
    export(model, out, robot, fields, action, dtype=dtype,
           extra_metadata={"pacd.training": info})
    with open(side_path(out, ".losses.json"), "w") as f:
        json.dump(tr.history, f)
    plot_losses(tr.history, side_path(out, ".losses.png"),
                f"{algo} on {', '.join(os.path.basename(p) for p in paths)} ({size})")
    return tr, info


def action_hidden_arg(text):
    """--critic-action-hidden: an integer in [0, pac.MAX_ACTION_HIDDEN]."""
    try:
        h = int(text)
    except ValueError:
        h = None
    if not valid_action_hidden(h):
        raise argparse.ArgumentTypeError(f"must be an integer in [0, {MAX_ACTION_HIDDEN}] "
                                         f"(0: the linear action input), got {text!r}")
    return h


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m pacd_torch.train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, nargs="+",
                    help="HDF5 data set(s) (docs/loop.md); several are trained on together "
                    "(same robot and specs), e.g. the behaviour data plus self-generated episodes")
    ap.add_argument("--algo", choices=ALGOS, default="pac")
    ap.add_argument("--out", required=True, help="checkpoint to write (.safetensors)")
    ap.add_argument("--size", choices=sorted(SIZES), default="lowdim")
    ap.add_argument("--camera", default=None,
                    help="camera the camera variant sees (default: the data set's first)")
    ap.add_argument("--exclude", default="",
                    help="comma-separated observation fields the model does not see (e.g. "
                    "previous_action: a model that sees its last action tends to copy it)")
    ap.add_argument("--steps", type=int, default=None,
                    help="gradient steps (default: the size's, " +
                    ", ".join(f"{k} {v['steps']}" for k, v in SIZES.items()) + ")")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    ap.add_argument("--dtype", choices=["f32", "f16", "bf16"], default="f32")
    ap.add_argument("--quiet", action="store_true", help="no progress output")
    for k in ("alpha", "beta", "gamma", "vmin", "vmax", "eta", "eta_init", "epsilon", "lr",
              "eta_lr", "weight_decay", "warmup", "tau", "clip", "support", "improve_after",
              "aux"):
        ap.add_argument(f"--{k.replace('_', '-')}", type=float, default=None,
                        help=f"default {DEFAULTS[k]}")
    for k in ("bins", "value_bins", "samples", "batch", "n_step", "action_repeat"):
        ap.add_argument(f"--{k.replace('_', '-')}", type=int, default=None,
                        help=f"default {DEFAULTS[k]}")
    ap.add_argument("--critic-action-hidden", type=action_hidden_arg, default=None, metavar="H",
                    help="the critic's action input: 0 (default) Linear(A, d); H >= 1 the "
                    "MLP Linear(A, H), GELU, Linear(H, d)")
    ap.add_argument("--bootstrap", choices=["policy", "data"], default=None,
                    help="the TD target's next action: the target policy's sample (default) "
                    "or the logged next decision (the behaviour's Q: one-step improvement)")
    ap.add_argument("--init", default=None, metavar="CKPT",
                    help="start from this pac checkpoint's weights (its model size, fields "
                    "and bins; --size and --exclude are ignored)")
    ap.add_argument("--freeze-critic", action="store_true",
                    help="with --init and --algo pac: keep the loaded encoder and critic "
                    "fixed and train only the policy decoder against that Q (a critic "
                    "trained first, e.g. by bcq, then the actor)")
    args = ap.parse_args(argv)
    if args.freeze_critic and (args.init is None or args.algo != "pac"):
        ap.error("--freeze-critic needs --init and --algo pac")
    if args.threads:
        torch.set_num_threads(args.threads)
    hp = {k: getattr(args, k) for k in DEFAULTS if getattr(args, k, None) is not None}
    try:
        _, info = train(args.data, args.algo, args.out, args.size, args.steps, args.seed, hp,
                        args.camera, args.device, not args.quiet, args.dtype,
                        [x for x in args.exclude.split(",") if x], args.init,
                        args.freeze_critic)
    except (pds.DatasetError, ValueError, OSError) as e:
        print(f"pacd_torch.train: {e}", file=sys.stderr)
        return 1
    fin = info["final"]
    print(f"wrote {args.out} ({args.algo}, {info['steps']} steps; final " +
          ", ".join(f"{k} {fin[k]:.4g}" for k in ("bc", "pi", "td", "acc") if k in fin) +
          f"); loss curves {side_path(args.out, '.losses.png')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
