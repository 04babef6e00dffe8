"""The shipped systemd unit (deploy/pacd.service): its exposure score, that
systemd accepts it and its drop-in examples, that it keeps what pacd needs
(real-time scheduling, locked memory, the watchdog, its directories), and that
pacd runs an episode under the restrictions the kernel enforces on the process
(tests/integration/unit_sandbox.py: capabilities, no_new_privs, W^X memory,
the system call filter and address families), since systemd is usually not
PID 1 where the tests run; and the structured fields of pacd's journal
lines, sent to a stand-in journald socket."""
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess

import pytest

import pacd_client
import unit_sandbox
from conftest import BUILD, PACD, PY, SRC, wait_until

pb = pacd_client.pb

UNIT = os.path.join(SRC, "deploy", "pacd.service")
DROPINS = os.path.join(SRC, "deploy", "drop-ins")
SANDBOX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "unit_sandbox.py")
MAX_EXPOSURE = 2.0

needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze is not installed (Debian: systemd)")


def analyze(*args):
    return subprocess.run(["systemd-analyze"] + list(args), capture_output=True, text=True)


@needs_analyze
def test_exposure_is_at_most_2():
    r = analyze("security", "--offline=true", "--no-pager", UNIT)
    m = re.search(r"Overall exposure level for pacd\.service: ([0-9.]+)", r.stdout)
    assert m, "no exposure level in:\n%s\n%s" % (r.stdout, r.stderr)
    exposed = "\n".join(line for line in r.stdout.splitlines() if line.startswith("✗"))
    assert float(m.group(1)) <= MAX_EXPOSURE, \
        "exposure %s > %.1f; what counts:\n%s" % (m.group(1), MAX_EXPOSURE, exposed)


def _installable_copy(tmp_path, dropins=()):
    """The unit with ExecStart at this build's pacd (verify wants an existing
    executable) and the given drop-ins beside it, in a directory of its own."""
    d = tmp_path / "units"
    d.mkdir()
    with open(UNIT) as f:
        (d / "pacd.service").write_text(f.read().replace("/usr/bin/pacd", PACD))
    if dropins:
        (d / "pacd.service.d").mkdir()
        for name in dropins:
            shutil.copy(os.path.join(DROPINS, name), d / "pacd.service.d" / name)
    return d


@needs_analyze
def test_systemd_accepts_the_unit_and_its_drop_ins(tmp_path):
    dropins = sorted(n for n in os.listdir(DROPINS) if n.endswith(".conf"))
    assert dropins, "no drop-in examples in " + DROPINS
    d = _installable_copy(tmp_path, dropins)
    # SYSTEMD_UNIT_PATH: load the drop-ins from beside the copy ("" appends
    # the default path, for the targets the unit names)
    env = dict(os.environ, SYSTEMD_UNIT_PATH=str(d) + ":")
    r = subprocess.run(["systemd-analyze", "verify", str(d / "pacd.service")],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "pacd" not in r.stderr, r.stdout + r.stderr
    # the drop-ins are read (the mujoco one turns the W^X rule off), and
    # with all of them installed the unit still scores at most 2.0
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager",
                        str(d / "pacd.service")], capture_output=True, text=True, env=env)
    assert re.search(r"✗ MemoryDenyWriteExecute=", r.stdout), r.stdout + r.stderr
    m = re.search(r"Overall exposure level for pacd\.service: ([0-9.]+)", r.stdout)
    assert m and float(m.group(1)) <= MAX_EXPOSURE, r.stdout


def test_the_unit_keeps_real_time_memory_lock_watchdog_and_directories():
    u = unit_sandbox.unit_settings([UNIT])

    def last(key, default=None):
        v = u.get(("Service", key))
        return v[-1] if v else default

    assert last("Type") == "notify" and last("WatchdogSec")
    assert last("NotifyAccess") == "main"
    # [pacd] rt_priority = auto is SCHED_FIFO 80: the limit must allow it,
    # and RestrictRealtime= would forbid SCHED_FIFO outright
    assert int(last("LimitRTPRIO", "0")) >= 80
    assert last("RestrictRealtime", "no").lower() in ("no", "false", "0", "off")
    assert last("LimitMEMLOCK") == "infinity"
    # the shipped config's checkpoint and log directories are the state
    # directories (the only writable places under ProtectSystem=strict)
    state = " ".join(u.get(("Service", "StateDirectory"), [])).split()
    assert "pacd" in state and "pacd/episodes" in state
    with open(os.path.join(SRC, "deploy", "pacd.conf")) as f:
        conf = f.read()
    assert re.search(r"^directory = /var/lib/pacd/episodes$", conf, re.M)
    assert re.search(r"^checkpoint = /var/lib/pacd/", conf, re.M)
    assert last("RuntimeDirectory") == "pacd"
    assert last("UMask") == "0027"


@needs_analyze
def test_the_system_call_filter_allows_what_pacd_calls():
    # expanded as unit_sandbox.py and systemd do
    allow = unit_sandbox.allowed_syscalls(
        unit_sandbox.service_settings([UNIT]).get("SystemCallFilter", []))
    # SCHED_FIFO threads, mlockall, AMX permission, OPENBLAS_CORETYPE re-exec,
    # ipc socket group, huge pages, fdatasync of episode logs
    for name in ("sched_setscheduler", "sched_setattr", "mlockall", "arch_prctl", "execve",
                 "chown", "fchownat", "madvise", "fdatasync", "setsockopt"):
        assert name in allow, name


def _sanitizer():
    try:
        with open(os.path.join(BUILD, "meson-info", "intro-buildoptions.json")) as f:
            opts = json.load(f)
    except OSError:
        return "none"
    return next((o["value"] for o in opts if o["name"] == "b_sanitize"), "none")


# LeakSanitizer stops the process with ptrace(2) at exit, which the unit's
# filter forbids (@debug): pacd would hang there. The other tests check leaks.
SANITIZER_ENV = {"ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0"} \
    if _sanitizer() != "none" else {}


def test_pacd_runs_an_episode_under_the_units_process_restrictions(daemon):
    try:
        import seccomp  # noqa: F401
    except ImportError:
        pytest.skip("python3-seccomp is not installed (the sandbox's system call filter)")
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian: systemd)")
    # mlockall of a sanitizer's shadow memory would lock gigabytes
    lock = "true" if _sanitizer() == "none" else "false"
    d = daemon(cameras=(), wrap=[PY, SANDBOX, UNIT, "--"], env=SANITIZER_ENV,
               extra="[pacd]\nrt_priority = auto\nlock_memory = %s\n" % lock)
    d.client.start_episode(max_steps=20)
    st = d.wait_for(lambda s: s.state == pb.IDLE and s.step == 20, what="20 steps")
    # SCHED_FIFO through LimitRTPRIO (or the sandbox's stand-in where the
    # limit cannot be raised) passed the system call filter
    assert st.realtime, d.stderr()
    err = d.stderr()
    assert "mlockall failed" not in err, err
    logs = d.logs()
    assert len(logs) == 1, logs
    # UMask=0027: nothing for others
    assert stat.S_IMODE(os.stat(logs[0]).st_mode) & 0o027 == 0, oct(os.stat(logs[0]).st_mode)
    d.signal(signal.SIGTERM)
    rc = d.wait()
    assert rc == 0, "pacd exited with %s (-31: SIGSYS, a system call the unit's filter " \
                    "does not allow; find it with strace -f):\n%s" % (rc, d.stderr())


def test_the_sandbox_enforces_the_filter(tmp_path):
    """unit_sandbox.py kills a system call outside the filter and refuses
    W+X memory: without this the test above would prove nothing."""
    try:
        import seccomp  # noqa: F401
    except ImportError:
        pytest.skip("python3-seccomp is not installed")
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian: systemd)")
    # mount(2) is in @mount, which the unit denies; mmap W+X is refused by MDWE
    mount = "import ctypes; ctypes.CDLL(None).mount(b'x', b'/', b'tmpfs', 0, None)"
    r = subprocess.run([PY, SANDBOX, UNIT, "--", PY, "-c", mount], capture_output=True)
    assert r.returncode == -signal.SIGSYS, (r.returncode, r.stderr)
    wx = "import mmap; mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | 4)"
    r = subprocess.run([PY, SANDBOX, UNIT, "--", PY, "-c", wx], capture_output=True, text=True)
    assert r.returncode != 0 and "PermissionError" in r.stderr, (r.returncode, r.stderr)
    # a netlink-free family the unit does not list: AF_PACKET
    pkt = "import socket; socket.socket(socket.AF_PACKET, socket.SOCK_RAW)"
    r = subprocess.run([PY, SANDBOX, UNIT, "--", PY, "-c", pkt], capture_output=True)
    assert r.returncode == -signal.SIGSYS, (r.returncode, r.stderr)


def test_mujoco_rendering_needs_its_drop_in_and_says_so(daemon):
    """Mesa's llvmpipe needs W+X memory: under the unit alone pacd refuses to
    start with the drop-in's name (not a crash inside Mesa); with
    deploy/drop-ins/mujoco-render.conf it renders."""
    version = subprocess.run([PACD, "--version"], capture_output=True, text=True).stdout
    if "mujoco" not in version:
        pytest.skip("pacd was built without MuJoCo (install libmujoco-dev)")
    try:
        import seccomp  # noqa: F401
    except ImportError:
        pytest.skip("python3-seccomp is not installed")
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian: systemd)")
    from test_mujoco_daemon import mujoco_extra
    extra = mujoco_extra() + "[pacd]\nlock_memory = false\n"
    d = daemon(wrap=[PY, SANDBOX, UNIT, "--"], extra=extra, start=False, env=SANITIZER_ENV)
    d.start(wait=False)
    rc = d.wait(timeout=60)
    assert rc not in (0, -signal.SIGSEGV, -signal.SIGSYS), (rc, d.stderr())
    assert "mujoco-render.conf" in d.stderr(), d.stderr()
    d = daemon(wrap=[PY, SANDBOX, UNIT, os.path.join(DROPINS, "mujoco-render.conf"), "--"],
               extra=extra, env=SANITIZER_ENV)
    d.wait_for(lambda s: s.frames_received >= 3, what="rendered frames")


def _journal_entries(data):
    """Fields of one native-protocol datagram (systemd's JOURNAL_NATIVE_PROTOCOL):
    KEY=VALUE lines, or KEY, a 64-bit little-endian length and the value."""
    out, i = {}, 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            k, v = line.split(b"=", 1)
            i = nl + 1
        else:
            n = int.from_bytes(data[nl + 1:nl + 9], "little")
            k, v = line, data[nl + 9:nl + 9 + n]
            i = nl + 9 + n + 1
        out[k.decode()] = v.decode()
    return out


def test_journal_lines_carry_robot_model_and_episode(daemon, tmp_path, example_checkpoint):
    """Under journald (JOURNAL_STREAM names pacd's stderr) pacd's lines go to
    the journal socket with PACD_ROBOT, PACD_MODEL_SHA256 and, during an
    episode, PACD_EPISODE_ID. The socket is a stand-in at the path libsystemd
    uses, /run/systemd/journal/socket, in a mount namespace of pacd's own."""
    if subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot make a mount namespace here (unshare --mount; needs root)")
    jdir = tmp_path / "journal"
    jdir.mkdir()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(jdir / "socket"))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.setblocking(False)
    wrap = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/journal && '
            'mount --bind "$0" /run/systemd/journal && exec "$@"', str(jdir)]
    d = daemon(cameras=(), wrap=wrap, start=False)
    st = os.stat(d.stderr_path)  # start() truncates this file: same inode
    d.env["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino)
    entries = []

    def drain():
        while True:
            try:
                entries.append(_journal_entries(sock.recv(1 << 20)))
            except BlockingIOError:
                return

    def ended():
        drain()
        return any(re.match(r"episode \S+ ended", e.get("MESSAGE", "")) for e in entries)

    try:
        d.start()
        d.client.start_episode(max_steps=5)
        wait_until(ended, what="the episode's end line in the journal",
                   details=lambda: "journal: %s\nstderr:\n%s" % (entries, d.stderr()))
    finally:
        sock.close()
    with open(example_checkpoint, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    ready = [e for e in entries if e["MESSAGE"].startswith("ready:")]
    started = [e for e in entries if re.match(r"episode \S+ started", e["MESSAGE"])]
    assert len(ready) == 1 and len(started) == 1, entries
    for e in ready + started:
        assert e["SYSLOG_IDENTIFIER"] == "pacd" and e["PACD_ROBOT"] == "panda", e
        assert e["PACD_MODEL_SHA256"] == sha, e
    assert "PACD_EPISODE_ID" not in ready[0], ready[0]
    episode = started[0]["MESSAGE"].split()[1]
    assert started[0]["PACD_EPISODE_ID"] == episode and started[0]["PRIORITY"] == "6"
    end = next(e for e in entries if e["MESSAGE"].startswith("episode %s ended" % episode))
    assert end["PACD_EPISODE_ID"] == episode, end
    # the lines went to the journal, not (also) to stderr
    assert "ready:" not in d.stderr(), d.stderr()
