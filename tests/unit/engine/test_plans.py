"""Mount plans are named records the front ends build; the engine fills in the start's facts
and the Mounter replays them through the syscall layer."""

from __future__ import annotations

import errno

import pytest

from jailer.core import plan as P
from jailer.core.spec import Mount, Spec, apply_level
from jailer.engine.mounts import Facts, Mounter, fill_in
from jailer.frontends import plans
from jailer.kernel import syscalls as S


def spec(level: str, **kw) -> Spec:
    s = apply_level(Spec(level=level, rootfs="/img", **kw))
    s.host_plan, s.ns_plan = plans.jail_plans(s)
    return s


def host_ops(s: Spec, root: str = "/img", cdir: str | None = None,
             init_path: str | None = None, **kw) -> list:
    return fill_in(s.host_plan, Facts(root=root, rootfs=s.rootfs, cow=s.cow, cdir=cdir,
                                      idmap=s.userns and s.idmap, init_path=init_path, **kw))


def test_jail_plan_binds_the_image_idmapped_and_builds_dev():
    ops = host_ops(spec("jail"))
    assert ops[0] == P.BindRoot("/img", "/img", True)
    assert P.FsMount("tmpfs", "/dev", "tmpfs", S.MS_NOSUID | S.MS_STRICTATIME,
                     "mode=755,size=65536k", owned=True) in ops
    nodes = {op.path for op in ops if isinstance(op, P.DeviceNode)}
    assert nodes == {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom",
                     "/dev/tty"}
    assert not any(isinstance(op, P.Overlay) for op in ops)


def test_container_plan_puts_overlay_over_an_idmapped_lower():
    ops = host_ops(spec("container"), "/c/merged", "/c")
    assert ops[:2] == [P.BindRoot("/img", "/c/lower", True),
                       P.Overlay("/c/lower", "/c/upper", "/c/work", "/c/merged")]


def test_packed_image_is_the_lower_layer():
    ops = host_ops(spec("container"), "/c/merged", "/c", packed=("/dev/loop3", "squashfs"))
    assert ops[:3] == [P.PackedImage("/dev/loop3", "squashfs", "/c/lower"),
                       P.BindRoot("/c/lower", "/c/lower", True),
                       P.Overlay("/c/lower", "/c/upper", "/c/work", "/c/merged")]


def test_user_mounts_init_and_read_only_come_last(tmp_path):
    s = spec("jail", mounts=[Mount(kind="tmpfs", src="tmpfs", dst="/t")], readonly=True,
             init=True)
    s.host_plan, s.ns_plan = plans.jail_plans(s)
    ops = host_ops(s, init_path="/lib/init")
    assert P.Bind("/lib/init", "/dev/init", True, "file") in ops
    assert ops[-1] == P.ReadOnly("/")
    tmpfs = [op for op in ops if isinstance(op, P.FsMount) and op.dst == "/t"]
    assert tmpfs and tmpfs[0].owned
    fake = S.FakeSyscalls()  # the Mounter gives an owned tmpfs to the container's root
    Mounter(fake, str(tmp_path), creator=5).apply(tmpfs)
    assert "uid=5,gid=5" in next(c for c in fake.calls if c[0] == "mount")[5]


def test_ns_plan_mounts_proc_sys_and_masks():
    ops = fill_in(spec("jail").ns_plan, Facts())
    kinds = [op.fstype for op in ops if isinstance(op, P.FsMount)]
    assert kinds == ["proc", "sysfs", "devpts", "tmpfs", "mqueue"]
    sysfs = next(op for op in ops if isinstance(op, P.FsMount) and op.fstype == "sysfs")
    assert sysfs.flags & S.MS_RDONLY
    assert P.Mask("/proc/kcore") in ops and P.ReadOnly("/proc/sys") in ops


def test_mounter_replays_through_the_fake(tmp_path):
    fake = S.FakeSyscalls()
    m = Mounter(fake, str(tmp_path), creator=0, userns_fd=9)
    m.apply([P.BindRoot("/img", str(tmp_path), True), P.Overlay("/l", "/u", "/w", "/m")])
    names = [c[0] for c in fake.calls]
    assert names == ["open_tree", "mount_setattr", "move_mount", "mount"]
    # idmapped and nodev, with the userns fd
    assert fake.calls[1][2] == S.MOUNT_ATTR_IDMAP | S.MOUNT_ATTR_NODEV and fake.calls[1][4] == 9
    assert fake.calls[-1] == ("mount", "overlay", "/m", "overlay", S.MS_NODEV,
                              "lowerdir=/l,upperdir=/u,workdir=/w")


def test_fake_failure_surfaces_as_oserror_naming_the_call():
    fake = S.FakeSyscalls(fail={"mount": errno.EPERM})
    with pytest.raises(OSError, match=r"mount\(.*Operation not permitted") as info:
        fake.mount("proc", "/r/proc", "proc", 0)
    assert info.value.errno == errno.EPERM
