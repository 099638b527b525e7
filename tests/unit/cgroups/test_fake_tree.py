"""Both backends against a fake cgroupfs tree (no root needed): layout, limit files, controller
delegation down the tree, stats parsing, and the error paths (missing controllers, the v2
no-internal-processes rule, leftovers, bad values)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import cgroups
from cgroups import UNLIMITED, CgroupError, Limits

M = 1 << 20
ALL = Limits(memory_max=64 * M, memory_swap=128 * M, cpu_quota=50000, cpu_period=100000,
             cpu_weight=200, cpuset_cpus="0-1", cpuset_mems="0", pids_max=128, io_weight=300,
             io_max={"7:0": {"wbps": M, "riops": 100}})


def text(path: Path) -> str:
    return path.read_text().strip()


def manager(fs, name="c1", **kw) -> cgroups.Cgroup:
    return cgroups.open_manager(name, root=str(fs.root), proc_cgroup=str(fs.proc_cgroup), **kw)


# ── detection ────────────────────────────────────────────────────────────────────────────────
@pytest.mark.parametrize("version", ["v2", "hybrid", "v1"])
def test_detect(fakefs, version):
    fs = fakefs(version, controllers=("memory", "pids"))
    assert cgroups.detect(str(fs.root)) == version
    expected = {"v2": "V2Cgroup", "hybrid": "V1Cgroup", "v1": "V1Cgroup"}[version]
    assert type(manager(fs)).__name__ == expected


def test_detect_nothing_mounted(tmp_path):
    with pytest.raises(CgroupError, match=r"no cgroup filesystem at .*mount -t cgroup2"):
        cgroups.detect(str(tmp_path))


def test_bad_names(fakefs):
    fs = fakefs("v2")
    for bad in ("", "/abs", "a/../b", "a//b", "."):
        with pytest.raises(CgroupError, match="bad cgroup name"):
            manager(fs, bad)


# ── v2 ───────────────────────────────────────────────────────────────────────────────────────
def test_v2_create_writes_every_limit(fakefs):
    fs = fakefs("v2")
    cg = manager(fs).create(ALL)
    d = fs.root / "c1"
    assert cg.path == str(d) and cg.procs_paths == [str(d / "cgroup.procs")]
    assert {f: text(d / f) for f in ("memory.max", "memory.swap.max", "cpu.max", "cpu.weight",
                                     "cpuset.cpus", "cpuset.mems", "pids.max", "io.weight",
                                     "io.max")} == {
        "memory.max": str(64 * M), "memory.swap.max": str(64 * M), "cpu.max": "50000 100000",
        "cpu.weight": "200", "cpuset.cpus": "0-1", "cpuset.mems": "0", "pids.max": "128",
        "io.weight": "default 300", "io.max": f"7:0 wbps={M} riops=100"}
    # the fake keeps what was written, so reading back gives the same limits
    assert cg.limits() == Limits(**{**ALL.as_dict(), "memory_high": UNLIMITED})
    cg.add(4242)
    assert text(d / "cgroup.procs") == "4242" and cg.procs() == [4242]
    (d / "cgroup.procs").write_text("")
    cg.delete()
    assert not d.exists() and not cg.exists()
    cg.delete()  # idempotent


def test_v2_update_live(fakefs):
    fs = fakefs("v2")
    cg = manager(fs).create(Limits(memory_max=64 * M, cpu_quota=50000, cpu_period=100000))
    cg.update(Limits(pids_max=5, cpu_quota=UNLIMITED, memory_max=UNLIMITED, memory_high=32 * M))
    d = fs.root / "c1"
    assert [text(d / f) for f in ("pids.max", "cpu.max", "memory.max", "memory.high")] == \
        ["5", "max 100000", "max", str(32 * M)]
    cg.update(Limits(cpu_period=50000))  # period alone keeps the quota
    assert text(d / "cpu.max") == "max 50000"
    with pytest.raises(CgroupError, match="memory\\+swap limit needs a memory limit"):
        cg.update(Limits(memory_swap=64 * M))


def test_v2_hands_controllers_down_every_level(fakefs):
    # a process-free parent two levels down, with nothing enabled anywhere yet
    fs = fakefs("v2", own="/svc/jobs")
    (fs.root / "cgroup.subtree_control").write_text("")
    fs.files(fs.root / "svc", {"cgroup.controllers": "", "cgroup.subtree_control": ""})
    fs.files(fs.root / "svc" / "jobs", {"cgroup.controllers": "", "cgroup.subtree_control": ""})
    cg = manager(fs, "a/b").create(Limits(pids_max=10))
    for level in (fs.root, fs.root / "svc", fs.root / "svc/jobs", fs.root / "svc/jobs/a"):
        assert "pids" in text(level / "cgroup.subtree_control"), level
    assert text(fs.root / "svc/jobs/a/b/pids.max") == "10"
    cg.delete()
    assert not (fs.root / "svc/jobs/a").exists()  # the empty intermediate level goes too
    assert (fs.root / "svc/jobs").exists()


def test_v2_missing_controller_names_it_and_the_fix(fakefs, monkeypatch):
    fs = fakefs("v2", controllers=("cpu", "memory"))
    with pytest.raises(CgroupError) as info:
        manager(fs).create(Limits(memory_max=M, pids_max=10))
    msg = str(info.value)
    assert "'pids' controller is not available" in msg and "has: cpu memory" in msg
    assert "cgroup_no_v1=all" in msg and "Delegate=yes" in msg and "\n" not in msg
    assert not (fs.root / "c1").exists()
    # a level we may not write to
    fs2 = fakefs("v2", own="/svc", controllers=("cpu", "memory", "io"))
    real_write = cgroups.v2.write

    def write(path, value, hint=""):
        if path.endswith("/svc/cgroup.subtree_control"):
            raise cgroups.base.fail(f"write {value!r} to", path, PermissionError(13, "Denied"))
        real_write(path, value, hint)

    with monkeypatch.context() as m:
        m.setattr(cgroups.v2, "write", write)
        with pytest.raises(CgroupError, match=r"^cgroups: cannot enable the 'io' controller for "
                                              r"the children of .*/svc: write '\+io' to .*/svc/"
                                              r"cgroup.subtree_control: Denied \(errno 13\): not "
                                              r"permitted: run as root or on a delegated cgroup$"):
            manager(fs2).create(Limits(io_weight=10))
    # a controller nobody needs may be missing
    cg = manager(fs2).create(Limits(memory_max=M))
    assert cg.stats().pids_current is None and cg.stats().memory_current == 0
    cg.delete()


def test_v2_no_internal_processes(fakefs):
    fs = fakefs("v2", own="/user/me")
    (fs.root / "user/me/cgroup.procs").write_text("4242\n")  # we live in our own cgroup
    with pytest.raises(CgroupError, match=r"cannot enable the 'memory' controller below "
                                          r".*/user/me: it has processes of its own \(cgroup v2 "
                                          r"no-internal-processes rule\)"):
        manager(fs).create(Limits(memory_max=M))
    assert not (fs.root / "user/me/c1").exists()
    # without limits nothing needs enabling, so the cgroup can still be made
    manager(fs).create().delete()
    # a process-free parent given explicitly works
    fs.files(fs.root / "user/pool", {"cgroup.controllers": "memory",
                                     "cgroup.subtree_control": ""})
    cg = manager(fs, parent="/user/pool").create(Limits(memory_max=M))
    assert text(fs.root / "user/pool/c1/memory.max") == str(M)
    cg.delete()


def test_v2_exists_and_rollback(fakefs):
    fs = fakefs("v2")
    cg = manager(fs).create()
    with pytest.raises(CgroupError, match="already exists"):
        manager(fs).create()
    assert manager(fs).create(Limits(pids_max=3), exist_ok=True).limits().pids_max == 3
    cg.delete()
    # the kernel rejects a value (simulated: cpu.weight cannot be written): nothing is left
    real_mkdir = cgroups.base.mkdir

    def mkdir_broken(path):
        real_mkdir(path)
        os.unlink(f"{path}/cpu.weight")
        os.symlink("/nonexistent/file", f"{path}/cpu.weight")

    cgroups.base.mkdir = mkdir_broken
    try:
        with pytest.raises(CgroupError, match=r"write '300' to .*/c1/cpu.weight: No such file"):
            manager(fs).create(Limits(cpu_quota=50000, cpu_weight=300))
    finally:
        cgroups.base.mkdir = real_mkdir
    assert not (fs.root / "c1").exists()


def test_v2_stats_events_and_oom_wait(fakefs):
    fs = fakefs("v2")
    cg = manager(fs).create()
    d = fs.root / "c1"
    fs.files(d, {"memory.current": "1000", "memory.peak": "5000",
                 "cpu.stat": "usage_usec 700\nuser_usec 500\nsystem_usec 200\nnr_periods 3",
                 "pids.current": "3", "pids.events": "max 7",
                 "io.stat": "7:0 rbytes=10 wbytes=20 rios=1 wios=2\n8:0 rbytes=1 wbytes=2",
                 "memory.events": "low 0\nhigh 0\nmax 4\noom 2\noom_kill 1"})
    assert cg.stats() == cgroups.Stats(memory_current=1000, memory_peak=5000, cpu_usage_usec=700,
                                       cpu_user_usec=500, cpu_system_usec=200, pids_current=3,
                                       io_read_bytes=11, io_write_bytes=22, oom=2, oom_kill=1)
    assert cg.events() == {"low": 0, "high": 0, "max": 4, "oom": 2, "oom_kill": 1, "pids_max": 7}
    assert cg.wait_for_oom(0.1) is True
    assert cg.wait_for_oom(0.1, since=1) is False
    assert cg.stats().as_dict()["oom_kill"] == 1
    cg.delete()


def test_v2_freeze_and_kill(fakefs):
    fs = fakefs("v2")
    cg = manager(fs).create()
    d = fs.root / "c1"
    (d / "cgroup.events").write_text("populated 1\nfrozen 1\n")  # the fake "kernel" froze it
    cg.freeze()
    assert text(d / "cgroup.freeze") == "1"
    with pytest.raises(CgroupError, match=r"did not become thawed within 0.05 s"):
        cg.thaw(timeout=0.05)
    cg.kill()
    assert text(d / "cgroup.kill") == "1"
    cg.delete()


def test_v2_delegate_chowns_only_delegatable_files(fakefs, monkeypatch, tmp_path):
    fs = fakefs("v2")
    cg = manager(fs).create(Limits(memory_max=M, pids_max=10))
    listing = tmp_path / "delegate"
    listing.write_text("cgroup.procs\ncgroup.threads\ncgroup.subtree_control\nmemory.oom.group\n"
                       "memory.reclaim\nmemory.future.file\n")
    chowned = {}
    with monkeypatch.context() as m:
        m.setattr(os, "chown", lambda p, u, g: chowned.__setitem__(os.path.basename(p), (u, g)))
        cg.delegate(1234, 5678, delegate_file=str(listing))
    assert chowned == {n: (1234, 5678) for n in ("c1", "cgroup.procs", "cgroup.threads",
                                                 "cgroup.subtree_control", "memory.oom.group",
                                                 "memory.reclaim")}
    cg.delete()


# ── v1 / hybrid ──────────────────────────────────────────────────────────────────────────────
def test_v1_layout_and_limits(fakefs):
    fs = fakefs("hybrid", own="/user/me",
                controllers=("memory", "cpu", "cpuacct", "cpuset", "pids", "blkio", "freezer"))
    cg = manager(fs).create(ALL)
    r = fs.root
    assert cg.paths == {"memory": f"{r}/memory/user/me/c1", "cpu": f"{r}/cpu/c1",
                        "cpuacct": f"{r}/cpuacct/c1", "cpuset": f"{r}/cpuset/c1",
                        "pids": f"{r}/pids/c1", "blkio": f"{r}/blkio/c1",
                        "freezer": f"{r}/freezer/c1"}
    assert cg.path == f"{r}/memory/user/me/c1" and len(cg.procs_paths) == 7
    files = {"memory/user/me/c1/memory.limit_in_bytes": str(64 * M),
             "memory/user/me/c1/memory.memsw.limit_in_bytes": str(128 * M),
             "cpu/c1/cpu.cfs_quota_us": "50000", "cpu/c1/cpu.cfs_period_us": "100000",
             "cpu/c1/cpu.shares": "2048", "cpuset/c1/cpuset.cpus": "0-1",
             "cpuset/c1/cpuset.mems": "0", "pids/c1/pids.max": "128",
             "blkio/c1/blkio.weight": "300",
             "blkio/c1/blkio.throttle.read_iops_device": "7:0 100",
             "blkio/c1/blkio.throttle.write_bps_device": f"7:0 {M}"}
    assert {f: text(r / f) for f in files} == files
    assert cg.limits() == ALL
    cg.add(99)
    assert all(text(Path(p)) == "99" for p in cg.procs_paths)
    for p in cg.procs_paths:
        Path(p).write_text("")
    cg.update(Limits(pids_max=UNLIMITED, cpu_quota=UNLIMITED, io_max={"7:0": {"wbps": -1}}))
    assert [text(r / f) for f in ("pids/c1/pids.max", "cpu/c1/cpu.cfs_quota_us",
                                  "blkio/c1/blkio.throttle.write_bps_device")] == \
        ["max", "-1", "7:0 0"]
    cg.delete()
    assert not cg.exists() and (r / "memory/user/me").exists()


def test_v1_new_cpuset_inherits_cpus_and_mems(fakefs):
    fs = fakefs("v1", controllers=("cpuset", "memory"))
    cg = manager(fs, "a/b").create()  # no cpuset limit: still must be able to hold tasks
    assert text(fs.root / "cpuset/a/cpuset.cpus") == "0-3"
    assert text(fs.root / "cpuset/a/b/cpuset.cpus") == "0-3"
    assert text(fs.root / "cpuset/a/b/cpuset.mems") == "0"
    cg.delete()
    assert not (fs.root / "cpuset/a").exists()


def test_v1_comounted_hierarchies_share_a_directory(fakefs):
    fs = fakefs("v1", controllers=("memory",))
    both = fs.root / "cpu,cpuacct"
    fs.files(both, {"cgroup.procs": ""})
    os.symlink("cpu,cpuacct", fs.root / "cpu")
    os.symlink("cpu,cpuacct", fs.root / "cpuacct")
    with open(fs.proc_cgroup, "a") as f:
        f.write("7:cpu,cpuacct:/\n")
    cg = manager(fs)
    assert cg.paths["cpu"] == cg.paths["cpuacct"] == f"{fs.root}/cpu/c1"
    assert len(cg.dirs) == 2


def test_v1_missing_hierarchy_names_it_and_the_fix(fakefs):
    fs = fakefs("hybrid", controllers=("memory", "cpu"))
    with pytest.raises(CgroupError) as info:
        manager(fs).create(Limits(memory_max=M, pids_max=10))
    assert str(info.value) == (
        f"cgroups: a pids limit needs the cgroup v1 'pids' controller, which is not mounted at "
        f"{fs.root}/pids: mount it (mkdir -p {fs.root}/pids && mount -t cgroup -o pids cgroup "
        f"{fs.root}/pids) or do without it")
    assert not (fs.root / "memory/c1").exists()
    cg = manager(fs).create(Limits(memory_max=M))  # what is mounted works
    with pytest.raises(CgroupError, match="freeze/thaw needs the cgroup v1 'freezer'"):
        cg.freeze()
    cg.delete()


def test_v1_rejects_v2_only_limits_and_rolls_back(fakefs):
    fs = fakefs("v1", controllers=("memory",))
    with pytest.raises(CgroupError, match=r"memory high limit needs cgroup v2"):
        manager(fs).create(Limits(memory_high=M))
    assert not (fs.root / "memory/c1").exists()
    os.unlink(fs.root / "memory/memory.memsw.limit_in_bytes")  # new cgroups inherit nothing,
    fs.files(fs.root, {})                                       # but the fake's template does:
    cgroups.base.mkdir, real = (lambda p: (real(p), os.unlink(f"{p}/memory.memsw.limit_in_"
                                                               "bytes"))), cgroups.base.mkdir
    try:
        with pytest.raises(CgroupError, match=r"swap accounting .*swapaccount=1"):
            manager(fs).create(Limits(memory_max=M, memory_swap=2 * M))
    finally:
        cgroups.base.mkdir = real
    assert not (fs.root / "memory/c1").exists()


def test_v1_stats_and_events(fakefs):
    fs = fakefs("v1", controllers=("memory", "cpuacct", "pids", "blkio", "freezer"))
    cg = manager(fs).create()
    r = fs.root
    fs.files(r / "memory/c1", {"memory.usage_in_bytes": "1000",
                               "memory.max_usage_in_bytes": "5000",
                               "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\n"
                                                     "oom_kill 2"})
    fs.files(r / "cpuacct/c1", {"cpuacct.usage": "7000000", "cpuacct.usage_user": "5000000",
                                "cpuacct.usage_sys": "2000000"})
    fs.files(r / "pids/c1", {"pids.current": "4", "pids.events": "max 9"})
    fs.files(r / "blkio/c1", {"blkio.throttle.io_service_bytes_recursive":
                              "7:0 Read 10\n7:0 Write 20\n7:0 Sync 30\n7:0 Total 30\nTotal 30"})
    assert cg.stats() == cgroups.Stats(memory_current=1000, memory_peak=5000,
                                       cpu_usage_usec=7000, cpu_user_usec=5000,
                                       cpu_system_usec=2000, pids_current=4, io_read_bytes=10,
                                       io_write_bytes=20, oom_kill=2)
    assert cg.events() == {"oom_kill_disable": 0, "under_oom": 0, "oom_kill": 2, "pids_max": 9}
    assert cg.wait_for_oom(0.1, since=1) is True
    assert cg.wait_for_oom(0.1, since=2) is False
    cg.freeze()
    assert text(r / "freezer/c1/freezer.state") == "FROZEN"
    cg.thaw()
    assert text(r / "freezer/c1/freezer.state") == "THAWED"
    cg.delete()


# ── the rest of what OCI's linux.resources can ask ──────────────────────────────────────────
def test_v1_writes_every_v1_knob(fakefs):
    fs = fakefs("v1", controllers=("memory", "cpu", "blkio"))
    cg = manager(fs).create()
    r = fs.root
    extra = {"memory": ("memory.soft_limit_in_bytes", "memory.swappiness"),
             "cpu": ("cpu.idle", "cpu.rt_runtime_us", "cpu.rt_period_us"),
             "blkio": ("blkio.weight_device", "blkio.leaf_weight")}
    for ctrl, names in extra.items():
        for name in names:
            (r / ctrl / "c1" / name).write_text("0\n")
    cg.update(Limits(memory_low=32 * M, memory_swappiness=10, memory_oom_kill_disable=True,
                     cpu_shares=512, cpu_idle=1, cpu_rt_runtime=5000, cpu_rt_period=1000000,
                     io_weight_device={"8:0": 200}, io_leaf_weight=300))
    assert {f: text(r / f) for f in (
        "memory/c1/memory.soft_limit_in_bytes", "memory/c1/memory.swappiness",
        "memory/c1/memory.oom_control", "cpu/c1/cpu.shares", "cpu/c1/cpu.idle",
        "cpu/c1/cpu.rt_runtime_us", "cpu/c1/cpu.rt_period_us", "blkio/c1/blkio.weight_device",
        "blkio/c1/blkio.leaf_weight")} == {
        "memory/c1/memory.soft_limit_in_bytes": str(32 * M), "memory/c1/memory.swappiness": "10",
        "memory/c1/memory.oom_control": "1", "cpu/c1/cpu.shares": "512", "cpu/c1/cpu.idle": "1",
        "cpu/c1/cpu.rt_runtime_us": "5000", "cpu/c1/cpu.rt_period_us": "1000000",
        "blkio/c1/blkio.weight_device": "8:0 200", "blkio/c1/blkio.leaf_weight": "300"}
    for lim, says in ((Limits(unified={"pids.max": "5"}), "cannot be set on cgroup v1"),
                      (Limits(net_classid=7), "'net_cls' controller, which is not mounted"),
                      (Limits(hugetlb={"2MB": M}), "'hugetlb' controller, which is not mount"),
                      (Limits(rdma={"mlx5_0": {"hca_handle": 1}}), "'rdma' controller")):
        with pytest.raises(CgroupError, match=says):
            cg.update(lim)
        with pytest.raises(CgroupError, match=says):
            manager(fs, "c2").create(lim)
        assert not (r / "memory" / "c2").exists()
    cg.delete()


def test_v2_writes_every_v2_knob_and_refuses_v1_ones(fakefs):
    fs = fakefs("v2", controllers=("cpu", "memory", "pids"))
    cg = manager(fs).create()
    d = fs.root / "c1"
    for name in ("memory.low", "cpu.idle", "hugetlb.2MB.max", "rdma.max", "memory.high"):
        (d / name).write_text("max\n")
    cg.update(Limits(memory_low=32 * M, cpu_shares=1024, cpu_idle=1, hugetlb={"2MB": 4 * M},
                     rdma={"mlx5_0": {"hca_handle": 2, "hca_object": UNLIMITED}},
                     unified={"memory.high": "123456", "pids.max": "17"}))
    assert {f: text(d / f) for f in ("memory.low", "cpu.weight", "cpu.idle", "hugetlb.2MB.max",
                                     "rdma.max", "memory.high", "pids.max")} == {
        "memory.low": str(32 * M), "cpu.weight": "39", "cpu.idle": "1",
        "hugetlb.2MB.max": str(4 * M), "rdma.max": "mlx5_0 hca_handle=2 hca_object=max",
        "memory.high": "123456", "pids.max": "17"}
    for lim, says in ((Limits(memory_swappiness=1), "no memory.swappiness"),
                      (Limits(net_priorities={"lo": 1}), "no net_prio"),
                      (Limits(cpu_rt_runtime=1), "real-time"),
                      (Limits(unified={"../x.max": "1"}), "no slashes"),
                      (Limits(unified={"io.max": "1"}), "'io' controller is not available")):
        with pytest.raises(CgroupError, match=says):
            cg.update(lim)
    assert Limits(memory_swappiness=1, unified={}).unsupported("v2") == {
        "memory_swappiness": "cgroup v2 has no memory.swappiness"}
    cg.delete()


def test_unavailable_names_what_the_host_lacks(fakefs):
    v1 = cgroups.unavailable(str(fakefs("hybrid", controllers=("memory", "cpu")).root))
    assert v1["unified"].endswith("cannot be set on cgroup v1")
    assert v1["net_classid"] == "the cgroup v1 'net_cls' controller is not mounted"
    assert v1["cpu_rt_runtime"] == "no CONFIG_RT_GROUP_SCHED" and "memory_max" not in v1
