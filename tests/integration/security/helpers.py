"""The escape suite's machinery: the attack binary, the attempt protocol, and a snapshot of
everything on the host that an escape could change.

An attack is a shell script run as root inside a fresh container. Each attempt in it is written
``try LABEL CMD...`` and prints one line ``@LABEL rc=N <output>``; the attack binary
(``attack.c``) prints ``errno=N`` itself, busybox tools print the C library's message
("Operation not permitted"), which ``Attempt.errno`` maps back to a number.
"""

from __future__ import annotations

import errno as E
import hashlib
import os
import re
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

POLICY_LEVELS = ("jail", "container")
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
ATTACK_SOURCE = HERE / "attack.c"
TOOLS_DIR = "/x"  # where the attack binary is bound inside the container
ATTACK = f"{TOOLS_DIR}/attack"

# Errnos a write to a masked, read-only or foreign-owned file may fail with.
WRITE_DENIED = {E.EPERM, E.EACCES, E.EROFS}

PRELUDE = r"""try() {
    _l=$1; shift
    _o=$("$@" 2>&1); _r=$?
    printf '@%s rc=%s %s\n' "$_l" "$_r" "$(printf '%s' "$_o" | tr '\n' ' ')"
}
"""

# Every strerror text, longest first, so "Operation not permitted" never matches a prefix.
_MESSAGES = sorted(((os.strerror(n), n) for n in range(1, 134)), key=lambda m: -len(m[0]))
# busybox's own wording: mount(8) says this for EPERM and for EACCES alike (the attack
# binary's "mount" probe gives the exact errno of the same call).
_MESSAGES.insert(0, ("permission denied (are you root?)", E.EPERM))


# ── the attack binary ──────────────────────────────────────────────────────────────────
def build_attack(dest: Path) -> Path:
    """Compile ``attack.c`` statically into ``dest`` (world-readable: the container's root
    is an unprivileged host uid)."""
    dest.mkdir(parents=True, exist_ok=True)
    os.chmod(dest, 0o755)
    out = dest / "attack"
    cc = os.environ.get("CC", "cc")
    r = subprocess.run([cc, "-static", "-O2", "-Wall", "-o", str(out),
                        str(ATTACK_SOURCE)], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"cannot build {ATTACK_SOURCE.name}: {r.stderr.strip()[:2000]}")
    os.chmod(out, 0o755)
    return out


# ── the attempt protocol ───────────────────────────────────────────────────────────────
class Attempt:
    """One ``try LABEL CMD`` line: exit status, errno (0 when it worked) and output."""

    def __init__(self, label: str, rc: int, text: str) -> None:
        self.label, self.rc, self.text = label, rc, text.strip()
        self.fields = dict(re.findall(r"(\w+)=(\S*)", self.text))

    @property
    def errno(self) -> int:
        """errno=N from the attack binary, else the message's errno, 0 on success, -1 if
        the command failed without a recognisable message."""
        if "errno" in self.fields:
            return int(self.fields["errno"])
        if self.rc == 0:
            return 0
        for message, number in _MESSAGES:
            if message in self.text:
                return number
        return -1

    @property
    def ok(self) -> bool:
        return self.errno == 0

    def __repr__(self) -> str:
        name = E.errorcode.get(self.errno, str(self.errno)) if self.errno else "success"
        return f"{self.label}: {name} (rc={self.rc}) {self.text[:300]!r}"


def parse_attempts(stdout: str) -> dict[str, Attempt]:
    out = {}
    for line in stdout.splitlines():
        m = re.match(r"@(\S+) rc=(\d+) ?(.*)$", line)
        if m:
            out[m.group(1)] = Attempt(m.group(1), int(m.group(2)), m.group(3))
    return out


class Outcome:
    """A finished attack: the runtime's exit status, its output and the parsed attempts."""

    def __init__(self, level: str, proc: subprocess.CompletedProcess) -> None:
        self.level = level
        self.returncode = proc.returncode
        self.stdout, self.stderr = proc.stdout, proc.stderr
        self.attempts = parse_attempts(proc.stdout)

    def __getitem__(self, label: str) -> Attempt:
        assert label in self.attempts, (
            f"attempt {label!r} did not report (container exit {self.returncode}); "
            f"stdout={self.stdout[-1500:]!r} stderr={self.stderr[-1500:]!r}")
        return self.attempts[label]

    def __contains__(self, label: str) -> bool:
        return label in self.attempts


def name(errnos: int | set[int]) -> str:
    nums = sorted(errnos) if isinstance(errnos, set) else [errnos]
    return "|".join(E.errorcode.get(n, "success" if n == 0 else str(n)) for n in nums)


def assert_denied(outcome: Outcome, label: str, errnos: int | set[int] = E.EPERM) -> None:
    """The attempt failed, with one of ``errnos``."""
    want = errnos if isinstance(errnos, set) else {errnos}
    got = outcome[label]
    assert got.errno in want, f"[{outcome.level}] expected {name(want)}, got {got!r}"


def assert_succeeded(outcome: Outcome, label: str) -> None:
    got = outcome[label]
    assert got.ok, f"[{outcome.level}] expected success, got {got!r}"


# ── the host's state ───────────────────────────────────────────────────────────────────
SYSCTLS = (
    "kernel/core_pattern", "kernel/hostname", "kernel/domainname", "kernel/sysrq",
    "kernel/modprobe", "kernel/panic", "kernel/randomize_va_space", "vm/overcommit_memory",
    "net/ipv4/ip_forward", "net/ipv4/conf/all/forwarding", "net/ipv6/conf/all/forwarding",
    "net/ipv4/ping_group_range",
)
SYS_FILES = ("/sys/kernel/uevent_helper", "/sys/kernel/mm/transparent_hugepage/enabled")


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _mounts() -> list[tuple]:
    """(mount point, root, options, fs type, source, superblock options) of each mount."""
    out = []
    for line in (_read("/proc/self/mountinfo") or "").splitlines():
        pre, _, post = line.partition(" - ")
        f, g = pre.split(), post.split()
        out.append((f[4], f[3], f[5], *g[:3]))
    return sorted(out)


def _dev() -> list[tuple]:
    out = []
    for entry in os.listdir("/dev"):
        try:
            st = os.lstat(f"/dev/{entry}")
        except FileNotFoundError:
            continue
        out.append((entry, stat.S_IFMT(st.st_mode), st.st_rdev))
    return sorted(out)


def _ip(*args: str) -> list[str]:
    r = subprocess.run(["ip", "-o", *args], capture_output=True, text=True, check=True)
    lines = (re.sub(r"\s+(valid_lft|preferred_lft|expires)\s+\S+", "", line).strip()
             for line in r.stdout.splitlines())
    return sorted(line for line in lines if line)


def _network() -> dict[str, list[str]]:
    """The host's links, addresses, routes and rules, without the host ends of veth pairs
    whose peer lives in another namespace: those belong to running containers (anyone's on
    this machine; the leak check after each test catches ours)."""
    links = _ip("link", "show")
    veths = {m.group(1) for line in links if (m := re.match(r"\d+: ([^:@]+)@if\d+:", line))}

    def host_only(lines: list[str]) -> list[str]:
        return [line for line in lines
                if not any(re.search(rf"(dev|\d:) {re.escape(v)}\b", line) for v in veths)]

    return {"links": host_only(links), "addrs": host_only(_ip("addr", "show")),
            "routes": host_only(_ip("route", "show") + _ip("-6", "route", "show")),
            "rules": _ip("rule", "show")}


def _procs() -> dict[int, tuple[int, str, str]]:
    """pid -> (ppid, state, cmdline) for every process on the host."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        out[int(entry)] = (int(fields[1]), fields[0], cmd)
    return out


def descendants(root: int, procs: dict | None = None) -> dict[int, str]:
    """Live (non-zombie) descendants of ``root``: pid -> command line."""
    procs = _procs() if procs is None else procs
    kids: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in procs.items():
        kids.setdefault(ppid, []).append(pid)
    out, todo = {}, list(kids.get(root, []))
    while todo:
        pid = todo.pop()
        if procs[pid][1] != "Z":
            out[pid] = procs[pid][2]
        todo.extend(kids.get(pid, []))
    return out


def _cgroup_mounts() -> list[tuple[str, set[str]]]:
    """(mount point, controllers or {"cgroup2"}) of the host's cgroup hierarchies."""
    out = []
    for mp, _root, _opts, fstype, _src, superopts in _mounts():
        if fstype == "cgroup2":
            out.append((mp, {"cgroup2"}))
        elif fstype == "cgroup":
            out.append((mp, set(superopts.split(","))))
    return out


def own_cgroup_dirs() -> list[str]:
    """The directories of the cgroups this process is in, one per hierarchy."""
    out = []
    mounts = _cgroup_mounts()
    for line in (_read("/proc/self/cgroup") or "").splitlines():
        _id, ctrls, path = line.split(":", 2)
        want = set(ctrls.split(",")) if ctrls else {"cgroup2"}
        for mp, have in mounts:
            if want <= have:
                out.append(os.path.normpath(mp + "/" + path))
                break
    return sorted(set(out))


def _cgroups(dirs: list[str]) -> dict[str, str | None]:
    """Every cgroup under ``dirs`` with its notify_on_release, plus each hierarchy's
    release_agent and its root's notify_on_release (the host-wide escape knobs)."""
    out: dict[str, str | None] = {}
    for top in dirs:
        for path, subdirs, _files in os.walk(top):
            out[path] = _read(f"{path}/notify_on_release")
            subdirs.sort()
    for mp, ctrls in _cgroup_mounts():
        if "cgroup2" not in ctrls:
            out[f"{mp}/release_agent"] = _read(f"{mp}/release_agent")
            out[mp] = _read(f"{mp}/notify_on_release")
    return out


class PrivateCgroups:
    """A fresh child of each of this process's cgroups, one per hierarchy, for one run.

    The runtime is started inside them (``enter`` as the child's preexec hook), so whatever
    cgroups it makes land under them, and "the cgroups under the test's own cgroups" means
    exactly these subtrees -- not the whole hierarchy, where other work on the machine comes
    and goes. ``remove`` deletes them and returns what the run left behind.
    """

    def __init__(self) -> None:
        token = f"jsec-{os.getpid()}-{os.urandom(3).hex()}"
        self.dirs = [os.path.join(d, token) for d in own_cgroup_dirs()]

    def create(self) -> PrivateCgroups:
        for d in self.dirs:
            os.mkdir(d)
            for knob in ("cpuset.cpus", "cpuset.mems"):  # v1 cpuset starts empty
                if os.path.exists(f"{d}/{knob}"):
                    with open(f"{os.path.dirname(d)}/{knob}") as src, \
                            open(f"{d}/{knob}", "w") as dst:
                        dst.write(src.read())
        return self

    def enter(self) -> None:
        pid = str(os.getpid())
        for d in self.dirs:
            with open(f"{d}/cgroup.procs", "w") as f:
                f.write(pid)

    def remove(self) -> list[str]:
        """rmdir everything, deepest first; the subdirectories found are the leftovers."""
        leftovers = []
        for top in self.dirs:
            for path, _subdirs, _files in sorted(os.walk(top), key=lambda w: -len(w[0])):
                if path != top:
                    leftovers.append(path)
                for _ in range(50):
                    try:
                        os.rmdir(path)
                        break
                    except FileNotFoundError:
                        break
                    except OSError:  # EBUSY: a process still exiting
                        time.sleep(0.02)
        return leftovers


def _init() -> tuple:
    with open("/proc/1/stat") as f:
        start = f.read().rsplit(")", 1)[1].split()[19]
    return _read("/proc/1/cmdline"), start


def host_state(cgroup_dirs: list[str] | None = None, root_pid: int | None = None) -> dict:
    """Everything an escape could have changed on the host, comparable with ``==``.

    Processes are filtered to the ones the test could have touched: the descendants of
    ``root_pid`` (the test process: its jailer runs, its sleepers); cgroups to the subtrees
    ``cgroup_dirs`` (default: this process's own cgroups) and the host-wide release knobs.
    The clock is kept apart (``clock``) and compared with a tolerance by ``diff_states``.
    """
    root_pid = os.getpid() if root_pid is None else root_pid
    cgroup_dirs = own_cgroup_dirs() if cgroup_dirs is None else cgroup_dirs
    state = {
        "mounts": _mounts(),
        "dev": _dev(),
        "modules": sorted(line.split()[0] for line in
                          (_read("/proc/modules") or "").splitlines()),
        **_network(),
        "sysctls": {p: _read(f"/proc/sys/{p}") for p in SYSCTLS},
        "sysfs": {p: _read(p) for p in SYS_FILES},
        "hostname": socket.gethostname(),
        "init": _init(),
        "pids": descendants(root_pid),
        "cgroups": _cgroups(cgroup_dirs),
    }
    state["clock"] = (time.time(), time.monotonic())
    return state


CLOCK_TOLERANCE = 1.0  # seconds of disagreement between wall clock and monotonic clock


def diff_states(before: dict, after: dict, ignore: tuple[str, ...] = ()) -> dict:
    """What changed, key by key: {key: (removed, added)} or a message for the clock."""
    out: dict = {}
    for key in before:
        if key in ignore or key == "clock":
            continue
        a, b = before[key], after[key]
        if a == b:
            continue
        if isinstance(a, dict):
            removed = {k: a[k] for k in a if k not in b or a[k] != b[k]}
            added = {k: b[k] for k in b if k not in a or a[k] != b[k]}
        elif isinstance(a, list):
            removed = [x for x in a if x not in b]
            added = [x for x in b if x not in a]
        else:
            removed, added = a, b
        out[key] = (removed, added)
    if "clock" not in ignore:
        (real0, mono0), (real1, mono1) = before["clock"], after["clock"]
        skew = (real1 - real0) - (mono1 - mono0)
        if abs(skew) > CLOCK_TOLERANCE:
            out["clock"] = f"the wall clock jumped by {skew:+.3f} s"
    return out


def assert_host_unchanged(before: dict, ignore: tuple[str, ...] = (),
                          cgroup_dirs: list[str] | None = None, settle: float = 2.0) -> None:
    """Compare the host with ``before``; transient differences (a process still exiting, a
    concurrent run elsewhere on the machine) get ``settle`` seconds to go away."""
    deadline = time.monotonic() + settle
    while True:
        diff = diff_states(before, host_state(cgroup_dirs), ignore)
        if not diff or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not diff, f"the attack changed the host: {diff}"


# ── the runtime's binaries (CVE-2019-5736: overwriting the runtime from inside) ─────────
def runtime_binaries(data_dir: Path) -> list[Path]:
    """Executables of the runtime and of what it puts in containers."""
    paths = [Path(sys.executable).resolve(), Path(sys.executable).parent / "jailer",
             Path(os.path.realpath("/bin/busybox")),
             data_dir / "images" / "busybox" / "rootfs" / "bin" / "busybox"]
    paths += sorted((REPO / "jailer").rglob("*.so"))  # the cffi modules of every layer
    paths += sorted((data_dir / "libexec").glob("jailer-init-*"))
    return [p for p in paths if p.is_file()]


def sha256s(paths: list[Path]) -> dict[str, str]:
    out = {}
    for p in paths:
        with open(p, "rb") as f:
            out[str(p)] = hashlib.sha256(f.read()).hexdigest()
    return out


# ── capabilities ───────────────────────────────────────────────────────────────────────
CAPS = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
    "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN",
    "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE",
    "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME",
    "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ",
    "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)
# What the jail keeps: Docker's default set minus MKNOD and NET_RAW.
JAIL_CAPS = {"CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
             "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "AUDIT_WRITE", "SETFCAP"}
# What the issue names as dropped (the equality with JAIL_CAPS says the rest).
DROPPED_CAPS = {"SYS_ADMIN", "SYS_MODULE", "MKNOD", "NET_ADMIN", "NET_RAW", "SYS_TIME",
                "SYS_BOOT", "SYS_RAWIO", "SYS_PTRACE", "DAC_READ_SEARCH", "SYS_PACCT",
                "BPF", "PERFMON", "SYSLOG", "MAC_ADMIN", "SYS_RESOURCE"}


def cap_names(mask: int | str) -> set[str]:
    mask = int(mask, 16) if isinstance(mask, str) else mask
    return {CAPS[i] if i < len(CAPS) else f"CAP_{i}" for i in range(64) if mask >> i & 1}
