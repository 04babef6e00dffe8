#!/usr/bin/python3
"""How closely pacd-replay keeps its pace: replays a recorded SawyerLift demo
(no cameras) at --rate HZ into a ZeroMQ SUB bound here and prints one JSON
line: states, the span of their send times against (T-1)/rate, and how late
each state went out after its absolute deadline (median, p99, max; the first
state's time is the reference, so its own lateness is not counted).
Asserts nothing (a figure, not a test: tests/integration/test_replay.py only
checks that no state goes out early).

usage: bench/bench_replay_pace.py [--build build] [--rate 100] [--episode 2]
       [--demo PATH]   (default: ../shared/data/robosuite/.../SawyerLift/demo.hdf5)
"""
import argparse
import json
import os
import subprocess
import sys
import threading

import numpy as np
import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SRC, "clients"))
import pacd_client  # noqa: E402

pb = pacd_client.pb


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(SRC, "build"))
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--episode", type=int, default=2)
    ap.add_argument("--demo", default=os.path.join(
        SRC, "..", "shared", "data", "robosuite", "assets", "demonstrations", "SawyerLift",
        "demo.hdf5"))
    a = ap.parse_args()
    ctx = zmq.Context()
    port = pacd_client.free_port()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"robot_state")
    sub.bind("tcp://127.0.0.1:%d" % port)
    msgs, stop = [], [False]

    def drain():
        while not stop[0]:
            if sub.poll(100):
                msgs.append(sub.recv_multipart()[1])

    th = threading.Thread(target=drain, daemon=True)
    th.start()
    cmd = [os.path.join(a.build, "clients", "pacd-replay"), "--demo", a.demo, "--episode",
           str(a.episode), "--cameras", "", "--rate", str(a.rate), "--camera-endpoint",
           "tcp://127.0.0.1:%d" % pacd_client.free_port(),
           "--state-endpoint", "tcp://127.0.0.1:%d" % port,
           "--connect-wait-ms", "1000"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("pacd-replay failed: " + p.stderr)
    summary = json.loads(p.stdout.strip().splitlines()[-1])
    while len(msgs) < summary["published"] and th.is_alive():
        if sub.poll(2000) == 0 and len(msgs) < summary["published"]:
            break
    stop[0] = True
    th.join()
    sub.close(0)
    ctx.term()
    rs = [pb.RobotState.FromString(b) for b in msgs]
    t = np.array([s.time_unix_ns for s in rs], dtype=np.float64) * 1e-9
    seq = np.array([s.seq for s in rs], dtype=np.float64)
    period = 1.0 / a.rate
    late = (t - t[0]) - (seq - seq[0]) * period   # relative to the first state's deadline
    print(json.dumps({
        "bench": "replay_pace", "rate_hz": a.rate, "states": len(rs),
        "published": summary["published"],
        "span_s": round(float(t[-1] - t[0]), 4),
        "want_span_s": round((len(rs) - 1) * period, 4),
        "late_ms_median": round(float(np.median(late)) * 1e3, 3),
        "late_ms_p99": round(float(np.percentile(late, 99)) * 1e3, 3),
        "late_ms_max": round(float(late.max()) * 1e3, 3),
        "early_ms_max": round(float(max(0.0, -late.min())) * 1e3, 3),
    }))


if __name__ == "__main__":
    main()
