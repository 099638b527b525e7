"""config-linux.md "Control groups": where a container's cgroup goes (``cgroupsPath``) and
what of ``linux.resources`` reaches its cgroup files, read back as an engine reads them.

jailer runs here as it does below an engine: in a cgroup namespace rooted at this test's own
cgroups (so "/" is the test's cgroup in every hierarchy, and an absolute cgroupsPath stays
below it), with its own process in a child cgroup ``/runtime`` (as containerd's shim or
conmon are in a cgroup of their own, away from ``/kubepods`` or ``/libpod_parent``). Every
cgroup a test makes is below the test's own cgroups and is removed again.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.oci.conftest import run_jailer, set_config

pytestmark = pytest.mark.root

M = 1 << 20
CG = "/sys/fs/cgroup"
V2 = os.path.exists(f"{CG}/cgroup.controllers")
V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "cpuset", "pids", "blkio", "freezer", "devices",
                  "net_cls", "net_prio", "hugetlb", "rdma")


# ── the test's cgroups, seen from the host ───────────────────────────────────────────────────
def _own() -> dict[str, str]:
    """Controller ("" for the v2 hierarchy) -> this process's cgroup path."""
    out = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            for c in ctrls.split(",") if ctrls else [""]:
                out[c] = path.rstrip("/")
    return out


def tops() -> dict[str, str]:
    """Controller -> the directory of this test's own cgroup in its hierarchy (host view)."""
    own = _own()
    if V2:
        return {"": f"{CG}{own['']}"}
    return {c: f"{CG}/{c}{own[c]}" for c in V1_CONTROLLERS
            if c in own and os.path.isfile(f"{CG}/{c}/cgroup.procs")}


def host(ctrl: str, rel: str) -> str:
    """``rel`` (a path in the container runtime's view, "/" = this test's cgroup) in the
    hierarchy of ``ctrl`` (ignored on v2), on the host."""
    return os.path.join(tops()["" if V2 else ctrl], rel.strip("/"))


def read(ctrl: str, rel: str, name: str) -> str:
    with open(os.path.join(host(ctrl, rel), name)) as f:
        return f.read().strip()


def make(rel: str, files: dict[str, str] | None = None) -> None:
    """Make cgroup ``rel`` (and its missing parents) in every hierarchy; fill cpusets."""
    for top in tops().values():
        d = top
        for part in rel.strip("/").split("/"):
            parent, d = d, f"{d}/{part}"
            if not os.path.isdir(d):
                os.mkdir(d)
            for f in ("cpuset.cpus", "cpuset.mems") if not V2 else ():  # v1: empty at first
                if os.path.exists(f"{d}/{f}") and not open(f"{d}/{f}").read().strip():
                    with open(f"{d}/{f}", "w") as out:
                        out.write(open(f"{parent}/{f}").read())
    for name, value in (files or {}).items():
        ctrl = name.split(".")[0]
        with open(os.path.join(host(ctrl, rel), name), "w") as f:
            f.write(value)


def remove(rel: str) -> None:
    """Remove cgroup ``rel`` and everything below it, in every hierarchy."""
    for top in tops().values():
        d = os.path.join(top, rel.strip("/"))
        if os.path.isdir(d):
            for sub, _, _ in os.walk(d, topdown=False):
                os.rmdir(sub)


def exists(rel: str) -> list[str]:
    return [t for t in tops().values() if os.path.isdir(os.path.join(t, rel.strip("/")))]


# ── jailer as an engine runs it ──────────────────────────────────────────────────────────────
def _mount_script() -> str:
    """Shell lines that mount fresh cgroup filesystems at /sys/fs/cgroup, as the host has
    them, inside a new mount and cgroup namespace (so their root is the namespace's), then
    move the shell into /runtime."""
    if V2:
        # (the kernel refuses a mount of the same root on itself: stack it on a tmpfs)
        lines = [f"mount -t tmpfs cgroup {CG}", f"mount -t cgroup2 cgns {CG}"]
    else:
        lines = [f"mount -t tmpfs -o mode=755 cgroup {CG}"]
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                point, (fstype, _, opts) = left.split()[4], right.split()
                if not point.startswith(f"{CG}/") or fstype not in ("cgroup", "cgroup2"):
                    continue
                words = ",".join(w for w in opts.split(",") if w not in ("rw", "ro"))
                lines.append(f"mkdir -p {point}")
                lines.append(f"mount -t {fstype} {'-o ' + words if words else ''} cgns {point}")
    lines.append(f"for f in $(find {CG} -path '*/runtime/cgroup.procs'); do echo $$ > $f; done")
    return "\n".join(lines)


@pytest.fixture
def runtime_cgroup():
    """/runtime below this test's cgroups, where jailer runs; removed at the end."""
    make("/runtime")
    yield "/runtime"
    remove("/runtime")


@pytest.fixture
def eng(oci_root, runtime_cgroup):
    """Run ``jailer --root ROOT ARGS`` the way an engine does (see the module docstring);
    containers left behind are force-deleted."""
    script = _mount_script()

    prefix = ("unshare", "--mount", "--cgroup", "--propagation", "private", "sh", "-ec",
              script + '\nexec "$@"', "sh")

    def run(*args: str, check: bool = False, **kw) -> subprocess.CompletedProcess:
        return run_jailer(["--root", str(oci_root), *args], check=check, prefix=prefix, **kw)

    yield run
    for entry in os.listdir(oci_root):
        run("delete", "--force", entry)
    assert os.listdir(oci_root) == [], "state left behind"


def pid_of(eng, cid: str) -> int:
    return json.loads(eng("state", cid, check=True).stdout)["pid"]


def procs(ctrl: str, rel: str) -> list[int]:
    return [int(p) for p in read(ctrl, rel, "cgroup.procs").split()]


def one_line_error(r) -> str:
    assert r.returncode != 0, r.stderr
    lines = [line for line in r.stderr.splitlines() if not line.startswith("jailer: warning")]
    assert len(lines) == 1, r.stderr
    return lines[0]


# ── 1. cgroupsPath ───────────────────────────────────────────────────────────────────────────
@pytest.mark.vm
def test_absolute_cgroups_path_is_taken_from_each_hierarchys_root(eng, bundle):
    """podman's cgroupfs layout: /libpod_parent/libpod-ID from the root of every hierarchy,
    not below the runtime's own cgroup; at delete only the leaf goes (as runc)."""
    set_config(bundle, linux__cgroupsPath="/libpod_parent/libpod-c1",
               linux__resources={"memory": {"limit": 64 * M}, "pids": {"limit": 32}})
    try:
        eng("run", "--detach", "--bundle", str(bundle), "c1", check=True)
        pid = pid_of(eng, "c1")
        for ctrl in tops():
            assert pid in procs(ctrl, "/libpod_parent/libpod-c1"), ctrl
        assert not exists("/runtime/libpod_parent")
        if V2:
            assert read("", "/libpod_parent/libpod-c1", "memory.max") == str(64 * M)
        else:
            assert read("memory", "/libpod_parent/libpod-c1", "memory.limit_in_bytes") == \
                str(64 * M)
        assert read("pids", "/libpod_parent/libpod-c1", "pids.max") == "32"
        # a relative path is below the runtime's own cgroup
        set_config(bundle, linux__cgroupsPath="nested/c2", linux__resources={})
        eng("run", "--detach", "--bundle", str(bundle), "c2", check=True)
        assert pid_of(eng, "c2") in procs("pids", "/runtime/nested/c2")
        eng("delete", "--force", "c1", check=True)
        eng("delete", "--force", "c2", check=True)
        assert not exists("/libpod_parent/libpod-c1") and not exists("/runtime/nested")
        assert exists("/libpod_parent"), "the engine's parent cgroup must stay (runc)"
    finally:
        eng("delete", "--force", "c1")
        remove("/libpod_parent")


def test_absolute_cgroups_path_joins_a_parent_the_engine_made(eng, bundle):
    """The kubelet makes /kubepods/podUID (with its own limits) and gives each container a
    path below it: the container's cgroup goes there and the parent's limits stay."""
    make("/kubepods/pod1", {"pids.max": "50"})
    try:
        set_config(bundle, linux__cgroupsPath="/kubepods/pod1/ctr1",
                   linux__resources={"pids": {"limit": 20}})
        eng("run", "--detach", "--bundle", str(bundle), "k1", check=True)
        assert pid_of(eng, "k1") in procs("pids", "/kubepods/pod1/ctr1")
        assert read("pids", "/kubepods/pod1/ctr1", "pids.max") == "20"
        assert read("pids", "/kubepods/pod1", "pids.max") == "50"
        eng("delete", "--force", "k1", check=True)
        assert not exists("/kubepods/pod1/ctr1") and exists("/kubepods/pod1")
    finally:
        eng("delete", "--force", "k1")
        remove("/kubepods")


@pytest.mark.vm
def test_existing_cgroup_is_joined_when_empty_and_refused_with_processes(eng, bundle):
    """A cgroupsPath naming a cgroup that exists already: joined when empty (and removed at
    delete), as runc does; with a process in it, create fails with one line, and the cgroup
    and its process are left as they were."""
    import subprocess

    make("/pre/empty")
    make("/pre/busy")
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        for top in tops().values():
            with open(f"{top}/pre/busy/cgroup.procs", "w") as f:
                f.write(str(sleeper.pid))
        set_config(bundle, linux__cgroupsPath="/pre/empty",
                   linux__resources={"pids": {"limit": 20}})
        eng("run", "--detach", "--bundle", str(bundle), "e1", check=True)
        assert pid_of(eng, "e1") in procs("pids", "/pre/empty")
        assert read("pids", "/pre/empty", "pids.max") == "20"
        eng("delete", "--force", "e1", check=True)
        assert not exists("/pre/empty")
        set_config(bundle, linux__cgroupsPath="/pre/busy")
        line = one_line_error(eng("create", "--bundle", str(bundle), "e2"))
        assert "is not empty: 1 process(es) in it" in line, line
        assert procs("pids", "/pre/busy") == [sleeper.pid]
    finally:
        sleeper.kill()
        sleeper.wait()
        eng("delete", "--force", "e1")
        remove("/pre")


# ── 2. linux.resources, read back from the cgroup files ─────────────────────────────────────
MEM_CPU = {
    "memory": {"limit": 64 * M, "reservation": 32 * M, "swap": 96 * M, "swappiness": 10,
               "disableOOMKiller": True},
    "cpu": {"shares": 512, "quota": 20000, "period": 50000, "cpus": "0", "mems": "0"},
    "pids": {"limit": 40},
}


@pytest.mark.vm
def test_memory_cpu_and_pids_resources_reach_the_cgroup(eng, bundle):
    set_config(bundle, linux__cgroupsPath="/res/c3", linux__resources=MEM_CPU)
    try:
        r = eng("run", "--detach", "--bundle", str(bundle), "c3", check=True)
        at = "/res/c3"
        assert read("pids", at, "pids.max") == "40"
        assert read("cpuset", at, "cpuset.cpus") == "0"
        assert read("cpuset", at, "cpuset.mems") == "0"
        if V2:
            want = {"memory.max": str(64 * M), "memory.low": str(32 * M),
                    "memory.swap.max": str(32 * M), "cpu.max": "20000 50000",
                    "cpu.weight": str(1 + (512 - 2) * 9999 // 262142)}
            for name, value in want.items():
                if name != "memory.swap.max" or os.path.exists(host("", at) + "/" + name):
                    assert read("", at, name) == value, name
            # what v2 cannot express is ignored, as runc does, but not silently
            for field in ("memory.swappiness", "memory.disableOOMKiller"):
                assert f"linux.resources.{field} is not supported" in r.stderr
        else:
            assert read("memory", at, "memory.limit_in_bytes") == str(64 * M)
            assert read("memory", at, "memory.soft_limit_in_bytes") == str(32 * M)
            assert read("memory", at, "memory.memsw.limit_in_bytes") == str(96 * M)
            assert read("memory", at, "memory.swappiness") == "10"
            assert "oom_kill_disable 1" in read("memory", at, "memory.oom_control")
            assert read("cpu", at, "cpu.shares") == "512"
            assert read("cpu", at, "cpu.cfs_quota_us") == "20000"
            assert read("cpu", at, "cpu.cfs_period_us") == "50000"
    finally:
        eng("delete", "--force", "c3")
        remove("/res")


@pytest.mark.vm
def test_cpu_idle(eng, bundle):
    if not os.path.exists(host("cpu", "/") + "/cpu.idle") and not V2:
        pytest.skip("no cpu.idle (Linux < 5.15)")
    set_config(bundle, linux__cgroupsPath="/res/idle", linux__resources={"cpu": {"idle": 1}})
    try:
        eng("run", "--detach", "--bundle", str(bundle), "i1", check=True)
        assert read("cpu", "/res/idle", "cpu.idle") == "1"
    finally:
        eng("delete", "--force", "i1")
        remove("/res")


@pytest.mark.vm
def test_realtime_cpu_bandwidth(eng, bundle):
    """v1 (CONFIG_RT_GROUP_SCHED): cpu.rt_runtime_us/rt_period_us, within the budget the
    parents give; v2 has no such files: a warning, ignored (runc ignores them there)."""
    res = {"cpu": {"realtimeRuntime": 5000, "realtimePeriod": 1000000}}
    set_config(bundle, linux__cgroupsPath="/rt/c4", linux__resources=res)
    own_rt = host("cpu", "/") + "/cpu.rt_runtime_us"
    if not V2 and not os.path.exists(own_rt):
        pytest.skip("the kernel has no CONFIG_RT_GROUP_SCHED")
    before = None
    try:
        if not V2:
            before = open(own_rt).read().strip()
            if int(before) < 20000:
                with open(own_rt, "w") as f:
                    f.write("20000")
            make("/rt", {"cpu.rt_runtime_us": "10000"})
        r = eng("run", "--detach", "--bundle", str(bundle), "c4", check=True)
        if V2:
            assert "linux.resources.cpu.realtimeRuntime is not supported" in r.stderr
        else:
            assert read("cpu", "/rt/c4", "cpu.rt_runtime_us") == "5000"
            assert read("cpu", "/rt/c4", "cpu.rt_period_us") == "1000000"
    finally:
        eng("delete", "--force", "c4")
        remove("/rt")
        if before is not None:
            _write_when_freed(own_rt, before)


def _write_when_freed(path: str, value: str) -> None:
    """Write ``value``, again while the kernel still counts a removed child's real-time
    budget (it frees the group a little after rmdir)."""
    import time

    deadline = time.monotonic() + 5
    while True:
        try:
            with open(path, "w") as f:
                f.write(value)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _disk() -> tuple[int, int]:
    """MAJ:MIN of a whole disk the kernel can throttle."""
    for name in sorted(os.listdir("/sys/block")):
        if os.path.exists(f"/sys/block/{name}/dev") and not name.startswith(("ram", "zram")):
            major, minor = open(f"/sys/block/{name}/dev").read().split(":")
            return int(major), int(minor)
    pytest.skip("no block device")


@pytest.mark.vm
def test_block_io_throttles_and_weights(eng, bundle):
    """Throttles are written per device; a weight per device needs BFQ (or io.cost on v2):
    without it the write fails and so does create (as runc), with one line, leaving
    nothing behind."""
    major, minor = _disk()
    dev = f"{major}:{minor}"
    res = {"blockIO": {"throttleReadBpsDevice": [{"major": major, "minor": minor,
                                                  "rate": 10 * M}],
                       "throttleWriteIOPSDevice": [{"major": major, "minor": minor,
                                                    "rate": 300}]}}
    set_config(bundle, linux__cgroupsPath="/io/c5", linux__resources=res)
    try:
        eng("run", "--detach", "--bundle", str(bundle), "c5", check=True)
        if V2:
            assert f"{dev} rbps={10 * M} wbps=max riops=max wiops=300" in \
                read("", "/io/c5", "io.max")
        else:
            assert f"{dev} {10 * M}" in read("blkio", "/io/c5",
                                             "blkio.throttle.read_bps_device")
            assert f"{dev} 300" in read("blkio", "/io/c5", "blkio.throttle.write_iops_device")
        eng("delete", "--force", "c5", check=True)
        set_config(bundle, linux__resources={"blockIO": {"weightDevice": [
            {"major": major, "minor": minor, "weight": 200}]}})
        r = eng("run", "--detach", "--bundle", str(bundle), "c5")
        weight_files = ("io.bfq.weight", "io.weight") if V2 else ("blkio.bfq.weight_device",
                                                                  "blkio.weight_device")
        if r.returncode == 0:
            assert any(f"{dev} 200" in read("blkio", "/io/c5", f) for f in weight_files
                       if os.path.exists(f"{host('blkio', '/io/c5')}/{f}"))
        else:
            line = one_line_error(r)
            assert "weight" in line and ("BFQ" in line or "io.cost" in line), line
            assert not exists("/io/c5")
            if not V2:  # v1: the files are there (in every cgroup) or not
                assert not any(os.path.exists(f"{host('blkio', '/')}/{f}")
                               for f in weight_files)
    finally:
        eng("delete", "--force", "c5")
        remove("/io")


@pytest.mark.vm
def test_network_class_and_priorities(eng, bundle):
    """v1: net_cls.classid and net_prio.ifpriomap, where those hierarchies are mounted;
    where not, create fails as runc's does; v2 has neither: a warning, ignored."""
    res = {"network": {"classID": 0x100001, "priorities": [{"name": "lo", "priority": 7}]}}
    set_config(bundle, linux__cgroupsPath="/net/c6", linux__resources=res)
    mounted = {c: c in tops() for c in ("net_cls", "net_prio")}
    try:
        r = eng("run", "--detach", "--bundle", str(bundle), "c6")
        if V2:
            assert r.returncode == 0, r.stderr
            assert "linux.resources.network.classID is not supported" in r.stderr
            assert "linux.resources.network.priorities is not supported" in r.stderr
        elif not all(mounted.values()):
            line = one_line_error(r)
            missing = next(c for c, m in mounted.items() if not m)
            assert f"'{missing}' controller" in line and "not mounted" in line, line
            assert not exists("/net/c6")
        else:
            assert r.returncode == 0, r.stderr
            assert read("net_cls", "/net/c6", "net_cls.classid") == str(0x100001)
            assert "lo 7" in read("net_prio", "/net/c6", "net_prio.ifpriomap")
    finally:
        eng("delete", "--force", "c6")
        remove("/net")


def _hugetlb_available() -> bool:
    if V2:
        return "hugetlb" in open(f"{CG}/cgroup.controllers").read().split()
    return "hugetlb" in tops()


@pytest.mark.vm
def test_hugepage_limits(eng, bundle):
    res = {"hugepageLimits": [{"pageSize": "2MB", "limit": 8 * M}]}
    set_config(bundle, linux__cgroupsPath="/huge/c7", linux__resources=res)
    try:
        r = eng("run", "--detach", "--bundle", str(bundle), "c7")
        if not _hugetlb_available() or not os.path.isdir("/sys/kernel/mm/hugepages/"
                                                         "hugepages-2048kB"):
            line = one_line_error(r)
            assert "hugetlb" in line or "huge page" in line, line
            assert "not supported by jailer" not in line, line
            assert not exists("/huge/c7")
            return
        assert r.returncode == 0, r.stderr
        name = "hugetlb.2MB.max" if V2 else "hugetlb.2MB.limit_in_bytes"
        assert read("hugetlb", "/huge/c7", name) == str(8 * M)
    finally:
        eng("delete", "--force", "c7")
        remove("/huge")


@pytest.mark.vm
def test_unified_resources(eng, bundle):
    """v2: each key is a file of the container's cgroup, written as given; v1 refuses them
    (runc: "cannot use unified on cgroup v1")."""
    res = {"unified": {"memory.high": str(48 * M), "pids.max": "17"}}
    set_config(bundle, linux__cgroupsPath="/uni/c8", linux__resources=res)
    try:
        r = eng("run", "--detach", "--bundle", str(bundle), "c8")
        if not V2:
            line = one_line_error(r)
            assert "linux.resources.unified" in line and "cgroup v1" in line, line
            assert not exists("/uni")
            return
        assert r.returncode == 0, r.stderr
        assert read("", "/uni/c8", "memory.high") == str(48 * M)
        assert read("", "/uni/c8", "pids.max") == "17"
        set_config(bundle, linux__resources={"unified": {"../memory.max": "1"}})
        line = one_line_error(eng("run", "--detach", "--bundle", str(bundle), "c9"))
        assert "no slashes" in line, line
    finally:
        eng("delete", "--force", "c8")
        remove("/uni")


@pytest.mark.vm
def test_rdma_needs_the_rdma_controller(eng, bundle):
    res = {"rdma": {"mlx5_0": {"hcaHandles": 3, "hcaObjects": 1000}}}
    set_config(bundle, linux__cgroupsPath="/rdma/c10", linux__resources=res)
    try:
        r = eng("run", "--detach", "--bundle", str(bundle), "c10")
        if os.path.isdir("/sys/class/infiniband/mlx5_0"):
            pytest.skip("a real RDMA device: not tested here")
        line = one_line_error(r)
        assert "rdma" in line.lower(), line
        assert "not supported by jailer" not in line, line
        assert not exists("/rdma/c10")
    finally:
        eng("delete", "--force", "c10")
        remove("/rdma")


# ── 3. runc update -r ────────────────────────────────────────────────────────────────────────
@pytest.mark.vm
def test_update_applies_the_same_set(eng, bundle):
    set_config(bundle, linux__cgroupsPath="/upd/c11",
               linux__resources={"memory": {"limit": 64 * M}, "pids": {"limit": 30}})
    at = "/upd/c11"
    try:
        eng("run", "--detach", "--bundle", str(bundle), "c11", check=True)
        new = {"memory": {"limit": 48 * M, "reservation": 16 * M},
               "cpu": {"shares": 300, "quota": 30000, "period": 60000},
               "pids": {"limit": 25}}
        if not V2:
            new["memory"]["swappiness"] = 20
        eng("update", "-r", "-", "c11", input=json.dumps(new), check=True)
        assert read("pids", at, "pids.max") == "25"
        if V2:
            assert read("", at, "memory.max") == str(48 * M)
            assert read("", at, "memory.low") == str(16 * M)
            assert read("", at, "cpu.weight") == str(1 + (300 - 2) * 9999 // 262142)
            assert read("", at, "cpu.max") == "30000 60000"
        else:
            assert read("memory", at, "memory.limit_in_bytes") == str(48 * M)
            assert read("memory", at, "memory.soft_limit_in_bytes") == str(16 * M)
            assert read("memory", at, "memory.swappiness") == "20"
            assert read("cpu", at, "cpu.shares") == "300"
            assert read("cpu", at, "cpu.cfs_quota_us") == "30000"
        r = eng("update", "--cpu-share", "600", "--memory-reservation", "8M",
                "--kernel-memory", "1M", "c11", check=True)
        assert "--kernel-memory is ignored" in r.stderr  # as runc
        if V2:
            assert read("", at, "cpu.weight") == str(1 + (600 - 2) * 9999 // 262142)
            assert read("", at, "memory.low") == str(8 * M)
        else:
            assert read("cpu", at, "cpu.shares") == "600"
            assert read("memory", at, "memory.soft_limit_in_bytes") == str(8 * M)
        # what the host cannot do fails update with one line, and changes nothing
        bad = {"unified": {"pids.max": "5"}} if not V2 else \
            {"hugepageLimits": [{"pageSize": "3MB", "limit": 1}]}
        line = one_line_error(eng("update", "-r", "-", "c11", input=json.dumps(bad)))
        assert "unified" in line or "3MB" in line, line
        assert read("pids", at, "pids.max") == "25"
    finally:
        eng("delete", "--force", "c11")
        remove("/upd")


def test_features_say_what_the_cgroups_here_cannot_do(eng):
    feats = json.loads(eng("features", check=True).stdout)["linux"]["cgroup"]
    assert feats["v1"] is True and feats["v2"] is True and feats["rdma"] is True
    lacks = feats["org.jailer.unsupported"]
    if V2:
        assert "memory.swappiness" in lacks and "network.classID" in lacks
    else:
        assert "unified" in lacks
        if "net_cls" not in tops():
            assert "network.classID" in lacks
        if "hugetlb" not in tops():
            assert "hugepageLimits" in lacks


# ── the systemd driver where there is no systemd ─────────────────────────────────────────────
@pytest.mark.vm
def test_systemd_cgroup_without_systemd_is_one_line_and_leaves_nothing(oci, bundle, oci_root):
    """`--systemd-cgroup` on this hybrid host (needs pure v2) and in the v2 guest (no system
    bus: its init is not systemd): one line, exit 1, no state, no cgroup, no process. The
    driver itself is tested in the systemd tier (tests/systemd)."""
    set_config(bundle, linux__cgroupsPath="system.slice:jailer:nosd")
    before = set(os.listdir("/sys/fs/cgroup"))
    r = oci("--systemd-cgroup", "create", "--bundle", str(bundle), "nosd")
    assert r.returncode == 1
    line = one_line_error(r)
    assert ("needs pure cgroup v2" in line if not os.path.exists(
        "/sys/fs/cgroup/cgroup.controllers") else "bus" in line), line
    assert os.listdir(oci_root) == []
    assert set(os.listdir("/sys/fs/cgroup")) == before
    assert not os.path.exists("/sys/fs/cgroup/system.slice/jailer-nosd.scope")
    # the control: the same bundle without the flag is created (so the flag is what fails)
    assert oci("create", "--bundle", str(bundle), "nosd").returncode == 0
    assert oci("delete", "--force", "nosd").returncode == 0
