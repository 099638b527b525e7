"""The systemd tier: real engines in their default configuration on a modern host (systemd as
PID 1, pure cgroup v2) drive the runtime, run by ``./scripts/vm-systemd tests/systemd`` in a
guest where these tests are the oneshot ``jailer-tests.service`` (a busy cgroup, as a service
or login session on a real host).

- podman as it comes (cgroup_manager = "systemd"): each container's cgroup is a transient
  ``libpod-<id>.scope`` below machine.slice, made over D-Bus by the runtime (``--systemd-cgroup``).
  Only its storage is private (vfs under the session's dirs: overlay on the guest's overlay root
  fails, and the host's own storage database is not this one) and containers get
  ``--network none``.
- containerd with the runc v2 shim options a kubelet on v2 requires (``SystemdCgroup = true``,
  ``BinaryName`` = the runtime), a private daemon run as the transient service
  ``jailer-tier-containerd.service``; ctr gives the shim the same options
  (``--runc-systemd-cgroup --runc-binary``) and a ``SLICE:PREFIX:NAME`` cgroupsPath.

Each test is parametrized over RUNTIMES (switch jailer on there); the runtime sits behind the
argv-logging wrapper of tests/support/engines.py. After every test: no containers in the
engine, none of our processes, no new systemd scopes or slices, cgroups or mounts.

Outside the guest (JAILER_SYSTEMD_GUEST=1 unset) every test here is skipped with the reason;
inside it a skip is a failure: the tier cannot pass without running.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.engines import (
    BINARIES,
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

# the runtimes every test runs with: runc for comparison, then jailer
RUNTIMES = ["runc", "jailer"]

TIER = Path(__file__).resolve().parent
GUEST = os.environ.get("JAILER_SYSTEMD_GUEST") == "1"
NOT_GUEST = ("the systemd tier needs systemd as PID 1 on pure cgroup v2: it runs in the guest "
             "of ./scripts/vm-systemd tests/systemd (JAILER_SYSTEMD_GUEST=1)")
SERVICE = "jailer-tests.service"


def _in_tier(item) -> bool:
    return TIER in Path(item.path).resolve().parents


def pytest_collection_modifyitems(config, items):
    if not GUEST:
        for item in items:
            if _in_tier(item):
                item.add_marker(pytest.mark.skip(reason=NOT_GUEST))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In the guest a skipped test of this tier is a failed one."""
    outcome = yield
    rep = outcome.get_result()
    if GUEST and rep.skipped and not hasattr(rep, "wasxfail") and _in_tier(item):
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else rep.longrepr
        rep.outcome = "failed"
        rep.longrepr = f"skipped in the systemd guest, where every test must run: {reason}"


# ── systemd and the cgroup tree ────────────────────────────────────────────────────────
CGROUP = "/sys/fs/cgroup"


def own_cgroup(pid: int | str = "self") -> str:
    """The v2 cgroup path of a process ("" if it is gone)."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return ""
    return next((line[3:] for line in lines if line.startswith("0::")), "")


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def unit_properties(unit: str, *props: str) -> dict[str, str]:
    out = sh("systemctl", "show", unit, "-p", ",".join(props)).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def unit_gone(unit: str) -> bool:
    """systemd has dropped ``unit`` (stopped and collected, or never loaded)."""
    return unit_properties(unit, "ActiveState")["ActiveState"] == "inactive"


def units() -> set[str]:
    """Every scope and slice systemd has loaded, with its state."""
    r = sh("systemctl", "list-units", "--all", "--plain", "--no-legend", "--no-pager",
           "--type=scope,slice")
    return {" ".join(line.split()[:4]) for line in r.stdout.splitlines() if line.strip()}


def cgroup_dirs() -> set[str]:
    return {d[len(CGROUP):] or "/" for d, _, _ in os.walk(CGROUP)}


def mounts() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return sorted(f"{line.split()[4]} {line.split(' - ')[1].split()[0]}" for line in f)


def wait_for(what, timeout: float = 15, step: float = 0.1):
    """``what()``'s first true value within ``timeout`` s (its last value otherwise)."""
    deadline = time.monotonic() + timeout
    while not (value := what()) and time.monotonic() < deadline:
        time.sleep(step)
    return value


# ── the session's dirs and the runtime ──────────────────────────────────────────────────
@pytest.fixture(scope="session")
def tier_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("systemd-tier")
    d.chmod(0o755)
    return d


@pytest.fixture(params=RUNTIMES)
def runtime(request, tier_dir) -> Runtime:
    return Runtime.make(tier_dir, request.param, BINARIES[request.param])


@pytest.fixture(scope="session")
def image_archive(data_dir, tier_dir) -> Path:
    return docker_archive(data_dir, tier_dir)


@pytest.fixture(scope="session")
def machine_slice() -> str:
    """podman's parent slice, started once: systemd keeps a started slice, so the first
    container would otherwise leave it behind in the leak check."""
    r = sh("systemctl", "start", "machine.slice")
    assert r.returncode == 0, r.stderr
    return "machine.slice"


class Engine(EngineBase):
    """What podman and containerd have in common here: the leak check."""

    def snapshot(self) -> dict:
        return {
            "containers": self.containers(),
            "processes": processes(self.markers),
            "units": units(),
            "cgroups": cgroup_dirs(),
            "mounts": mounts(),
            "jailer records": jailer_default_data(),
        }

    def check_after(self, before: dict, runtime: Runtime, mark: int) -> None:
        runtime.print_calls(mark)
        leaks = new_since(before, self.snapshot)
        if leaks:
            self.remove_all()
        assert not leaks, f"left behind: {leaks}"


# ── podman ───────────────────────────────────────────────────────────────────────────────
class PodmanSession(PodmanState, Engine):
    def __init__(self, base: Path):
        # podman refuses a runroot longer than 50 characters
        short = f"/run/jailer-tier-{os.getpid()}"
        super().__init__(base, (str(base), short))
        self.globals = ["--root", str(base / "root"), "--runroot", f"{short}/runroot",
                        "--tmpdir", f"{short}/tmp", "--storage-driver", "vfs"]

    def __call__(self, *args: str, runtime: str | None = None, input: str | None = None,
                 timeout: float = 120) -> subprocess.CompletedProcess:
        rt = ["--runtime", runtime] if runtime else []
        return subprocess.run(["podman", *self.globals, *rt, *args], text=True,
                              capture_output=True, timeout=timeout, input=input,
                              stdin=None if input is not None else subprocess.DEVNULL)


@pytest.fixture(scope="session")
def podman_session(tier_dir, image_archive, machine_slice) -> PodmanSession:
    ensure_tools("podman", "conmon", required=GUEST)
    p = PodmanSession(tier_dir / "podman")
    r = p("load", "-i", str(image_archive))
    assert r.returncode == 0, r.stderr
    yield p
    p.remove_all()
    p("rmi", "--all", "--force")


class Podman:
    """podman bound to one runtime (``--runtime WRAPPER``), for one test."""

    def __init__(self, session: PodmanSession, runtime: Runtime):
        self.session, self.runtime = session, runtime

    def __call__(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.session(*args, runtime=self.runtime.wrapper, **kw)

    def run(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self("run", "--pull", "never", "--network", "none", *args, **kw)

    def unique(self, prefix: str) -> str:
        return self.session.unique(prefix)

    def inspect(self, name: str, fmt: str) -> str:
        return self("inspect", "--format", fmt, name).stdout.strip()

    def wait_logs(self, name: str, text: str, timeout: float = 30) -> str:
        wait_for(lambda: text in self("logs", name).stdout, timeout, 0.2)
        return self("logs", name).stdout


@pytest.fixture
def podman(podman_session, runtime) -> Podman:
    before = podman_session.snapshot()
    mark = runtime.mark()
    yield Podman(podman_session, runtime)
    podman_session.check_after(before, runtime, mark)


# ── containerd ───────────────────────────────────────────────────────────────────────────
CONTAINERD_UNIT = "jailer-tier-containerd.service"
CRI = 'plugins."io.containerd.grpc.v1.cri"'


class Containerd(CtrState, Engine):
    """A private containerd (own root, state, socket, config) run by systemd as a service,
    with a CRI runtime handler per runtime as a Kubernetes node on v2 has them."""

    def __init__(self, base: Path, wrappers: dict[str, Runtime]):
        super().__init__(base, (str(base),))
        base.mkdir(parents=True, exist_ok=True)
        self.socket = str(base / "containerd.sock")
        self.config = base / "config.toml"
        self.wrappers = wrappers
        handlers = "".join(f"""
[{CRI}.containerd.runtimes.{name}]
  runtime_type = "io.containerd.runc.v2"
[{CRI}.containerd.runtimes.{name}.options]
  BinaryName = "{w.wrapper}"
  SystemdCgroup = true
""" for name, w in wrappers.items())
        self.config.write_text(f"""\
version = 2
root = "{base}/root"
state = "{base}/state"

[grpc]
  address = "{self.socket}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{base}/opt"

[{CRI}]
  disable_apparmor = true
[{CRI}.cni]
  conf_dir = "{base}/cni"
[{CRI}.containerd]
  snapshotter = "native"
  default_runtime_name = "runc"
{handlers}""")
        r = sh("systemd-run", f"--unit={CONTAINERD_UNIT}", "--collect", "--quiet",
               "--description=containerd of the jailer systemd tier",
               "containerd", "--config", str(self.config))
        assert r.returncode == 0, r.stderr
        if not wait_for(lambda: self.ctr("version").returncode == 0, 60, 0.2):
            log = sh("journalctl", "-u", CONTAINERD_UNIT, "--no-pager", "-n", "30").stdout
            self.stop()
            raise RuntimeError(f"containerd did not start:\n{log}")

    def ctr(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return sh("ctr", "--address", self.socket, *args, timeout=timeout)

    def stop(self) -> None:
        sh("systemctl", "stop", CONTAINERD_UNIT, timeout=90)


@pytest.fixture(scope="session")
def containerd(tier_dir, image_archive) -> Containerd:
    ensure_tools("containerd", "ctr", "containerd-shim-runc-v2", required=GUEST)
    wrappers = {n: Runtime.make(tier_dir, n, b) for n, b in BINARIES.items()}
    c = Containerd(tier_dir / "containerd", wrappers)
    r = c.ctr("images", "import", "--snapshotter", "native", str(image_archive))
    assert r.returncode == 0, r.stderr
    yield c
    c.remove_all()
    c.ctr("images", "rm", *c.ctr("images", "ls", "-q").stdout.split())
    c.stop()


class Ctr:
    """ctr bound to one runtime, the shim options a kubelet's containerd gives it on v2
    (SystemdCgroup, BinaryName), for one test."""

    def __init__(self, engine: Containerd, runtime: Runtime):
        self.engine, self.runtime = engine, runtime

    def __call__(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.engine.ctr(*args, **kw)

    def unique(self, prefix: str) -> str:
        return self.engine.unique(prefix)

    def shim_opts(self) -> list[str]:
        return ["--runc-binary", self.runtime.wrapper, "--runc-systemd-cgroup"]

    def task(self, cid: str) -> tuple[str, int]:
        """(status, pid) of the task ``cid`` ("", 0 if there is none)."""
        for line in self("tasks", "ls").stdout.splitlines()[1:]:
            f = line.split()
            if f and f[0] == cid:
                return f[-1], int(f[1])
        return "", 0

    def wait_status(self, cid: str, status: str, timeout: float = 30) -> str:
        wait_for(lambda: self.task(cid)[0] == status, timeout)
        return self.task(cid)[0]


@pytest.fixture
def ctr(containerd, runtime) -> Ctr:
    before = containerd.snapshot()
    mark = runtime.mark()
    yield Ctr(containerd, runtime)
    containerd.check_after(before, runtime, mark)
