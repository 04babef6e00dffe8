"""Authentication (docs/security.md): CurveZMQ with a ZAP handler and
allow-list directories, the secret-key and bind-address checks, insecure
mode, ipc permissions and `pacctl keygen`. The real pacd, CURVE on loopback."""
import os
import shutil
import stat
import subprocess
import time

import pytest

import pacd_client
from conftest import PACD, pacctl

pb = pacd_client.pb


def keygen(path):
    r = pacctl("keygen", str(path))
    assert r.returncode == 0, r.stderr
    return str(path) + "_secret", str(path)


@pytest.fixture
def cell(tmp_path):
    """Keys for a robot cell: pacd's own, an operator, a monitor, a publisher,
    a revocable monitor and a stranger; allow-list directories holding the
    public certificates of the first four."""
    keys = tmp_path / "keys"
    keys.mkdir()
    k = {name: keygen(keys / name) for name in
         ("pacd", "operator", "monitor", "publisher", "revokee", "stranger")}
    dirs = {}
    for role, names in (("operators", ["operator"]), ("monitors", ["monitor", "revokee"]),
                        ("publishers", ["publisher"])):
        dirs[role] = tmp_path / role
        dirs[role].mkdir(mode=0o755)
        os.chmod(dirs[role], 0o755)  # whatever the umask: pacd refuses a group-writable list
        for n in names:
            shutil.copy(k[n][1], dirs[role] / n)
            os.chmod(dirs[role] / n, 0o644)
    server_pub = k["pacd"][1]
    extra = f"""
[security]
server_secret_key = {k['pacd'][0]}
operator_keys = {dirs['operators']}
monitor_keys = {dirs['monitors']}
publisher_keys = {dirs['publishers']}
"""
    keys_of = {n: dict(key=k[n][0], server_key=server_pub) for n in k if n != "pacd"}
    keys_of["none"] = {}
    return dict(extra=extra, keys=keys_of, dirs=dirs, server_pub=server_pub, raw=k)


def start(daemon, cell, **kw):
    return daemon(extra=cell["extra"], client_keys=cell["keys"]["operator"], **kw)


def telemetry(d, who, timeout_s=20):
    return next(pacd_client.watch(d.ep("telemetry"), count=1, timeout_s=timeout_s,
                                  **who))


def gets_no_telemetry(d, who):
    with pytest.raises(pacd_client.PacdError):
        telemetry(d, who, timeout_s=1.5)


def gets_no_reply(d, who):
    c = pacd_client.Client(d.ep("control"), timeout_ms=1500, **who)
    try:
        with pytest.raises(pacd_client.PacdError, match="did not answer"):
            c.status()
        with pytest.raises(pacd_client.PacdError, match="did not answer"):
            c.estop()
    finally:
        c.close()


def wait_counter(d, monitor, field, at_least, what):
    deadline = time.monotonic() + 30
    t = None
    while time.monotonic() < deadline:
        t = telemetry(d, monitor)
        if getattr(t, field) >= at_least:
            return t
        time.sleep(0.1)
    raise AssertionError("%s: telemetry %s stayed %s (< %d)\nstderr:\n%s"
                         % (what, field, getattr(t, field, None), at_least, d.stderr()))


def test_no_key_wrong_key_and_revoked_key_get_nothing_and_are_counted(daemon, cell):
    d = start(daemon, cell)
    mon = cell["keys"]["monitor"]
    t = telemetry(d, mon)
    assert t.curve and not t.insecure
    assert t.auth_denied == 0, d.stderr()

    # no key: the CURVE handshake fails before ZAP
    gets_no_telemetry(d, cell["keys"]["none"])
    gets_no_reply(d, cell["keys"]["none"])
    t = wait_counter(d, mon, "auth_handshake_failed", 1, "no key")
    assert t.state == pb.IDLE  # the estop of gets_no_reply never arrived

    # a key in no allow-list
    gets_no_telemetry(d, cell["keys"]["stranger"])
    gets_no_reply(d, cell["keys"]["stranger"])
    wait_counter(d, mon, "auth_denied_unknown_key", 1, "unknown key")

    # revoked: admitted while its certificate is listed, refused once removed.
    # pacd re-reads a directory when its timestamps change; it trusts them
    # once they are 2 s old: let them age so that the change is what counts
    monitors = cell["dirs"]["monitors"]
    time.sleep(max(0.0, os.stat(monitors).st_ctime + 3 - time.time()))
    telemetry(d, mon)
    telemetry(d, cell["keys"]["revokee"])
    before = telemetry(d, mon).auth_denied_unknown_key
    os.unlink(cell["dirs"]["monitors"] / "revokee")
    gets_no_telemetry(d, cell["keys"]["revokee"])
    t = wait_counter(d, mon, "auth_denied_unknown_key", before + 1, "revoked key")
    assert t.auth_denied == (t.auth_denied_unknown_key + t.auth_denied_wrong_role
                             + t.auth_handshake_failed)
    assert t.state == pb.IDLE and t.episodes == 0
    assert "in no allow-list" in d.stderr()


def test_monitor_gets_telemetry_but_cannot_command(daemon, cell):
    d = start(daemon, cell)
    mon = cell["keys"]["monitor"]
    assert telemetry(d, mon).state == pb.IDLE
    gets_no_reply(d, mon)
    t = wait_counter(d, mon, "auth_denied_wrong_role", 1, "monitor on control")
    assert t.state == pb.IDLE
    # pacctl with the monitor key: watch works, a command does not
    base = ["--control", d.ep("control"), "--telemetry", d.ep("telemetry"),
            "--key", mon["key"], "--server-key", mon["server_key"], "--timeout", "1500"]
    r = pacctl(*base, "watch", "--count", "1")
    assert r.returncode == 0 and "state" in r.stdout, r.stderr
    r = pacctl(*base, "estop")
    assert r.returncode != 0 and "did not answer" in r.stderr
    # nor a checkpoint reload (operator only): nothing was loaded or tried
    r = pacctl(*base, "reload")
    assert r.returncode != 0 and "did not answer" in r.stderr
    st = d.client.status()
    assert st.state == pb.IDLE and st.reloads == 0 and st.reloads_failed == 0


def test_operator_runs_commands(daemon, cell):
    d = start(daemon, cell)
    op = cell["keys"]["operator"]
    st = d.client.status()
    assert st.curve and st.state == pb.IDLE
    assert d.client.start_episode(max_steps=0).ok
    d.wait_for(lambda s: s.episode_id != "", what="an episode")
    assert d.client.end_episode().ok
    d.wait_for(lambda s: s.state == pb.IDLE and s.episodes >= 1, what="the episode's end")
    # the C client: status and an episode with --key/--server-key
    base = ["--control", d.ep("control"), "--key", op["key"], "--server-key", op["server_key"]]
    r = pacctl(*base, "status")
    assert r.returncode == 0, r.stderr
    assert "security   CURVE" in r.stdout, r.stdout
    r = pacctl(*base, "episode", "start")
    # the reply's state is a snapshot (a slow build may show the loop before
    # it applied the start): what matters is that the operator's start ran
    assert r.returncode == 0 and r.stdout.startswith("ok:") and " episode " in r.stdout, \
        r.stdout + r.stderr
    r = pacctl(*base, "episode", "stop")
    assert r.returncode == 0, r.stderr
    assert "admitted (operator:operator)" in d.stderr()


def test_publisher_frames_accepted_unlisted_publisher_not(daemon, cell):
    d = start(daemon, cell)
    mon = cell["keys"]["monitor"]
    img = pacd_client.synthetic_image(128, 128, 0.0)
    stranger = pacd_client.CameraPublisher("front", 128, 128, endpoint=d.ep("camera"),
                                           **cell["keys"]["stranger"])
    d.pubs.append(stranger)
    # an operator key is not a publisher key either
    op_pub = pacd_client.CameraPublisher("front", 128, 128, endpoint=d.ep("camera"),
                                         **cell["keys"]["operator"])
    d.pubs.append(op_pub)
    deadline = time.monotonic() + 30
    while True:
        stranger.send(img)
        op_pub.send(img)
        t = telemetry(d, mon)
        if t.auth_denied_unknown_key >= 1 and t.auth_denied_wrong_role >= 1:
            break
        assert time.monotonic() < deadline, "refusals not counted:\n" + d.stderr()
        time.sleep(0.05)
    for _ in range(20):
        stranger.send(img)
        op_pub.send(img)
        time.sleep(0.01)
    assert telemetry(d, mon).frames_received == 0
    pub = pacd_client.CameraPublisher("front", 128, 128, endpoint=d.ep("camera"),
                                      **cell["keys"]["publisher"])
    d.pubs.append(pub)
    deadline = time.monotonic() + 30
    while telemetry(d, mon).frames_received < 3:
        pub.send(img)
        assert time.monotonic() < deadline, "publisher frames not accepted:\n" + d.stderr()
        time.sleep(0.02)


def test_world_readable_secret_key_is_refused(daemon, cell):
    os.chmod(cell["raw"]["pacd"][0], 0o644)
    d = start(daemon, cell, wait=False)
    assert d.wait(timeout=60) == 1
    err = d.stderr()
    assert "chmod 600" in err and "pacd_secret" in err, err
    r = subprocess.run([PACD, "--check-config", d.config], capture_output=True, text=True)
    assert r.returncode == 1 and "chmod 600" in r.stderr, r.stderr


def test_group_writable_allow_list_is_refused(daemon, cell):
    d = daemon(start=False, extra=cell["extra"])
    r = subprocess.run([PACD, "--check-config", d.config], capture_output=True, text=True)
    assert "chmod" not in r.stderr, r.stderr
    os.chmod(cell["dirs"]["operators"], 0o775)
    r = subprocess.run([PACD, "--check-config", d.config], capture_output=True, text=True)
    assert r.returncode == 1 and "chmod go-w" in r.stderr, r.stderr


def test_non_loopback_bind_needs_curve_or_insecure(daemon):
    d = daemon(start=False)
    with open(d.config) as f:
        text = f.read()
    text = text.replace("bind = tcp://127.0.0.1:%d" % d.ports["telemetry"],
                        "bind = tcp://*:%d" % d.ports["telemetry"])
    with open(d.config, "w") as f:
        f.write(text)
    d.start(wait=False)
    assert d.wait(timeout=60) == 1
    err = d.stderr()
    assert "tcp://*:%d is not a loopback" % d.ports["telemetry"] in err, err
    assert "insecure = true" in err, err
    with open(d.config, "a") as f:
        f.write("\n[security]\ninsecure = true\n")
    d.start()
    assert "INSECURE" in d.stderr()
    t = d.telemetry(count=2)
    assert all(x.insecure and not x.curve for x in t), t[-1]
    r = pacctl("--control", d.ep("control"), "status")
    assert r.returncode == 0 and "INSECURE" in r.stdout, r.stdout + r.stderr


def test_ipc_endpoint_gets_mode_0660(daemon, tmp_path, cell):
    """ipc:// carries no CURVE (the file mode guards it), also when the tcp
    endpoints use keys."""
    sock = tmp_path / "ctl.sock"
    d = daemon(start=False, extra=cell["extra"])
    with open(d.config) as f:
        text = f.read()
    text = text.replace("bind = tcp://127.0.0.1:%d" % d.ports["control"], "bind = ipc://%s" % sock)
    with open(d.config, "w") as f:
        f.write(text)
    old = os.umask(0)  # without its chmod pacd would leave a 0777 socket file
    try:
        d.start(wait=False)
    finally:
        os.umask(old)
    c = pacd_client.Client("ipc://%s" % sock, timeout_ms=2000)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert d.proc.poll() is None, d.stderr()
            try:
                c.status()
                break
            except pacd_client.PacdError:
                assert time.monotonic() < deadline, d.stderr()
    finally:
        c.close()
    st = os.stat(sock)
    assert stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode)
    assert st.st_gid == os.getegid()
    assert telemetry(d, cell["keys"]["monitor"]).curve


def test_keygen_writes_a_private_secret(tmp_path):
    r = pacctl("keygen", str(tmp_path / "alice"))
    assert r.returncode == 0, r.stderr
    sec = os.stat(tmp_path / "alice_secret")
    assert stat.S_IMODE(sec.st_mode) == 0o600
    with open(tmp_path / "alice_secret") as f:
        text = f.read()
    assert "secret-key = " in text and "public-key = " in text
    with open(tmp_path / "alice") as f:
        pub_text = f.read()
    assert "secret-key" not in pub_text and "public-key = " in pub_text
    # the files are CZMQ certificates: pyzmq's reader of that format agrees
    import zmq.auth
    pub, secret = zmq.auth.load_certificate(str(tmp_path / "alice_secret"))
    assert zmq.auth.load_certificate(str(tmp_path / "alice"))[0] == pub and secret
    # never overwrites
    r = pacctl("keygen", str(tmp_path / "alice"))
    assert r.returncode != 0 and "File exists" in r.stderr
    # a client refuses its own secret when others can read it
    os.chmod(tmp_path / "alice_secret", 0o640)
    r = pacctl("--key", str(tmp_path / "alice_secret"), "--server-key", str(tmp_path / "alice"),
               "status")
    assert r.returncode == 1 and "chmod 600" in r.stderr


def test_mujoco_backend_publishes_with_pacds_own_key(daemon, cell):
    """The mujoco backend renders to pacd's own (CURVE) ingest sockets: it
    connects with pacd's key, which the ingest endpoints admit."""
    from test_mujoco_daemon import PANDA_SCENE, mujoco_extra, version
    if "mujoco" not in version:
        pytest.skip("pacd was built without MuJoCo (install libmujoco-dev)")
    assert os.path.exists(PANDA_SCENE), "../shared/data must be beside the repository"
    d = daemon(extra=mujoco_extra() + cell["extra"], client_keys=cell["keys"]["operator"])
    st = d.wait_for(lambda s: s.frames_received >= 3, timeout=60, what="rendered frames")
    assert st.curve and st.auth_denied == 0, st
