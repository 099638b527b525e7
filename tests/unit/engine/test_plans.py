"""Mount plans are plain data; the Mounter replays them through the syscall layer."""

from __future__ import annotations

import errno

import pytest

from jailer.core.spec import Mount, Spec, apply_level
from jailer.engine.mounts import Mounter, host_plan, ns_plan
from jailer.kernel import syscalls as S


def spec(level: str, **kw) -> Spec:
    return apply_level(Spec(level=level, rootfs="/img", **kw))


def test_jail_plan_binds_the_image_idmapped_and_builds_dev():
    ops = host_plan(spec("jail"), "/img", "/img", None, None, 1000)
    assert ops[0] == ("bind_root", "/img", "/img", True)
    assert ("tmpfs", "/dev", "mode=755,size=65536k,uid=1000,gid=1000",
            S.MS_NOSUID | S.MS_STRICTATIME) in ops
    nodes = {op[1] for op in ops if op[0] == "mknod"}
    assert nodes == {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom",
                     "/dev/tty"}
    assert not any(op[0] == "overlay" for op in ops)


def test_container_plan_puts_overlay_over_an_idmapped_lower():
    ops = host_plan(spec("container"), "/img", "/c/merged", "/c", None, 7)
    assert ops[:2] == [("bind_root", "/img", "/c/lower", True),
                       ("overlay", "/c/lower", "/c/upper", "/c/work", "/c/merged")]


def test_user_mounts_init_and_read_only_come_last():
    s = spec("jail", mounts=[Mount(kind="tmpfs", src="tmpfs", dst="/t")], readonly=True)
    ops = host_plan(s, "/img", "/img", None, "/lib/init", 5)
    assert ("bind", "/lib/init", "/dev/init", True, "file") in ops
    assert ops[-1] == ("readonly", "/")
    tmpfs = [op for op in ops if op[0] == "tmpfs" and op[1] == "/t"]
    assert tmpfs and "uid=5,gid=5" in tmpfs[0][2]


def test_ns_plan_mounts_proc_sys_and_masks():
    ops = ns_plan(spec("jail"))
    kinds = [op[3] for op in ops if op[0] == "mount"]
    assert kinds == ["proc", "sysfs", "devpts", "tmpfs", "mqueue"]
    sysfs = next(op for op in ops if op[0] == "mount" and op[3] == "sysfs")
    assert sysfs[4] & S.MS_RDONLY
    assert ("mask", "/proc/kcore") in ops and ("readonly", "/proc/sys") in ops


def test_mounter_replays_through_the_fake(tmp_path):
    fake = S.FakeSyscalls()
    m = Mounter(fake, str(tmp_path), creator=0, userns_fd=9)
    m.apply([("bind_root", "/img", str(tmp_path), True),
             ("overlay", "/l", "/u", "/w", "/m")])
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
