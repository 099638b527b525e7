"""The mount plans the front ends put on a Spec (records of ``jailer.core.plan``): a jail's
(``jailer run``, named jails, the Python API) and an OCI config's.

A jail gets a fixed filesystem: its root, a minimal /dev of its own, the user's binds and
tmpfs mounts, then /proc, /sys, devpts, /dev/shm, mqueue and its cgroup inside its
namespaces. An OCI config lists every mount itself, in order; the runtime adds only the
runtime-spec's default devices and links. Both end with the masked and read-only paths.
"""

from __future__ import annotations

import os

from jailer.core.plan import (
    Bind,
    CgroupFs,
    DeviceNode,
    FsMount,
    InitBinary,
    Lift,
    MakeDir,
    Mask,
    MountPoint,
    Propagation,
    ReadOnly,
    Root,
    Symlink,
    Sysctl,
    Unstage,
)
from jailer.core.spec import Device, Spec
from jailer.kernel import syscalls as S

NODEV_NOSUID_NOEXEC = S.MS_NOSUID | S.MS_NODEV | S.MS_NOEXEC
S_IFCHR, S_IFBLK, S_IFIFO = 0o020000, 0o060000, 0o010000
NODE_TYPES = {"c": S_IFCHR, "u": S_IFCHR, "b": S_IFBLK, "p": S_IFIFO}

# name, mode, major, minor (the minimal /dev every runtime provides)
DEVICES = (
    ("null", 0o666, 1, 3), ("zero", 0o666, 1, 5), ("full", 0o666, 1, 7),
    ("random", 0o666, 1, 8), ("urandom", 0o666, 1, 9), ("tty", 0o666, 5, 0),
)
DEV_LINKS = (
    ("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"), ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"), ("pts/ptmx", "ptmx"), ("/proc/kcore", "core"),
)

# a jail's /dev: a tmpfs of its own, then (inside its namespaces) devpts, shm and mqueue
JAIL_DEV = FsMount("tmpfs", "/dev", "tmpfs", S.MS_NOSUID | S.MS_STRICTATIME,
                   "mode=755,size=65536k", owned=True)
JAIL_DEV_DIRS = ("/dev/pts", "/dev/shm", "/dev/mqueue")
JAIL_KERNEL_FS = (
    FsMount("proc", "/proc", "proc", NODEV_NOSUID_NOEXEC),
    FsMount("sysfs", "/sys", "sysfs", NODEV_NOSUID_NOEXEC | S.MS_RDONLY),
    FsMount("devpts", "/dev/pts", "devpts", S.MS_NOSUID | S.MS_NOEXEC,
            "newinstance,ptmxmode=0666,mode=0620,gid=5"),
    FsMount("shm", "/dev/shm", "tmpfs", NODEV_NOSUID_NOEXEC, "mode=1777,size=65536k"),
    FsMount("mqueue", "/dev/mqueue", "mqueue", NODEV_NOSUID_NOEXEC),
)

# MS_* flags that a bind takes as mount attributes (the new mount API's names); the atime
# mode is one value of MOUNT_ATTR__ATIME, chosen as mount(2) does (strictatime wins)
BIND_ATTRS = ((S.MS_RDONLY, S.MOUNT_ATTR_RDONLY), (S.MS_NOSUID, S.MOUNT_ATTR_NOSUID),
              (S.MS_NODEV, S.MOUNT_ATTR_NODEV), (S.MS_NOEXEC, S.MOUNT_ATTR_NOEXEC),
              (S.MS_NODIRATIME, S.MOUNT_ATTR_NODIRATIME),
              (S.MS_NOSYMFOLLOW, S.MOUNT_ATTR_NOSYMFOLLOW))
ATIME_MODES = ((S.MS_STRICTATIME, S.MOUNT_ATTR_STRICTATIME),
               (S.MS_NOATIME, S.MOUNT_ATTR_NOATIME), (S.MS_RELATIME, S.MOUNT_ATTR_RELATIME))
ATIME_FLAGS = S.MS_STRICTATIME | S.MS_NOATIME | S.MS_RELATIME


def dev_links() -> list[tuple[str, str]]:
    """DEV_LINKS, without /dev/core where the kernel has no /proc/kcore (as runc)."""
    return [(t, n) for t, n in DEV_LINKS if t != "/proc/kcore" or os.path.exists(t)]


def dev_nodes(extra: list[Device] = ()) -> list:
    """The /dev every container gets: the minimal nodes, then ``extra`` (an OCI config's
    devices, ids as the container sees them), then the links into /proc and devpts."""
    ops: list = [DeviceNode(f"/dev/{name}", S_IFCHR | mode, major, minor)
                 for name, mode, major, minor in DEVICES]
    ops += [DeviceNode(d.path, NODE_TYPES[d.kind] | (d.mode & 0o7777), d.major, d.minor,
                       d.uid, d.gid) for d in extra]
    return ops + [Symlink(target, f"/dev/{name}") for target, name in dev_links()]


def hidden_paths(spec: Spec) -> list:
    """The masked paths, then the read-only ones."""
    return [*(Mask(p) for p in spec.masked_paths), *(ReadOnly(p) for p in spec.readonly_paths)]


def _bind_attrs(src: str) -> int:
    """A jail's bind is nosuid and nodev, unless its source is a device node itself (binding
    one is asking for that device)."""
    from jailer.kernel.fsutil import is_device

    return 0 if is_device(src) else S.MOUNT_ATTR_NOSUID | S.MOUNT_ATTR_NODEV


def jail_plans(spec: Spec) -> tuple[list, list]:
    """(host plan, namespace plan) of a jail-style Spec: its own /dev before the user's mounts
    (a tmpfs owned by the container's root, mode 1777; binds nosuid and nodev)."""
    host: list = [Root(), JAIL_DEV, *dev_nodes(), *(MakeDir(d) for d in JAIL_DEV_DIRS)]
    if spec.init:
        host.append(InitBinary("/dev/init"))
    for m in spec.mounts:
        if m.kind == "tmpfs":
            data = "mode=1777" + (f",{m.options}" if m.options else "")
            host.append(FsMount("tmpfs", m.dst, "tmpfs", S.MS_NOSUID | S.MS_NODEV, data,
                                owned=True))
        else:
            host.append(Bind(m.src, m.dst, m.readonly, attrs=_bind_attrs(m.src)))
    if spec.pivot_root:
        host += [MakeDir("/proc"), MakeDir("/sys")]
    if spec.readonly:
        host.append(ReadOnly("/"))
    ns = [*JAIL_KERNEL_FS, CgroupFs("/sys/fs/cgroup", True, "existing", seal=True),
          *hidden_paths(spec)]
    return host, ns


def bind_attrs(flags: int, clear: int) -> tuple[int, int]:
    """MS_* ``flags`` to set and ``clear`` -> mount_setattr's (attr_set, attr_clr)."""
    attrs = attr_clr = 0
    for flag, attr in BIND_ATTRS:
        if flags & flag:
            attrs |= attr
        if clear & flag:
            attr_clr |= attr
    if (flags | clear) & ATIME_FLAGS:  # an atime word: set one mode, clear the others
        attrs |= next((a for f, a in ATIME_MODES if flags & f), S.MOUNT_ATTR_RELATIME)
        attr_clr |= S.MOUNT_ATTR__ATIME
    return attrs, attr_clr


def mount_points(mounts: list) -> list:
    """The mount points of ``mounts`` (mounted inside the container's namespaces, in order)
    that the root must hold: those not inside a kernel filesystem mounted before them."""
    points: list = []
    for i, m in enumerate(mounts):
        if not any(m.dst.startswith(e.dst.rstrip("/") + "/") for e in mounts[:i]):
            points.append(MountPoint(m.dst))
    return points


def oci_plans(spec: Spec) -> tuple[list, list]:
    """(host plan, namespace plan) of an OCI config's Spec: its mounts that need no namespace
    in order, the default and the config's devices, the mount points of the others, the
    root's mode, then each of those mounts lifted aside (the last first); then, in the
    container's namespaces, every config mount in the config's order (the lifted ones put
    back, proc, sysfs, devpts, mqueue and cgroup made), sysctl, the masked and the read-only
    paths. The root's propagation is set after pivot_root (``Spec.rootfs_propagation``):
    pivot_root refuses a shared root."""
    host: list = [Root()]
    for m in spec.mounts:
        if m.kind == "bind":
            attrs, clear = bind_attrs(m.flags, m.clear)
            host.append(Bind(m.src, m.dst, m.readonly, None, m.recursive, attrs, clear,
                             m.idmap))
        else:
            host.append(FsMount(m.src or m.kind, m.dst, m.kind,
                                m.flags | (S.MS_RDONLY if m.readonly else 0), m.options or None,
                                owned=m.kind == "tmpfs"))
        if m.propagation:
            host.append(Propagation(m.dst, m.propagation))
    host += dev_nodes(spec.devices)
    host += mount_points(spec.ns_mounts)
    if spec.readonly:
        host.append(ReadOnly("/"))
    in_ns = {id(m) for m in spec.ns_mounts}
    ordered = list(enumerate(spec.config_mounts or [*spec.mounts, *spec.ns_mounts]))
    host += [Lift(i, m.dst) for i, m in reversed(ordered) if id(m) not in in_ns]
    ns: list = []
    for i, m in ordered:
        flags = m.flags | (S.MS_RDONLY if m.readonly else 0)
        if id(m) not in in_ns:
            ns.append(Unstage(i, m.dst))
        elif m.kind in ("cgroup", "cgroup2"):  # (a v1 tmpfs itself stays rw, as runc)
            ns.append(CgroupFs(m.dst, bool(flags & S.MS_RDONLY)))
        else:
            ns.append(FsMount(m.src or m.kind, m.dst, m.kind, flags, m.options or None))
    if spec.domainname:
        ns.append(Sysctl("kernel.domainname", spec.domainname))
    ns += [Sysctl(k, v) for k, v in sorted(spec.sysctl.items())]
    return host, ns + hidden_paths(spec)
