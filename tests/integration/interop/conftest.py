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

import json
import os
import resource
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.engines import (
    BINARIES,
    IMAGE,
    RUNC,
    CtrState,
    EngineBase,
    PodmanState,
    Runtime,
    docker_archive,
    ensure_tools,
    jailer_default_data,
    new_since,
    processes,
    sh,
)

RUNTIMES = ["runc", "jailer"]


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "interop: real OCI clients (podman, containerd) drive the runtime")


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
    return docker_archive(data_dir, interop_dir)


# ── leak checks shared by both engines ───────────────────────────────────────────────────
def _our_processes(markers: tuple[str, ...], cgroup: CgroupParent) -> set[str]:
    """Processes whose command line names our session dir (conmon, slirp4netns, shims,
    podman cleanup) or that sit in the session cgroup (container processes)."""
    return processes(markers, frozenset(cgroup.pids()))


def _nft_tables() -> set[str]:
    if not shutil.which("nft"):
        return set()
    r = sh("nft", "list", "tables")
    return set(r.stdout.splitlines())


class Engine(EngineBase):
    """What podman and containerd have in common: the namespace, the cgroup, leak checks."""

    def __init__(self, base: Path, ns: MountNamespace, cgroup: CgroupParent):
        super().__init__(base, (str(base),))
        self.ns, self.cgroup = ns, cgroup

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
            "jailer records": jailer_default_data(),
        }

    def leaks(self, before: dict, wait: float = 15) -> dict:
        """What is new since `before`, once things settle."""
        return new_since(before, self.snapshot, wait)

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
    runtime.print_calls(mark)
    leaks = engine.leaks(before)
    if leaks:
        cleanup()
        engine.kill_leftovers(before)
    assert not leaks, f"left behind: {json.dumps(leaks, indent=1)}"


# ── podman ───────────────────────────────────────────────────────────────────────────────
class PodmanSession(PodmanState, Engine):
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
class Containerd(CtrState, Engine):
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
