"""Real OCI clients drive the runtime: podman and containerd, each private to the test session,
run containers with runc and with jailer, and the two must behave alike.

Isolation (a test leaves nothing on the host):
- All engine commands run in one private mount namespace of the session (held by a sleeping
  process) with its own tmpfs on /run and /dev/shm. podman 4.3 as root hard-codes /run/netns
  (which it bind-mounts shared onto itself on first use and never unmounts) and
  /run/containers/networks; runc keeps its state in /run/runc; containerd's shims keep their
  sockets and runc state under /run/containerd whatever --state says. In there all of that lives
  and dies with the namespace, and other test sessions on this machine never see it.
- podman: own --root/--runroot/--tmpdir, vfs storage (no host mounts), cgroupfs manager (crun,
  podman's default runtime, refuses this hybrid host; systemd is not running here), file events,
  file locks (not /dev/shm), its own network config dir, no network unless a test asks for
  slirp4netns, and default_ulimits within this host's hard limits (no CAP_SYS_RESOURCE here, so
  podman's default nofile=1048576 fails for every runtime).
- containerd: own root, state, socket and config; its opt plugin and CNI config dir redirected.
- cgroups: every container goes below one session cgroup under this process's own cgroup.
- The runtime podman/containerd call is a wrapper named like the real binary (podman decides
  by basename, e.g. it passes --log-format=json only to runtimes it knows): it appends each
  argv to a log and execs the runtime. Those logs are the CLI that jailer must accept.

After every test: no containers or tasks left in the engine, none of our processes (conmon,
slirp4netns, shims, `podman container cleanup`, container processes), no new mounts or files in
the namespace's /run, no new cgroups below the session cgroup (which must itself survive), no new
nft tables, no new records in jailer's default data dir; on top of the mounts/children/links/
cgroups check of tests/conftest.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
JAILER = str(Path(sys.executable).parent / "jailer")
RUNC = shutil.which("runc") or "/usr/sbin/runc"
RUNTIMES = ["runc", "jailer"]
BINARIES = {"runc": RUNC, "jailer": JAILER}
IMAGE = "localhost/jailer-busybox:latest"
SETUP = REPO / "scripts" / "interop-setup"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "interop: real OCI clients (podman, containerd) drive the runtime")


# ── tools ────────────────────────────────────────────────────────────────────────────────
def ensure_tools(*tools: str) -> None:
    """Install what is missing with scripts/interop-setup; skip only if that cannot work."""
    missing = [t for t in tools if not shutil.which(t)]
    if not missing:
        return
    why = "not root"
    if os.geteuid() == 0:
        r = subprocess.run([str(SETUP)], capture_output=True, text=True, timeout=900)
        why = (r.stderr or r.stdout).strip()[-400:] or f"exit {r.returncode}"
        missing = [t for t in tools if not shutil.which(t)]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installable here ({SETUP.name}: {why})")


def sh(*argv: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, text=True, capture_output=True, timeout=timeout,
                          stdin=kw.pop("stdin", subprocess.DEVNULL), **kw)


# ── the runtime under test, behind an argv-logging wrapper ──────────────────────────────
WRAPPER = """#!/bin/bash
# interop tests: log how the engine calls the runtime, then become the runtime
printf '%s\\n' "$(printf '%q ' "$@")" >> {log}
exec {binary} "$@"
"""

# runc's global options that take a value (the verb is the first other word)
GLOBAL_WITH_VALUE = {"--root", "--log", "--log-format", "--criu", "--rootless"}


@dataclass
class Runtime:
    name: str                # "runc" or "jailer"
    binary: str              # the real runtime
    wrapper: str             # what the engines are given: logs argv, execs binary
    log: Path

    @classmethod
    def make(cls, base: Path, name: str, binary: str, tag: str = "") -> Runtime:
        d = base / f"runtime-{name}{tag}"
        d.mkdir(parents=True, exist_ok=True)
        log = d / "argv.log"
        log.touch()
        wrapper = d / Path(binary).name
        wrapper.write_text(WRAPPER.format(log=shlex.quote(str(log)),
                                          binary=shlex.quote(binary)))
        wrapper.chmod(0o755)
        return cls(name, binary, str(wrapper), log)

    def mark(self) -> int:
        return self.log.stat().st_size

    def calls(self, since: int = 0) -> list[list[str]]:
        with open(self.log, "rb") as f:
            f.seek(since)
            lines = f.read().decode(errors="replace").splitlines()
        out = []
        for line in lines:
            try:
                out.append(shlex.split(line))
            except ValueError:
                out.append([line])
        return out

    def verbs(self, since: int = 0) -> list[str]:
        out = []
        for argv in self.calls(since):
            i = 0
            while i < len(argv) and argv[i].startswith("-"):
                i += 2 if argv[i] in GLOBAL_WITH_VALUE else 1
            out.append(argv[i] if i < len(argv) else "")
        return out


@pytest.fixture(scope="session")
def interop_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("interop")
    d.chmod(0o755)
    return d


@pytest.fixture(params=RUNTIMES)
def runtime(request, interop_dir) -> Runtime:
    return Runtime.make(interop_dir, request.param, BINARIES[request.param])


# ── a private mount namespace for the engines ──────────────────────────────────────────
class MountNamespace:
    """Held by a sleeping process: own tmpfs on /run and /dev/shm, and /run/netns already the
    shared self-bind mount podman would otherwise make (and keep) on first use."""

    SETUP = ("mount -t tmpfs -o mode=0755 interop-run /run"
             " && mount -t tmpfs -o mode=1777 interop-shm /dev/shm"
             " && mkdir /run/netns && mount --bind /run/netns /run/netns"
             " && mount --make-shared /run/netns"
             " && echo ready && exec sleep infinity")

    def __init__(self):
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", self.SETUP],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            self.stop()
            raise RuntimeError("could not set up the private mount namespace")
        self.pid = self.proc.pid
        self.root = Path(f"/proc/{self.pid}/root")

    def cmd(self, *argv: str) -> list[str]:
        # setns() into a mount namespace resets the cwd to its root: callers use absolute paths
        return ["nsenter", f"--mount=/proc/{self.pid}/ns/mnt", "--", *argv]

    def mounts(self) -> list[str]:
        with open(f"/proc/{self.pid}/mountinfo") as f:
            return sorted(f"{line.split()[4]} {line.split(' - ')[1].split()[0]}" for line in f)

    def run_files(self) -> set[str]:
        """Everything under /run but directories (runtimes create their state roots, e.g.
        /run/runc, on first use and keep them; whatever a container leaves is a file)."""
        out = set()
        top = self.root / "run"
        for d, _, files in os.walk(top):
            out |= {os.path.join(d, f)[len(str(self.root)):] for f in files}
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()


@pytest.fixture(scope="session")
def mount_ns() -> MountNamespace:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    ensure_tools("unshare", "nsenter")
    ns = MountNamespace()
    yield ns
    ns.stop()


# ── one session cgroup below our own ─────────────────────────────────────────────────────
def _hierarchies() -> dict[str, str]:
    """cgroup mount -> this process's path in it."""
    out = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            top = f"/sys/fs/cgroup/{ctrls.replace('name=', '') or 'unified'}"
            if not ctrls and not os.path.isdir(top):
                top = "/sys/fs/cgroup"           # a pure cgroup v2 host
            if os.path.isfile(f"{top}{path}/cgroup.procs"):
                out[top] = path
    return out


@dataclass
class CgroupParent:
    path: str                      # what podman's --cgroup-parent and ctr's --cgroup get
    tops: list[str]
    created: list[str]

    @classmethod
    def make(cls) -> CgroupParent:
        own = _hierarchies()
        # the deepest of our paths: the others (usually "/") are its ancestors, so the session
        # cgroup is below our own cgroup in every hierarchy
        base = max(own.values(), key=len).rstrip("/")
        cg = cls(f"{base}/jailer-interop-{os.getpid()}", list(own), [])
        cg.ensure()
        return cg

    def ensure(self) -> None:
        """Make the session cgroup (and what is missing above it) in every hierarchy."""
        for top in self.tops:
            d = top
            for part in self.path.strip("/").split("/"):
                d = f"{d}/{part}"
                if not os.path.isdir(d):
                    os.mkdir(d)
                    self.created.append(d)

    def dirs(self) -> set[str]:
        """Cgroups below the session cgroup, except podman's `conmon` cgroup for conmon
        processes (with cgroupfs podman makes <parent>/conmon and never removes it); and the
        session cgroup itself if it is gone (a runtime must remove only the cgroup it made,
        not the parents of its cgroupsPath)."""
        out = set()
        for top in self.tops:
            root = f"{top}{self.path}"
            if not os.path.isdir(root):
                out.add(f"{os.path.basename(top)}: the session cgroup {self.path} was removed")
            for d, _, _ in os.walk(root):
                rel = d[len(root):]
                if rel and rel != "/conmon":
                    out.add(f"{os.path.basename(top)}:{rel}")
        return out

    def pids(self) -> set[int]:
        out = set()
        for top in self.tops:
            for d, _, files in os.walk(f"{top}{self.path}"):
                if "cgroup.procs" in files:
                    try:
                        with open(f"{d}/cgroup.procs") as f:
                            out |= {int(p) for p in f.read().split()}
                    except OSError:
                        pass
        return out

    def remove_children(self) -> None:
        for top in self.tops:
            for d, _, _ in os.walk(f"{top}{self.path}", topdown=False):
                if d != f"{top}{self.path}":
                    try:
                        os.rmdir(d)
                    except OSError:
                        pass

    def remove(self) -> None:
        self.remove_children()
        for d in sorted(set(self.created), key=len, reverse=True):
            try:
                os.rmdir(d)
            except OSError:
                pass


@pytest.fixture(scope="session")
def cgroup_parent(mount_ns) -> CgroupParent:
    cg = CgroupParent.make()
    yield cg
    cg.remove()


# ── the image: busybox from jailer's store as a docker archive (podman and ctr load it) ──
@pytest.fixture(scope="session")
def image_archive(data_dir, interop_dir) -> Path:
    rootfs_tar = interop_dir / "busybox-rootfs.tar"
    subprocess.run([JAILER, "image", "export", "busybox", "-o", str(rootfs_tar)], check=True,
                   env={**os.environ, "JAILER_DATA": str(data_dir)}, stdout=subprocess.DEVNULL)
    layer = rootfs_tar.read_bytes()
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": ["sh"]},
        "rootfs": {"type": "layers",
                   "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]},
        "history": [{"created_by": "jailer image export busybox"}],
    }).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [IMAGE],
                            "Layers": ["layer.tar"]}]).encode()
    archive = interop_dir / "busybox-docker-archive.tar"
    with tarfile.open(archive, "w") as t:
        for name, data in (("layer.tar", layer), (config_name, config),
                           ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            t.addfile(info, io.BytesIO(data))
    return archive


# ── leak checks shared by both engines ───────────────────────────────────────────────────
def _our_processes(markers: tuple[str, ...], cgroup: CgroupParent) -> set[str]:
    """Processes whose command line names our session dir (conmon, slirp4netns, shims,
    podman cleanup) or that sit in the session cgroup (container processes)."""
    in_cgroup = cgroup.pids()
    out = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if cmdline and (any(m in cmdline for m in markers) or int(pid) in in_cgroup):
            out.add(f"{pid} {cmdline[:160]}")
    return out


def _jailer_default_data() -> set[str]:
    """Engines do not pass JAILER_DATA on to the runtime (podman gives it a bare environment
    for most calls), so jailer under them keeps its records in its default data dir."""
    out = set()
    for sub in ("containers", "starts"):
        d = f"/var/lib/jailer/{sub}"
        if os.path.isdir(d):
            out |= {f"{d}/{e}" for e in os.listdir(d) if not e.startswith(".")}
    return out


def _nft_tables() -> set[str]:
    if not shutil.which("nft"):
        return set()
    r = sh("nft", "list", "tables")
    return set(r.stdout.splitlines())


class Engine:
    """What podman and containerd have in common: the namespace, the cgroup, leak checks."""

    def __init__(self, base: Path, ns: MountNamespace, cgroup: CgroupParent):
        self.base, self.ns, self.cgroup = base, ns, cgroup
        self.markers = (str(base),)     # what our processes have on their command lines
        self._counter = 0

    def unique(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}-{os.getpid()}-{self._counter}"

    def containers(self) -> set[str]:  # overridden
        return set()

    def ignored(self, path: str) -> bool:  # overridden
        return False

    def snapshot(self) -> dict:
        return {
            "containers": self.containers(),
            "processes": _our_processes(self.markers, self.cgroup),
            "ns mounts": self.ns.mounts(),
            "ns /run files": {f for f in self.ns.run_files() if not self.ignored(f)},
            "cgroups": self.cgroup.dirs(),
            "nft tables": _nft_tables(),
            "jailer records": _jailer_default_data(),
        }

    def leaks(self, before: dict, wait: float = 15) -> dict:
        """What is new since `before`, once things settle (podman's cleanup runs after
        `podman run --rm` has returned; conmon and shims exit a moment after the container)."""
        deadline = time.monotonic() + wait
        while True:
            after = self.snapshot()
            found = {}
            for k, old in before.items():
                new = after[k]
                if k == "processes":     # pids are unique enough; compare by pid
                    olds = {p.split()[0] for p in old}
                    extra = sorted(p for p in new if p.split()[0] not in olds)
                elif isinstance(new, list):
                    extra = [m for m in new if m not in old]
                else:
                    extra = sorted(set(new) - set(old))
                if extra:
                    found[k] = extra
            if not found or time.monotonic() > deadline:
                return found
            time.sleep(0.2)

    def kill_leftovers(self, before: dict) -> None:
        """Kill processes this test started and left (by pid), then drop its cgroups."""
        olds = {p.split()[0] for p in before["processes"]}
        for p in _our_processes(self.markers, self.cgroup):
            pid = int(p.split()[0])
            if str(pid) not in olds and pid != self.ns.pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        time.sleep(0.2)
        self.cgroup.remove_children()
        self.cgroup.ensure()


def _check_after(engine: Engine, before: dict, runtime: Runtime, mark: int, cleanup) -> None:
    calls = runtime.calls(mark)
    if calls:
        print(f"{runtime.name} was called {len(calls)} times:")
        for argv in calls:
            print("  ", shlex.join(argv))
    leaks = engine.leaks(before)
    if leaks:
        cleanup()
        engine.kill_leftovers(before)
    assert not leaks, f"left behind: {json.dumps(leaks, indent=1)}"


# ── podman ───────────────────────────────────────────────────────────────────────────────
class PodmanSession(Engine):
    def __init__(self, base: Path, ns: MountNamespace, cgroup: CgroupParent, wrappers: dict):
        super().__init__(base, ns, cgroup)
        for d in ("root", "networks"):
            (base / d).mkdir(parents=True, exist_ok=True)
        # podman refuses a runroot longer than 50 characters, and slirp4netns an API socket
        # path (in the tmpdir) of 108: both go on the namespace's /run
        self.short = f"/run/interop-{os.getpid()}"
        self.runroot, self.tmpdir = f"{self.short}/runroot", f"{self.short}/tmp"
        self.markers = (str(base), self.short)
        # podman's default nofile/nproc (1048576) exceed this host's hard limits, and raising
        # a hard limit needs CAP_SYS_RESOURCE, which this machine lacks: every runtime fails.
        # podman as root also lowers its own (so conmon's and the runtime's) RLIMIT_NPROC to
        # kernel.pid_max. And `--ulimit` on the command line replaces this list and brings
        # back podman's nofile=1048576, so the tests never pass it.
        nofile = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 1048576)
        nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1],
                    int(Path("/proc/sys/kernel/pid_max").read_text()))
        runtimes = "\n".join(f'{n} = ["{w.wrapper}"]' for n, w in wrappers.items())
        (base / "containers.conf").write_text(f"""\
[containers]
# within this host's hard limits (see above)
default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]
netns = "none"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{base}/events.log"
tmp_dir = "{self.tmpdir}"
image_copy_tmp_dir = "{base}/root/tmp"
volume_path = "{base}/root/volumes"
# podman passes --log-format=json --log FILE only to runtimes named here (by basename)
runtime_supports_json = ["crun", "runc", "kata", "runsc", "krun", "jailer"]

[engine.runtimes]
{runtimes}

[network]
network_config_dir = "{base}/networks"
""")
        (base / "storage.conf").write_text(f"""\
[storage]
driver = "vfs"
graphroot = "{base}/root"
runroot = "{self.runroot}"
""")
        self.env = {**os.environ, "CONTAINERS_CONF": str(base / "containers.conf"),
                    "CONTAINERS_STORAGE_CONF": str(base / "storage.conf")}
        self.globals = ["--root", str(base / "root"), "--runroot", self.runroot,
                        "--tmpdir", self.tmpdir, "--storage-driver", "vfs",
                        "--cgroup-manager", "cgroupfs", "--events-backend", "file",
                        "--network-config-dir", str(base / "networks")]
        self.references: dict[str, object] = {}

    def argv(self, runtime: str | None, *args: str) -> list[str]:
        rt = ["--runtime", runtime] if runtime else []
        return self.ns.cmd("podman", *self.globals, *rt, *args)

    def __call__(self, *args: str, runtime: str | None = None, input: str | None = None,
                 timeout: float = 90) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(runtime, *args), env=self.env, text=True,
                              capture_output=True, timeout=timeout, input=input,
                              stdin=None if input is not None else subprocess.DEVNULL)

    def ignored(self, path: str) -> bool:
        # podman 4.3 leaves the slirp4netns API socket (tmpdir/<id>.net) of a removed container
        return path.startswith(f"{self.tmpdir}/") and path.endswith(".net")

    def containers(self) -> set[str]:
        r = self("ps", "-a", "--format", "{{.ID}} {{.Names}} {{.Status}}")
        return set(r.stdout.splitlines()) if r.returncode == 0 else {f"podman ps: {r.stderr}"}

    def remove_all(self) -> None:
        self("rm", "--all", "--force", "--time", "0", timeout=120)


@pytest.fixture(scope="session")
def podman_session(interop_dir, mount_ns, cgroup_parent, image_archive) -> PodmanSession:
    ensure_tools("podman", "conmon", "slirp4netns")
    wrappers = {n: Runtime.make(interop_dir, n, b, "-named") for n, b in BINARIES.items()}
    p = PodmanSession(interop_dir / "podman", mount_ns, cgroup_parent, wrappers)
    p.named = wrappers
    # image copies write a blob-info cache to /var/lib/containers/cache as root whatever the
    # storage config says (containers/image 5.23): remove it at the end if it is ours
    had_var_lib = os.path.exists("/var/lib/containers")
    r = p("load", "-i", str(image_archive))
    assert r.returncode == 0, r.stderr
    yield p
    p.remove_all()
    p("rmi", "--all", "--force")
    if not had_var_lib and os.path.isdir("/var/lib/containers") \
            and os.listdir("/var/lib/containers") == ["cache"]:
        shutil.rmtree("/var/lib/containers")


class Podman:
    """podman bound to one runtime, for one test."""

    def __init__(self, session: PodmanSession, runtime: Runtime):
        self.session, self.runtime = session, runtime
        self.run_opts = ["--pull", "never", "--cgroup-parent", session.cgroup.path]

    def __call__(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.session(*args, runtime=kw.pop("runtime", self.runtime.wrapper), **kw)

    def run(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self("run", *self.run_opts, *args, **kw)

    def unique(self, prefix: str) -> str:
        return self.session.unique(prefix)

    def inspect(self, name: str, fmt: str) -> str:
        return self("inspect", "--format", fmt, name).stdout.strip()

    def wait_logs(self, name: str, text: str, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        while True:
            out = self("logs", name).stdout
            if text in out or time.monotonic() > deadline:
                return out
            time.sleep(0.1)

    def reference(self, scenario):
        """The scenario's transcript with `podman --runtime runc` (once per session)."""
        key = scenario.__qualname__
        if key not in self.session.references:
            ref = Podman(self.session, Runtime.make(self.session.base, "reference", RUNC))
            self.session.references[key] = scenario(ref)
        return self.session.references[key]


@pytest.fixture
def podman(podman_session, runtime) -> Podman:
    before = podman_session.snapshot()
    mark = runtime.mark()
    yield Podman(podman_session, runtime)
    _check_after(podman_session, before, runtime, mark, podman_session.remove_all)


# ── containerd ───────────────────────────────────────────────────────────────────────────
class Containerd(Engine):
    def __init__(self, base: Path, ns: MountNamespace, cgroup: CgroupParent):
        super().__init__(base, ns, cgroup)
        base.mkdir(parents=True, exist_ok=True)
        self.socket = str(base / "containerd.sock")
        self.config = base / "config.toml"
        # runtime handlers as a Kubernetes node would have them (see docs/ENGINES.md); the
        # CRI plugin drops its built-in "runc" handler once any handler is configured
        handlers = "".join(f"""
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{name}]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{name}.options]
  BinaryName = "{binary}"
""" for name, binary in BINARIES.items())
        self.config.write_text(f"""\
version = 2
root = "{base}/root"
state = "{base}/state"

[grpc]
  address = "{self.socket}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{base}/opt"

[plugins."io.containerd.grpc.v1.cri".cni]
  conf_dir = "{base}/cni"
{handlers}""")
        self.log = open(base / "containerd.log", "ab")
        self.proc = subprocess.Popen(ns.cmd("containerd", "--config", str(self.config)),
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while self.ctr("version").returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"containerd did not start: see {base}/containerd.log")
            time.sleep(0.1)

    def ctr(self, *args: str, input: str | None = None,
            timeout: float = 90) -> subprocess.CompletedProcess:
        # in the namespace: ctr's FIFOs (/run/containerd/fifo) must be where the shim is
        return subprocess.run(self.ns.cmd("ctr", "--address", self.socket, *args), text=True,
                              capture_output=True, timeout=timeout, input=input,
                              stdin=None if input is not None else subprocess.DEVNULL)

    def containers(self) -> set[str]:
        out = set()
        for what in ("containers", "tasks", "snapshots"):
            r = self.ctr(what, "ls", "-q") if what != "snapshots" else self.ctr("snapshots", "ls")
            lines = r.stdout.splitlines()[1:] if what == "snapshots" else r.stdout.splitlines()
            out |= {f"{what}: {line.split()[0]}" for line in lines if line.strip()}
        return out

    def remove_all(self) -> None:
        for line in self.ctr("tasks", "ls", "-q").stdout.split():
            self.ctr("tasks", "kill", "--signal", "SIGKILL", line)
            self.ctr("tasks", "delete", "--force", line)
        for line in self.ctr("containers", "ls", "-q").stdout.split():
            self.ctr("containers", "delete", line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture(scope="session")
def containerd(interop_dir, mount_ns, cgroup_parent, image_archive) -> Containerd:
    ensure_tools("containerd", "ctr", "containerd-shim-runc-v2")
    c = Containerd(interop_dir / "containerd", mount_ns, cgroup_parent)
    r = c.ctr("images", "import", str(image_archive))
    assert r.returncode == 0, r.stderr
    c.references = {}
    yield c
    c.remove_all()
    c.stop()


class Ctr:
    """ctr bound to one runtime (ctr run --runc-binary), for one test."""

    def __init__(self, engine: Containerd, runtime: Runtime):
        self.engine, self.runtime = engine, runtime

    def __call__(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.engine.ctr(*args, **kw)

    def unique(self, prefix: str) -> str:
        return self.engine.unique(prefix)

    def run_opts(self, cid: str) -> list[str]:
        return ["--runc-binary", self.runtime.wrapper,
                "--cgroup", f"{self.engine.cgroup.path}/{cid}"]

    def run(self, *opts: str, cid: str, cmd: list[str], **kw) -> subprocess.CompletedProcess:
        return self("run", *self.run_opts(cid), *opts, IMAGE, cid, *cmd, **kw)

    def task_status(self, cid: str) -> str:
        for line in self("tasks", "ls").stdout.splitlines()[1:]:
            f = line.split()
            if f and f[0] == cid:
                return f[-1]
        return ""

    def wait_status(self, cid: str, status: str, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        while (s := self.task_status(cid)) != status and time.monotonic() < deadline:
            time.sleep(0.1)
        return s

    def reference(self, scenario):
        key = scenario.__qualname__
        if key not in self.engine.references:
            ref = Ctr(self.engine, Runtime.make(self.engine.base, "reference", RUNC))
            self.engine.references[key] = scenario(ref)
        return self.engine.references[key]


@pytest.fixture
def ctr(containerd, runtime) -> Ctr:
    before = containerd.snapshot()
    mark = runtime.mark()
    yield Ctr(containerd, runtime)
    _check_after(containerd, before, runtime, mark, containerd.remove_all)
