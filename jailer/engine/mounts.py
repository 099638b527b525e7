"""The container's filesystem as a list of simple operations, replayed into a new root.

Two plans, read top to bottom like bubblewrap's setup:

* ``host_plan``: done by the runtime as host root in a private mount namespace, before it
  enters the container's user namespace: the root itself (an idmapped bind, or overlayfs over an
  idmapped lower layer), a minimal /dev, the user's binds and tmpfs mounts, read-only root.
  Mounts made here are locked from the container's point of view: its root cannot undo them.
* ``ns_plan``: done by the container's pid 1 inside its namespaces: /proc, /sys, devpts,
  /dev/shm, mqueue, then the masked and read-only paths.

Every target inside the root is resolved with ``openat2(RESOLVE_IN_ROOT)`` and mounted through
``/proc/self/fd/N``, so a symlink in the image can never redirect a mount onto the host.
"""

from __future__ import annotations

import os
import stat

from jailer.core.errors import JailerError
from jailer.core.spec import Spec
from jailer.kernel import syscalls as S

NODEV_NOSUID_NOEXEC = S.MS_NOSUID | S.MS_NODEV | S.MS_NOEXEC
# kernel filesystems mount only on real directories: a symlink anywhere on the way (an image's
# ``proc -> /tmp/x``) is refused, as runc refuses "proc must be mounted on ordinary directory"
ORDINARY = {"/dev", "/proc", "/sys", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys/fs/cgroup"}

# name, mode, major, minor (the minimal /dev every runtime provides)
DEVICES = (
    ("null", 0o666, 1, 3), ("zero", 0o666, 1, 5), ("full", 0o666, 1, 7),
    ("random", 0o666, 1, 8), ("urandom", 0o666, 1, 9), ("tty", 0o666, 5, 0),
)
DEV_LINKS = (
    ("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"), ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"), ("pts/ptmx", "ptmx"), ("/proc/kcore", "core"),
)


def dev_links() -> list[tuple[str, str]]:
    """DEV_LINKS, without /dev/core where the kernel has no /proc/kcore (as runc)."""
    return [(t, n) for t, n in DEV_LINKS if t != "/proc/kcore" or os.path.exists(t)]


def host_plan(spec: Spec, rootfs: str, root: str, cdir: str | None, init_path: str | None,
              base: int, packed: tuple[str, str] | None = None,
              rootless: bool = False) -> list[tuple]:
    """Operations run as host root in the runtime's private mount namespace.

    ``root`` is where the container's root is assembled (the rootfs itself for a jail,
    ``cdir/merged`` for a copy-on-write container); ``base`` is the host uid/gid that the
    container's root maps to (0 without a user namespace); ``packed`` is a loop device holding
    the image and its filesystem type, used as the lower layer instead of the rootfs.
    ``rootless``: run by an unprivileged user inside the container's user namespace (a
    delegated jail), where device nodes cannot be made: the host's are bound instead.
    """
    ops: list[tuple] = []
    lower = rootfs
    if spec.cow:
        lower = f"{cdir}/lower"
        if packed:
            ops.append(("packed", packed[0], packed[1], lower))
            ops.append(("bind_root", lower, lower, spec.userns and spec.idmap))
        else:
            ops.append(("bind_root", rootfs, lower, spec.userns and spec.idmap))
        ops.append(("overlay", lower, f"{cdir}/upper", f"{cdir}/work", root))
    elif not rootless:  # rootless: the launcher has bound the root onto itself already
        ops.append(("bind_root", rootfs, root, spec.userns and spec.idmap))
    ops.append(("tmpfs", "/dev", f"mode=755,size=65536k,uid={base},gid={base}",
                S.MS_NOSUID | S.MS_STRICTATIME))
    for name, mode, major, minor in DEVICES:
        if rootless:
            ops.append(("bind", f"/dev/{name}", f"/dev/{name}", False, "file"))
        else:
            ops.append(("mknod", f"/dev/{name}", mode, major, minor, base))
    for target, name in dev_links():
        ops.append(("symlink", target, f"/dev/{name}", base))
    for name in ("pts", "shm", "mqueue"):
        ops.append(("mkdir", f"/dev/{name}"))
    if init_path:
        ops.append(("bind", init_path, "/dev/init", True, "file"))
    for m in spec.mounts:
        if m.kind == "tmpfs":
            data = f"mode=1777,uid={base},gid={base}" + (f",{m.options}" if m.options else "")
            ops.append(("tmpfs", m.dst, data, S.MS_NOSUID | S.MS_NODEV))
        else:
            kind = "dir" if os.path.isdir(m.src) else "file"
            ops.append(("bind", m.src, m.dst, m.readonly, kind))
    if spec.pivot_root:
        ops.append(("mkdir", "/proc"))
        ops.append(("mkdir", "/sys"))
    if spec.readonly:
        ops.append(("readonly", "/"))
    return ops


def ns_plan(spec: Spec, cgroup_dirs: dict[str, str] | None = None) -> list[tuple]:
    """Operations run by the container's pid 1 inside its namespaces, before pivot_root.

    ``cgroup_dirs`` are the container's own cgroup directories on the host ({"": dir} on v2,
    {controller: dir} on v1): /sys/fs/cgroup shows them, read-only.
    """
    ops: list[tuple] = [
        ("mount", "proc", "/proc", "proc", NODEV_NOSUID_NOEXEC, None),
        ("mount", "sysfs", "/sys", "sysfs", NODEV_NOSUID_NOEXEC | S.MS_RDONLY, None),
        ("mount", "devpts", "/dev/pts", "devpts", S.MS_NOSUID | S.MS_NOEXEC,
         "newinstance,ptmxmode=0666,mode=0620,gid=5"),
        ("mount", "shm", "/dev/shm", "tmpfs", NODEV_NOSUID_NOEXEC, "mode=1777,size=65536k"),
        ("mount", "mqueue", "/dev/mqueue", "mqueue", NODEV_NOSUID_NOEXEC, None),
    ]
    if cgroup_dirs and "" in cgroup_dirs:
        ops.append(("bind", cgroup_dirs[""], "/sys/fs/cgroup", True, "existing"))
    elif cgroup_dirs:
        ops.append(("mount", "cgroup", "/sys/fs/cgroup", "tmpfs", NODEV_NOSUID_NOEXEC,
                    "mode=755,size=64k"))
        for ctrl, path in sorted(cgroup_dirs.items()):
            ops.append(("bind", path, f"/sys/fs/cgroup/{ctrl}", True, "dir"))
        ops.append(("readonly_mount", "/sys/fs/cgroup"))
    ops += [("mask", p) for p in spec.masked_paths]
    ops += [("readonly", p) for p in spec.readonly_paths]
    return ops


class Mounter:
    """Replays a plan into ``root``; ``creator`` owns any mount point it has to create."""

    O_PATH = 0o10000000

    def __init__(self, sys_: S.Syscalls, root: str, creator: int = 0,
                 userns_fd: int = -1, root_fd: int = -1) -> None:
        self.sys = sys_
        self.root = root
        self.creator = creator
        self.userns_fd = userns_fd
        self._rootfd = root_fd
        self._own_fd = root_fd < 0

    # -- path resolution inside the root -------------------------------------------------
    def _open_root(self) -> int:
        if self._rootfd < 0:
            self._rootfd = os.open(self.root, self.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        return self._rootfd

    def close(self) -> None:
        if self._rootfd >= 0 and self._own_fd:
            os.close(self._rootfd)
            self._rootfd = -1

    def resolve(self, rel: str, create: str | None = None, _depth: int = 0,
                strict: bool = False) -> int:
        """O_PATH fd of ``rel`` inside the root (symlinks stay inside); optionally create it.

        Missing components are created as directories (the last one as ``create``: "dir" or
        "file"), owned by ``creator``. A dangling symlink is followed inside the root, the
        way runc's SecureJoin does, so ``/escape -> /host/path`` creates ``/host/path`` in
        the root, never on the host. ``strict``: no symlink at all on the way (ELOOP).
        """
        rel = os.path.normpath("/" + rel).lstrip("/")
        if not rel:
            return os.dup(self._open_root())
        flags = self.O_PATH | os.O_CLOEXEC
        resolve = S.RESOLVE_IN_ROOT | S.RESOLVE_NO_MAGICLINKS
        if strict:
            resolve |= S.RESOLVE_NO_SYMLINKS
        try:
            return self.sys.openat2(self._open_root(), rel, flags, resolve)
        except FileNotFoundError:
            if not create or _depth > 40:
                raise
        parent, name = os.path.split(rel)
        pfd = self.resolve(parent, "dir", _depth + 1, strict)
        try:
            try:
                link = os.readlink(name, dir_fd=pfd)
            except OSError:
                link = None
            if link is not None and strict:
                raise OSError(40, f"{rel}: a symlink", rel)
            if link is not None:  # dangling symlink: create its target, inside the root
                target = link if link.startswith("/") else os.path.join("/", parent, link)
                return self.resolve(target, create, _depth + 1)
            self.sys.setfsid(self.creator, self.creator)
            try:
                if create == "dir":
                    os.mkdir(name, 0o755, dir_fd=pfd)
                else:
                    os.close(os.open(name, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW
                                     | os.O_CLOEXEC, 0o644, dir_fd=pfd))
            except FileExistsError:
                pass
            finally:
                self.sys.setfsid(0, 0)
        finally:
            os.close(pfd)
        return self.sys.openat2(self._open_root(), rel, flags, resolve)

    def _target(self, rel: str, create: str | None = None,
                strict: bool = False) -> tuple[int, str]:
        fd = self.resolve(rel, create, strict=strict)
        return fd, f"/proc/self/fd/{fd}"

    def _ordinary_dir(self, rel: str) -> tuple[int, str]:
        """The real directory ``rel`` (created if missing), or one line saying why not."""
        what = rel.strip("/").replace("dev/", "") or "/"
        try:
            fd = self.resolve(rel, "dir", strict=True)
        except OSError as e:
            if e.errno not in (40, 20):  # ELOOP, ENOTDIR: a symlink or a file on the way
                raise
            fd = -1
        if fd >= 0 and not stat.S_ISDIR(os.fstat(fd).st_mode):
            os.close(fd)
            fd = -1
        if fd < 0:
            raise JailerError(f"{what} must be mounted on an ordinary directory: {rel} in the "
                              "root is a symlink or not a directory", stage="mount", path=rel,
                              hint="the image must have a real directory there")
        return fd, f"/proc/self/fd/{fd}"

    def _char_dev(self, rel: str, major: int, minor: int) -> tuple[int, str]:
        """``rel`` if it really is the character device major:minor (no symlink on the way)."""
        try:
            fd = self.resolve(rel, strict=True)
        except OSError:
            fd = -1
        if fd >= 0:
            st = os.fstat(fd)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(major, minor):
                return fd, f"/proc/self/fd/{fd}"
            os.close(fd)
        raise JailerError(f"{rel} in the root is not the character device {major}:{minor}",
                          stage="mount", path=rel)

    # -- operations ------------------------------------------------------------------------
    def apply(self, ops: list[tuple]) -> None:
        for op in ops:
            getattr(self, "op_" + op[0])(*op[1:])

    def _attach(self, src: str, to_path: str = "", to_fd: int = S.AT_FDCWD,
                readonly: bool = False, idmap: bool = False, recursive: bool = True,
                attrs: int = 0, clear: int = 0) -> None:
        """Bind of ``src`` (recursive unless told) with its attributes (MOUNT_ATTR_*) set,
        and ``clear`` cleared, before it becomes visible."""
        fd = self.sys.open_tree(src, S.OPEN_TREE_CLONE | S.OPEN_TREE_CLOEXEC
                                | (S.AT_RECURSIVE if recursive else 0))
        try:
            attrs |= (S.MOUNT_ATTR_RDONLY if readonly else 0)
            if idmap:
                attrs |= S.MOUNT_ATTR_IDMAP
            if attrs or clear:
                self.sys.mount_setattr(fd, attrs, clear,
                                       userns_fd=self.userns_fd if idmap else -1)
            self.sys.move_mount(fd, to_path, to_dfd=to_fd)
        finally:
            os.close(fd)

    def op_bind_root(self, src: str, dst: str, idmap: bool) -> None:
        """Bind the image onto ``dst``; idmapped so image root shows as container root.
        Always nodev: a block or character node the root (or an image) holds gives no device
        (the container's /dev is a tmpfs of its own; OCI devices are bound onto themselves).

        Filesystems without idmapped-mount support get a plain bind: the image's files then
        show as nobody inside, and a writable copy must be chowned to the jail's range.
        """
        if idmap and self.userns_fd >= 0:
            try:
                self._attach(src, dst, idmap=True, attrs=S.MOUNT_ATTR_NODEV)
                return
            except OSError as e:
                if e.errno not in (22, 95):  # EINVAL, EOPNOTSUPP: no idmap support here
                    raise
        self._attach(src, dst, attrs=S.MOUNT_ATTR_NODEV)

    def op_packed(self, device: str, fstype: str, dst: str) -> None:
        """Mount a packed image (squashfs, erofs on a loop device) read-only at ``dst``."""
        self.sys.mount(device, dst, fstype, S.MS_RDONLY | S.MS_NODEV)

    def op_overlay(self, lower: str, upper: str, work: str, dst: str) -> None:
        data = f"lowerdir={lower},upperdir={upper},workdir={work}"
        self.sys.mount("overlay", dst, "overlay", S.MS_NODEV, data)

    def op_tmpfs(self, rel: str, data: str, flags: int) -> None:
        fd, target = self._ordinary_dir(rel) if rel in ORDINARY else self._target(rel, "dir")
        try:
            self.sys.mount("tmpfs", target, "tmpfs", flags, data)
        finally:
            os.close(fd)

    def op_mknod(self, rel: str, mode: int, major: int, minor: int, owner: int) -> None:
        """A node in the /dev tmpfs this runtime just mounted: made relative to its fd."""
        pfd = self.resolve(os.path.dirname(rel), strict=True)
        try:
            name = os.path.basename(rel)
            os.mknod(name, 0o020000 | mode, os.makedev(major, minor), dir_fd=pfd)
            os.chmod(name, mode, dir_fd=pfd)
            os.chown(name, owner, owner, dir_fd=pfd, follow_symlinks=False)
        finally:
            os.close(pfd)

    def op_symlink(self, target: str, rel: str, owner: int) -> None:
        pfd = self.resolve(os.path.dirname(rel), strict=True)
        try:
            os.symlink(target, os.path.basename(rel), dir_fd=pfd)
            os.chown(os.path.basename(rel), owner, owner, dir_fd=pfd, follow_symlinks=False)
        finally:
            os.close(pfd)

    def op_mkdir(self, rel: str) -> None:
        os.close(self.resolve(rel, "dir"))

    def op_bind(self, src: str, rel: str, readonly: bool, kind: str) -> None:
        """Bind host path ``src`` on ``rel``; ``kind`` (dir, file) says what to create if it
        is missing, "existing" that it must exist already. nosuid and nodev, unless ``src``
        is a device node itself (binding one is asking for that device)."""
        from jailer.kernel.fsutil import is_device

        fd = self.resolve(rel, None if kind == "existing" else kind)
        try:
            attrs = 0 if is_device(src) else S.MOUNT_ATTR_NOSUID | S.MOUNT_ATTR_NODEV
            self._attach(src, to_fd=fd, readonly=readonly, attrs=attrs)
        finally:
            os.close(fd)

    def op_readonly(self, rel: str) -> None:
        """Make ``rel`` read-only (only that mount: submounts such as /dev keep their mode).

        The root is already a mount; any other path gets a read-only bind of itself.
        """
        try:
            fd, target = self._target(rel, strict=True)
        except FileNotFoundError:
            return
        except OSError as e:
            raise _symlink_refused("read-only path", rel, e) from None
        try:
            if rel == "/":
                self.sys.mount_setattr(fd, S.MOUNT_ATTR_RDONLY, recursive=False)
            else:
                self._attach(target, to_fd=fd, readonly=True)
        finally:
            os.close(fd)

    def op_mount(self, src: str, rel: str, fstype: str, flags: int, data: str | None) -> None:
        kernel = fstype in ("proc", "sysfs", "devpts", "mqueue", "cgroup", "cgroup2", "tmpfs")
        if rel in ORDINARY or (kernel and fstype != "tmpfs"):
            fd, target = self._ordinary_dir(rel)
        else:
            fd, target = self._target(rel, "dir")
        try:
            self.sys.mount(src, target, fstype, flags, data)
        finally:
            os.close(fd)
        if fstype == "devpts":  # the new instance's ptmx, not something the image put there
            os.close(self._char_dev(rel + "/ptmx", 5, 2)[0])

    def op_oci_bind(self, src: str, rel: str, readonly: bool, kind: str, recursive: bool,
                    attrs: int) -> None:
        fd = self.resolve(rel, kind)
        try:
            self._attach(src, to_fd=fd, readonly=readonly, recursive=recursive, attrs=attrs)
        finally:
            os.close(fd)

    def op_propagation(self, rel: str, flags: int) -> None:
        fd, target = self._target(rel)
        try:
            self.sys.mount(None, target, None, flags)
        finally:
            os.close(fd)

    def op_mknod_missing(self, rel: str, mode: int, major: int, minor: int, uid: int,
                         gid: int) -> None:
        """A device node, unless the config put something there (a bind) already."""
        try:
            os.close(self.resolve(rel))
            return
        except FileNotFoundError:
            pass
        pfd = self.resolve(os.path.dirname(rel), "dir")
        try:
            name = os.path.basename(rel)
            os.mknod(name, mode, os.makedev(major, minor), dir_fd=pfd)
            os.chmod(name, mode & 0o7777, dir_fd=pfd)
            os.chown(name, uid, gid, dir_fd=pfd, follow_symlinks=False)
            if mode & 0o170000 in (0o020000, 0o060000) and \
                    os.statvfs(f"/proc/self/fd/{pfd}").f_flag & os.ST_NODEV:
                # on the nodev root (no /dev tmpfs in the config): the node the config asks
                # for gets a mount of its own without nodev
                fd = self.resolve(rel)
                try:
                    self._attach(f"/proc/self/fd/{fd}", to_fd=fd, recursive=False,
                                 clear=S.MOUNT_ATTR_NODEV)
                finally:
                    os.close(fd)
        finally:
            os.close(pfd)

    def op_symlink_missing(self, target: str, rel: str, owner: int) -> None:
        pfd = self.resolve(os.path.dirname(rel), "dir")
        try:
            os.symlink(target, os.path.basename(rel), dir_fd=pfd)
            os.chown(os.path.basename(rel), owner, owner, dir_fd=pfd, follow_symlinks=False)
        except FileExistsError:
            pass
        finally:
            os.close(pfd)

    def op_sysctl(self, key: str, value: str) -> None:
        """Write /proc/sys/KEY (dots become slashes) inside the container's /proc: only a
        regular file of that procfs (f_type PROC_SUPER_MAGIC: not an image's plain /proc
        when the config mounts none), reached without a symlink."""
        rel = "/proc/sys/" + key.replace(".", "/")
        proc = self._ordinary_dir("/proc")[0]
        try:
            fd = self.sys.openat2(self._open_root(), rel.lstrip("/"),
                                  os.O_WRONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK,
                                  S.RESOLVE_IN_ROOT | S.RESOLVE_NO_SYMLINKS)
        except OSError as e:
            os.close(proc)
            raise JailerError(f"sysctl {key}: {rel}: {e.strerror or e}", stage="sysctl",
                              path=rel, errno=e.errno or 0) from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_dev != os.fstat(proc).st_dev \
                    or self.sys.fstype(fd) != S.PROC_SUPER_MAGIC:
                raise JailerError(f"sysctl {key}: {rel} is not a file of the container's "
                                  "procfs", stage="sysctl", path=rel)
            os.write(fd, str(value).encode())
        finally:
            os.close(fd)
            os.close(proc)

    def op_readonly_mount(self, rel: str) -> None:
        """Make the mount at ``rel`` itself read-only (no second mount on top of it)."""
        fd, _target = self._target(rel)
        try:
            self.sys.mount_setattr(fd, S.MOUNT_ATTR_RDONLY, recursive=False)
        finally:
            os.close(fd)

    def op_mask(self, rel: str) -> None:
        """Hide ``rel``: /dev/null over a file, an empty read-only tmpfs over a directory.
        No symlink is followed on the way, /dev/null must be the real 1:3, and the mask is
        checked to cover its target afterwards."""
        try:
            fd, target = self._target(rel, strict=True)
        except FileNotFoundError:
            return
        except OSError as e:
            raise _symlink_refused("masked path", rel, e) from None
        try:
            before = os.fstat(fd)
            if stat.S_ISDIR(before.st_mode):
                self.sys.mount("tmpfs", target, "tmpfs", S.MS_RDONLY | NODEV_NOSUID_NOEXEC,
                               "size=0")
            else:
                null, src = self._char_dev("/dev/null", 1, 3)
                try:
                    self.sys.mount(src, target, None, S.MS_BIND)
                finally:
                    os.close(null)
        finally:
            os.close(fd)
        after = os.fstat(fd := self.resolve(rel, strict=True))
        os.close(fd)
        covered = after.st_dev != before.st_dev if stat.S_ISDIR(before.st_mode) else \
            stat.S_ISCHR(after.st_mode) and after.st_rdev == os.makedev(1, 3)
        if not covered:
            raise JailerError(f"masked path {rel}: the mask does not cover it", stage="mount",
                              path=rel)


def _symlink_refused(what: str, rel: str, e: OSError) -> Exception:
    if e.errno in (40, 20):  # ELOOP, ENOTDIR
        return JailerError(f"{what} {rel}: a symlink on the way in the root; refused",
                           stage="mount", path=rel)
    return e


# ── OCI bundles: the plan comes from config.json ───────────────────────────────────────────
# MS_* flags that a bind takes as mount attributes (the new mount API's names)
_BIND_ATTRS = ((S.MS_NOSUID, S.MOUNT_ATTR_NOSUID), (S.MS_NODEV, S.MOUNT_ATTR_NODEV),
               (S.MS_NOEXEC, S.MOUNT_ATTR_NOEXEC), (S.MS_NOATIME, S.MOUNT_ATTR_NOATIME),
               (S.MS_STRICTATIME, S.MOUNT_ATTR_STRICTATIME),
               (S.MS_NODIRATIME, S.MOUNT_ATTR_NODIRATIME),
               (S.MS_NOSYMFOLLOW, S.MOUNT_ATTR_NOSYMFOLLOW))
NS_KINDS = ("proc", "sysfs", "devpts", "mqueue", "cgroup", "cgroup2")


def oci_host_plan(spec: Spec, root: str, base: int) -> list[tuple]:
    """An OCI config's root and its mounts that need no namespace (binds, tmpfs, ...), in
    order, then the default devices (runtime-spec) and the config's, as host root.

    ``base`` is the host uid/gid of the container's root (0 without a user namespace): a
    tmpfs gets it as owner unless the config says otherwise."""
    ops: list[tuple] = [("bind_root", spec.rootfs, root, False)]
    for m in spec.mounts:
        if m.kind == "bind":
            kind = "dir" if os.path.isdir(m.src) else "file"
            attrs = 0
            for flag, attr in _BIND_ATTRS:
                if m.flags & flag:
                    attrs |= attr
            ops.append(("oci_bind", m.src, m.dst, m.readonly, kind, m.recursive, attrs))
        else:
            data = m.options
            if m.kind == "tmpfs" and base and "uid=" not in data:
                data = ",".join(filter(None, [data, f"uid={base},gid={base}"]))
            ops.append(("mount", m.src or m.kind, m.dst, m.kind,
                        m.flags | (S.MS_RDONLY if m.readonly else 0), data or None))
        if m.propagation:
            ops.append(("propagation", m.dst, m.propagation))
    for name, mode, major, minor in DEVICES:
        ops.append(("mknod_missing", f"/dev/{name}", 0o020000 | mode, major, minor, base,
                    base))
    for d in spec.devices:
        kind = {"c": 0o020000, "u": 0o020000, "b": 0o060000, "p": 0o010000}[d.kind]
        ops.append(("mknod_missing", d.path, kind | (d.mode & 0o7777), d.major, d.minor,
                    base + d.uid, base + d.gid))
    for target, name in dev_links():
        ops.append(("symlink_missing", target, f"/dev/{name}", base))
    if spec.rootfs_propagation:
        ops.append(("propagation", "/", spec.rootfs_propagation))
    if spec.readonly:
        ops.append(("readonly", "/"))
    return ops


def oci_ns_plan(spec: Spec, cgroup_dirs: dict[str, str] | None = None) -> list[tuple]:
    """The config's mounts that need the container's namespaces (proc, sysfs, devpts,
    mqueue, cgroup), in order; then sysctl, the masked and the read-only paths."""
    ops: list[tuple] = []
    for m in spec.ns_mounts:
        flags = m.flags | (S.MS_RDONLY if m.readonly else 0)
        if m.kind in ("cgroup", "cgroup2"):
            ops += _cgroup_ops(m.dst, cgroup_dirs or {}, flags)
        else:
            ops.append(("mount", m.src or m.kind, m.dst, m.kind, flags, m.options or None))
    if spec.domainname:
        ops.append(("sysctl", "kernel.domainname", spec.domainname))
    ops += [("sysctl", k, v) for k, v in sorted(spec.sysctl.items())]
    ops += [("mask", p) for p in spec.masked_paths]
    ops += [("readonly", p) for p in spec.readonly_paths]
    return ops


def _cgroup_ops(dst: str, cgroup_dirs: dict[str, str], flags: int) -> list[tuple]:
    """The container's own cgroup at ``dst`` (what a cgroup namespace would show)."""
    if "" in cgroup_dirs:
        return [("bind", cgroup_dirs[""], dst, bool(flags & S.MS_RDONLY), "dir")]
    ops: list[tuple] = [("mount", "cgroup", dst, "tmpfs", NODEV_NOSUID_NOEXEC,
                         "mode=755,size=64k")]
    for ctrl, path in sorted(cgroup_dirs.items()):  # (the tmpfs itself stays rw, as runc)
        ops.append(("bind", path, f"{dst}/{ctrl}", bool(flags & S.MS_RDONLY), "dir"))
    return ops
