"""Fixtures for the cgroups library tests: a fake cgroupfs for the unit tier, and for the real
tiers a cgroup factory and a process spawner whose finalizers remove whatever a test made."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from realtier import PREFIX  # noqa: E402 - a unique module name: "conftest" is ambiguous

import cgroups
import cgroups.base

"""Every real cgroup a test makes is named with this prefix (unique per test session)."""


# ── real cgroups ─────────────────────────────────────────────────────────────────────────────
def our_cgroups() -> set[str]:
    """The cgroups named PREFIX* below our own cgroup, in every hierarchy."""
    probe = cgroups.open_manager(PREFIX + "probe")
    out = set()
    for d in probe.dirs:
        parent = os.path.dirname(d)
        out.update(f"{parent}/{e}" for e in os.listdir(parent) if e.startswith(PREFIX))
    return out


@pytest.fixture(autouse=True)
def no_leaks(request):
    """Stands in for the suite's leak check (which needs a jailer image) in this directory:
    a root test must leave no cgroup behind, in any hierarchy."""
    if request.node.get_closest_marker("root") is None or os.geteuid() != 0:
        yield
        return
    before = our_cgroups()
    yield
    left = our_cgroups() - before
    assert not left, f"cgroups left behind: {sorted(left)}"


@pytest.fixture
def make_cg():
    """``make_cg(limits=None, name=None, **open_manager_kw)`` creates a cgroup below ours;
    every one is deleted at teardown, whatever the test did."""
    made: list[cgroups.Cgroup] = []

    def make(limits: cgroups.Limits | None = None, name: str | None = None,
             **kw) -> cgroups.Cgroup:
        cg = cgroups.open_manager(name or f"{PREFIX}{len(made)}", **kw)
        made.append(cg)
        return cg.create(limits)

    yield make
    errors = []
    for cg in reversed(made):
        try:
            cg.delete(timeout=10)
        except cgroups.CgroupError as e:
            errors.append(str(e))
    assert not errors, errors


@pytest.fixture
def spawn():
    """``spawn(cg, script)`` starts ``sh -c script`` inside ``cg``: the shell waits on stdin
    until it has been moved in. Leftover shells are killed and reaped at teardown."""
    procs: list[subprocess.Popen] = []

    def start(cg: cgroups.Cgroup, script: str, **kw) -> subprocess.Popen:
        p = subprocess.Popen(["/bin/sh", "-c", "read _; " + script], stdin=subprocess.PIPE,
                             **kw)
        procs.append(p)
        cg.add(p.pid)
        p.stdin.write(b"go\n")
        p.stdin.close()
        p.stdin = None  # so that communicate() works
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


# ── a fake cgroupfs ──────────────────────────────────────────────────────────────────────────
V2_FILES = {
    "": {"cgroup.procs": "", "cgroup.threads": "", "cgroup.subtree_control": "",
         "cgroup.events": "populated 0\nfrozen 0", "cgroup.freeze": "0", "cgroup.kill": "",
         "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0"},
    "memory": {"memory.max": "max", "memory.high": "max", "memory.swap.max": "max",
               "memory.current": "0", "memory.peak": "0", "memory.oom.group": "0",
               "memory.reclaim": "", "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0"},
    "cpu": {"cpu.max": "max 100000", "cpu.weight": "100"},
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": ""},
    "pids": {"pids.max": "max", "pids.current": "0", "pids.events": "max 0"},
    "io": {"io.max": "", "io.weight": "default 100", "io.stat": ""},
}
V1_FILES = {
    "": {"cgroup.procs": "", "tasks": "", "notify_on_release": "0"},
    "memory": {"memory.limit_in_bytes": "9223372036854771712",
               "memory.memsw.limit_in_bytes": "9223372036854771712",
               "memory.usage_in_bytes": "0", "memory.max_usage_in_bytes": "0",
               "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0",
               "cgroup.event_control": ""},
    "cpu": {"cpu.cfs_quota_us": "-1", "cpu.cfs_period_us": "100000", "cpu.shares": "1024"},
    "cpuacct": {"cpuacct.usage": "0", "cpuacct.usage_user": "0", "cpuacct.usage_sys": "0"},
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": ""},
    "pids": {"pids.max": "max", "pids.current": "0", "pids.events": "max 0"},
    "blkio": {"blkio.weight": "100", "blkio.throttle.io_service_bytes_recursive": "Total 0",
              **{f"blkio.throttle.{k}_device": "" for k in
                 ("read_bps", "write_bps", "read_iops", "write_iops")}},
    "freezer": {"freezer.state": "THAWED"},
}


class FakeCgroupfs:
    """A cgroupfs look-alike in a temporary directory. As in the kernel, ``mkdir`` fills a new
    cgroup with the interface files of its controllers (v2: those its parent enables in
    cgroup.subtree_control; v1: the hierarchy's), and ``rmdir`` refuses a cgroup with
    processes or children and otherwise removes it with its files. Writes are plain writes,
    so a test reads back what the library wrote."""

    def __init__(self, root: Path, version: str, own: str = "/",
                 controllers: tuple[str, ...] = ("cpu", "cpuset", "io", "memory", "pids")):
        self.root, self.version = root, version
        self.proc_cgroup = root.parent / "proc-self-cgroup"
        if version == "v2":
            self.proc_cgroup.write_text(f"0::{own}\n")
            self.files(root, {**V2_FILES[""], "cgroup.controllers": " ".join(controllers),
                              "cgroup.subtree_control": " ".join(controllers)})
        else:
            lines = []
            for i, c in enumerate(controllers):
                self.files(root / c, {**V1_FILES[""], **V1_FILES[c]})
                if c == "cpuset":  # the root cpuset has every cpu and node
                    self.files(root / c, {"cpuset.cpus": "0-3", "cpuset.mems": "0"})
                lines.append(f"{i + 1}:{c}:{own if c == 'memory' else '/'}")
            self.proc_cgroup.write_text("\n".join(lines) + "\n")
            if version == "hybrid":
                self.files(root / "unified", {**V2_FILES[""], "cgroup.controllers": ""})
        parts = Path(own.strip("/")).parts  # make the levels down to our own cgroup
        for top in [root] if version == "v2" else [root / "memory"]:
            for i in range(1, len(parts) + 1):
                self.mkdir(str(top.joinpath(*parts[:i])))

    @staticmethod
    def files(d: Path, files: dict[str, str]) -> None:
        d.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (d / name).write_text(text + "\n" if text else "")

    def mkdir(self, path: str) -> None:
        p = Path(path)
        if p.exists():
            raise FileExistsError(errno.EEXIST, "File exists", path)
        if self.version == "v2":
            ctrls = [c.lstrip("+") for c in (p.parent / "cgroup.subtree_control")
                     .read_text().split()]
            files = dict(V2_FILES[""], **{"cgroup.controllers": " ".join(ctrls)})
            for c in ctrls:
                files.update(V2_FILES[c])
        else:
            ctrl = p.relative_to(self.root).parts[0]
            files = {**V1_FILES[""], **V1_FILES[ctrl]}
        os.mkdir(path)
        self.files(p, files)

    def rmdir(self, path: str) -> None:
        p = Path(path)
        if any(e.is_dir() for e in p.iterdir()) or (p / "cgroup.procs").read_text().strip():
            raise OSError(errno.EBUSY, "Device or resource busy", path)
        shutil.rmtree(path)


@pytest.fixture
def fakefs(tmp_path, monkeypatch):
    """``fakefs(version, own="/", controllers=...)`` builds a FakeCgroupfs under tmp_path and
    puts its mkdir/rmdir in the library's place."""

    def build(version: str, **kw) -> FakeCgroupfs:
        fs = FakeCgroupfs(tmp_path / "cgroup", version, **kw)
        monkeypatch.setattr(cgroups.base, "mkdir", fs.mkdir)
        monkeypatch.setattr(cgroups.base, "rmdir", fs.rmdir)
        return fs

    return build
