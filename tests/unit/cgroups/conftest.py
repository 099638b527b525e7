"""The fake cgroupfs of the cgroups library's unit tier: a temporary directory that behaves like
cgroupfs on mkdir and rmdir, put in the library's place by the ``fakefs`` fixture."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

import cgroups.base

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
