"""Shared fixtures: the jailer command, a private data dir with the busybox image, and a
leak check that runs after every root test; and the rule of the tiers.

Tiers: tests/unit holds the tests that need no root, tests/integration (by feature) the ones that
do, tests/oci the runtime-spec conformance tests (root too: jailer as engines drive it),
tests/systemd the systemd tier (root, run by scripts/vm-systemd in a guest whose PID 1 is
systemd; skipped elsewhere). A
test states that it needs root where it lives (``pytestmark = pytest.mark.root`` in its module,
or the marker on the test); collection fails if a test's marker and its tier disagree.
Root tests are skipped when not running as root.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
VENV_BIN = Path(sys.executable).parent
JAILER = str(VENV_BIN / "jailer")


def is_root() -> bool:
    return os.geteuid() == 0


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """A private JAILER_DATA with the busybox image built once per session."""
    d = tmp_path_factory.mktemp("jailer-data")
    os.chmod(d, 0o755)
    if is_root():
        env = {**os.environ, "JAILER_DATA": str(d)}
        subprocess.run([JAILER, "image", "build", "busybox"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
    return d


@pytest.fixture
def jenv(data_dir) -> dict:
    return {**os.environ, "JAILER_DATA": str(data_dir)}


@pytest.fixture
def rootfs(data_dir) -> str:
    return str(data_dir / "images" / "busybox" / "rootfs")


@pytest.fixture
def jailer_cmd() -> str:
    return JAILER


@pytest.fixture
def jailer(jenv):
    """Run ``jailer ARGS`` with stdin from /dev/null; returns CompletedProcess (text)."""

    def run(*args: str, timeout: float = 60, input: str | None = None,
            **kw) -> subprocess.CompletedProcess:
        return subprocess.run([JAILER, *args], env=kw.pop("env", jenv), text=True,
                              capture_output=True, timeout=timeout,
                              input=input, stdin=None if input is not None else
                              subprocess.DEVNULL, **kw)

    return run


# ── leak detection ───────────────────────────────────────────────────────────────────────
def _mounts() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return sorted(" ".join(line.split()[3:5]) for line in f)


def _children() -> set[int]:
    me = str(os.getpid())
    out = set()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == me and fields[0] != "Z":
                out.add(int(pid))
    return out


def _cgroups() -> set[str]:
    """Child cgroups of this process's own cgroup, in every hierarchy it is in."""
    out = set()
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            name = ctrls.replace("name=", "") or "unified"
            for top in (f"/sys/fs/cgroup/{name}", "/sys/fs/cgroup") if name != "unified" \
                    else ("/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
                d = top + path
                if os.path.isfile(f"{d}/cgroup.procs"):
                    out |= {f"{name}:{path}/{c}" for c in os.listdir(d)
                            if os.path.isdir(f"{d}/{c}")}
                    break
    return out


def _links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def _entries(path: Path) -> set[str]:
    return set(os.listdir(path)) if path.is_dir() else set()


def snapshot(data_dir: Path) -> dict:
    return {
        "mounts": _mounts(),
        "children": _children(),
        "links": _links(),
        "cgroups": _cgroups(),
        "containers": _entries(data_dir / "containers"),
        "starts": _entries(data_dir / "starts"),
        "idpool": {e for e in _entries(data_dir / "idpool") if not e.startswith(".")},
        "tmp": {e for e in _entries(Path("/tmp")) if "jailer" in e},
        "/dev/null": {_devnull()},
    }


def _devnull() -> str:
    """The host's /dev/null must stay a world-writable character device."""
    st = os.stat("/dev/null")
    return f"mode={st.st_mode:o} rdev={os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"


@pytest.fixture(autouse=True)
def no_leaks(request):
    """Root tests must leave no mounts, processes, links or state behind."""
    if request.node.get_closest_marker("root") is None or not is_root():
        yield
        return
    data_dir = request.getfixturevalue("data_dir")
    before = snapshot(data_dir)
    yield
    after = snapshot(data_dir)
    leaks = {k: (sorted(set(after[k]) - set(before[k])) if k != "mounts"
                 else [m for m in after[k] if m not in before[k]])
             for k in before}
    leaks = {k: v for k, v in leaks.items() if v}
    assert not leaks, f"leftovers after the test: {leaks}"


TIERS = {"unit": False, "integration": True, "oci": True,  # tier -> its tests need root
         "systemd": True}


def tier_errors(items) -> list[str]:
    """Tests whose root marker disagrees with their tier, or that live in neither tier."""
    out = []
    for item in items:
        parts = Path(item.path).resolve().relative_to(TESTS).parts
        needs_root = item.get_closest_marker("root") is not None
        if len(parts) < 2 or parts[0] not in TIERS:
            out.append(f"{item.nodeid}: not in a tier ("
                       + ", ".join(f"tests/{t}" for t in TIERS) + ")")
        elif TIERS[parts[0]] != needs_root:
            out.append(f"{item.nodeid}: " + ("marked root: it belongs in a root tier"
                                             if needs_root else
                                             "in a root tier without the root marker "
                                             "(pytestmark = pytest.mark.root)"))
    return out


def pytest_collection_modifyitems(config, items):
    errors = tier_errors(items)
    if errors:
        raise pytest.UsageError("tests in the wrong tier:\n  " + "\n  ".join(errors))
    if not is_root():
        for item in items:
            if item.get_closest_marker("root"):
                item.add_marker(pytest.mark.skip(reason="needs root"))
