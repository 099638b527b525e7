"""The records a jail Spec and an OCI Spec put in their plans, and what the engine fills in."""

from __future__ import annotations

import copy
import os

import pytest

from jailer.core import plan as P
from jailer.engine import protocol
from jailer.engine.mounts import Facts, Mounter, fill_in
from jailer.frontends import cliopts, ociconfig, plans
from jailer.kernel import syscalls as S
from tests.unit.oci import RUNC_SPEC

DEV = ["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"]


def jail(tmp_path, level="jail", **o):
    opts = cliopts.defaults()
    opts.update(level=level, no_tty=True, **o)
    return cliopts.to_spec(str(tmp_path), ["/bin/true"], opts)


def oci(tmp_path, cfg):
    (tmp_path / "rootfs").mkdir(exist_ok=True)
    cfg = copy.deepcopy(cfg)
    cfg["root"] = {"path": "rootfs", **{k: v for k, v in cfg.get("root", {}).items()
                                         if k == "readonly"}}
    return ociconfig.to_spec(cfg, str(tmp_path), "c1", warn=lambda m: None)


def test_a_jail_bind_of_a_device_node_keeps_the_device(tmp_path):
    """The front end decides a bind's attributes: a device node as the source stays a device
    (binding one asks for it); anything else is nosuid and nodev (the control)."""
    src = tmp_path / "src"
    src.mkdir()
    s = jail(tmp_path, bind=["/dev/null:/null", f"{src}:/data"])
    binds = {op.dst: op.attrs for op in s.host_plan if isinstance(op, P.Bind)}
    assert binds == {"/null": 0, "/data": S.MOUNT_ATTR_NOSUID | S.MOUNT_ATTR_NODEV}


def test_a_jail_spec_plans_root_dev_then_user_mounts(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    s = jail(tmp_path, bind=[f"{src}:/data:ro"], tmpfs=["/scratch"], read_only=True,
             init=True)
    kinds = [type(op).__name__ for op in s.host_plan]
    assert kinds[:2] == ["Root", "FsMount"] and kinds[-1] == "ReadOnly"
    assert [op.path for op in s.host_plan if isinstance(op, P.DeviceNode)] == DEV
    assert [op.path for op in s.host_plan if isinstance(op, P.MakeDir)] == [
        "/dev/pts", "/dev/shm", "/dev/mqueue", "/proc", "/sys"]
    i = s.host_plan.index(P.InitBinary("/dev/init"))
    nosuid_nodev = S.MOUNT_ATTR_NOSUID | S.MOUNT_ATTR_NODEV  # create: "what the source is"
    assert s.host_plan[i + 1] == P.Bind(str(src), "/data", True, attrs=nosuid_nodev)
    assert s.host_plan[i + 2] == P.FsMount("tmpfs", "/scratch", "tmpfs",
                                           S.MS_NOSUID | S.MS_NODEV, "mode=1777", owned=True)
    assert [op.dst for op in s.ns_plan if isinstance(op, P.FsMount)] == [
        "/proc", "/sys", "/dev/pts", "/dev/shm", "/dev/mqueue"]
    assert P.CgroupFs("/sys/fs/cgroup", True, "existing", seal=True) in s.ns_plan


def test_an_oci_spec_plans_the_configs_mounts_then_devices(tmp_path):
    cfg = copy.deepcopy(RUNC_SPEC)
    cfg["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
                                "fileMode": 0o600, "uid": 3, "gid": 4}]
    cfg["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    s = oci(tmp_path, cfg)
    assert s.host_plan[0] == P.Root()
    mounts = [op.dst for op in s.host_plan if isinstance(op, (P.FsMount, P.Bind))]
    assert mounts == [m.dst for m in s.mounts]  # the config's order, nothing added
    nodes = [op for op in s.host_plan if isinstance(op, P.DeviceNode)]
    assert [n.path for n in nodes] == [*DEV, "/dev/fuse"]
    assert nodes[-1] == P.DeviceNode("/dev/fuse", 0o020600, 10, 229, 3, 4)
    assert P.Symlink("/proc/self/fd", "/dev/fd") in s.host_plan
    assert not any(isinstance(op, (P.InitBinary, P.MakeDir)) for op in s.host_plan)
    # the host-side ones are lifted aside last (the last first), and put back in the
    # namespace plan where the config lists them
    config = [m["destination"] for m in cfg["mounts"]]
    host_side = {i for i, m in enumerate(cfg["mounts"]) if m["type"] in ("bind", "tmpfs")}
    lifts = [op for op in s.host_plan if isinstance(op, P.Lift)]
    assert s.host_plan[-len(lifts):] == lifts
    assert lifts == [P.Lift(i, config[i]) for i in sorted(host_side, reverse=True)]
    ns = [op for op in s.ns_plan if not isinstance(op, (P.Mask, P.ReadOnly))]
    assert [getattr(op, "dst", None) for op in ns] == [*config, None]
    assert [op.index for op in ns if isinstance(op, P.Unstage)] == sorted(host_side)
    assert ns[-2:] == [P.CgroupFs("/sys/fs/cgroup", True),
                       P.Sysctl("net.ipv4.ip_forward", "1")]
    assert s.ns_plan[len(ns)] == P.Mask(s.masked_paths[0])


def test_the_lifted_mounts_stay_in_place_without_a_staging_directory(tmp_path):
    """fill_in keeps Lift and Unstage only when the start stages (an OCI container's) and
    gives Lift the staging directory."""
    from jailer.engine.mounts import Facts, fill_in

    s = oci(tmp_path, copy.deepcopy(RUNC_SPEC))
    lifts = [op for op in s.host_plan if isinstance(op, P.Lift)]
    assert lifts and all(op.stage is None for op in lifts)
    host = fill_in(s.host_plan, Facts(root=str(tmp_path), rootfs=str(tmp_path)))
    assert not any(isinstance(op, P.Lift) for op in host)
    host = fill_in(s.host_plan, Facts(root=str(tmp_path), rootfs=str(tmp_path),
                                      stage="/run/x/mounts"))
    assert [op for op in host if isinstance(op, P.Lift)] == [
        op.replace(stage="/run/x/mounts") for op in lifts]
    assert not any(isinstance(op, P.Unstage) for op in fill_in(s.ns_plan, Facts()))
    assert [op for op in fill_in(s.ns_plan, Facts(staged=True))
            if isinstance(op, P.Unstage)] == [op for op in s.ns_plan
                                              if isinstance(op, P.Unstage)]


@pytest.mark.parametrize("readonly", [True, False])
def test_an_oci_spec_makes_every_mount_point_before_the_root_goes_read_only(tmp_path,
                                                                           readonly):
    """The namespace side's mount points are made on the host side (not those inside a
    kernel filesystem mounted before them), then the root goes read-only, last; the root's
    propagation is pid 1's, after pivot_root, never a plan record on "/"."""
    cfg = copy.deepcopy(RUNC_SPEC)
    cfg["root"] = {"readonly": readonly}
    cfg["linux"]["rootfsPropagation"] = "rshared"
    s = oci(tmp_path, cfg)
    points = [op.path for op in s.host_plan if isinstance(op, P.MountPoint)]
    assert points == ["/proc", "/dev/pts", "/dev/mqueue", "/sys"]
    made = [op for op in s.host_plan if not isinstance(op, P.Lift)]
    assert (made[-1] == P.ReadOnly("/")) is readonly
    assert not any(isinstance(op, P.Propagation) and op.dst == "/"
                   for op in s.host_plan + s.ns_plan)
    assert s.rootfs_propagation == S.MS_SHARED | S.MS_REC


def test_the_engine_fills_in_root_init_cgroup_and_bind_kinds(tmp_path):
    src = tmp_path / "f"
    src.write_text("")
    plan = [P.Root(), P.InitBinary("/dev/init"), P.Bind(str(src), "/f", False),
            P.CgroupFs("/sys/fs/cgroup", True, "existing", seal=True)]
    ops = fill_in(plan, Facts(root="/r", rootfs="/img", idmap=True, init_path="/i",
                              cgroup_dirs={"memory": "/m", "pids": "/p"}))
    assert ops == [
        P.BindRoot("/img", "/r", True), P.Bind("/i", "/dev/init", True, "file"),
        P.Bind(str(src), "/f", False, "file"),
        P.FsMount("cgroup", "/sys/fs/cgroup", "tmpfs",
                  S.MS_NOSUID | S.MS_NODEV | S.MS_NOEXEC, "mode=755,size=64k"),
        P.Bind("/m", "/sys/fs/cgroup/memory", True, "dir"),
        P.Bind("/p", "/sys/fs/cgroup/pids", True, "dir"), P.ReadOnlyMount("/sys/fs/cgroup")]
    v2 = fill_in(plan[3:], Facts(cgroup_dirs={"": "/cg"}))
    assert v2 == [P.Bind("/cg", "/sys/fs/cgroup", True, "existing")]
    assert fill_in(plan[1:2] + plan[3:], Facts()) == []  # no init binary, no cgroup


def test_a_rootless_start_binds_the_hosts_device_nodes():
    host, _ns = plans.jail_plans(jail_spec_like())
    ops = fill_in(host, Facts(root="/r", rootfs="/r", rootless=True))
    assert not any(isinstance(op, (P.DeviceNode, P.BindRoot)) for op in ops)
    assert [op.src for op in ops if isinstance(op, P.Bind)] == DEV


def jail_spec_like():
    from jailer.core.spec import Spec, apply_level

    return apply_level(Spec(level="jail", rootfs="/r"))


def test_the_mounter_dispatches_by_record_type_and_refuses_unfilled_records(tmp_path):
    fake = S.FakeSyscalls()
    m = Mounter(fake, str(tmp_path), creator=1000)
    m.apply([P.Propagation("/x", S.MS_PRIVATE),
             P.FsMount("tmpfs", "/t", "tmpfs", 0, None, owned=True)])
    assert [c[0] for c in fake.calls] == ["openat2", "mount", "openat2", "mount"]
    assert fake.calls[-1][5] == "uid=1000,gid=1000"
    with pytest.raises(TypeError, match="fill_in"):
        m.apply([P.Root()])
    with pytest.raises(AttributeError):
        P.MakeDir("/a").path = "/b"


def test_protocol_messages_round_trip():
    r, w = os.pipe()
    try:
        for kind, value in ((protocol.PID, 42), (protocol.GO, b"{}"), (protocol.GO, None),
                            (protocol.PTY, None), (protocol.CREATED, None),
                            (protocol.FAILED, {"message": "x"}),
                            (protocol.STARTED, {"status": "running"})):
            protocol.send(w, kind, value)
            assert protocol.recv(r) == protocol.Message(kind, value)
        protocol.send(w, "Bogus")
        with pytest.raises(ValueError, match="unknown message"):
            protocol.recv(r)
        os.close(w)
        w = -1
        assert protocol.recv(r) is None
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
