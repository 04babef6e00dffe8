"""pacd data sets: episode logs in one HDF5 file, robomimic's layout
(docs/loop.md, "Data set"; format version 1).

    data/                         attrs: pacd_dataset_version, total, robot,
                                         observation, action, rate_hz, task, env_args
    data/demo_<i>/                attrs: num_samples, episode_id, model_sha256,
                                         seed, unfinished
        obs/observation           float32 [N, obs_dim]  the policy's flat observation vector
        obs/<camera>_image        uint8   [N, H, W, 3]  per camera field "camera/<camera>"
        next_obs/...              the same keys, one step later
        actions                   float32 [N, A]        action executed at the transition
        rewards                   float32 [N]           reward received at its end
        dones                     uint8   [N]           = is_terminal
        is_first, is_last, is_terminal   uint8 [N]

Row i is the transition from logged step i to logged step i + 1: an episode
of T logged steps gives N = T - 1 rows (write() does that mapping from
pacd's per-step records; `pacctl log export` does the same in C).

write(): the reference writer, used by tests to make synthetic data sets.
read() / load_transitions(): the reader the trainer uses.
"""

import json
import math
import os

import numpy as np

VERSION = 1
REQUIRED_ROOT_ATTRS = ("pacd_dataset_version", "total", "robot", "observation", "action")
REQUIRED_DEMO_ATTRS = ("num_samples",)
FLAGS = ("dones", "is_first", "is_last", "is_terminal")


class DatasetError(ValueError):
    """A data set that does not follow the contract (the message says what and where)."""


def is_camera(field):
    return field["source"].startswith("camera/")


def is_privileged(field):
    """Fields only a simulator can give (the cube pose of the Lift cell):
    sources "object_pose/<body>" and "gripper_to_object/<body>"."""
    return field["source"].startswith(("object_pose/", "gripper_to_object/"))


def camera_key(field):
    """obs/<key> of a camera field: "camera/agentview" -> "agentview_image"."""
    return field["source"][len("camera/"):] + "_image"


def obs_layout(observation):
    """[(field, offset, size)] of the non-camera fields in the flat vector."""
    out, off = [], 0
    for f in observation:
        if is_camera(f):
            continue
        n = math.prod(f["shape"]) * f["history"]
        out.append((f, off, n))
        off += n
    return out


def obs_dim_of(observation):
    return sum(n for _, _, n in obs_layout(observation))


def _str_attr(v):
    if isinstance(v, bytes):
        return v.decode("utf-8")
    if isinstance(v, np.ndarray) and v.shape == ():
        return _str_attr(v[()])
    return str(v)


def _check_spec(observation, action):
    if not isinstance(observation, list) or not observation:
        raise DatasetError("observation spec must be a non-empty JSON array of fields")
    for f in observation:
        for k in ("name", "source", "shape", "history"):
            if k not in f:
                raise DatasetError(f"observation field {f!r} lacks {k!r}")
        if is_camera(f) and (len(f["shape"]) != 3 or f["shape"][2] != 3):
            raise DatasetError(f"camera field {f['name']!r} must have shape [H, W, 3]")
    for k in ("space", "dim", "low", "high"):
        if k not in action:
            raise DatasetError(f"action spec lacks {k!r}")
    if len(action["low"]) != action["dim"] or len(action["high"]) != action["dim"]:
        raise DatasetError("action low/high must have dim values each")


def write(path, episodes, robot, observation, action, rate_hz=20, task="",
          compression=None):
    """Write pacd episodes (as logged, one record per control tick) as a data set.

    episodes: list of dicts, one per episode, T logged steps each (T >= 2):
      observation  float [T, obs_dim]  flat observation vector of each step
      images       {camera name: uint8 [T, H, W, 3]} (every camera field)
      actions      float [T, A]        action executed at each step (the
                                       last step's is not used: the arm holds)
      rewards      float [T]           reward logged at each step (received
                                       with that step's observation)
      is_terminal  [T] 0/1, is_last [T] 0/1 (at most on the final step)
      optional: episode_id (str), model_sha256 (64 hex or ""), seed (int),
                unfinished (0/1: the log was cut; its final step need not be last),
                held [T] 0/1 (the arm held at that step: no action was chosen)
    Row i of demo_<k> is the transition step i -> step i + 1 (docs/loop.md).
    compression: None or "gzip" (chunked per row).
    """
    import h5py

    _check_spec(observation, action)
    obs_dim = obs_dim_of(observation)
    cams = [f for f in observation if is_camera(f)]
    total = 0
    with h5py.File(path, "w") as h:
        data = h.create_group("data")
        for k, ep in enumerate(episodes):
            o = np.asarray(ep["observation"], np.float32)
            t = o.shape[0]
            if t < 2:
                raise DatasetError(f"episode {k}: {t} steps; an episode needs at least 2")
            if o.shape != (t, obs_dim):
                raise DatasetError(f"episode {k}: observation shape {o.shape}, "
                                   f"spec gives [T, {obs_dim}]")
            a = np.asarray(ep["actions"], np.float32).reshape(t, action["dim"])
            r = np.asarray(ep["rewards"], np.float32).reshape(t)
            term = np.asarray(ep["is_terminal"], np.uint8).reshape(t)
            last = np.asarray(ep["is_last"], np.uint8).reshape(t)
            n = t - 1
            g = data.create_group(f"demo_{k}")

            def put(name, arr):
                kw = {}
                if compression:
                    kw = {"compression": compression,
                          "chunks": (1,) + arr.shape[1:] if arr.ndim > 1 else True}
                g.create_dataset(name, data=arr, **kw)

            put("obs/observation", o[:-1])
            put("next_obs/observation", o[1:])
            for f in cams:
                name = f["source"][len("camera/"):]
                im = np.asarray(ep["images"][name], np.uint8)
                if im.shape != (t, *f["shape"]):
                    raise DatasetError(f"episode {k}: camera {name!r} shape {im.shape}, "
                                       f"spec gives [T, {', '.join(map(str, f['shape']))}]")
                put(f"obs/{camera_key(f)}", im[:-1])
                put(f"next_obs/{camera_key(f)}", im[1:])
            put("actions", a[:-1])
            put("rewards", r[1:])
            put("dones", term[1:])
            put("is_terminal", term[1:])
            put("is_last", last[1:])
            first = np.zeros(n, np.uint8)
            first[0] = 1
            put("is_first", first)
            put("held", np.asarray(ep.get("held", np.zeros(t)), np.uint8).reshape(t)[:-1])
            g.attrs["num_samples"] = np.int64(n)
            g.attrs["episode_id"] = str(ep.get("episode_id", f"episode-{k:04d}"))
            g.attrs["model_sha256"] = str(ep.get("model_sha256", ""))
            g.attrs["seed"] = np.int64(ep.get("seed", -1))
            g.attrs["unfinished"] = np.int64(ep.get("unfinished", 0))
            total += n
        data.attrs["pacd_dataset_version"] = np.int64(VERSION)
        data.attrs["total"] = np.int64(total)
        data.attrs["robot"] = robot
        data.attrs["observation"] = json.dumps(observation)
        data.attrs["action"] = json.dumps(action)
        data.attrs["rate_hz"] = float(rate_hz)
        data.attrs["task"] = task
        data.attrs["env_args"] = json.dumps({"env_name": f"pacd-{robot}-{task or 'task'}",
                                             "type": 0,
                                             "env_kwargs": {"robot": robot, "task": task}})


def demo_names(data):
    """demo_<i> groups in numeric order."""
    names = [k for k in data.keys() if k.startswith("demo_")]
    try:
        return sorted(names, key=lambda s: int(s[5:]))
    except ValueError as e:
        raise DatasetError(f"group names must be demo_<integer>: {e}") from None


def read_spec(path):
    """(robot, observation, action, root attrs dict) of a data set."""
    import h5py
    with h5py.File(path, "r") as h:
        return _spec(path, h)


def _spec(path, h):
    if "data" not in h:
        raise DatasetError(f"{path}: no group 'data' (not a pacd/robomimic data set)")
    at = h["data"].attrs
    for k in REQUIRED_ROOT_ATTRS:
        if k not in at:
            raise DatasetError(f"{path}: data/ lacks the attribute {k!r} (docs/loop.md)")
    ver = int(at["pacd_dataset_version"])
    if ver > VERSION:
        raise DatasetError(f"{path}: data set version {ver}; this reader knows up to "
                           f"{VERSION} (update pacd_torch)")
    try:
        observation = json.loads(_str_attr(at["observation"]))
        action = json.loads(_str_attr(at["action"]))
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: data/ attribute observation or action is not JSON: "
                           f"{e}") from None
    _check_spec(observation, action)
    # rows are control periods whatever the acting checkpoint's action repeat
    # was (docs/checkpoint.md, pacd.action "repeat"): not part of the data's spec
    action.pop("repeat", None)
    attrs = {k: (_str_attr(v) if isinstance(v, (str, bytes)) else v) for k, v in at.items()}
    return _str_attr(at["robot"]), observation, action, attrs


def read(path, cameras=True, next_obs="all"):
    """Read a whole data set into memory.

    Returns {"robot", "observation", "action", "attrs", "demos": [...]}, each
    demo a dict of numpy arrays (obs, next_obs: {key: array}, actions,
    rewards, dones, is_first, is_last, is_terminal) plus "attrs". With
    cameras=False the image datasets are not read; with next_obs="last" only
    the last row of each next_obs dataset is (the rest repeats obs)."""
    import h5py
    with h5py.File(path, "r") as h:
        robot, observation, action, attrs = _spec(path, h)
        obs_dim = obs_dim_of(observation)
        cams = [f for f in observation if is_camera(f)] if cameras else []
        demos = []
        for name in demo_names(h["data"]):
            g = h["data"][name]
            where = f"{path}: data/{name}"
            if "num_samples" not in g.attrs:
                raise DatasetError(f"{where} lacks the attribute 'num_samples'")
            n = int(g.attrs["num_samples"])
            d = {"name": name, "obs": {}, "next_obs": {},
                 "attrs": {k: (_str_attr(v) if isinstance(v, (str, bytes)) else v)
                           for k, v in g.attrs.items()}}

            def get(key, shape, dtype, last=False):
                if key not in g:
                    raise DatasetError(f"{where}/{key} is missing")
                ds = g[key]
                if tuple(ds.shape) != shape:
                    raise DatasetError(f"{where}/{key} has shape {tuple(ds.shape)}, expected "
                                       f"{shape} (num_samples and the specs)")
                v = ds[max(0, n - 1):] if last else ds[()]
                return np.asarray(v).astype(dtype, copy=False)

            for grp in ("obs", "next_obs"):
                last = grp == "next_obs" and next_obs == "last"
                d[grp]["observation"] = get(f"{grp}/observation", (n, obs_dim), np.float32,
                                            last)
                for f in cams:
                    k = camera_key(f)
                    d[grp][k] = get(f"{grp}/{k}", (n, *f["shape"]), np.uint8, last)
            d["actions"] = get("actions", (n, action["dim"]), np.float32)
            d["rewards"] = get("rewards", (n,), np.float32)
            for k in FLAGS:
                d[k] = get(k, (n,), np.uint8)
            # optional: rows whose action was a hold (no policy or operator
            # action executed); older data sets lack it: none held
            d["held"] = get("held", (n,), np.uint8) if "held" in g else np.zeros(n, np.uint8)
            if not np.array_equal(d["dones"], d["is_terminal"]):
                raise DatasetError(f"{where}: dones differs from is_terminal")
            if not (np.isfinite(d["obs"]["observation"]).all()
                    and np.isfinite(d["actions"]).all() and np.isfinite(d["rewards"]).all()):
                raise DatasetError(f"{where}: non-finite observation, action or reward")
            demos.append(d)
        total = sum(len(d["actions"]) for d in demos)
        if int(attrs["total"]) != total:
            raise DatasetError(f"{path}: data/ attribute total is {int(attrs['total'])}, "
                               f"the demos' num_samples add up to {total}")
    return {"robot": robot, "observation": observation, "action": action, "attrs": attrs,
            "demos": demos}


def episode_success(demo, success_reward=1.0):
    """An episode succeeded if some reward reached success_reward (the Lift
    cell's sparse reward is 1 exactly on its success step, which is also its
    terminal step; a terminal step with a lower reward is a failure)."""
    return bool((demo["rewards"] >= success_reward).any())


def select_fields(observation, variant, camera=None, exclude=()):
    """The observation fields a model variant sees:
    lowdim: every non-camera field (privileged ones included);
    camera: non-privileged non-camera fields plus one camera (`camera`, or the first);
    minus the fields named in `exclude` (an unknown name is an error)."""
    unknown = set(exclude) - {f["name"] for f in observation}
    if unknown:
        raise DatasetError(f"cannot exclude {sorted(unknown)}: the data set's fields are "
                           f"{[f['name'] for f in observation]}")
    observation = [f for f in observation if f["name"] not in exclude]
    if variant == "lowdim":
        return [f for f in observation if not is_camera(f)]
    if variant == "camera":
        cams = [f for f in observation if is_camera(f)]
        if camera:
            cams = [f for f in cams if f["source"] == f"camera/{camera}"]
        if not cams:
            raise DatasetError(f"the camera variant needs a camera field"
                               f"{' camera/' + camera if camera else ''}; the data set has "
                               f"{[f['name'] for f in observation if is_camera(f)] or 'none'}")
        return [f for f in observation if not is_camera(f) and not is_privileged(f)] + cams[:1]
    raise ValueError("variant must be lowdim or camera")


def load_transitions(path, fields, only_success=False, success_reward=1.0, aux=()):
    """Flatten a data set (or several with the same robot and specs: `path`
    a list, e.g. the behaviour data plus a policy's own episodes) into
    transition arrays for training, keeping only `fields` (a subset of its
    observation fields, in its order).

    Returns a dict of numpy arrays over M transitions:
      obs [M + E, obs_dim'] float32 and images {camera key: uint8 [M + E, H, W, 3]}:
        rows 0..M-1 are the transitions' observations, row M + e the final
        next observation of kept demo e (E demos);
      next_index [M] int64: the row of obs holding each transition's next observation;
      actions [M, A] float32, rewards [M] float32, terminal [M] float32 (1: no bootstrap),
      episode [M] int64 (index among the kept demos);
      acted [M] bool: the action was chosen (not a hold while the input was
        stale): the rows the actor learns from;
      aux [M, n] float32 (only with `aux`, fields of the first data set that the
        model does not read, e.g. the privileged cube pose): their values as
        auxiliary training targets, NaN in the rows of a data set without
        them (a policy's own episodes, logged with only its fields);
    plus "robot", "observation" (= fields), "action", "episodes" (all demos),
    "successes" (successful demos among them), "kept_episodes".
    """
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    cams_wanted = any(is_camera(f) for f in fields)

    def wanted(p, d):
        """d's demos cut to the columns of `fields` (by its own layout): data
        sets logged with different observation specs (the behaviour data
        and a policy's own episodes, logged with only the fields that policy
        reads) train together when every wanted field is in each."""
        names = [f["name"] for f in d["observation"]]
        layout = obs_layout(d["observation"])
        if aux:
            have = all(f in d["observation"] for f in aux)
            acols = np.asarray([c for f, off, n in layout if f in aux
                                for c in range(off, off + n)], np.int64)
            naux = obs_dim_of(aux)
            for demo in d["demos"]:
                o = demo["obs"]["observation"]
                demo["aux"] = o[:, acols].astype(np.float32) if have else \
                    np.full((len(o), naux), np.nan, np.float32)
        for f in fields:
            if f not in d["observation"]:
                raise DatasetError(f"{p}: field {f['name']!r} ({json.dumps(f)}) is not in the "
                                   f"data set (it has {names})")
        cols = []
        for f, off, n in layout:
            if f in fields:
                cols.extend(range(off, off + n))
        cols = np.asarray(cols, np.int64)
        for demo in d["demos"]:
            for grp in ("obs", "next_obs"):
                demo[grp]["observation"] = demo[grp]["observation"][:, cols]
        return d

    ds = wanted(paths[0], read(paths[0], cameras=cams_wanted, next_obs="last"))
    for p in paths[1:]:
        other = wanted(p, read(p, cameras=cams_wanted, next_obs="last"))
        for key in ("robot", "action"):
            if other[key] != ds[key]:
                raise DatasetError(f"{p}: {key} {json.dumps(other[key])} differs from "
                                   f"{paths[0]}'s {json.dumps(ds[key])}; data sets trained "
                                   f"together need the same robot and action spec")
        ds["demos"] += other["demos"]
    path = ", ".join(map(str, paths))
    ds["observation"] = [f for f in ds["observation"] if f in fields]
    cols = np.arange(obs_dim_of([f for f in fields if not is_camera(f)]), dtype=np.int64)
    cams = [f for f in fields if is_camera(f)]
    demos = ds["demos"]
    successes = [episode_success(d, success_reward) for d in demos]
    if only_success:
        demos = [d for d, s in zip(demos, successes) if s]
        if not demos:
            raise DatasetError(f"{path}: no successful episode to keep (filtered BC)")
    demos = [d for d in demos if len(d["actions"])]
    if not demos:
        raise DatasetError(f"{path}: no transitions")
    obs, extra_obs, nxt, ep = [], [], [], []
    imgs = {camera_key(f): [] for f in cams}
    extra_imgs = {camera_key(f): [] for f in cams}
    m = sum(len(d["actions"]) for d in demos)
    row = 0
    for k, d in enumerate(demos):
        n = len(d["actions"])
        obs.append(d["obs"]["observation"][:, cols])
        extra_obs.append(d["next_obs"]["observation"][-1:, cols])
        for c in imgs:
            imgs[c].append(d["obs"][c])
            extra_imgs[c].append(d["next_obs"][c][-1:])
        idx = np.arange(row + 1, row + n + 1, dtype=np.int64)
        idx[-1] = m + k          # the demo's final next observation (appended rows)
        nxt.append(idx)
        ep.append(np.full(n, k, np.int64))
        row += n
    next_index = np.concatenate(nxt)
    out = {
        "obs": np.concatenate(obs + extra_obs).astype(np.float32),
        "images": {c: np.concatenate(imgs[c] + extra_imgs[c]) for c in imgs},
        "next_index": next_index,
        "actions": np.concatenate([d["actions"] for d in demos]),
        "rewards": np.concatenate([d["rewards"] for d in demos]),
        "terminal": np.concatenate([d["is_terminal"] for d in demos]).astype(np.float32),
        "episode": np.concatenate(ep),
        "acted": np.concatenate([d["held"] == 0 for d in demos]),
        "robot": ds["robot"], "observation": fields, "action": ds["action"],
        "episodes": len(ds["demos"]), "successes": int(sum(successes)),
        "kept_episodes": len(demos),
    }
    if aux:
        out["aux"] = np.concatenate([d["aux"][:len(d["actions"])] for d in demos])
        out["aux_fields"] = list(aux)
    return out
