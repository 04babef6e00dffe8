"""CURVE on the bridge (docs/bridge.md, "Security"): pacd-fake-driver as the
CURVE server (--curve-secret-key), pacd as the client ([robot]
driver_public_key, its own key pair from [security] server_secret_key), over
tcp://127.0.0.1. Matching keys link and move the arm; a wrong driver key
never links; secret key files others can read are refused by both sides; a
network bind without a key needs --insecure; --check-config covers the keys."""
import os
import shutil
import subprocess

import pacd_client

from conftest import PACD, FrameFeeder, free_port, scaled, wait_until, write_config
from test_remote_backend import FAKE_DRIVER, PANDA_HOME, Driver, moved, remote_extra
from test_security import keygen


def cell(tmp_path, driver_key="driver"):
    """Keys: pacd's pair, the driver's pair, a client (operator and publisher:
    the test's own connections to pacd) and a stranger."""
    keys = tmp_path / "keys"
    keys.mkdir()
    k = {n: keygen(keys / n) for n in ("pacd", "driver", "client", "stranger")}
    for role in ("operators", "publishers"):
        d = tmp_path / role
        d.mkdir()
        os.chmod(d, 0o755)
        shutil.copy(k["client"][1], d / "client")
        os.chmod(d / "client", 0o644)
    extra = ("[security]\nserver_secret_key = %s\noperator_keys = %s\npublisher_keys = %s\n"
             "[robot]\ndriver_public_key = %s\n"
             % (k["pacd"][0], tmp_path / "operators", tmp_path / "publishers", k[driver_key][1]))
    client = dict(key=k["client"][0], server_key=k["pacd"][1])
    return k, extra, client


def allow_dir(tmp_path, k, *names):
    d = tmp_path / "driver-allows"
    d.mkdir()
    for n in names:
        shutil.copy(k[n][1], d / n)
    return str(d)


def tcp_endpoint():
    return "tcp://127.0.0.1:%d" % free_port()


def test_matching_keys_link_and_the_arm_moves(request, daemon, tmp_path):
    k, extra, client = cell(tmp_path)
    endpoint = tcp_endpoint()
    drv = Driver(request, tmp_path, endpoint, "--curve-secret-key", k["driver"][0],
                 "--curve-allow", allow_dir(tmp_path, k, "pacd", "stranger"))
    try:
        d = daemon(extra=remote_extra(endpoint) + extra, client_keys=client)
        d.wait_for(lambda s: s.hal_link_up and s.hal_states_received > 0,
                   what="the CURVE link to the driver")
        pub = pacd_client.CameraPublisher("front", 128, 128, endpoint=d.ep("camera"), **client)
        d.pubs.append(pub)
        feed = FrameFeeder(pub)
        d.client.start_episode(max_steps=100000)
        st = d.wait_for(lambda s: moved(s, PANDA_HOME), feed=feed, what="the arm to move")
        assert st.hal_targets_sent > 0
        d.client.end_episode()
        d.stop()
        assert d.proc.returncode == 0, d.stderr()
    finally:
        drv.stop()
    err = drv.stderr()
    assert "handshake from pacd accepted" in err
    line = [l for l in err.splitlines() if "client keys admitted" in l][0]
    assert line.endswith(" 0 refused") and "CURVE: 0 client" not in line, line


def test_pacd_key_not_in_the_drivers_allow_dir_is_refused_and_counted(request, daemon, tmp_path):
    k, extra, client = cell(tmp_path)
    endpoint = tcp_endpoint()
    drv = Driver(request, tmp_path, endpoint, "--curve-secret-key", k["driver"][0],
                 "--curve-allow", allow_dir(tmp_path, k, "stranger"))
    try:
        d = daemon(extra=remote_extra(endpoint) + extra, client_keys=client, wait=False)
        # pacd keeps trying while it waits for the driver: the refusal is
        # counted (and logged with pacd's key) at least once
        with open(k["pacd"][1]) as f:
            pacd_pub = f.read().split('public-key = "')[1][:40]
        wait_until(lambda: "refused (key %s" % pacd_pub in drv.stderr(), 60,
                   "the driver to refuse pacd's key", details=drv.stderr)
        assert d.proc.wait(timeout=scaled(60)) != 0
        assert "no driver answered on %s" % endpoint in d.stderr(), d.stderr()
    finally:
        drv.stop()
    err = drv.stderr()
    assert "handshake from pacd accepted" not in err
    line = [l for l in err.splitlines() if "client keys admitted" in l][0]
    assert "CURVE: 0 client keys admitted, " in line, line
    assert int(line.split(", ")[-1].split(" refused")[0]) >= 1, line


def test_wrong_driver_public_key_never_links(request, daemon, tmp_path):
    # pacd believes the stranger's key is the driver's: the CURVE handshake
    # fails, no bridge message passes, pacd refuses to start
    k, extra, client = cell(tmp_path, driver_key="stranger")
    endpoint = tcp_endpoint()
    drv = Driver(request, tmp_path, endpoint, "--curve-secret-key", k["driver"][0])
    try:
        d = daemon(extra=remote_extra(endpoint) + extra, client_keys=client, wait=False)
        assert d.proc.wait(timeout=scaled(60)) != 0
        err = d.stderr()
        assert "no driver answered on %s" % endpoint in err, err
        assert "driver_public_key must be" in err, err
        assert "Sanitizer" not in err and "runtime error" not in err, err
    finally:
        drv.stop()
    assert "handshake from pacd accepted" not in drv.stderr()


def run_driver(*args):
    return subprocess.run([FAKE_DRIVER, "--robot", "panda", *args], capture_output=True,
                          text=True, timeout=scaled(30))


def test_driver_refuses_a_readable_secret_key_and_an_open_network_bind(tmp_path):
    k = {n: keygen(tmp_path / n) for n in ("driver",)}
    os.chmod(k["driver"][0], 0o644)
    r = run_driver("--bind", tcp_endpoint(), "--curve-secret-key", k["driver"][0])
    assert r.returncode != 0 and "chmod 600" in r.stderr, r.stderr
    # no key on a network address: refused without --insecure (it never binds)
    r = run_driver("--bind", "tcp://0.0.0.0:%d" % free_port())
    assert r.returncode != 0, r.stderr
    assert "not a loopback or ipc:// endpoint and there is no --curve-secret-key" in r.stderr
    assert "--insecure" in r.stderr


def check_config(tmp_path, example_checkpoint, extra):
    ports = {n: free_port() for n in ("camera", "state", "telemetry", "control")}
    cfg = write_config(str(tmp_path / "pacd.conf"), example_checkpoint,
                       str(tmp_path / "episodes"), ports, extra=extra)
    return subprocess.run([PACD, "--check-config", cfg], capture_output=True, text=True,
                          timeout=scaled(60))


def test_check_config_covers_the_bridge_keys(tmp_path, example_checkpoint):
    k, extra, _ = cell(tmp_path)
    net = "[robot]\nbackend = remote\ndriver_endpoint = tcp://192.0.2.7:5590\n"
    # a driver on the network with CURVE: accepted
    r = check_config(tmp_path, example_checkpoint, net + extra)
    assert r.returncode == 0, r.stderr + r.stdout
    # without driver_public_key: refused (unless insecure)
    r = check_config(tmp_path, example_checkpoint,
                     net + "[security]\nserver_secret_key = %s\n" % k["pacd"][0])
    assert r.returncode != 0 and "[robot] driver_public_key" in r.stderr, r.stderr
    # driver_public_key without pacd's own key pair
    r = check_config(tmp_path, example_checkpoint,
                     net + "[robot]\ndriver_public_key = %s\n" % k["driver"][1])
    assert r.returncode != 0 and "needs [security] server_secret_key" in r.stderr, r.stderr
    # a driver key file that is not there
    r = check_config(tmp_path, example_checkpoint,
                     net + extra + "[robot]\ndriver_public_key = %s\n" % (tmp_path / "nope"))
    assert r.returncode != 0 and str(tmp_path / "nope") in r.stderr, r.stderr
    # pacd's own secret key readable by others: refused, as on its own sockets
    os.chmod(k["pacd"][0], 0o644)
    r = check_config(tmp_path, example_checkpoint, net + extra)
    assert r.returncode != 0 and "chmod 600" in r.stderr, r.stderr
