"""The control socket and the process around it under hostile peers and
misuse: raw TCP garbage beside real clients, a second instance on the same
ipc:// endpoints, log injection through peer-supplied strings, real-time
scheduling with and without CAP_SYS_NICE, and the shipped config."""
import os
import random
import socket
import subprocess
import threading
import time

import pytest

import pacd_client
from conftest import PACD, SRC, FrameFeeder

pb = pacd_client.pb


class GarbagePeers:
    """Raw TCP peers that connect to an endpoint, send 1,000 bytes whose first
    byte is not 0xFF (libzmq takes them for ZMTP 1.0 peers) and close, one
    after the other until stopped."""

    def __init__(self, port, seed=1):
        self.port, self.rng, self.n = port, random.Random(seed), 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            data = bytes([self.rng.randrange(0, 0xFF)]) + self.rng.randbytes(999)
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    s.sendall(data)
                    s.settimeout(0.01)
                    try:
                        s.recv(4096)
                    except OSError:
                        pass
            except OSError:
                pass
            self.n += 1
            self._stop.wait(0.005)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def test_every_request_is_answered_while_garbage_peers_connect(daemon):
    d = daemon()
    # a lost reply shows as a timeout; 10 s is generous on a loaded machine
    c = pacd_client.Client(d.ep("control"), timeout_ms=10000)
    try:
        with GarbagePeers(d.ports["control"]) as g:
            for i in range(150):
                try:
                    st = c.status()
                except pacd_client.PacdError as e:
                    pytest.fail("status %d of 150 unanswered (%d garbage peers so far): %s\n"
                                "stderr:\n%s" % (i + 1, g.n, e, d.stderr()))
                assert st.state == pb.IDLE
                if i % 10 == 0:
                    time.sleep(0.02)  # let garbage peers land between requests
            while g.n < 50:
                time.sleep(0.01)
            # a command that changes state: its reply arrives and says ok
            try:
                r = c.estop()
            except pacd_client.PacdError as e:
                pytest.fail("estop unanswered: %s\nstderr:\n%s" % (e, d.stderr()))
            assert r.ok, r.error
            deadline = time.monotonic() + 15
            while c.status().state != pb.ESTOPPED:
                assert time.monotonic() < deadline, "not e-stopped:\n" + d.stderr()
                time.sleep(0.02)
            assert g.n >= 50
    finally:
        c.close()


def test_a_raw_peer_on_the_control_socket_is_disconnected(daemon):
    d = daemon()
    with socket.create_connection(("127.0.0.1", d.ports["control"]), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        got = b""
        try:
            while True:
                b = s.recv(4096)  # pacd closes: b"" (or a reset)
                if not b:
                    break
                got += b
        except ConnectionResetError:
            pass
        except socket.timeout:
            pytest.fail("pacd kept a raw (ZMTP 1.0) peer connected; it sent %r" % got)
    assert d.client.status().state == pb.IDLE


def test_peer_supplied_strings_are_escaped_in_the_log(daemon):
    d = daemon()
    evil = "\n<0>evil\x1b[31m"
    cmd = pb.Command(type=pb.Command.HOLD, client=evil)
    r = d.client.sock.send(cmd.SerializeToString())
    r = pb.Reply()
    r.ParseFromString(d.client.sock.recv())
    assert not r.ok  # nothing to hold: refused, and logged with the client's name
    deadline = time.monotonic() + 15
    while "command" not in d.stderr():
        assert time.monotonic() < deadline, d.stderr()
        time.sleep(0.05)
    err = d.stderr()
    assert "\x1b" not in err and "\n<0>" not in err, err
    lines = [ln for ln in err.splitlines() if "command" in ln]
    assert len(lines) == 1, err
    assert "from \\x0a<0>evil\\x1b[31m: rejected" in lines[0], lines[0]


def test_a_second_instance_on_the_same_ipc_endpoints_refuses_to_start(daemon, tmp_path):
    d = daemon(start=False)
    text = open(d.config).read()
    run = tmp_path / "run"
    run.mkdir()
    for name in ("camera", "state", "telemetry", "control"):
        text = text.replace("tcp://127.0.0.1:%d" % d.ports[name], "ipc://%s/%s" % (run, name))
    with open(d.config, "w") as f:
        f.write(text)
    d.ep = lambda name: "ipc://%s/%s" % (run, name)
    d.start()
    first = d.proc.pid
    second = subprocess.run([PACD, "--config", d.config], capture_output=True, text=True,
                            timeout=60)
    assert second.returncode != 0, second.stderr
    assert "another pacd (pid %d) is running on ipc://%s/" % (first, run) in second.stderr, \
        second.stderr
    # the first still owns its sockets
    assert d.proc.poll() is None
    assert d.client.status().state == pb.IDLE
    assert os.path.exists(run / "control")
    d.stop()
    # once it is gone, a new one starts (the lock died with the process)
    d.start()
    assert d.client.status().state == pb.IDLE


def test_a_tcp_endpoint_in_use_is_a_clear_error(daemon):
    d = daemon()
    other = daemon(start=False)
    text = open(other.config).read().replace(
        "tcp://127.0.0.1:%d" % other.ports["control"], d.ep("control"))
    with open(other.config, "w") as f:
        f.write(text)
    r = subprocess.run([PACD, "--config", other.config], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode != 0
    assert "cannot bind the control socket to %s: Address already in use" % d.ep("control") \
        in r.stderr and "another pacd" in r.stderr, r.stderr
    assert d.client.status().state == pb.IDLE


def test_refused_starts_use_up_no_episode_numbers(daemon):
    d = daemon()
    c = d.client
    r = c.start_episode(max_steps=2**63, check=False)
    assert not r.ok and "max_steps must be 0 (the config's) to 100000000" in r.error, r.error
    feed = FrameFeeder(d.camera())
    first = c.start_episode(max_steps=1000).episode_id
    for _ in range(3):
        r = c.start_episode(check=False)
        assert not r.ok and r.error
    d.wait_for(lambda s: s.state == pb.RUNNING, feed=feed)
    c.end_episode()
    d.wait_for(lambda s: s.state == pb.IDLE, feed=feed)
    second = c.start_episode().episode_id
    assert first.endswith("-panda-0001") and second.endswith("-panda-0002"), (first, second)
    c.end_episode()
    assert "max_steps -" not in d.stderr()


def test_the_shipped_config_passes_check_config(tmp_path, example_checkpoint):
    # deploy/pacd.conf verbatim but for its one checkpoint line: the shipped
    # path (/var/lib/pacd/checkpoints/actor.safetensors) is the deployment's
    # own model, which this repository does not hold; the example checkpoint
    # stands in for it
    text = open(os.path.join(SRC, "deploy", "pacd.conf")).read()
    lines = text.splitlines(keepends=True)
    ck = [i for i, ln in enumerate(lines) if ln.startswith("checkpoint = ")]
    assert len(ck) == 1, "deploy/pacd.conf should have one checkpoint line"
    lines[ck[0]] = "checkpoint = %s\n" % example_checkpoint
    cfg = tmp_path / "pacd.conf"
    cfg.write_text("".join(lines))
    r = subprocess.run([PACD, "--check-config", str(cfg)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert ": ok (robot panda" in r.stdout, r.stdout
    assert "only backend" not in text


def test_the_loop_runs_sched_fifo_by_default_and_says_so_when_it_cannot(daemon, tmp_path):
    # tests run as root: with CAP_SYS_NICE the default (rt_priority = auto) is SCHED_FIFO 80
    d = daemon()
    st = d.client.status()
    assert st.realtime and st.sched_policy == "SCHED_FIFO" and st.sched_priority == 80, \
        "%s\nstderr:\n%s" % (st, d.stderr())
    assert "WITHOUT real-time" not in d.stderr()
    d.stop()
    # without CAP_SYS_NICE (and RLIMIT_RTPRIO 0) pacd starts, warns and reports it
    d = daemon(wrap=["setpriv", "--inh-caps=-sys_nice", "--bounding-set=-sys_nice", "--"])
    st = d.client.status()
    assert not st.realtime and st.sched_policy == "SCHED_OTHER" and st.sched_priority == 0, st
    deadline = time.monotonic() + 15
    while "WITHOUT real-time scheduling" not in d.stderr():
        assert time.monotonic() < deadline, d.stderr()
        time.sleep(0.05)
    assert "cannot use SCHED_FIFO priority 80 (Operation not permitted)" in d.stderr(), d.stderr()
    # the telemetry stream says so too
    t = d.telemetry(count=1)[0]
    assert not t.realtime and t.sched_policy == "SCHED_OTHER"


def test_rt_priority_0_warns_at_start(daemon):
    d = daemon(extra="[pacd]\nrt_priority = 0\n")
    st = d.client.status()
    assert not st.realtime and st.sched_policy == "SCHED_OTHER"
    assert "rt_priority = 0: the control loop runs WITHOUT real-time scheduling" in d.stderr()
