"""PyTorch twin of pacd's MLP actor (policy/arch/arch_mlp.c, docs/checkpoint.md).

    x  = (obs - obs_norm.mean) / obs_norm.std.clamp_min(MIN_STD)
    h  = act(layers.i(h)) for each hidden layer
    y  = head(h)
    tanh head:     action = rescale(tanh(y))
    gaussian head: y = [mean, log_std]; action = rescale(tanh(mean))
    rescale(t) = clamp(low + (t + 1) * 0.5 * (high - low), low, high)

For training, the Gaussian head defines a tanh-squashed Gaussian (as SAC):
u ~ Normal(mean, exp(clamp(log_std, LOG_STD_MIN, LOG_STD_MAX))), a = rescale(tanh(u));
deployment (C and forward()) acts on its deterministic centre tanh(mean).
State-dict names are the checkpoint's tensor names.
"""

import torch
from torch import nn

MIN_STD = 1e-6
LOG_STD_MIN = -5.0
LOG_STD_MAX = 2.0

ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,   # exact erf form (approximate='none'), as the C engine
}
HEADS = ("tanh", "gaussian")


class ObsNorm(nn.Module):
    """Observation normalisation over the concatenated observation vector."""

    def __init__(self, obs_dim):
        super().__init__()
        self.register_buffer("mean", torch.zeros(obs_dim))
        self.register_buffer("std", torch.ones(obs_dim))

    def forward(self, obs):
        return (obs - self.mean) / self.std.clamp_min(MIN_STD)


class MLPActor(nn.Module):
    """MLP actor. obs: [batch, obs_dim] float32 -> action [batch, action_dim]
    inside [low, high]."""

    def __init__(self, obs_dim, action_dim, hidden, activation="relu", head="tanh",
                 low=None, high=None):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}")
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}")
        self.obs_dim = int(obs_dim)
        self.action_dim = int(action_dim)
        self.hidden = [int(h) for h in hidden]
        self.activation = activation
        self.head_kind = head
        self.obs_norm = ObsNorm(obs_dim)
        widths = [self.obs_dim] + self.hidden
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.act = ACTIVATIONS[activation]()
        self.head = nn.Linear(widths[-1], action_dim * (2 if head == "gaussian" else 1))
        low = torch.as_tensor(low if low is not None else [-1.0] * action_dim, dtype=torch.float32)
        high = torch.as_tensor(high if high is not None else [1.0] * action_dim,
                               dtype=torch.float32)
        if low.shape != (action_dim,) or high.shape != (action_dim,) or not bool((low < high).all()):
            raise ValueError("low/high must have action_dim entries with low < high")
        # bounds come from the metadata, not the tensors
        self.register_buffer("low", low, persistent=False)
        self.register_buffer("high", high, persistent=False)

    def model_metadata(self):
        """The "pacd.model" metadata object."""
        return {"hidden": self.hidden, "activation": self.activation, "head": self.head_kind}

    def head_output(self, obs):
        h = self.obs_norm(obs)
        for layer in self.layers:
            h = self.act(layer(h))
        return self.head(h)

    def rescale(self, t):
        a = self.low + (t + 1) * 0.5 * (self.high - self.low)
        return torch.max(torch.min(a, self.high), self.low)

    def forward(self, obs):
        """Deterministic action, as pacd's policy_step."""
        y = self.head_output(obs)
        if self.head_kind == "gaussian":
            y = y[..., :self.action_dim]
        return self.rescale(torch.tanh(y))

    def pre_tanh(self, obs):
        """Head values before tanh that the action comes from (for training the
        tanh head with a loss in the unsquashed space)."""
        y = self.head_output(obs)
        return y[..., :self.action_dim] if self.head_kind == "gaussian" else y

    def distribution(self, obs):
        """Gaussian head only: Normal(mean, std) over the pre-tanh action u;
        the action is rescale(tanh(u))."""
        if self.head_kind != "gaussian":
            raise ValueError("distribution() needs the gaussian head")
        y = self.head_output(obs)
        mean, log_std = y[..., :self.action_dim], y[..., self.action_dim:]
        log_std = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
        return torch.distributions.Normal(mean, log_std.exp())
