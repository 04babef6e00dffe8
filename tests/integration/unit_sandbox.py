#!/usr/bin/python3
"""Run a command under the process restrictions of a systemd unit, without systemd.

    unit_sandbox.py UNIT_FILE [DROP_IN.conf ...] -- COMMAND [ARGS...]

For tests on machines where systemd is not PID 1 (containers, CI). It applies
the [Service] settings the kernel enforces on the process itself, the ones a
program can break by needing something the unit forbids:

  UMask=                   umask(2)
  LimitRTPRIO=, LimitMEMLOCK=
                           setrlimit(2); where this process may not raise a
                           limit (no CAP_SYS_RESOURCE, e.g. in a container),
                           it keeps CAP_SYS_NICE (resp. CAP_IPC_LOCK) instead,
                           which the kernel accepts in place of the limit for
                           SCHED_FIFO (resp. mlockall), and says so on stderr
  CapabilityBoundingSet=   PR_CAPBSET_DROP of every other capability, ambient
                           set cleared (the command runs with only these)
  NoNewPrivileges=         PR_SET_NO_NEW_PRIVS
  MemoryDenyWriteExecute=  PR_SET_MDWE (no mapping both writable and
                           executable, no PROT_EXEC added later), kept across
                           execve
  SystemCallFilter=, SystemCallArchitectures=native,
  RestrictAddressFamilies= one seccomp filter (libseccomp, Debian's
                           python3-seccomp): the allowed system calls of the
                           unit's filter, expanded with `systemd-analyze
                           syscall-filter`; socket(2) only for the allowed
                           families; anything else KILLS the process (SIGSYS),
                           stricter than the unit's SystemCallErrorNumber=, so
                           a test sees it

Mount, user, device, network (IPAddress*) and /proc settings are not applied:
they need systemd (or namespaces this test does not build). Exit status 2 with a
message when the unit asks for something this script cannot apply.
"""
import ctypes
import os
import resource
import socket
import subprocess
import sys

PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
PR_SET_MDWE = 65
PR_MDWE_REFUSE_EXEC_GAIN = 1
CAP_IPC_LOCK = 14
CAP_SYS_NICE = 23
CAP_LAST = 63  # PR_CAPBSET_DROP of an unknown capability fails with EINVAL: skipped

CAP_NAMES = {"CAP_IPC_LOCK": CAP_IPC_LOCK, "CAP_SYS_NICE": CAP_SYS_NICE}


def unit_settings(paths):
    """Every setting of the unit and its drop-ins: (section, name) -> list of
    values in order (an empty assignment resets the list, as systemd does)."""
    out = {}
    for path in paths:
        section = None
        with open(path) as f:
            for line in f:
                s = line.strip()
                if not s or s[0] in "#;":
                    continue
                if s.startswith("["):
                    section = s.strip("[]")
                elif "=" in s:
                    k, v = (x.strip() for x in s.split("=", 1))
                    out[(section, k)] = [] if v == "" else out.get((section, k), []) + [v]
    return out


def service_settings(paths):
    """The [Service] settings of unit_settings(paths): name -> list of values."""
    return {k: v for (section, k), v in unit_settings(paths).items() if section == "Service"}


def boolean(values, default=False):
    if not values:
        return default
    return values[-1].lower() in ("1", "yes", "true", "on")


def syscall_groups():
    out = subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True,
                         text=True, check=True).stdout
    groups, cur = {}, None
    for line in out.splitlines():
        if line.startswith("@"):
            cur = line.split()[0]
            groups[cur] = []
        elif line.startswith("    ") and cur and not line.strip().startswith("#"):
            groups[cur].append(line.strip())
    return groups


def expand(name, groups):
    if not name.startswith("@"):
        return {name}
    if name not in groups:
        sys.exit("unit_sandbox: unknown system call group %s" % name)
    s = set()
    for m in groups[name]:
        s |= expand(m, groups)
    return s


def allowed_syscalls(values):
    """The allow list of SystemCallFilter= lines (the first one an allow list,
    later "~" lines remove, later plain lines add), as systemd combines them."""
    if not values:
        return None
    if values[0].startswith("~"):
        sys.exit("unit_sandbox: a deny-list SystemCallFilter= is not supported")
    groups = syscall_groups()
    allow = set()
    for v in values:
        deny = v.startswith("~")
        names = set()
        for n in v.lstrip("~").split():
            names |= expand(n, groups)
        allow = allow - names if deny else allow | names
    return allow


def main():
    argv = sys.argv[1:]
    if "--" not in argv:
        sys.exit(__doc__)
    sep = argv.index("--")
    files, cmd = argv[:sep], argv[sep + 1:]
    if not files or not cmd:
        sys.exit(__doc__)
    cfg = service_settings(files)
    libc = ctypes.CDLL(None, use_errno=True)

    def prctl(*args):
        if libc.prctl(*[ctypes.c_ulong(a) for a in args]) != 0:
            e = ctypes.get_errno()
            raise OSError(e, "prctl%r: %s" % (args, os.strerror(e)))

    if cfg.get("UMask"):
        os.umask(int(cfg["UMask"][-1], 8))

    keep = set()
    for v in cfg.get("CapabilityBoundingSet", []):
        for n in v.split():
            if n not in CAP_NAMES:
                sys.exit("unit_sandbox: capability %s not supported" % n)
            keep.add(CAP_NAMES[n])
    limits = (("LimitRTPRIO", resource.RLIMIT_RTPRIO, CAP_SYS_NICE),
              ("LimitMEMLOCK", resource.RLIMIT_MEMLOCK, CAP_IPC_LOCK))
    for key, res, standin in limits:
        if not cfg.get(key):
            continue
        v = cfg[key][-1]
        n = resource.RLIM_INFINITY if v == "infinity" else int(v)
        try:
            resource.setrlimit(res, (n, n))
        except (ValueError, OSError) as e:
            sys.stderr.write("unit_sandbox: cannot set %s=%s here (%s); keeping %s in its "
                             "place\n" % (key, v, e, {CAP_SYS_NICE: "CAP_SYS_NICE",
                                                      CAP_IPC_LOCK: "CAP_IPC_LOCK"}[standin]))
            keep.add(standin)

    if "CapabilityBoundingSet" in cfg:
        for cap in range(CAP_LAST + 1):
            if cap in keep:
                continue
            try:
                prctl(PR_CAPBSET_DROP, cap)
            except OSError as e:
                if e.errno != 22:  # EINVAL: no such capability on this kernel
                    raise
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)

    if boolean(cfg.get("NoNewPrivileges")):
        prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    if boolean(cfg.get("MemoryDenyWriteExecute")):
        prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0)

    allow = allowed_syscalls(cfg.get("SystemCallFilter", []))
    families = None
    if cfg.get("RestrictAddressFamilies"):
        fams = cfg["RestrictAddressFamilies"][-1].split()
        if fams[0].startswith("~"):
            sys.exit("unit_sandbox: a deny-list RestrictAddressFamilies= is not supported")
        families = [getattr(socket, f) for f in fams]
    if allow is not None or families is not None:
        import seccomp
        f = seccomp.SyscallFilter(defaction=seccomp.KILL_PROCESS)
        # the filter holds only the native architecture
        # (SystemCallArchitectures=native): other ABIs' calls are killed
        if allow is None:
            f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
        for name in sorted(allow or ()):
            if name == "socket" and families is not None:
                continue
            try:
                f.add_rule(seccomp.ALLOW, name)
            except (RuntimeError, ValueError):
                pass  # a name this libseccomp or architecture does not know
        if families is not None:
            if allow is None:
                sys.exit("unit_sandbox: RestrictAddressFamilies= without SystemCallFilter= "
                         "is not supported")
            for fam in families:
                f.add_rule(seccomp.ALLOW, "socket", seccomp.Arg(0, seccomp.EQ, int(fam)))
        f.load()
    os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    main()
