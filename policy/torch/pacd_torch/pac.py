"""PyTorch twin of pacd's Perceiver Actor-Critic (PAC) actor and critic
decoder (policy/arch/arch_pac_*.c, docs/checkpoint.md "Architecture pac").

Input tokens (width d), in this order:
  - one token per float observation value (every non-camera field, stacked
    over its history, in observation-vector order; previous_action included):
        token_i = norm(value_i) * proprio.weight[i] + proprio.bias + proprio.pos[i]
    with norm(v) = (v - obs_norm.mean) / max(obs_norm.std, 1e-6);
  - per camera field (field order): uint8 [H, W, 3] / 255 -> conv encoder
    (conv -> GroupNorm -> activation per layer, then residual blocks) ->
    feature grid [Hg, Wg, C]; each cell -> proj (C -> d) + pos_row[r] + pos_col[c];
  - task: one token, task.embed[task_id] or task.proj(task_vector).
  The learned modality embedding modality[g] is added to every token of group g;
  groups in order: proprio (non-camera fields other than previous_action),
  previous_action, each camera, task (absent groups are skipped).
Encoder: latents [N, d] cross-attend to the tokens (pre-LayerNorm, multi-head,
residual, then residual MLP with GELU), then `blocks` self-attention blocks.
Policy decoder: queries [Q, d] (Q = action dim for "per_dimension", 1 for
"single") cross-attend to the latents (same block) -> LayerNorm -> linear ->
logits [Q, out].
Heads: categorical, K bins per action dimension with centres
linspace(low_j, high_j, K) (deploy: argmax bin -> its centre); gaussian
(mean, log_std per dimension; deploy rescale(tanh(mean)) as the MLP actor).
Critic (optional): query = critic.query + critic.action_proj(a_unit) with
a_unit = 2 (a - low) / (high - low) - 1 of the chosen action; action_proj is
Linear(A, d), or with critic "action_hidden" H >= 1 the MLP Linear(A, H) ->
GELU (exact erf form, as the blocks' MLPs) -> Linear(H, d) (tensors
critic.action_proj.0.* and .2.*, nn.Sequential's names); cross-attends to
the latents -> LayerNorm -> linear -> value logits [B]; Q = softmax . support,
support = linspace(value_min, value_max, B).
State-dict names are the checkpoint's tensor names.
"""

import math

import torch
from torch import nn
import torch.nn.functional as F

MIN_STD = 1e-6
LN_EPS = 1e-5
GN_EPS = 1e-5
LOG_STD_MIN = -5.0
LOG_STD_MAX = 2.0
MAX_ACTION_HIDDEN = 4096   # critic "action_hidden" (the C loader's limit)
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}

# Named example sizes (issue 3). Cameras 128x128; the conv stack gives an
# 8x8 grid per camera (64 tokens).
IMAGE_ENCODER_S = {
    "convs": [{"kernel": 4, "stride": 4, "padding": 0, "channels": 32},
              {"kernel": 3, "stride": 2, "padding": 1, "channels": 64},
              {"kernel": 3, "stride": 2, "padding": 1, "channels": 128}],
    "groups": 8, "activation": "gelu", "residual_blocks": 1,
}
SIZES = {
    "pac-s": {"width": 256, "heads": 8, "latents": 32, "blocks": 4, "mlp_ratio": 4,
              "image_encoder": IMAGE_ENCODER_S},
    "pac-m": {"width": 512, "heads": 8, "latents": 64, "blocks": 8, "mlp_ratio": 4,
              "image_encoder": IMAGE_ENCODER_S},
}


def conv_out(n, k, s, p):
    return (n + 2 * p - k) // s + 1


def is_camera(field):
    return field["source"].startswith("camera/")


class Attention(nn.Module):
    """Multi-head attention, separate q/k/v/o projections (d -> d)."""

    def __init__(self, d, heads):
        super().__init__()
        if d % heads:
            raise ValueError("width must be a multiple of heads")
        self.heads = heads
        self.q = nn.Linear(d, d)
        self.k = nn.Linear(d, d)
        self.v = nn.Linear(d, d)
        self.o = nn.Linear(d, d)

    def forward(self, xq, xkv):
        b, nq, d = xq.shape
        t = xkv.shape[1]
        h, dh = self.heads, d // self.heads
        q = self.q(xq).view(b, nq, h, dh).transpose(1, 2)
        k = self.k(xkv).view(b, t, h, dh).transpose(1, 2)
        v = self.v(xkv).view(b, t, h, dh).transpose(1, 2)
        s = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(dh))
        a = torch.softmax(s, dim=-1)
        o = (a @ v).transpose(1, 2).reshape(b, nq, d)
        return self.o(o)


class MLP(nn.Module):
    def __init__(self, d, ratio):
        super().__init__()
        self.fc1 = nn.Linear(d, d * ratio)
        self.fc2 = nn.Linear(d * ratio, d)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class CrossBlock(nn.Module):
    """x = q + attn(ln_q(q), ln_kv(kv)); x = x + mlp(ln_mlp(x))"""

    def __init__(self, d, heads, ratio):
        super().__init__()
        self.ln_q = nn.LayerNorm(d, eps=LN_EPS)
        self.ln_kv = nn.LayerNorm(d, eps=LN_EPS)
        self.attn = Attention(d, heads)
        self.ln_mlp = nn.LayerNorm(d, eps=LN_EPS)
        self.mlp = MLP(d, ratio)

    def forward(self, q, kv):
        x = q + self.attn(self.ln_q(q), self.ln_kv(kv))
        return x + self.mlp(self.ln_mlp(x))


class SelfBlock(nn.Module):
    """x = x + attn(ln1(x), ln1(x)); x = x + mlp(ln2(x))"""

    def __init__(self, d, heads, ratio):
        super().__init__()
        self.ln1 = nn.LayerNorm(d, eps=LN_EPS)
        self.attn = Attention(d, heads)
        self.ln2 = nn.LayerNorm(d, eps=LN_EPS)
        self.mlp = MLP(d, ratio)

    def forward(self, x):
        y = self.ln1(x)
        x = x + self.attn(y, y)
        return x + self.mlp(self.ln2(x))


class ResBlock(nn.Module):
    """y = act(norm1(conv1(x))); y = norm2(conv2(y)); out = act(x + y); 3x3, stride 1, pad 1."""

    def __init__(self, c, groups, act):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, 1, 1)
        self.norm1 = nn.GroupNorm(groups, c, eps=GN_EPS)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1)
        self.norm2 = nn.GroupNorm(groups, c, eps=GN_EPS)
        self.act = ACTIVATIONS[act]()

    def forward(self, x):
        y = self.act(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(y))
        return self.act(x + y)


class CameraEncoder(nn.Module):
    """uint8 [B, H, W, 3] -> tokens [B, Hg * Wg, d] (row-major grid), without
    the modality embedding."""

    def __init__(self, h, w, cfg, d):
        super().__init__()
        act = cfg["activation"]
        if act not in ACTIVATIONS:
            raise ValueError(f"image activation must be one of {sorted(ACTIVATIONS)}")
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        c = 3
        for layer in cfg["convs"]:
            k, s, p, co = layer["kernel"], layer["stride"], layer["padding"], layer["channels"]
            self.convs.append(nn.Conv2d(c, co, k, s, p))
            self.norms.append(nn.GroupNorm(cfg["groups"], co, eps=GN_EPS))
            h, w, c = conv_out(h, k, s, p), conv_out(w, k, s, p), co
            if h < 1 or w < 1:
                raise ValueError("the conv stack shrinks the image to nothing")
        self.res = nn.ModuleList(ResBlock(c, cfg["groups"], act)
                                 for _ in range(cfg.get("residual_blocks", 0)))
        self.act = ACTIVATIONS[act]()
        self.grid = (h, w)
        self.channels = c
        self.proj = nn.Linear(c, d)
        self.pos_row = nn.Parameter(torch.randn(h, d) * 0.02)
        self.pos_col = nn.Parameter(torch.randn(w, d) * 0.02)

    def forward(self, img):
        x = img.float().permute(0, 3, 1, 2) / 255.0
        for conv, norm in zip(self.convs, self.norms):
            x = self.act(norm(conv(x)))
        for r in self.res:
            x = r(x)
        b, c, h, w = x.shape
        x = x.permute(0, 2, 3, 1).reshape(b, h * w, c)
        pos = (self.pos_row[:, None, :] + self.pos_col[None, :, :]).reshape(h * w, -1)
        return self.proj(x) + pos


class ObsNorm(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n))
        self.register_buffer("std", torch.ones(n))

    def forward(self, x):
        return (x - self.mean) / self.std.clamp_min(MIN_STD)


class Proprio(nn.Module):
    def __init__(self, n, d):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n, d) * 0.5)
        self.bias = nn.Parameter(torch.zeros(d))
        self.pos = nn.Parameter(torch.randn(n, d) * 0.02)

    def forward(self, x):   # x [B, n] normalised
        return x[:, :, None] * self.weight + self.bias + self.pos


class Task(nn.Module):
    def __init__(self, cfg, d):
        super().__init__()
        self.kind = cfg["type"]
        if self.kind == "embedding":
            self.embed = nn.Parameter(torch.randn(cfg["count"], d) * 0.5)
        elif self.kind == "vector":
            self.proj = nn.Linear(cfg["dim"], d)
        else:
            raise ValueError("task type must be none, embedding or vector")

    def forward(self, task_id=None, task_vector=None):   # -> [B, 1, d]
        if self.kind == "embedding":
            return self.embed[task_id][:, None, :]
        return self.proj(task_vector)[:, None, :]


class Encoder(nn.Module):
    def __init__(self, d, heads, n_latents, blocks, ratio):
        super().__init__()
        self.latents = nn.Parameter(torch.randn(n_latents, d) * 0.5)
        self.cross = CrossBlock(d, heads, ratio)
        self.blocks = nn.ModuleList(SelfBlock(d, heads, ratio) for _ in range(blocks))

    def forward(self, tokens):
        x = self.cross(self.latents.expand(tokens.shape[0], -1, -1), tokens)
        for blk in self.blocks:
            x = blk(x)
        return x


class Decoder(nn.Module):
    def __init__(self, d, heads, ratio, n_queries, out):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(n_queries, d) * 0.5)
        self.cross = CrossBlock(d, heads, ratio)
        self.ln = nn.LayerNorm(d, eps=LN_EPS)
        self.out = nn.Linear(d, out)

    def forward(self, latents):
        z = self.cross(self.queries.expand(latents.shape[0], -1, -1), latents)
        return self.out(self.ln(z))


class Critic(nn.Module):
    """The Q decoder. action_hidden 0: action_proj = Linear(A, d) (the original
    linear action input); H >= 1: Linear(A, H), GELU, Linear(H, d)."""

    def __init__(self, d, heads, ratio, action_dim, bins, action_hidden=0):
        super().__init__()
        self.query = nn.Parameter(torch.randn(d) * 0.5)
        if action_hidden:
            # nn.GELU() is the exact erf form, as F.gelu in MLP and nn_gelu in pacd
            self.action_proj = nn.Sequential(nn.Linear(action_dim, action_hidden), nn.GELU(),
                                             nn.Linear(action_hidden, d))
        else:
            self.action_proj = nn.Linear(action_dim, d)
        self.cross = CrossBlock(d, heads, ratio)
        self.ln = nn.LayerNorm(d, eps=LN_EPS)
        self.out = nn.Linear(d, bins)

    def forward(self, latents, a_unit):   # -> value logits [B, bins]
        q = (self.query + self.action_proj(a_unit))[:, None, :]
        z = self.cross(q, latents)
        return self.out(self.ln(z))[:, 0, :]


class PACActor(nn.Module):
    """PAC actor (+ optional critic decoder) for one observation/action spec.

    observation: the checkpoint's field list; action: {space, dim, low, high};
    model: the "pacd.model" object (docs/checkpoint.md)."""

    architecture = "pac"

    def __init__(self, observation, action, model):
        super().__init__()
        self.observation = [dict(f) for f in observation]
        self.action_spec = dict(action)
        self.cfg = model_cfg = normalise_model(model)
        d = model_cfg["width"]
        heads = model_cfg["heads"]
        ratio = model_cfg["mlp_ratio"]
        self.action_dim = action["dim"]
        self.obs_dim = sum(math.prod(f["shape"]) * f["history"]
                           for f in observation if not is_camera(f))
        self.cameras_fields = [f for f in observation if is_camera(f)]
        # modality groups
        has_prop = any(not is_camera(f) and f["source"] != "previous_action" for f in observation)
        has_prev = any(f["source"] == "previous_action" for f in observation)
        group = 0
        self.group_of = {}
        if has_prop:
            self.group_of["proprio"] = group
            group += 1
        if has_prev:
            self.group_of["previous_action"] = group
            group += 1
        for i in range(len(self.cameras_fields)):
            self.group_of[f"camera{i}"] = group
            group += 1
        task = model_cfg["task"]
        if task["type"] != "none":
            self.group_of["task"] = group
            group += 1
        # per-value group index over the float observation vector
        gidx = []
        for f in observation:
            if is_camera(f):
                continue
            g = self.group_of["previous_action" if f["source"] == "previous_action" else "proprio"]
            gidx += [g] * (math.prod(f["shape"]) * f["history"])
        self.register_buffer("value_group", torch.tensor(gidx, dtype=torch.long),
                             persistent=False)
        self.modality = nn.Parameter(torch.randn(group, d) * 0.5)
        self.obs_norm = ObsNorm(self.obs_dim)
        if self.obs_dim:
            self.proprio = Proprio(self.obs_dim, d)
        self.cameras = nn.ModuleList(
            CameraEncoder(f["shape"][0], f["shape"][1], model_cfg["image_encoder"], d)
            for f in self.cameras_fields)
        if task["type"] != "none":
            self.task = Task(task, d)
        self.encoder = Encoder(d, heads, model_cfg["latents"], model_cfg["blocks"], ratio)
        head = model_cfg["head"]
        per_dim = model_cfg["queries"] == "per_dimension"
        if head["type"] == "categorical":
            k = head["bins"]
            out = k if per_dim else k * self.action_dim
        else:
            out = 2 if per_dim else 2 * self.action_dim
        self.policy = Decoder(d, heads, ratio, self.action_dim if per_dim else 1, out)
        if model_cfg["critic"]:
            c = model_cfg["critic"]
            self.critic = Critic(d, heads, ratio, self.action_dim, c["value_bins"],
                                 c.get("action_hidden", 0))
            self.register_buffer("value_support",
                                 torch.linspace(c["value_min"], c["value_max"], c["value_bins"]),
                                 persistent=False)
        else:
            self.critic = None
        self.register_buffer("low", torch.tensor(action["low"], dtype=torch.float32),
                             persistent=False)
        self.register_buffer("high", torch.tensor(action["high"], dtype=torch.float32),
                             persistent=False)

    def model_metadata(self):
        return dict(self.cfg)

    # --- pieces -------------------------------------------------------------
    def tokens(self, values, images=(), task_id=None, task_vector=None):
        groups = []
        if self.obs_dim:
            x = self.proprio(self.obs_norm(values)) + self.modality[self.value_group]
            groups.append(x)
        for i, enc in enumerate(self.cameras):
            groups.append(enc(images[i]) + self.modality[self.group_of[f"camera{i}"]])
        if self.cfg["task"]["type"] != "none":
            groups.append(self.task(task_id, task_vector) + self.modality[self.group_of["task"]])
        return torch.cat(groups, dim=1)

    def latents(self, values, images=(), task_id=None, task_vector=None):
        return self.encoder(self.tokens(values, images, task_id, task_vector))

    def logits_from_latents(self, lat):
        """Raw policy-decoder output [B, Q, out] (what pacd reports as logits)."""
        return self.policy(lat)

    def forward(self, values, images=(), task_id=None, task_vector=None):
        """Logits [B, Q, out] for a batch."""
        return self.logits_from_latents(self.latents(values, images, task_id, task_vector))

    def bin_centres(self):
        k = self.cfg["head"]["bins"]
        t = torch.linspace(0, 1, k)
        return self.low[:, None] + (self.high - self.low)[:, None] * t[None, :]   # [A, K]

    def _per_dim(self, logits):
        """Categorical logits [B, A, K] / gaussian (mean, log_std) [B, A] each."""
        b = logits.shape[0]
        a = self.action_dim
        if self.cfg["head"]["type"] == "categorical":
            return logits.reshape(b, a, -1)
        if self.cfg["queries"] == "per_dimension":
            return logits[:, :, 0], logits[:, :, 1]
        flat = logits.reshape(b, -1)
        return flat[:, :a], flat[:, a:]

    def rescale(self, t):
        a = self.low + (t + 1) * 0.5 * (self.high - self.low)
        return torch.max(torch.min(a, self.high), self.low)

    def action(self, logits):
        """Deterministic deployment action [B, A] from logits (as policy_step)."""
        if self.cfg["head"]["type"] == "categorical":
            idx = self._per_dim(logits).argmax(-1)        # [B, A]
            k = self.cfg["head"]["bins"]
            t = idx.float() / (k - 1)
            a = self.low + (self.high - self.low) * t
            return torch.max(torch.min(a, self.high), self.low)
        mean, _ = self._per_dim(logits)
        return self.rescale(torch.tanh(mean))

    def q_value(self, lat, action):
        """Expected Q [B] of `action` [B, A] (action units), or None without a critic."""
        if self.critic is None:
            return None
        a_unit = 2.0 * (action - self.low) / (self.high - self.low) - 1.0
        vl = self.critic(lat, a_unit)
        return (torch.softmax(vl, -1) * self.value_support).sum(-1)

    def act(self, values, images=(), task_id=None, task_vector=None):
        """(logits, action, q) as pacd computes them (q None without critic)."""
        lat = self.latents(values, images, task_id, task_vector)
        logits = self.logits_from_latents(lat)
        a = self.action(logits)
        return logits, a, self.q_value(lat, a)


class PACDeploy(nn.Module):
    """Wrapper for ONNX export / benchmarks: (values, images..., [task]) ->
    (action, logits[, q])."""

    def __init__(self, model):
        super().__init__()
        self.m = model

    def forward(self, values, *images):
        logits, a, q = self.m.act(values, images)
        return (a, logits) if q is None else (a, logits, q)


def valid_action_hidden(h):
    """True when h is a critic "action_hidden": an integer (not a bool) in
    [0, MAX_ACTION_HIDDEN], 0 the linear action input."""
    return not isinstance(h, bool) and isinstance(h, int) and 0 <= h <= MAX_ACTION_HIDDEN


def normalise_model(model):
    """Fill defaults of a "pacd.model" object and check it (as the C loader)."""
    m = dict(model)
    m.setdefault("mlp_ratio", 4)
    m.setdefault("task", {"type": "none"})
    m.setdefault("queries", "per_dimension")
    m.setdefault("head", {"type": "categorical", "bins": 101})
    m.setdefault("critic", None)
    m.setdefault("image_encoder", None)
    known = {"width", "heads", "latents", "blocks", "mlp_ratio", "image_encoder", "task",
             "queries", "head", "critic"}
    unknown = set(m) - known
    if unknown:
        raise ValueError(f"unknown pacd.model keys {sorted(unknown)}")
    if m["queries"] not in ("per_dimension", "single"):
        raise ValueError("queries must be per_dimension or single")
    if m["head"]["type"] not in ("categorical", "gaussian"):
        raise ValueError("head type must be categorical or gaussian")
    c = m["critic"]
    if c is not None:
        unknown = set(c) - {"value_bins", "value_min", "value_max", "action_hidden"}
        if unknown:
            raise ValueError(f"unknown pacd.model critic keys {sorted(unknown)}")
        h = c.get("action_hidden", 0)
        if not valid_action_hidden(h):
            raise ValueError(f"critic action_hidden must be an integer in [0, "
                             f"{MAX_ACTION_HIDDEN}] (0: the linear action input), got {h!r}")
    return m


def randomize_(model, gen, scale=1.0):
    """Give every parameter (LayerNorm/GroupNorm affine too) random values, so
    that parity tests exercise every tensor. In place; returns model."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("ln_q.weight", "ln_kv.weight", "ln_mlp.weight", "ln1.weight",
                              "ln2.weight", "ln.weight")) or ".norm" in name and \
                    name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif p.dim() >= 2 and "pos" not in name and "latents" not in name and \
                    "queries" not in name and "embed" not in name and "modality" not in name \
                    and not name.startswith("proprio."):
                fan_in = math.prod(p.shape[1:])
                p.copy_(torch.randn(p.shape, generator=gen) * scale / math.sqrt(fan_in))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5 * scale)
    return model


def flops(model):
    """Multiply-adds x 2 of one deployment step (batch 1): convolutions,
    linear layers and attention matmuls; elementwise work not counted. With
    the critic when the model has one. Used by the benchmark's GFLOP/s."""
    d = model.cfg["width"]
    r = model.cfg["mlp_ratio"]
    mac = 0
    t = model.obs_dim
    for f, enc in zip(model.cameras_fields, model.cameras):
        h, w = f["shape"][0], f["shape"][1]
        for conv in enc.convs:
            k, s, p = conv.kernel_size[0], conv.stride[0], conv.padding[0]
            h, w = conv_out(h, k, s, p), conv_out(w, k, s, p)
            mac += h * w * conv.out_channels * conv.in_channels * k * k
        for rb in enc.res:
            mac += 2 * h * w * rb.conv1.out_channels * rb.conv1.in_channels * 9
        mac += h * w * enc.channels * d
        t += h * w
    if model.cfg["task"]["type"] != "none":
        t += 1

    def cross(nq, nkv, q_const):
        m = 2 * nkv * d * d + 2 * nq * nkv * d + nq * d * d + 2 * nq * d * d * r
        return m + (0 if q_const else nq * d * d)

    n = model.cfg["latents"]
    mac += cross(n, t, True)
    mac += model.cfg["blocks"] * (3 * n * d * d + 2 * n * n * d + n * d * d + 2 * n * d * d * r)
    nq = model.policy.queries.shape[0]
    mac += cross(nq, n, True) + nq * d * model.policy.out.out_features
    if model.critic is not None:
        h = model.cfg["critic"].get("action_hidden", 0)
        a_in = d * model.action_dim if not h else h * model.action_dim + d * h
        mac += cross(1, n, False) + a_in + d * model.critic.out.out_features
    return 2 * mac
