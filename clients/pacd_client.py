#!/usr/bin/python3
"""pacd's Python client: control, telemetry, and test publishers.

    import pacd_client
    c = pacd_client.Client()                 # control REQ socket
    c.start_episode(); c.status(); c.end_episode()
    for t in pacd_client.watch(count=5): ...  # Telemetry messages
    pub = pacd_client.CameraPublisher("front", 128, 128)
    pub.send(rgb_bytes)                       # or pub.send_jpeg(...)

With CURVE (docs/security.md) every class and watch() take key= (this
client's NAME_secret certificate) and server_key= (pacd's public certificate),
or $PACD_KEY / $PACD_SERVER_KEY:
    c = pacd_client.Client(key="alice_secret", server_key="pacd.pub")

The generated protobuf module (pacd_pb2) comes from the meson build:
set PACD_BUILD_DIR to the build directory (default: ./build).

Command line (a synthetic camera, used by the main job and the tests):
    pacd_client.py camera [--camera front] [--size 128x128] [--rate 20] [--seconds S]
                          [--key NAME_secret --server-key PACD_PUBLIC_CERT]
"""
import argparse
import os
import socket
import sys
import time

import zmq


def _load_pb2():
    here = os.path.dirname(os.path.abspath(__file__))
    cands = [os.environ.get("PACD_BUILD_DIR", ""), os.path.join(here, "..", "build")]
    for d in cands:
        p = os.path.join(d, "proto") if d else ""
        if p and os.path.exists(os.path.join(p, "pacd_pb2.py")):
            if p not in sys.path:
                sys.path.insert(0, p)
            import pacd_pb2  # noqa: E402
            return pacd_pb2
    raise ImportError("pacd_pb2.py not found: build pacd with meson and set PACD_BUILD_DIR")


pb = _load_pb2()

CONTROL = os.environ.get("PACD_CONTROL", "tcp://127.0.0.1:5558")
TELEMETRY = os.environ.get("PACD_TELEMETRY", "tcp://127.0.0.1:5557")
CAMERA = os.environ.get("PACD_CAMERA", "tcp://127.0.0.1:5555")
STATE = os.environ.get("PACD_STATE", "tcp://127.0.0.1:5556")
KEY = os.environ.get("PACD_KEY") or None
SERVER_KEY = os.environ.get("PACD_SERVER_KEY") or None


class PacdError(RuntimeError):
    pass


def load_keys(key, server_key):
    """(public, secret, server public) Z85 keys from CZMQ certificate files
    (key: NAME_secret, mode 0600; server_key: pacd's public certificate),
    or None when key is None."""
    if key is None and server_key is None:
        return None
    if key is None or server_key is None:
        raise PacdError("key and server_key go together (this client's NAME_secret and "
                        "pacd's public certificate)")
    import stat
    import zmq.auth
    mode = os.stat(key).st_mode
    if mode & 0o077:
        raise PacdError("the secret key file %s has mode %04o: run chmod 600 %s"
                        % (key, stat.S_IMODE(mode), key))
    public, secret = zmq.auth.load_certificate(key)
    if not secret:
        raise PacdError("%s has no secret-key: give the NAME_secret file" % key)
    server, _ = zmq.auth.load_certificate(server_key)
    return public, secret, server


def _curve(sock, keys):
    if keys:
        sock.curve_publickey, sock.curve_secretkey, sock.curve_serverkey = keys


class Client:
    """Synchronous control client (one REQ socket). Each call returns the
    pacd.v1.Reply; a refused command raises PacdError unless check=False."""

    def __init__(self, endpoint=CONTROL, timeout_ms=3000, ctx=None, key=KEY,
                 server_key=SERVER_KEY):
        self.ctx = ctx or zmq.Context.instance()
        self.endpoint = endpoint
        self.timeout_ms = timeout_ms
        self.keys = load_keys(key, server_key)
        self._open()

    def _open(self):
        self.sock = self.ctx.socket(zmq.REQ)
        _curve(self.sock, self.keys)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVTIMEO, self.timeout_ms)
        self.sock.setsockopt(zmq.SNDTIMEO, self.timeout_ms)
        self.sock.connect(self.endpoint)

    def close(self):
        self.sock.close()

    def call(self, ctype, check=True, **fields):
        cmd = pb.Command(type=ctype, client="pacd_client.py", **fields)
        try:
            self.sock.send(cmd.SerializeToString())
            data = self.sock.recv()
        except zmq.Again:
            self.sock.close()  # a REQ socket without an answer is stuck: renew it
            self._open()
            raise PacdError("pacd did not answer at %s within %d ms" % (self.endpoint, self.timeout_ms))
        reply = pb.Reply()
        reply.ParseFromString(data)
        if check and not reply.ok:
            raise PacdError(reply.error)
        return reply

    def raw(self, payload):
        """Send arbitrary bytes (tests of malformed requests); returns the Reply."""
        self.sock.send(payload)
        reply = pb.Reply()
        reply.ParseFromString(self.sock.recv())
        return reply

    def status(self):
        return self.call(pb.Command.STATUS).status

    def start_episode(self, max_steps=0, task_id=None, check=True, seed=None):
        extra = {} if task_id is None else {"task_id": task_id, "has_task_id": True}
        if seed is not None:
            extra.update(seed=seed, has_seed=True)
        return self.call(pb.Command.START_EPISODE, check=check, max_steps=max_steps, **extra)

    def end_episode(self, is_terminal=False, final_reward=0.0, check=True):
        return self.call(pb.Command.END_EPISODE, check=check, is_terminal=is_terminal,
                         final_reward=final_reward)

    def hold(self, check=True):
        return self.call(pb.Command.HOLD, check=check)

    def resume(self, check=True):
        return self.call(pb.Command.RESUME, check=check)

    def estop(self, check=True):
        return self.call(pb.Command.ESTOP, check=check)

    def clear_estop(self, check=True):
        return self.call(pb.Command.CLEAR_ESTOP, check=check)

    def reload(self, checkpoint="", check=True):
        """Load and check a checkpoint (an absolute path on pacd's host; "" = the
        configured one) and run it from the next episode on. Reply.message says
        what was loaded; a refusal (check=False) keeps the running checkpoint
        and Reply.error says why."""
        return self.call(pb.Command.RELOAD, check=check, checkpoint=checkpoint)


def watch(endpoint=TELEMETRY, count=None, timeout_s=5.0, ctx=None, key=KEY,
          server_key=SERVER_KEY):
    """Yield pacd.v1.Telemetry messages from the PUB socket."""
    ctx = ctx or zmq.Context.instance()
    keys = load_keys(key, server_key)
    s = ctx.socket(zmq.SUB)
    _curve(s, keys)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.SUBSCRIBE, b"telemetry")
    s.connect(endpoint)
    got = 0
    try:
        while count is None or got < count:
            if not s.poll(int(timeout_s * 1000)):
                raise PacdError("no telemetry from %s within %.1f s" % (endpoint, timeout_s))
            parts = s.recv_multipart()
            if len(parts) != 2:
                continue
            t = pb.Telemetry()
            t.ParseFromString(parts[1])
            got += 1
            yield t
    finally:
        s.close()


class _Publisher:
    def __init__(self, endpoint, ctx=None, key=KEY, server_key=SERVER_KEY):
        self.ctx = ctx or zmq.Context.instance()
        keys = load_keys(key, server_key)
        self.sock = self.ctx.socket(zmq.PUB)
        _curve(self.sock, keys)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM, 4)
        self.sock.connect(endpoint)
        self.seq = 0

    def send_raw(self, parts):
        self.sock.send_multipart(parts)

    def close(self):
        self.sock.close()


class CameraPublisher(_Publisher):
    """Publishes pacd.v1.CameraFrame on topic camera/<name> to pacd's camera socket."""

    def __init__(self, camera="front", width=128, height=128, endpoint=CAMERA, ctx=None,
                 key=KEY, server_key=SERVER_KEY):
        super().__init__(endpoint, ctx, key, server_key)
        self.camera, self.width, self.height = camera, width, height

    def frame(self, data, encoding=None, width=None, height=None):
        self.seq += 1
        return pb.CameraFrame(camera=self.camera, width=width or self.width,
                              height=height or self.height,
                              encoding=encoding or pb.CameraFrame.RGB8, data=data,
                              capture_time_unix_ns=time.time_ns(), seq=self.seq)

    def send(self, rgb, **kw):
        f = self.frame(rgb, **kw)
        self.sock.send_multipart([("camera/" + self.camera).encode(), f.SerializeToString()])
        return f

    def send_jpeg(self, jpeg, **kw):
        return self.send(jpeg, encoding=pb.CameraFrame.JPEG, **kw)


class StatePublisher(_Publisher):
    """Publishes pacd.v1.RobotState (topic robot_state) and pacd.v1.Reward (topic reward)."""

    def __init__(self, endpoint=STATE, ctx=None, key=KEY, server_key=SERVER_KEY):
        super().__init__(endpoint, ctx, key, server_key)

    def send_reward(self, reward, discount=1.0, is_terminal=False):
        r = pb.Reward(reward=reward, discount=discount, is_terminal=is_terminal,
                      time_unix_ns=time.time_ns())
        self.sock.send_multipart([b"reward", r.SerializeToString()])

    def send_state(self, q, dq, **kw):
        self.seq += 1
        s = pb.RobotState(joint_positions=q, joint_velocities=dq, seq=self.seq,
                          time_unix_ns=time.time_ns(), **kw)
        self.sock.send_multipart([b"robot_state", s.SerializeToString()])


_ports_given = set()


def free_port():
    """A loopback TCP port that is free now and that this process has not
    handed out before (the kernel may give a just-closed port again, and two
    endpoints of one pacd config on one port make pacd refuse the config).
    Another process can still take it before it is bound: callers that start
    pacd retry on "Address already in use"."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _ports_given:
            _ports_given.add(port)
            return port


def synthetic_image(width, height, t):
    """A moving colour gradient, width x height RGB8 (a stand-in camera)."""
    row = bytes((x * 255 // max(1, width - 1) + int(t * 40)) % 256 for x in range(width))
    out = bytearray()
    for y in range(height):
        g = (y * 255 // max(1, height - 1)) % 256
        for x in range(width):
            out += bytes((row[x], g, (row[x] + g) // 2))
    return bytes(out)


def _camera_main(args):
    w, h = (int(v) for v in args.size.split("x"))
    pub = CameraPublisher(args.camera, w, h, endpoint=args.endpoint, key=args.key,
                          server_key=args.server_key)
    period = 1.0 / args.rate
    start = time.monotonic()
    n = 0
    frames = [synthetic_image(w, h, k * 0.25) for k in range(8)]  # precomputed: cheap to send
    while args.seconds <= 0 or time.monotonic() - start < args.seconds:
        pub.send(frames[n % len(frames)])
        n += 1
        time.sleep(max(0.0, start + n * period - time.monotonic()))
    print("published %d frames of camera %s" % (n, args.camera), file=sys.stderr)
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    cam = sub.add_parser("camera", help="publish synthetic camera frames")
    cam.add_argument("--camera", default="front")
    cam.add_argument("--size", default="128x128")
    cam.add_argument("--rate", type=float, default=20.0)
    cam.add_argument("--seconds", type=float, default=0.0, help="0 = until killed")
    cam.add_argument("--endpoint", default=CAMERA)
    cam.add_argument("--key", default=KEY, help="this publisher's NAME_secret certificate (CURVE)")
    cam.add_argument("--server-key", default=SERVER_KEY, help="pacd's public certificate")
    args = ap.parse_args(argv)
    if args.cmd == "camera":
        return _camera_main(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
