#!/usr/bin/python3
"""Bridge benchmark helper (bench/run_bridge_bench.sh): plays pacd's side of
the bridge (docs/bridge.md) against a running pacd-fake-driver for a few
seconds and writes what it sent, so the driver's trace can be compared.

  bridge_bench.py --endpoint EP --duration S --sent OUT.txt
      handshake, then a velocity target every 50 ms for S seconds, each
      stamped with this host's CLOCK_MONOTONIC (time_mono_ns: the driver's
      --stats measures target latency from it); the targets are smooth
      sinusoids within the Panda's speed limits (0.5 rad/s, 2 s period, a
      phase per joint). OUT: one line per target, "mono_ns v1 .. v7".

  bridge_bench.py --tracking TRACE --sent OUT.txt
      the RMS difference between the driver's commanded joint velocities
      (its --trace, every 1 ms) and the target in force at that time (the
      newest one sent), over the joints and the periods from the first
      target to the last + 50 ms: rad/s. Also the RMS of the target itself
      for scale.
Prints one line; asserts nothing."""
import argparse
import bisect
import math
import os
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "clients"))


def pb_module():
    import pacd_client  # noqa: E402  (finds pacd_pb2 through PACD_BUILD_DIR)
    return pacd_client.pb


def run(endpoint, duration, sent_path):
    import zmq
    pb = pb_module()
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(endpoint)
    hello = pb.BridgeMessage()
    h = hello.hello
    h.protocol_version, h.robot, h.n_joints, h.policy_period_s, h.peer = 1, "panda", 7, 0.05, "bench"
    deadline = time.monotonic() + 10
    linked = False
    while not linked:
        if time.monotonic() > deadline:
            sys.exit("bridge_bench: no handshake from %s" % endpoint)
        s.send(hello.SerializeToString())
        if s.poll(100):
            m = pb.BridgeMessage()
            m.ParseFromString(s.recv())
            if m.WhichOneof("body") == "hello":
                if not m.hello.accepted:
                    sys.exit("bridge_bench: refused: %s" % m.hello.error)
                linked = True
    lines = []
    seq = 0
    t0 = time.monotonic()
    next_t = t0
    while time.monotonic() - t0 < duration:
        seq += 1
        tm = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        t = (tm / 1e9) - t0
        v = [0.5 * math.sin(2 * math.pi * t / 2.0 + 0.7 * i) for i in range(7)]
        m = pb.BridgeMessage()
        c = m.target
        c.protocol_version, c.robot, c.seq = 1, "panda", seq
        c.time_mono_ns, c.time_unix_ns = tm, time.time_ns()
        c.mode = pb.JointCommand.VELOCITY
        c.space = pb.JOINT_VELOCITY
        c.values.extend(v)
        try:
            s.send(m.SerializeToString(), zmq.NOBLOCK)
        except zmq.Again:
            pass
        lines.append("%d %s" % (tm, " ".join("%.9g" % x for x in v)))
        next_t += 0.05
        while True:  # drain the driver's states until the next period
            wait = next_t - time.monotonic()
            if wait <= 0:
                break
            if s.poll(max(1, int(wait * 1000))):
                while True:
                    try:
                        s.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
    # one hold at the end: the driver stops
    seq += 1
    m = pb.BridgeMessage()
    m.target.protocol_version, m.target.robot, m.target.seq, m.target.hold = 1, "panda", seq, True
    m.target.time_mono_ns = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    s.send(m.SerializeToString())
    time.sleep(0.2)
    s.close()
    ctx.term()
    with open(sent_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("sent %d targets in %.1f s" % (len(lines), duration))


def tracking(trace_path, sent_path):
    sent = []
    with open(sent_path) as f:
        for line in f:
            p = line.split()
            sent.append((int(p[0]), [float(x) for x in p[1:]]))
    times = [t for t, _ in sent]
    with open(trace_path, "rb") as f:
        data = f.read()
    assert data[:8] == b"PACDDRV1"
    (n,) = struct.unpack_from("=I", data, 8)
    rec = struct.Struct("=qIIQ%dd" % (3 * n))
    err2 = ref2 = 0.0
    count = 0
    end = times[-1] + 50_000_000
    for off in range(12, len(data) - rec.size + 1, rec.size):
        v = rec.unpack_from(data, off)
        t = v[0]
        if t < times[0] or t > end:
            continue
        k = bisect.bisect_right(times, t) - 1
        target = sent[k][1]
        dq = v[4 + n:4 + 2 * n]
        for i in range(n):
            err2 += (dq[i] - target[i]) ** 2
            ref2 += target[i] ** 2
        count += n
    print("tracking: %d periods, RMS error %.4f rad/s, RMS target %.4f rad/s" % (
        count // n, math.sqrt(err2 / count), math.sqrt(ref2 / count)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--endpoint")
    ap.add_argument("--duration", type=float, default=20)
    ap.add_argument("--sent", required=True)
    ap.add_argument("--tracking", metavar="TRACE")
    a = ap.parse_args()
    if a.tracking:
        tracking(a.tracking, a.sent)
    else:
        run(a.endpoint, a.duration, a.sent)


if __name__ == "__main__":
    main()
