#!/usr/bin/python3
"""pacd_plot: draw one pacd episode (or two, overlaid) as a PNG.

`pacctl log plot` reads and checks the episode logs, joins each step with the
robot state it used, adds the robot's joint limits, and pipes that document
(JSON, {"format": 1, "episodes": [...]}) to this script. Called directly:

    pacctl log plot --data EPISODE.mcap [--compare OTHER.mcap] > doc.json
    /usr/bin/python3 clients/pacd_plot.py --input doc.json --output episode.png

The figure (docs/episode-log.md, "Plotting an episode"), over the step index:
joint positions against their limits (rad), joint velocities with their limits
(rad/s), the policy's action and the teleoperator's (where logged), the action
sent to the arm after the safety filter, reward and Q value, the stale, held and
safety-filtered steps, and the loop's timing (the step's delay after its
deadline and inference, ms).
A second episode is drawn dashed over the first.

--dump-json FILE writes the series as plotted (per episode), for tests and
other tools. Errors are one line on stderr and an exit code, never a
traceback: 2 bad input document, 3 matplotlib missing, 4 the PNG cannot be
written, 1 anything else.
"""
import argparse
import importlib.util
import json
import math
import re
import sys

WIDTH_IN, HEIGHT_IN, DPI = 16, 20, 100  # the PNG is 1600 x 2000 pixels

SAFETY_BITS = [  # docs/protocol.md, "Safety flags"
    (0x08, "clamped"), (0x10, "joint limit"), (0x20, "accel limit"), (0x80, "workspace"),
    (0x01 | 0x02 | 0x04, "refused (NaN, shape, out of spec)"),
]
SPACES = {1: "joint_velocity", 2: "joint_velocity_gripper", 3: "cartesian_velocity",
          4: "cartesian_twist"}


class InputError(Exception):
    pass


def dim_names(space, n):
    """Names with units of the n values of an action in `space` (ActionSpace number)."""
    if space == 1:
        names = ["q%d (rad/s)" % (i + 1) for i in range(n)]
    elif space == 2:
        names = ["q%d (rad/s)" % (i + 1) for i in range(n - 1)]
    elif space == 3:
        names = ["vx (m/s)", "vy (m/s)", "vz (m/s)", "wz (rad/s)"]
    elif space == 4:
        names = ["vx (m/s)", "vy (m/s)", "vz (m/s)", "wx (rad/s)", "wy (rad/s)", "wz (rad/s)"]
    else:
        names = []
    names = names[:n]
    if space in (2, 3, 4) and len(names) < n:
        names.append("gripper (-1..1)")
    while len(names) < n:
        names.append("a%d" % len(names))
    return names


def space_unit(space):
    return {1: "rad/s", 2: "rad/s; gripper -1..1", 3: "m/s, rad/s; gripper -1..1",
            4: "m/s, rad/s; gripper -1..1"}.get(space, "action-spec units")


def policy_space(st, sent):
    """The policy's action space. The log names the space of the action sent
    to the arm (metadata action_space, Step.action.space); a Cartesian policy's
    action (policy_action) has 4 or 5 (cartesian_velocity) or 6 or 7
    (cartesian_twist) values where the joint action has one per joint."""
    n_pol = max((len(a) for a in st["policy_action"]), default=0)
    n_sent = max((len(a) for a in st["action"]), default=0)
    if n_pol == n_sent or sent not in (1, 2):
        return sent
    return 3 if n_pol in (4, 5) else 4 if n_pol in (6, 7) else 0


def _num(v):
    return float("nan") if v is None else float(v)


def series(ep):
    """The series one episode is plotted from (what --dump-json writes)."""
    try:
        meta = ep.get("metadata") or {}
        st = ep["steps"]
        steps = [int(s) for s in st["step"]]
        n = len(steps)
        if n == 0:
            raise InputError("%s: no steps" % ep.get("file", "episode"))
        cols = ("joint_positions", "joint_velocities", "policy_action", "action", "teleop_action",
                "reward", "q_value", "stale", "held", "safety_flags", "time_unix_ns",
                "tick_mono_ns", "inference_us", "action_space")
        for c in cols:
            if len(st[c]) != n:
                raise InputError("column %s has %d values for %d steps" % (c, len(st[c]), n))
    except (KeyError, TypeError, ValueError) as e:
        raise InputError("not a pacctl log plot document: %s" % e)
    flags = [int(f) for f in st["safety_flags"]]
    config = meta.get("config") or ""
    simulated = re.search(r"^\s*clock\s*=\s*simulated\b", config, re.M) is not None
    # the step's delay: its wall-clock stamp (taken after inference and the safety
    # filter) minus its monotonic deadline, less the smallest such offset of the
    # episode (the offset between the two clocks is not logged)
    offsets = [int(u) - int(m) for u, m in zip(st["time_unix_ns"], st["tick_mono_ns"])]
    base = min(offsets)
    out = {
        "file": ep.get("file"),
        "status": ep.get("status"),
        "episode_id": meta.get("episode_id", ""),
        "robot": meta.get("robot", ""),
        "backend": meta.get("backend", ""),
        "mode": meta.get("mode", ""),
        "policy_space": policy_space(st, int(meta.get("action_space") or 0)),
        "simulated_clock": simulated,
        "steps": steps,
        "joint_positions": [None if q is None else [_num(v) for v in q] for q in st["joint_positions"]],
        "joint_velocities": [None if q is None else [_num(v) for v in q] for q in st["joint_velocities"]],
        "joint_source": st.get("joint_source", [None] * n),
        "limits": ep.get("limits"),
        "policy_action": [[_num(v) for v in a] for a in st["policy_action"]],
        "teleop_action": [None if a is None else [_num(v) for v in a] for a in st["teleop_action"]],
        "action": [[_num(v) for v in a] for a in st["action"]],
        "action_space": [int(s) for s in st["action_space"]],
        "reward": [_num(r) for r in st["reward"]],
        "q_value": [None if q is None else float(q) for q in st["q_value"]],
        "stale_steps": [s for s, x in zip(steps, st["stale"]) if x],
        "held_steps": [s for s, x in zip(steps, st["held"]) if x],
        "flag_steps": {name: [s for s, f in zip(steps, flags) if f & bit]
                       for bit, name in SAFETY_BITS},
        "step_delay_ms": None if simulated else [(o - base) / 1e6 for o in offsets],
        "inference_ms": [int(u) / 1000.0 for u in st["inference_us"]],
    }
    return out


def matrix(rows, width):
    """rows (lists or None) as columns of floats, NaN where a row is missing."""
    cols = [[] for _ in range(width)]
    for r in rows:
        for j in range(width):
            cols[j].append(r[j] if r is not None and j < len(r) else float("nan"))
    return cols


def width_of(rows):
    return max((len(r) for r in rows if r is not None), default=0)


def draw(eps, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    a = eps[0]
    nj = max(width_of(e["joint_positions"]) for e in eps)
    nj = max(nj, len((a["limits"] or {}).get("q_min", [])))
    ncols = max(nj, 1)
    fig = plt.figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    gs = fig.add_gridspec(8, ncols, height_ratios=[1.1, 1.1, 1.3, 1.3, 1.0, 0.9, 0.9, 0.01],
                          hspace=0.55, wspace=0.35, left=0.085, right=0.86, top=0.93, bottom=0.03)
    styles = [dict(linestyle="-", alpha=0.95), dict(linestyle="--", alpha=0.8)]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    lim = a["limits"] or {}

    title = "episode %s: %s, %s backend, %s mode, %d steps" % (
        a["episode_id"], a["robot"], a["backend"], a["mode"] or "control", len(a["steps"]))
    if a["status"] == "unfinished":
        title += " (unfinished log)"
    if len(eps) > 1:
        b = eps[1]
        title += "\ncompared with (dashed) %s: %s, %s mode, %d steps%s" % (
            b["episode_id"], b["robot"], b["mode"] or "control", len(b["steps"]),
            " (unfinished log)" if b["status"] == "unfinished" else "")
    fig.suptitle(title, fontsize=13)

    def mark_held(ax, e, _k):
        for s in e["held_steps"]:  # the first episode's
            ax.axvspan(s - 0.5, s + 0.5, color="0.85", lw=0, zorder=0)

    # joint positions against the limits, one panel per joint
    for j in range(nj):
        ax = fig.add_subplot(gs[0, j])
        for k, e in enumerate(eps):
            cols = matrix(e["joint_positions"], nj)
            ax.plot(e["steps"], cols[j], color="C0", **styles[k])
        if j < len(lim.get("q_min") or []):
            lo, hi = lim["q_min"][j], lim["q_max"][j]
            ax.axhline(lo, color="red", lw=1, ls=":")
            ax.axhline(hi, color="red", lw=1, ls=":")
            pad = 0.08 * (hi - lo)
            ax.set_ylim(lo - pad, hi + pad)
        ax.set_title("joint %d position" % (j + 1), fontsize=9)
        ax.tick_params(labelsize=7)
        if j == 0:
            ax.set_ylabel("rad")
        mark_held(ax, a, 0)
    # joint velocities with the velocity limits
    for j in range(nj):
        ax = fig.add_subplot(gs[1, j])
        peak = 0.0
        for k, e in enumerate(eps):
            cols = matrix(e["joint_velocities"], nj)
            ax.plot(e["steps"], cols[j], color="C1", **styles[k])
            peak = max([peak] + [abs(v) for v in cols[j] if not math.isnan(v)])
        if j < len(lim.get("dq_max") or []):
            m = lim["dq_max"][j]
            ax.axhline(m, color="red", lw=1, ls=":")
            ax.axhline(-m, color="red", lw=1, ls=":")
            # the limit is drawn when it is in reach; the title always gives it
            span = max(peak * 1.3, 0.05 * m)
            if span < m:
                ax.set_ylim(-span, span)
            else:
                ax.set_ylim(-1.1 * m, 1.1 * m)
            ax.set_title("joint %d velocity\n(limit ±%.2f)" % (j + 1, m), fontsize=9)
        else:
            ax.set_title("joint %d velocity" % (j + 1), fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("step", fontsize=8)
        if j == 0:
            ax.set_ylabel("rad/s")
        mark_held(ax, a, 0)
    fig.text(0.87, 0.89, "red dotted: the robot's limits\n(hal/hal_robot.h)\ngrey: held steps%s\n"
             "joints: %s" % (" (A)" if len(eps) > 1 else "",
                             (a["joint_source"][0] or "not logged").replace("_", " ")),
             fontsize=9, va="top")

    # the policy's action and the teleoperator's
    ax_pol = fig.add_subplot(gs[2, :])
    n_pol = max(width_of(e["policy_action"]) for e in eps)
    names = dim_names(a["policy_space"], n_pol)
    has_teleop = any(x is not None for e in eps for x in e["teleop_action"])
    for k, e in enumerate(eps):
        cols = matrix(e["policy_action"], n_pol)
        for d in range(n_pol):
            ax_pol.plot(e["steps"], cols[d], color=colours[d % len(colours)],
                        label=names[d] if k == 0 else None, **styles[k])
        if any(x is not None for x in e["teleop_action"]):
            n_t = width_of(e["teleop_action"])
            tcols = matrix(e["teleop_action"], n_t)
            for d in range(n_t):
                ax_pol.plot(e["steps"], tcols[d], color=colours[d % len(colours)], lw=2.5,
                            alpha=0.35, linestyle=styles[k]["linestyle"])
    mark_held(ax_pol, a, 0)
    ax_pol.set_title("policy action (%s)%s" % (
        SPACES.get(a["policy_space"], "space %d" % a["policy_space"]),
        "; thick pale: the teleoperator's action" if has_teleop else ""), fontsize=10)
    ax_pol.set_ylabel(space_unit(a["policy_space"]))
    handles, _ = ax_pol.get_legend_handles_labels()
    if has_teleop:
        handles += [Line2D([], [], color="0.4", lw=1, label="policy"),
                    Line2D([], [], color="0.4", lw=2.5, alpha=0.35, label="teleoperator")]
    ax_pol.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8,
                  title="dimension")

    # the action sent to the arm after the safety filter
    ax_act = fig.add_subplot(gs[3, :], sharex=ax_pol)
    n_act = max(width_of(e["action"]) for e in eps)
    space = next((s for s in a["action_space"] if s), 0)
    names = dim_names(space, n_act)
    for k, e in enumerate(eps):
        cols = matrix(e["action"], n_act)
        for d in range(n_act):
            ax_act.plot(e["steps"], cols[d], color=colours[d % len(colours)],
                        label=names[d] if k == 0 else None, **styles[k])
    mark_held(ax_act, a, 0)
    ax_act.set_title("action sent to the arm, after the safety filter (%s)" %
                     SPACES.get(space, "space %d" % space), fontsize=10)
    ax_act.set_ylabel(space_unit(space))
    ax_act.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, title="dimension")

    # reward and Q value
    ax_r = fig.add_subplot(gs[4, :], sharex=ax_pol)
    ax_q = ax_r.twinx()
    has_q = False
    for k, e in enumerate(eps):
        ax_r.plot(e["steps"], e["reward"], color="C2", **styles[k])
        q = [float("nan") if v is None else v for v in e["q_value"]]
        if any(v is not None for v in e["q_value"]):
            has_q = True
            ax_q.plot(e["steps"], q, color="C4", **styles[k])
    ax_r.set_ylabel("reward", color="C2")
    ax_q.set_ylabel("Q value" if has_q else "Q value (not logged)", color="C4")
    ax_r.set_title("reward and the critic's Q of the action taken", fontsize=10)
    handles = [Line2D([], [], color="C2", label="reward")]
    if has_q:
        handles.append(Line2D([], [], color="C4", label="Q value"))
    ax_r.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.06, 1.0), fontsize=8)

    # stale, held and safety-filtered steps: one row per kind and episode (the
    # safety kinds only when some step has them)
    ax_f = fig.add_subplot(gs[5, :], sharex=ax_pol)
    kinds = [("stale", "C3", lambda e: e["stale_steps"]), ("held", "0.3", lambda e: e["held_steps"])]
    for bit, name in SAFETY_BITS:
        if any(e["flag_steps"][name] for e in eps):
            kinds.append((name, "C1", lambda e, name=name: e["flag_steps"][name]))
    labels = []
    for k, e in enumerate(eps):
        tag = "" if len(eps) == 1 else (" (A)" if k == 0 else " (B)")
        for name, colour, get in kinds:
            xs = get(e)
            ax_f.scatter(xs, [len(labels)] * len(xs), marker="|", s=150, color=colour)
            labels.append("%s%s: %d" % (name, tag, len(xs)))
    ax_f.set_yticks(range(len(labels)))
    ax_f.set_yticklabels(labels, fontsize=8)
    ax_f.set_ylim(len(labels) - 0.4, -0.6)
    ax_f.set_title("stale, held and safety-filtered steps (Step.stale, held, safety_flags; "
                   "label: kind, number of steps)", fontsize=10)

    # timing
    ax_t = fig.add_subplot(gs[6, :], sharex=ax_pol)
    tl = []
    for k, e in enumerate(eps):
        if e["step_delay_ms"] is not None:
            ax_t.plot(e["steps"], e["step_delay_ms"], color="C5", **styles[k])
        ax_t.plot(e["steps"], e["inference_ms"], color="C6", **styles[k])
    if a["step_delay_ms"] is not None:
        tl.append(Line2D([], [], color="C5", label="step delay after\nits deadline"))
    tl.append(Line2D([], [], color="C6", label="inference"))
    ax_t.set_ylabel("ms")
    ax_t.set_xlabel("step")
    ax_t.set_title("loop timing%s" % (
        ": simulated clock, step delay not measured (time_unix_ns is simulated); policy inference"
        if a["simulated_clock"] else ": step delay = time_unix_ns (stamped after inference and the "
        "safety filter) − tick_mono_ns (the deadline),\nrelative to the episode's least delayed step "
        "(wake-up lateness + the tick's work); policy inference (inference_us)"), fontsize=10)
    ax_t.legend(handles=tl, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8)
    if len(eps) > 1:
        fig.legend(handles=[Line2D([], [], color="k", ls="-", label="A " + a["episode_id"]),
                            Line2D([], [], color="k", ls="--", label="B " + eps[1]["episode_id"])],
                   loc="upper right", fontsize=9)
    for ax in (ax_pol, ax_act, ax_r):
        ax.tick_params(labelbottom=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description="Draw pacd episodes (pacctl log plot --data) as a PNG.")
    p.add_argument("--input", default="-", help="the document (default: stdin)")
    p.add_argument("--output", "-o", required=True, help="the PNG to write")
    p.add_argument("--dump-json", help="also write the plotted series as JSON here")
    args = p.parse_args(argv)
    try:
        text = sys.stdin.read() if args.input == "-" else open(args.input).read()
        doc = json.loads(text)
        if not isinstance(doc, dict) or doc.get("format") != 1 or not doc.get("episodes"):
            raise InputError("not a pacctl log plot document (format 1 with episodes)")
        eps = [series(e) for e in doc["episodes"][:2]]
    except (OSError, ValueError, InputError) as e:
        print("pacd_plot: bad input: %s" % e, file=sys.stderr)
        return 2
    if importlib.util.find_spec("matplotlib") is None:
        print("pacd_plot: matplotlib is missing (apt-get install python3-matplotlib)", file=sys.stderr)
        return 3
    try:
        draw(eps, args.output)
        if args.dump_json:
            with open(args.dump_json, "w") as f:
                json.dump({"format": 1, "episodes": eps}, f)
    except OSError as e:
        print("pacd_plot: cannot write %s: %s" % (e.filename or args.output, e.strerror or e),
              file=sys.stderr)
        return 4
    except Exception as e:  # a message, never a traceback
        print("pacd_plot: failed: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
