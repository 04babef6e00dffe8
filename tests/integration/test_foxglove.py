"""The Foxglove live view ([foxglove], docs/monitoring.md) of the real pacd:
npm's @foxglove/ws-protocol client connects under both subprotocol names,
subscribes, decodes with the advertised protobuf schemas and unsubscribes
(foxglove_view.mjs); raw WebSocket peers that never read or send garbage
are cut off while the loop and other viewers go on."""
import base64
import json
import os
import shutil
import signal
import socket
import struct
import subprocess

import pytest

import pacd_client
from conftest import FrameFeeder, free_port, scaled, wait_until

pb = pacd_client.pb
HERE = os.path.dirname(os.path.abspath(__file__))


def foxglove_extra(port, more=""):
    return "[foxglove]\nenabled = true\nport = %d\n%s" % (port, more)


def view(port, protocol, topics, n=3, feed=None):
    """Run the node viewer's check mode; its JSON document. `feed` runs
    while it waits (e.g. a camera publisher)."""
    assert os.path.isdir(os.path.join(HERE, "node_modules")), \
        "run `npm ci --prefix tests/integration` (deploy/install-deps.sh does)"
    p = subprocess.Popen(["node", os.path.join(HERE, "foxglove_view.mjs"),
                          "ws://127.0.0.1:%d" % port, protocol, "check", ",".join(topics),
                          str(n)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: p.poll() is not None, 60, "the Foxglove viewer (%s) to finish" %
                   protocol, feed=feed, interval=0.01)
    finally:
        if p.poll() is None:
            p.kill()
    out, err = p.communicate()
    assert p.returncode == 0, "viewer failed: %s" % err
    return json.loads(out)


class RawPeer:
    """A WebSocket client by hand, to misbehave (never read, send garbage)."""

    def __init__(self, port, protocol="foxglove.websocket.v1", rcvbuf=None, handshake=True):
        self.s = socket.socket()
        if rcvbuf:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.s.settimeout(scaled(10))
        self.s.connect(("127.0.0.1", port))
        self.buf = b""
        self.status = None
        if handshake:
            key = base64.b64encode(os.urandom(16)).decode()
            self.s.sendall(("GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                            "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: %s\r\n\r\n"
                            % (port, key, protocol)).encode())
            while b"\r\n\r\n" not in self.buf:
                c = self.s.recv(4096)
                if not c:
                    break
                self.buf += c
            head, _, self.buf = self.buf.partition(b"\r\n\r\n")
            self.status = head.split(b"\r\n")[0].decode(errors="replace")

    def send_frame(self, payload, opcode=1):
        mask = os.urandom(4)
        n = len(payload)
        hdr = bytes([0x80 | opcode])
        if n < 126:
            hdr += bytes([0x80 | n])
        elif n < 65536:
            hdr += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            hdr += bytes([0x80 | 127]) + struct.pack(">Q", n)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.s.sendall(hdr + mask + body)

    def send_json(self, obj):
        self.send_frame(json.dumps(obj).encode())

    def _need(self, n):
        while len(self.buf) < n:
            c = self.s.recv(1 << 16)
            if not c:
                raise EOFError
            self.buf += c

    def read_frame(self):
        """(opcode, payload) of the next server frame; EOFError when closed."""
        self._need(2)
        op, ln = self.buf[0] & 0x0F, self.buf[1] & 0x7F
        off = 2
        if ln == 126:
            self._need(4)
            ln, off = struct.unpack(">H", self.buf[2:4])[0], 4
        elif ln == 127:
            self._need(10)
            ln, off = struct.unpack(">Q", self.buf[2:10])[0], 10
        self._need(off + ln)
        payload, self.buf = self.buf[off:off + ln], self.buf[off + ln:]
        return op, payload

    def read_json(self, op):
        """The next JSON message with this "op" (others skipped)."""
        while True:
            code, payload = self.read_frame()
            if code == 1:
                m = json.loads(payload)
                if m.get("op") == op:
                    return m

    def closed_by_server(self):
        """Read until the server closes; the close frame's code (None: the
        connection just ended)."""
        try:
            while True:
                code, payload = self.read_frame()
                if code == 8:
                    return struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None
        except (EOFError, ConnectionResetError):
            return None

    def close(self):
        self.s.close()


def status_of(d):
    return d.client.status()


def test_both_subprotocols_subscribe_decode_unsubscribe(daemon):
    port = free_port()
    d = daemon(extra=foxglove_extra(port))
    topics = ["/pacd/telemetry", "/pacd/robot_state", "/pacd/action"]
    for protocol in ("foxglove.websocket.v1", "foxglove.sdk.v1"):
        out = view(port, protocol, topics)
        assert out["protocol"] == protocol
        assert out["serverInfo"]["name"].startswith("pacd ")
        assert out["serverInfo"]["metadata"]["robot"] == "panda"
        chans = {c["topic"]: c for c in out["channels"]}
        assert set(chans) == {"/pacd/telemetry", "/pacd/robot_state", "/pacd/action",
                              "/pacd/policy_action", "/pacd/teleop_action", "/pacd/reward",
                              "/pacd/q_value", "/pacd/camera/front"}
        assert all(c["encoding"] == "protobuf" for c in out["channels"])
        assert chans["/pacd/telemetry"]["schemaName"] == "pacd.v1.Telemetry"
        assert chans["/pacd/camera/front"]["schemaName"] == "foxglove.CompressedImage"
        assert all(out["counts"][t] >= 3 for t in topics), out["counts"]
        # nothing of the unsubscribed topic after two later rounds of the others
        assert out["lateAfterUnsubscribe"] == 0
        tm, rs, act = (out["messages"][t] for t in topics)
        assert tm["robot"] == "panda" and tm["state"] == pb.IDLE
        assert int(tm["tickCount"]) > 0
        assert len(rs["jointPositions"]) == 7 and rs["robot"] == "panda"
        assert len(act["values"]) == 7
        assert act["space"] in (pb.JOINT_VELOCITY, pb.JOINT_VELOCITY_GRIPPER)
        # log time of the message data is the telemetry's wall clock
        assert int(out["logTimes"]["/pacd/telemetry"][0]) > 1_600_000_000 * 10**9
    st = status_of(d)
    assert st.foxglove_clients_accepted >= 2 and st.foxglove_clients_dropped_bad == 0


def test_episode_channels_and_camera_images(daemon):
    port = free_port()
    d = daemon(extra=foxglove_extra(port, "image_rate_hz = 10\n"))
    cam = d.camera()
    feed = FrameFeeder(cam)
    d.wait_for(lambda s: s.frames_received > 0, what="a camera frame", feed=feed)
    r = d.client.start_episode(max_steps=100000)
    assert r.ok, r.error
    topics = ["/pacd/camera/front", "/pacd/policy_action", "/pacd/reward", "/pacd/action"]
    out = view(port, "foxglove.websocket.v1", topics, n=2, feed=feed)
    img = out["messages"]["/pacd/camera/front"]
    assert img["format"] == "jpeg" and img["frameId"] == "front"
    assert img["data"]["length"] > 100
    assert int(img["timestamp"]["seconds"]) > 1_600_000_000
    pa = out["messages"]["/pacd/policy_action"]
    assert len(pa["values"]) == 7
    assert "reward" in out["messages"]["/pacd/reward"]
    # raw images: foxglove.RawImage rgb8 of the configured size
    d.stop()
    port = free_port()
    d = daemon(extra=foxglove_extra(port, "image_rate_hz = 10\nimage_format = raw\n"))
    feed = FrameFeeder(d.camera())
    out = view(port, "foxglove.sdk.v1", ["/pacd/camera/front", "/pacd/telemetry"], n=2, feed=feed)
    chans = {c["topic"]: c for c in out["channels"]}
    assert chans["/pacd/camera/front"]["schemaName"] == "foxglove.RawImage"
    img = out["messages"]["/pacd/camera/front"]
    assert (img["width"], img["height"], img["step"], img["encoding"]) == (128, 128, 384, "rgb8")
    assert img["data"]["length"] == 128 * 128 * 3


def test_misbehaving_clients_are_cut_off(daemon):
    port = free_port()
    d = daemon(extra=foxglove_extra(port, "image_rate_hz = 30\nimage_format = raw\n"
                                          "send_queue_kb = 64\nmax_clients = 3\n"))
    feed = FrameFeeder(d.camera(), period_s=0.01)
    d.wait_for(lambda s: s.frames_received > 0, what="a camera frame", feed=feed)
    # garbage: a binary message, text that is not JSON, a message over 64 KiB
    for garbage in ((b"\x01\x00\x00\x00\x00garbage", 2), (b"{not json", 1),
                    (b"[" * (70 * 1024), 1)):
        p = RawPeer(port)
        assert " 101 " in p.status, p.status
        p.read_json("advertise")
        p.send_frame(*garbage)
        assert p.closed_by_server() in (1008, None)
        p.close()
    d.wait_for(lambda s: s.foxglove_clients_dropped_bad == 3, what="3 peers dropped as bad")
    # not a WebSocket at all, and an unknown subprotocol: no connection
    s = socket.create_connection(("127.0.0.1", port), timeout=scaled(10))
    s.sendall(os.urandom(4096))
    try:
        while s.recv(4096):
            pass
    except ConnectionResetError:
        pass
    s.close()
    p = RawPeer(port, protocol="not.foxglove")
    assert " 101 " not in (p.status or ""), p.status
    p.close()
    # a viewer that never reads: subscribed to everything, a small receive
    # buffer; its send queue passes 64 KiB and pacd disconnects it
    slow = RawPeer(port, rcvbuf=4096)
    adv = slow.read_json("advertise")
    slow.send_json({"op": "subscribe", "subscriptions": [
        {"id": i, "channelId": c["id"]} for i, c in enumerate(adv["channels"])]})
    d.wait_for(lambda s: s.foxglove_clients_dropped_slow >= 1, timeout=60,
               what="the viewer that does not read to be dropped", feed=feed)
    assert slow.closed_by_server() in (None, 1006, 1008, 1001)
    slow.close()
    # one that never reads but keeps asking (unsupported ops): the status
    # answers count against its queue too
    chatty = RawPeer(port, rcvbuf=4096)
    ask = json.dumps({"op": "getParameters", "parameterNames": ["x" * 200], "id": "q"}).encode()

    def flood():
        try:
            for _ in range(200):
                chatty.send_frame(ask)
        except OSError:  # cut off (or its socket full): what is tested
            pass
    d.wait_for(lambda s: s.foxglove_clients_dropped_slow >= 2, timeout=60,
               what="the viewer that asks but does not read to be dropped", feed=flood)
    chatty.close()
    # unharmed: the loop ticks, a good viewer gets its data, the count is right
    before = d.client.status().tick_count
    out = view(port, "foxglove.websocket.v1", ["/pacd/telemetry", "/pacd/camera/front"], n=2,
               feed=feed)
    assert out["counts"]["/pacd/camera/front"] >= 2
    st = d.wait_for(lambda s: s.foxglove_clients == 0 and s.tick_count > before,
                    what="the viewers gone, the loop on")
    assert st.foxglove_clients_dropped_bad == 3 and st.foxglove_clients_dropped_slow == 2
    assert st.state == pb.IDLE and not st.fault
    # max_clients = 3: a fourth is refused while three are connected
    peers = [RawPeer(port) for _ in range(3)]
    for p in peers:
        assert " 101 " in p.status
        p.read_json("serverInfo")
    d.wait_for(lambda s: s.foxglove_clients == 3, what="three viewers")
    extra = RawPeer(port)
    assert " 101 " not in (extra.status or ""), extra.status
    extra.close()
    d.wait_for(lambda s: s.foxglove_clients_refused >= 1, what="the fourth refused")
    for p in peers:
        p.close()
    assert "disconnected: its send queue passed" in d.stderr()


def test_off_by_default_and_loopback_only(daemon, tmp_path):
    port = free_port()
    d = daemon()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=scaled(2)).close()
    assert d.client.status().foxglove_clients_accepted == 0
    d.stop()
    # a non-loopback bind needs [security] insecure = true
    d = daemon(start=False, extra=foxglove_extra(port, "bind = 0.0.0.0\n"))
    r = subprocess.run([os.path.join(os.environ["PACD_BUILD_DIR"], "daemon", "pacd"),
                        "--check-config", d.config], capture_output=True, text=True)
    assert r.returncode != 0 and "[foxglove] bind = 0.0.0.0 is not a loopback" in r.stderr


def test_port_in_use_is_refused_at_start(daemon):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        with pytest.raises(RuntimeError, match="cannot serve the Foxglove live view on "
                                                "127.0.0.1 port %d" % port):
            daemon(extra=foxglove_extra(port))
    finally:
        holder.close()


def test_live_view_under_the_units_process_restrictions(daemon):
    """deploy/pacd.service's system call filter and address families
    (unit_sandbox.py) let the live view serve a viewer; pacd exits 0."""
    try:
        import seccomp  # noqa: F401
    except ImportError:
        pytest.skip("python3-seccomp is not installed (the sandbox's system call filter)")
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian: systemd)")
    from test_unit_hardening import PY, SANDBOX, SANITIZER_ENV, UNIT
    port = free_port()
    d = daemon(wrap=[PY, SANDBOX, UNIT, "--"], env=SANITIZER_ENV,
               extra=foxglove_extra(port, "image_rate_hz = 10\n") +
               "[pacd]\nlock_memory = false\n")
    feed = FrameFeeder(d.camera())
    out = view(port, "foxglove.sdk.v1", ["/pacd/telemetry", "/pacd/camera/front"], n=2, feed=feed)
    assert out["counts"]["/pacd/camera/front"] >= 2
    d.signal(signal.SIGTERM)
    rc = d.wait()
    assert rc == 0, "pacd exited with %s (-31: SIGSYS, a system call the unit's filter does " \
                    "not allow):\n%s" % (rc, d.stderr())
