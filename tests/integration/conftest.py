"""Fixtures for the integration tests: they start the real pacd binary.

Environment: PACD_BUILD_DIR (meson build dir; default ./build),
PACD_SOURCE_DIR (repository; default two levels up from here),
PACD_TEST_TIME_FACTOR (multiplies every deadline; tests/meson.build sets it
larger for sanitizer builds), PACD_TEST_KEEP_TMP=1 (keep pytest's temporary
directory for a post-mortem instead of removing it at the end of the run).

Shared helpers for every integration test (they must pass on a loaded
2-core machine, so they never time things):
  wait_until(pred, timeout, what, feed=None, details=None): poll pred()
      until it returns something truthy (returned); fail after
      scaled(timeout) seconds with `what` and details() in the message.
  scaled(seconds): a deadline multiplied by PACD_TEST_TIME_FACTOR.
  attach_log(request_or_item, label, path): print that file in the report
      when the test fails (the `daemon` fixture does it for pacd's stderr).
  every(period_s, fn): a feed that calls fn() at most every period_s.
  Daemon.wait_for(pred, timeout, what, feed): wait_until on pacd's status.
  Daemon.wait_delivered(send, counter): a new PUB socket loses messages until
      connected and subscribed: send() until pacd's counter(status) grows.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

SRC = os.environ.get("PACD_SOURCE_DIR") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.abspath(os.environ.get("PACD_BUILD_DIR") or os.path.join(SRC, "build"))
os.environ["PACD_BUILD_DIR"] = BUILD
sys.path.insert(0, os.path.join(SRC, "clients"))
sys.path.insert(0, os.path.join(SRC, "policy", "torch"))
PY = "/usr/bin/python3"

import pacd_client  # noqa: E402

PACD = os.path.join(BUILD, "daemon", "pacd")

TIME_FACTOR = max(1.0, float(os.environ.get("PACD_TEST_TIME_FACTOR") or 1))


def scaled(seconds):
    """A deadline of `seconds` on a normal build, longer on slow builds."""
    return seconds * TIME_FACTOR


def wait_until(pred, timeout=30.0, what="condition", feed=None, details=None, interval=0.02):
    """Poll pred() until it returns a truthy value, which is returned; `feed()`
    runs before each poll. Fails (AssertionError) after scaled(timeout) s,
    naming `what` and adding details() (e.g. the last status, a stderr)."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        if feed:
            feed()
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            extra = details() if details else ""
            raise AssertionError("timed out after %.0f s waiting for %s%s" %
                                 (scaled(timeout), what, "\n" + extra if extra else ""))
        time.sleep(interval)


def every(period_s, fn):
    """A feed for wait_until/wait_for: calls fn() when called, at most once
    every period_s seconds."""
    last = [None]

    def feed():
        now = time.monotonic()
        if last[0] is None or now - last[0] >= period_s:
            fn()
            last[0] = now
    return feed


# ---- reports and temporary files ----

def attach_log(node, label, path):
    """Print file `path` under `label` in the report if the test fails.
    node: a pytest request (fixture) or item."""
    item = getattr(node, "node", node)
    if not hasattr(item, "_pacd_logs"):
        item._pacd_logs = []
    item._pacd_logs.append((label, path))


def _tail(path, limit=20000):
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except OSError as e:
        return "(cannot read %s: %s)" % (path, e)
    return text if len(text) <= limit else "...\n" + text[-limit:]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for label, path in getattr(item, "_pacd_logs", []):
            rep.sections.append((label, _tail(path)))


def pytest_configure(config):
    # pytest keeps the temporary directories of its last 3 runs under
    # /tmp/pytest-of-USER; ours go to one directory removed at the end
    if not config.option.basetemp and not hasattr(config, "workerinput"):
        config._pacd_tmp = tempfile.mkdtemp(prefix="pacd-pytest-")
        config.option.basetemp = config._pacd_tmp


def pytest_unconfigure(config):
    tmp = getattr(config, "_pacd_tmp", None)
    if tmp and os.environ.get("PACD_TEST_KEEP_TMP") != "1":
        shutil.rmtree(tmp, ignore_errors=True)

# Tests whose assertions need the loop to keep real time (PAC inference,
# rendering at 20 Hz): a ThreadSanitizer build runs 5-20x slower and misses
# every deadline, so they are skipped there (deploy/run-tests.sh sets
# PACD_SANITIZER=thread); the plain and ASan builds run them.
realtime = pytest.mark.skipif(os.environ.get("PACD_SANITIZER") == "thread",
                              reason="needs real-time speed; ThreadSanitizer build is too slow")
PACCTL = os.path.join(BUILD, "clients", "pacctl")


free_port = pacd_client.free_port


def make_example_checkpoint(robot, tmp_path_factory):
    """The example MLP checkpoint of `robot` made by policy/torch
    (pacd_torch.make_example, its defaults: seed 0). The build makes both
    (tests/meson.build, in $PACD_EXAMPLE_CKPT_DIR) once instead of every
    pytest file training its own; read only. Made here when that is unset
    or lacks it (pytest run by hand)."""
    built = os.path.join(os.environ.get("PACD_EXAMPLE_CKPT_DIR", ""),
                         "example-%s.safetensors" % robot)
    if os.environ.get("PACD_EXAMPLE_CKPT_DIR") and os.path.exists(built):
        return built
    out = tmp_path_factory.mktemp("ckpt") / ("example-%s.safetensors" % robot)
    env = dict(os.environ, PYTHONPATH=os.path.join(SRC, "policy", "torch"))
    subprocess.run([PY, "-m", "pacd_torch.make_example", "--robot", robot, "--out", str(out)],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    return str(out)


@pytest.fixture(scope="session")
def example_checkpoint(tmp_path_factory):
    """The example Panda MLP checkpoint made by policy/torch."""
    return make_example_checkpoint("panda", tmp_path_factory)


MAX_AGE_MS = int(scaled(500))


def write_config(path, checkpoint, logdir, ports, cameras=("front",), extra=""):
    # max_age_ms: a frame older than this makes a step stale. Long enough that
    # a publisher starved for a moment by a loaded machine does not; the
    # staleness tests wait for it, whatever it is.
    cams = "".join("[camera.%%s]\nwidth = 128\nheight = 128\nmax_age_ms = %d\n\n" % MAX_AGE_MS % c
                   for c in cameras)
    text = f"""[pacd]
rate_hz = 20
lock_memory = false

[policy]
checkpoint = {checkpoint}

[robot]
name = panda
backend = sim

[ingest]
camera_bind = tcp://127.0.0.1:{ports['camera']}
state_bind = tcp://127.0.0.1:{ports['state']}
max_message_bytes = 1048576

{cams}[episode]
max_steps = 400

[logger]
directory = {logdir}
fsync_interval_ms = 200

[telemetry]
bind = tcp://127.0.0.1:{ports['telemetry']}
rate_hz = 10

[control]
bind = tcp://127.0.0.1:{ports['control']}
"""
    with open(path, "w") as f:
        f.write(merge_ini(text, extra))
    return path


def merge_ini(text, extra):
    """text with the keys of `extra` (INI text) set: a key the text has in that
    section is replaced in place, others are added to their section (pacd
    refuses a key given twice)."""
    sections, order, cur = {}, [], None
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("[") and s.endswith("]"):
            cur = s[1:-1]
            if cur not in sections:
                sections[cur] = []
                order.append(cur)
            continue
        sections.setdefault(cur, [])
        if cur not in order:
            order.insert(0, cur)
        sections[cur].append(line)
    cur = None
    for line in extra.splitlines():
        s = line.strip()
        if s.startswith("[") and s.endswith("]"):
            cur = s[1:-1]
            if cur not in sections:
                sections[cur] = []
                order.append(cur)
            continue
        if "=" not in s or s.startswith(("#", ";")):
            sections.setdefault(cur, []).append(line)
            continue
        key = s.split("=", 1)[0].strip()
        lines = sections[cur]
        for i, old in enumerate(lines):
            if "=" in old and old.split("=", 1)[0].strip() == key and \
                    not old.strip().startswith(("#", ";")):
                lines[i] = line
                break
        else:
            lines.append(line)
    out = []
    for sec in order:
        if sec is not None:
            out.append("[%s]" % sec)
        out.extend(sections[sec])
    return "\n".join(out) + "\n"


def roomy(pub, endpoint, hwm=1000):
    """pacd_client's publishers keep at most 4 messages unsent (SNDHWM 4: a
    live camera drops stale frames); on a loaded machine that drops messages
    a test counts on. Give `pub` a new PUB socket that keeps up to `hwm`."""
    import zmq
    pub.sock.close(0)
    pub.sock = pub.ctx.socket(zmq.PUB)
    pub.sock.setsockopt(zmq.LINGER, 0)
    pub.sock.setsockopt(zmq.SNDHWM, hwm)
    pub.sock.connect(endpoint)
    return pub


CLIENT_TIMEOUT_S = 5  # a control request pacd has not answered by then failed


class Daemon:
    """A running pacd process with clients bound to its ports."""

    def __init__(self, tmp_path, checkpoint, cameras=("front",), extra="", env=None,
                 client_keys=None, wrap=()):
        # client_keys: dict(key=NAME_secret, server_key=pacd's public cert)
        # for the daemon's own control client and telemetry() (CURVE)
        self.client_keys = client_keys or {}
        self.logdir = str(tmp_path / "episodes")
        self._config_args = (str(tmp_path / "pacd.conf"), checkpoint, self.logdir, cameras, extra)
        self._new_ports()
        n = 0
        while os.path.exists(str(tmp_path / ("pacd-%d.stderr" % n))):
            n += 1
        self.stderr_path = str(tmp_path / ("pacd-%d.stderr" % n))
        open(self.stderr_path, "w").close()
        self.env = dict(os.environ, **(env or {}))
        self.wrap = list(wrap)  # a command pacd runs under (e.g. setpriv ... --)
        self.proc = None
        self.client = None
        self.pubs = []

    def _new_ports(self):
        path, checkpoint, logdir, cameras, extra = self._config_args
        self.ports = {k: free_port() for k in ("camera", "state", "telemetry", "control")}
        self.config = write_config(path, checkpoint, logdir, self.ports, cameras, extra)

    def ep(self, name):
        return "tcp://127.0.0.1:%d" % self.ports[name]

    def start(self, wait=True):
        # a port free_port() found can be taken by another socket before pacd
        # binds it: then pacd exits with "Address already in use"; retry with
        # new ports (only when waiting, where the exit is seen)
        for attempt in range(3):
            self._err = open(self.stderr_path, "w")
            self.proc = subprocess.Popen(self.wrap + [PACD, "--config", self.config],
                                         stderr=self._err, env=self.env)
            self.client = pacd_client.Client(self.ep("control"),
                                             timeout_ms=int(scaled(CLIENT_TIMEOUT_S) * 1000),
                                             **self.client_keys)
            if not wait:
                return self
            # start-up loads the checkpoint (and MuJoCo, EGL): slow under a
            # sanitizer on a loaded machine
            deadline = time.monotonic() + scaled(60)
            while True:
                if self.proc.poll() is not None:
                    err = self.stderr()
                    if "Address already in use" in err and attempt < 2:
                        break
                    raise RuntimeError("pacd exited with %s: %s" % (self.proc.returncode, err))
                try:
                    self.client.status()
                    return self
                except pacd_client.PacdError:
                    if time.monotonic() > deadline:
                        raise
            self.client.close()
            self._err.close()
            self._new_ports()
        return self

    def stderr(self):
        with open(self.stderr_path) as f:
            return f.read()

    def camera(self, name="front"):
        p = roomy(pacd_client.CameraPublisher(name, 128, 128, endpoint=self.ep("camera")),
                  self.ep("camera"))
        self.pubs.append(p)
        return p

    def state_publisher(self):
        p = roomy(pacd_client.StatePublisher(endpoint=self.ep("state")), self.ep("state"))
        self.pubs.append(p)
        return p

    def telemetry(self, count=1):
        return list(pacd_client.watch(self.ep("telemetry"), count=count, timeout_s=scaled(10),
                                      **self.client_keys))

    def wait_for(self, predicate, timeout=30.0, what="condition", feed=None):
        """Poll status until predicate(status) holds and return that status;
        `feed()` runs between polls (e.g. to publish camera frames). Fails
        after scaled(timeout) s with the last status and pacd's stderr."""
        last = [None]

        def poll():
            last[0] = self.client.status()
            return last[0] if predicate(last[0]) else None

        return wait_until(poll, timeout, what, feed=feed,
                          details=lambda: "last status:\n%s\nstderr:\n%s" % (last[0], self.stderr()))

    def wait_delivered(self, send, counter, what="publisher connected", period_s=0.1):
        """A new PUB socket loses what it sends until its connection and
        pacd's subscription are up: call send() every period_s until
        counter(status) grows (send something pacd counts). Returns the
        status after, for the test's baselines."""
        base = counter(self.client.status())
        return self.wait_for(lambda s: counter(s) > base, what=what, feed=every(period_s, send))

    def logs(self):
        if not os.path.isdir(self.logdir):
            return []
        return sorted(os.path.join(self.logdir, f) for f in os.listdir(self.logdir) if f.endswith(".mcap"))

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=30):
        return self.proc.wait(timeout=scaled(timeout))

    def stop(self):
        for p in self.pubs:
            p.close()
        self.pubs = []
        if self.client:
            self.client.close()
            self.client = None
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=scaled(30))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_err", None):
            self._err.close()


class FrameFeeder:
    """Publishes a camera frame whenever called and at least period_s has passed."""

    def __init__(self, pub, period_s=0.02):
        self.pub, self.period_s, self.last, self.n = pub, period_s, 0.0, 0
        self.img = pacd_client.synthetic_image(128, 128, 0.0)

    def __call__(self):
        now = time.monotonic()
        if now - self.last >= self.period_s:
            self.pub.send(self.img)
            self.last = now
            self.n += 1


@pytest.fixture
def daemon(request, tmp_path, example_checkpoint):
    """Factory: daemon(cameras=..., extra=..., env=...) -> started Daemon.
    A failing test's report prints each daemon's stderr."""
    started = []

    def make(start=True, wait=True, **kw):
        d = Daemon(tmp_path, kw.pop("checkpoint", example_checkpoint), **kw)
        started.append(d)
        attach_log(request, "pacd stderr (%s)" % d.stderr_path, d.stderr_path)
        if start:
            d.start(wait=wait)
        return d

    yield make
    for d in started:
        d.stop()


def pacctl(*args, check=False):
    return subprocess.run([PACCTL, *args], capture_output=True, text=True, check=check)
