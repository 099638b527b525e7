"""The systemd cgroup driver's pure logic: cgroupsPath forms, slice expansion, unit properties
and their D-Bus signatures (serialised by jeepney), JobRemoved matching, and the manager's
calls against a fake systemd on a fake bus over the fake cgroupfs. The real thing runs in a
systemd guest: scripts/check-systemd-driver."""

from __future__ import annotations

import shutil
from collections import deque
from pathlib import Path

import pytest
from jeepney import DBusAddress, new_method_call

from cgroups import UNLIMITED, CgroupError, Limits
from cgroups.dbus import DBusError
from cgroups.systemd import (
    INFINITY,
    MANAGER,
    SYSTEMD,
    Systemd,
    SystemdCgroup,
    cpu_mask,
    expand_slice,
    limit_properties,
    parse_cgroups_path,
    unit_properties,
    wait_job,
)

M = 1024 * 1024


# ── slices and cgroupsPath ───────────────────────────────────────────────────────────────────
@pytest.mark.parametrize("name, path", [
    ("system.slice", "/system.slice"), ("a-b-c.slice", "/a.slice/a-b.slice/a-b-c.slice"),
    ("-.slice", "/"), ("user-1000.slice", "/user.slice/user-1000.slice"),
    ("kubepods-burstable-pod1_2.slice",
     "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1_2.slice"),
])
def test_expand_slice(name, path):
    assert expand_slice(name) == path


@pytest.mark.parametrize("name", [".slice", "system", "a--b.slice", "-a.slice", "a-.slice",
                                  "a/b.slice", "a b.slice", "a..b.slice", "", "system.scope"])
def test_expand_slice_refuses_what_is_not_a_slice_name(name):
    with pytest.raises(CgroupError) as e:
        expand_slice(name)
    assert "\n" not in str(e.value) and str(e.value).startswith("cgroups: bad systemd")


@pytest.mark.parametrize("spec, unit, slice_name, path", [
    ("system.slice:jailer:c1", "jailer-c1.scope", "system.slice", "/system.slice/jailer-c1.scope"),
    (":jailer:c1", "jailer-c1.scope", "system.slice", "/system.slice/jailer-c1.scope"),
    ("machine.slice:libpod:0123abc", "libpod-0123abc.scope", "machine.slice",
     "/machine.slice/libpod-0123abc.scope"),
    ("kubepods-besteffort-pod7.slice:cri-containerd:ab12", "cri-containerd-ab12.scope",
     "kubepods-besteffort-pod7.slice",
     "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod7.slice/"
     "cri-containerd-ab12.scope"),
    ("-.slice:jailer:top", "jailer-top.scope", "-.slice", "/jailer-top.scope"),
    ("system.slice::c1", "c1.scope", "system.slice", "/system.slice/c1.scope"),
    # a name that is a slice is the container's cgroup itself (prefix ignored, as runc)
    ("kubepods.slice:x:kubepods-pod9.slice", "kubepods-pod9.slice", "kubepods.slice",
     "/kubepods.slice/kubepods-pod9.slice"),
    (":x:jailer.slice", "jailer.slice", "system.slice", None),
])
def test_cgroups_path_forms(spec, unit, slice_name, path):
    if path is None:  # jailer.slice is a child of -.slice, not of the default system.slice
        with pytest.raises(CgroupError, match="not a child of 'system.slice'"):
            parse_cgroups_path(spec)
        return
    u = parse_cgroups_path(spec)
    assert (u.unit, u.slice, u.path) == (unit, slice_name, path)
    assert u.is_slice == unit.endswith(".slice")


def test_empty_cgroups_path_is_prefix_and_the_containers_name():
    assert parse_cgroups_path("", "c9").path == "/system.slice/jailer-c9.scope"
    assert parse_cgroups_path("", "c9", prefix="runc", default_slice="user.slice").unit == \
        "runc-c9.scope"
    with pytest.raises(CgroupError, match="needs a cgroupsPath"):
        parse_cgroups_path("")


@pytest.mark.parametrize("spec, why", [
    ("system.slice:jailer", "got 2 part"), ("a.slice:b:c:d", "got 4 part"),
    ("/sys/fs/cgroup/x", "got 1 part"), ("system.slice:jailer:", "name .* is empty"),
    ("system.slice:jailer:../x", "characters"), ("system.slice:jailer:a..b", "'..'"),
    ("system.slice:..:x", "'..'"), ("system.slice:jailer:.x", "start with '.'"),
    ("system.slice:jai ler:x", "characters"), ("sys/tem.slice:j:x", "not a slice name"),
    ("system:jailer:x", "not a slice name"), ("a--b.slice:j:x", "empty level"),
    ("system.slice:j:other-x.slice", "not a child"), ("system.slice:j:" + "x" * 250, "longer"),
])
def test_malformed_cgroups_path_is_one_line(spec, why):
    with pytest.raises(CgroupError, match=why) as e:
        parse_cgroups_path(spec)
    assert "\n" not in str(e.value) and repr(spec) in str(e.value)


# ── properties ───────────────────────────────────────────────────────────────────────────────
@pytest.mark.parametrize("cpus, mask", [("0", b"\x01"), ("0-3,6", b"\x4f"), ("8", b"\x00\x01"),
                                        ("0-9", b"\xff\x03"), (" 1,3 ", b"\x0a")])
def test_cpu_mask_is_systemds_bitmask(cpus, mask):
    assert cpu_mask(cpus) == mask


@pytest.mark.parametrize("cpus", ["", "a", "3-1", "1-", "-1", "0,,1"])
def test_cpu_mask_refuses_what_is_not_a_list(cpus):
    with pytest.raises(CgroupError, match="not a CPU list"):
        cpu_mask(cpus)


def test_limit_properties_and_their_types():
    lim = Limits(memory_max=64 * M, memory_high=48 * M, memory_low=M, memory_swap=96 * M,
                 cpu_weight=200, cpu_quota=50000, cpu_period=100000, cpuset_cpus="0-1",
                 cpuset_mems="0", pids_max=50, io_weight=300, hugetlb={"2MB": 0})
    assert dict(limit_properties(lim)) == {
        "MemoryMax": ("t", 64 * M), "MemoryHigh": ("t", 48 * M), "MemoryLow": ("t", M),
        "MemorySwapMax": ("t", 32 * M), "CPUWeight": ("t", 200),
        "CPUQuotaPeriodUSec": ("t", 100000), "CPUQuotaPerSecUSec": ("t", 500000),
        "AllowedCPUs": ("ay", b"\x03"), "AllowedMemoryNodes": ("ay", b"\x01"),
        "TasksMax": ("t", 50), "IOWeight": ("t", 300)}  # hugetlb: cgroupfs only


def test_unlimited_is_infinity_and_quota_rounds_up_to_a_percent():
    props = dict(limit_properties(Limits(memory_max=UNLIMITED, pids_max=UNLIMITED,
                                         cpu_quota=UNLIMITED, memory_swap=UNLIMITED)))
    assert props == {"MemoryMax": ("t", INFINITY), "TasksMax": ("t", INFINITY),
                     "CPUQuotaPerSecUSec": ("t", INFINITY), "MemorySwapMax": ("t", INFINITY)}
    assert dict(limit_properties(Limits(cpu_quota=33333)))["CPUQuotaPerSecUSec"] == \
        ("t", 340000)  # 33.333 % of the default 100 ms period, rounded up to 34 %
    assert dict(limit_properties(Limits(cpu_quota=20000, cpu_period=50000)))[
        "CPUQuotaPerSecUSec"] == ("t", 400000)
    assert dict(limit_properties(Limits(cpu_shares=1024)))["CPUWeight"] == ("t", 39)
    # swap without a memory limit in the same call: left to the v2 backend (reads memory.max)
    assert limit_properties(Limits(memory_swap=M)) == []


def test_scope_and_slice_properties():
    scope = dict(unit_properties(parse_cgroups_path("machine.slice:jailer:c1"), 42,
                                 Limits(memory_max=M), "jailer container c1"))
    assert scope["Description"] == ("s", "jailer container c1")
    assert scope["Slice"] == ("s", "machine.slice") and scope["Delegate"] == ("b", True)
    assert scope["PIDs"] == ("au", [42]) and scope["MemoryMax"] == ("t", M)
    assert scope["DefaultDependencies"] == ("b", False) and "Wants" not in scope
    assert all(scope[f"{c}Accounting"] == ("b", True) for c in ("Memory", "CPU", "Tasks", "IO"))
    sl = dict(unit_properties(parse_cgroups_path("a.slice:x:a-b.slice"), 42, Limits()))
    assert sl["Wants"] == ("as", ["a.slice"])
    assert not {"Slice", "Delegate", "PIDs"} & set(sl)  # systemd refuses these on a slice


def test_properties_serialise_with_systemds_signatures():
    """jeepney refuses a body that does not match its signature: the calls as sent."""
    unit = parse_cgroups_path("system.slice:jailer:c1")
    lim = Limits(memory_max=M, cpu_quota=1000, cpuset_cpus="0", pids_max=UNLIMITED,
                 io_weight=10, cpu_weight=5)
    addr = DBusAddress("/org/freedesktop/systemd1", SYSTEMD, MANAGER)
    for method, sig, body in [
        ("StartTransientUnit", "ssa(sv)a(sa(sv))",
         (unit.unit, "fail", unit_properties(unit, 4242, lim), [])),
        ("SetUnitProperties", "sba(sv)", (unit.unit, True, limit_properties(lim))),
        ("StopUnit", "ss", (unit.unit, "replace")), ("ResetFailedUnit", "s", (unit.unit,))]:
        assert len(new_method_call(addr, method, sig, body).serialise(serial=1)) > 40


# ── JobRemoved ───────────────────────────────────────────────────────────────────────────────
class FakeSignals:
    """The signals a fake bus delivered since the context was entered."""

    def __init__(self, bus: FakeSystemd) -> None:
        self.bus, self.queue = bus, deque()

    def __enter__(self) -> FakeSignals:
        self.bus.watchers.append(self)
        return self

    def next(self, timeout: float) -> tuple:
        if not self.queue:
            raise TimeoutError
        return self.queue.popleft()

    def __exit__(self, *exc: object) -> None:
        self.bus.watchers.remove(self)


def test_wait_job_skips_other_jobs_and_returns_the_result():
    sig = FakeSignals(None)  # type: ignore[arg-type]
    sig.queue.extend([(1, "/j/1", "a.scope", "done"), ("short",), (2, "/j/2", "b.scope", "failed")])
    assert wait_job(sig, "/j/2", 5) == "failed"
    with pytest.raises(TimeoutError):
        wait_job(sig, "/j/3", 5)


# ── the manager against a fake systemd ───────────────────────────────────────────────────────
class FakeSystemd:
    """A fake system bus with a fake systemd on it: units in a dict, cgroups made and removed
    in the fake cgroupfs, every call's body serialised by jeepney against its signature, and
    each job's JobRemoved (after another job's) sent before the call's reply, to subscribers
    only, as a fast job on the real bus can be."""

    address = "unix:path=/fake"

    def __init__(self, fs) -> None:
        self.fs, self.calls, self.units, self.watchers = fs, [], {}, []
        self.jobs, self.result, self.subscribed, self.silent = 0, "done", False, False

    def signals(self, sender: str, interface: str, member: str) -> FakeSignals:
        assert (sender, interface, member) == (SYSTEMD, MANAGER, "JobRemoved")
        return FakeSignals(self)

    def call(self, dest, path, interface, method, signature, body, timeout) -> tuple:
        new_method_call(DBusAddress(path, dest, interface), method, signature or None,
                        body).serialise(serial=1)
        self.calls.append((method, body))
        return getattr(self, method)(*body)

    def _job(self, unit: str, result: str) -> tuple:
        self.jobs += 1
        job = f"/org/freedesktop/systemd1/job/{self.jobs}"
        if self.subscribed and not self.silent:
            for w in self.watchers:
                w.queue.extend([(999, "/org/freedesktop/systemd1/job/999", "x.service", "done"),
                                (self.jobs, job, unit, result)])
        return (job,)

    def Subscribe(self) -> tuple:  # noqa: N802 (D-Bus names)
        self.subscribed = True
        return ()

    def StartTransientUnit(self, name, mode, props, aux) -> tuple:  # noqa: N802
        assert mode == "fail" and aux == []
        if name in self.units:
            raise DBusError("org.freedesktop.systemd1.UnitExists",
                            f"Unit {name} was already loaded or has a fragment file.")
        self.units[name] = {"props": dict(props), "state": "active"}
        if self.result != "done":
            self.units[name]["state"] = "failed"
            return self._job(name, self.result)
        path = Path(self.fs.root)
        for part in parse_cgroups_path(f"{dict(props)['Slice'][1]}::x").path.split("/")[1:-1] \
                + [name]:
            if not (path / part).exists():
                self.fs.mkdir(str(path / part))
            path = path / part
            if part != name:  # systemd enables the controllers below a slice
                (path / "cgroup.subtree_control").write_text(
                    (path / "cgroup.controllers").read_text())
        self.units[name]["dir"] = path
        return self._job(name, "done")

    def SetUnitProperties(self, name, runtime, props) -> tuple:  # noqa: N802
        assert runtime is True
        self._loaded(name)["props"].update(dict(props))
        return ()

    def StopUnit(self, name, mode) -> tuple:  # noqa: N802
        unit = self._loaded(name)
        if "dir" in unit:
            shutil.rmtree(unit.pop("dir"), ignore_errors=True)
        unit["state"] = "inactive"
        del self.units[name]
        return self._job(name, "done")

    def ResetFailedUnit(self, name) -> tuple:  # noqa: N802
        if self._loaded(name)["state"] == "failed":
            del self.units[name]
        return ()

    def _loaded(self, name: str) -> dict:
        if name not in self.units:
            raise DBusError("org.freedesktop.systemd1.NoSuchUnit", f"Unit {name} not loaded.")
        return self.units[name]

    def close(self) -> None:
        pass

    def methods(self) -> list[str]:
        return [m for m, _ in self.calls]


@pytest.fixture
def fake(fakefs):
    return FakeSystemd(fakefs("v2"))


def manager(fake: FakeSystemd, spec: str = "system.slice:jailer:c1") -> SystemdCgroup:
    return SystemdCgroup(parse_cgroups_path(spec), root=str(fake.fs.root),
                         systemd=Systemd(fake))  # type: ignore[arg-type]


def test_create_starts_a_scope_and_writes_its_directory(fake):
    cg = manager(fake).create(Limits(memory_max=64 * M, pids_max=9, hugetlb=None), pid=4242)
    assert cg.path == f"{fake.fs.root}/system.slice/jailer-c1.scope" and cg.exists()
    assert fake.methods() == ["Subscribe", "StartTransientUnit", "SetUnitProperties"]
    props = fake.units["jailer-c1.scope"]["props"]
    assert props["PIDs"] == ("au", [4242]) and props["MemoryMax"] == ("t", 64 * M)
    assert Path(cg.path, "memory.max").read_text() == str(64 * M)  # exact, in cgroupfs too
    assert cg.limits().pids_max == 9
    cg.update(Limits(memory_max=32 * M))
    assert props["MemoryMax"] == ("t", 32 * M)
    assert Path(cg.path, "memory.max").read_text() == str(32 * M)


def test_a_job_is_waited_for_with_the_subscription_made_before_the_call(fake):
    cg = manager(fake)
    cg.create(Limits(), pid=1)
    cg.delete()
    assert fake.methods() == ["Subscribe", "StartTransientUnit", "StopUnit", "ResetFailedUnit"]
    assert not fake.units and not Path(cg.path).exists()
    assert Path(cg.path).parent.exists()  # system.slice is systemd's, not ours


def test_a_failed_job_is_one_line_and_leaves_nothing(fake):
    fake.result = "failed"
    with pytest.raises(CgroupError, match="job ended 'failed'.*journalctl") as e:
        manager(fake).create(Limits(memory_max=M), pid=1)
    assert "\n" not in str(e.value) and not fake.units
    assert fake.methods()[-2:] == ["StopUnit", "ResetFailedUnit"]


def test_a_job_without_its_signal_times_out_and_leaves_nothing(fake):
    fake.silent = True  # the JobRemoved never comes
    with pytest.raises(CgroupError, match="job ended 'timeout'"):
        manager(fake).create(Limits(), pid=1)
    assert fake.methods()[-2:] == ["StopUnit", "ResetFailedUnit"] and not fake.units


def test_an_existing_unit_is_one_line_and_left_alone(fake):
    first = manager(fake).create(Limits(), pid=1)
    with pytest.raises(CgroupError, match="jailer-c1.scope already exists") as e:
        manager(fake).create(Limits(), pid=2)
    assert "\n" not in str(e.value)
    assert fake.units["jailer-c1.scope"]["props"]["PIDs"] == ("au", [1]) and first.exists()
    # a failed leftover of the same name is reset once and the start retried
    fake.units["jailer-c1.scope"]["state"] = "failed"
    shutil.rmtree(first.path)
    fake.units["jailer-c1.scope"].pop("dir")
    manager(fake).create(Limits(), pid=3)
    assert fake.units["jailer-c1.scope"]["props"]["PIDs"] == ("au", [3])


def test_a_limit_the_backend_cannot_set_stops_the_unit(fake):
    with pytest.raises(CgroupError, match="rdma"):
        manager(fake).create(Limits(rdma={"mlx5_0": {"hca_handle": 1}}), pid=1)
    assert not fake.units and fake.methods()[-2:] == ["StopUnit", "ResetFailedUnit"]


def test_refusals_before_anything_is_started(fake, tmp_path):
    with pytest.raises(CgroupError, match="needs the pid"):
        manager(fake).create(Limits())
    with pytest.raises(CgroupError, match="cgroup v2 cannot disable the OOM killer"):
        manager(fake).create(Limits(memory_oom_kill_disable=True), pid=1)
    assert fake.calls == []
    v1 = tmp_path / "v1"  # a v1 or hybrid mount: no cgroup.controllers at its root
    (v1 / "memory").mkdir(parents=True)
    (v1 / "memory" / "cgroup.procs").write_text("")
    with pytest.raises(CgroupError, match="needs pure cgroup v2.*cgroupfs driver"):
        SystemdCgroup(parse_cgroups_path(":j:c"), root=str(v1))


def test_a_slice_name_is_the_cgroup_itself(fake):
    fake.StartTransientUnit = lambda name, mode, props, aux: (  # a slice: no Slice= property
        fake.units.setdefault(name, {"props": dict(props), "state": "active"}),
        fake.fs.mkdir(f"{fake.fs.root}/kubepods.slice"),
        fake.fs.mkdir(f"{fake.fs.root}/kubepods.slice/kubepods-pod1.slice"),
        fake._job(name, "done"))[-1]
    cg = manager(fake, "kubepods.slice:x:kubepods-pod1.slice").create(Limits(), pid=77)
    assert cg.path == f"{fake.fs.root}/kubepods.slice/kubepods-pod1.slice"
    assert Path(cg.path, "cgroup.procs").read_text() == "77"  # written by the v2 backend
    assert "PIDs" not in fake.units["kubepods-pod1.slice"]["props"]


def test_unreachable_bus_is_one_line(tmp_path):
    with pytest.raises(CgroupError, match="cannot reach the D-Bus system bus") as e:
        Systemd.connect(f"unix:path={tmp_path}/no-bus")
    assert "\n" not in str(e.value) and "no-bus" in str(e.value)


def test_systemd_missing_from_the_bus_is_one_line():
    class NoSystemd:
        address = "unix:path=/x"

        def call(self, *args):
            raise DBusError("org.freedesktop.DBus.Error.ServiceUnknown", "no such name")

    with pytest.raises(CgroupError, match="systemd is not on the D-Bus system bus"):
        Systemd(NoSystemd()).call("Subscribe")  # type: ignore[arg-type]


def test_open_systemd_names_the_scope_and_imports_jeepney_only_to_talk(fake):
    import subprocess
    import sys

    import cgroups

    cg = cgroups.open_systemd("", "c7", root=str(fake.fs.root))
    assert isinstance(cg, SystemdCgroup) and cg.unit.unit == "jailer-c7.scope"
    assert cg.path == f"{fake.fs.root}/system.slice/jailer-c7.scope" and not cg.exists()
    code = ("import sys, cgroups, cgroups.v2; import cgroups.systemd as s; "
            "s.parse_cgroups_path('a.slice:b:c'); "
            "print(sorted(m for m in sys.modules if m.startswith('jeepney') "
            "or m == 'cgroups.dbus'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_scope_systemd_removes_while_it_is_killed_has_no_processes(fake, monkeypatch):
    cg = manager(fake).create(Limits(), pid=1)
    Path(cg.path, "cgroup.procs").write_text("1\n")

    def removed(path):  # the scope emptied: systemd is removing its cgroup
        raise CgroupError(f"cgroups: read {path}: No such device (errno 19)", errno=19)

    monkeypatch.setattr("cgroups.base.read_opt", removed)
    cg.kill()  # writes cgroup.kill, then finds no process (not the error)
    assert cg.procs() == []
    shutil.rmtree(cg.path)
    cg.delete()
    assert not fake.units


def test_unified_files_systemd_manages_become_properties():
    props = dict(limit_properties(Limits(unified={
        "memory.high": "max", "memory.min": "4096", "pids.max": "9", "cpu.max": "25000 50000",
        "cpuset.cpus": "1", "io.weight": "default 50", "memory.oom.group": "1"})))
    assert props == {"MemoryHigh": ("t", INFINITY), "MemoryMin": ("t", 4096),
                     "TasksMax": ("t", 9), "CPUQuotaPeriodUSec": ("t", 50000),
                     "CPUQuotaPerSecUSec": ("t", 500000), "AllowedCPUs": ("ay", b"\x02"),
                     "IOWeight": ("t", 50)}  # memory.oom.group: cgroupfs only
    assert limit_properties(Limits(unified={"io.weight": "8:0 50"})) == []
    with pytest.raises(CgroupError, match="'pids.max': 'lots' is not a value"):
        limit_properties(Limits(unified={"pids.max": "lots"}))


def test_swap_alone_is_a_property_computed_from_the_scopes_memory_max(fake):
    cg = manager(fake).create(Limits(memory_max=64 * M), pid=1)
    cg.update(Limits(memory_swap=96 * M))
    assert fake.units["jailer-c1.scope"]["props"]["MemorySwapMax"] == ("t", 32 * M)
    assert Path(cg.path, "memory.swap.max").read_text() == str(32 * M)
