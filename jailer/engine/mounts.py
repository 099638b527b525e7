"""Replaying a mount plan (``jailer.core.plan``) into a new root, and filling in its start-time
records (the root, the init binary, the container's cgroup) with what only the start knows.

Every target inside the root is resolved with ``openat2(RESOLVE_IN_ROOT)`` and mounted through
``/proc/self/fd/N``, so a symlink in the image can never redirect a mount onto the host.
"""

from __future__ import annotations

import os
import stat

from jailer.core import plan as P
from jailer.core.errors import JailerError
from jailer.core.plan import Record
from jailer.kernel import syscalls as S

# Everything the replay needs is imported here, before any fork: pid 1 replays its plan as the
# container's root, who may not be able to read jailer's own files (a checkout under /root).

NODEV_NOSUID_NOEXEC = S.MS_NOSUID | S.MS_NODEV | S.MS_NOEXEC
# kernel filesystems mount only on real directories: a symlink anywhere on the way (an image's
# ``proc -> /tmp/x``) is refused, as runc refuses "proc must be mounted on ordinary directory"
ORDINARY = {"/dev", "/proc", "/sys", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys/fs/cgroup"}
KERNEL_FS = ("proc", "sysfs", "devpts", "mqueue", "cgroup", "cgroup2", "tmpfs")


# ── the start-time facts ───────────────────────────────────────────────────────────────────
class Facts(Record):
    """What a plan's start-time records stand for in this start.

    ``root`` is where the container's root is assembled (the rootfs itself, or
    ``cdir/merged`` for a copy-on-write root); ``cow`` and ``cdir`` say whether and where the
    layers are; ``packed`` is a loop device holding the image and its filesystem type, used as
    the lower layer; ``idmap`` asks for an idmapped root; ``rootless``: a start by an
    unprivileged user inside the container's user namespace (a delegated jail), who cannot
    make device nodes (the host's are bound instead) and has bound the root already;
    ``cgroup_dirs`` are the container's cgroup directories ({"": dir} on v2,
    {controller: dir} on v1); ``stage``: the host directory the config's host-side mounts
    are lifted to (None: they stay where they are made); ``staged``: pid 1 has them there;
    ``shared``: the mounts are made in the runtime's own mount namespace (the root bind is
    made private first, so nothing made under it reaches another mount).
    """

    __slots__ = ("root", "rootfs", "cow", "cdir", "packed", "idmap", "init_path", "rootless",
                 "cgroup_dirs", "stage", "staged", "shared")
    _defaults = {"root": "", "rootfs": "", "cow": False, "cdir": None, "packed": None,
                 "idmap": False, "init_path": None, "rootless": False, "cgroup_dirs": None,
                 "stage": None, "staged": False, "shared": False}


def fill_in(plan: list, facts: Facts) -> list:
    """``plan`` with its start-time records replaced by the operations they stand for, and each
    bind that creates "what its source is" told which (a directory or a file)."""
    ops: list = []
    for op in plan:
        if isinstance(op, P.Root):
            ops += _root_ops(facts)
            if facts.shared:
                ops.append(P.Propagation("/", S.MS_PRIVATE | S.MS_REC))
        elif isinstance(op, P.InitBinary):
            if facts.init_path:
                ops.append(P.Bind(facts.init_path, op.dst, True, "file"))
        elif isinstance(op, P.CgroupFs):
            ops += _cgroup_ops(op, facts.cgroup_dirs or {})
        elif isinstance(op, P.DeviceNode) and facts.rootless:
            ops.append(P.Bind(op.path, op.path, False, "file", attrs=0))  # the host's node
        elif isinstance(op, P.Bind) and op.create is None:
            ops.append(op.replace(create="dir" if os.path.isdir(op.src) else "file"))
        elif isinstance(op, P.Lift):
            if facts.stage:
                ops.append(op.replace(stage=facts.stage))
        elif isinstance(op, P.Unstage):
            if facts.staged:
                ops.append(op)
        else:
            ops.append(op)
    return ops


def _root_ops(f: Facts) -> list:
    if f.cow:
        lower = f"{f.cdir}/lower"
        ops: list = []
        if f.packed:
            ops += [P.PackedImage(f.packed[0], f.packed[1], lower),
                    P.BindRoot(lower, lower, f.idmap)]
        else:
            ops.append(P.BindRoot(f.rootfs, lower, f.idmap))
        return [*ops, P.Overlay(lower, f"{f.cdir}/upper", f"{f.cdir}/work", f.root)]
    if f.rootless:  # the launcher has bound the root onto itself already
        return []
    return [P.BindRoot(f.rootfs, f.root, f.idmap)]


def _cgroup_ops(op: P.CgroupFs, cgroup_dirs: dict[str, str]) -> list:
    if not cgroup_dirs:
        return []
    if "" in cgroup_dirs:
        return [P.Bind(cgroup_dirs[""], op.dst, op.readonly, op.create)]
    ops: list = [P.FsMount("cgroup", op.dst, "tmpfs", NODEV_NOSUID_NOEXEC, "mode=755,size=64k")]
    for ctrl, path in sorted(cgroup_dirs.items()):
        ops.append(P.Bind(path, f"{op.dst}/{ctrl}", op.readonly, "dir"))
    if op.seal:
        ops.append(P.ReadOnlyMount(op.dst))
    return ops


class Mounter:
    """Replays a filled-in plan into ``root``. ``creator`` is the host uid (and gid) of the
    container's root (0 without a user namespace): it owns every mount point, node and link
    the plan makes and every owned tmpfs; a node's own ids are counted from it."""

    O_PATH = 0o10000000

    def __init__(self, sys_: S.Syscalls, root: str, creator: int = 0,
                 userns_fd: int = -1, root_fd: int = -1, stage_fd: int = -1) -> None:
        self.sys = sys_
        self.root = root
        self.creator = creator
        self.userns_fd = userns_fd
        self._rootfd = root_fd
        self._own_fd = root_fd < 0
        self.stage_fd = stage_fd  # the staging directory (Lift makes it, Unstage reads it)

    # -- path resolution inside the root -------------------------------------------------
    def _open_root(self) -> int:
        if self._rootfd < 0:
            self._rootfd = os.open(self.root, self.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        return self._rootfd

    def close(self) -> None:
        if self._rootfd >= 0 and self._own_fd:
            os.close(self._rootfd)
            self._rootfd = -1
        if self.stage_fd >= 0:
            os.close(self.stage_fd)
            self.stage_fd = -1

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

    def target(self, rel: str, create: str | None = None,
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

    def _no_symlink(self, rel: str, what: str) -> tuple[int, str] | None:
        """``rel`` reached without any symlink (None if it is missing); one line refusing
        a symlink on the way."""
        try:
            return self.target(rel, strict=True)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise _symlink_refused(what, rel, e) from None

    def char_dev(self, rel: str, major: int, minor: int) -> tuple[int, str]:
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

    # -- operations, one method per plan record ----------------------------------------------
    def apply(self, plan: list) -> None:
        """Do each operation of ``plan`` (filled in: see ``fill_in``) in order."""
        for op in plan:
            try:
                do = OPERATIONS[type(op)]
            except KeyError:
                raise TypeError(f"not a mount operation (fill_in first?): {op!r}") from None
            try:
                do(self, op)
            except OSError as e:  # name the container's path (the call shows an fd's)
                where = getattr(op, "dst", None) or getattr(op, "path", None)
                if not where or e.filename == where or where in (e.strerror or ""):
                    raise
                raise OSError(e.errno, e.strerror, where) from None

    def _attach(self, src: str, to_path: str = "", to_fd: int = S.AT_FDCWD,
                readonly: bool = False, idmap: bool = False, recursive: bool = True,
                attrs: int = 0, clear: int = 0, mapped: tuple[int, bool] | None = None
                ) -> None:
        """Bind of ``src`` (recursive unless told) with its attributes (MOUNT_ATTR_*) set,
        and ``clear`` cleared, before it becomes visible; ``idmap``: mapped by the
        container's user namespace; ``mapped``: (user namespace fd, its whole tree?) that
        maps it instead."""
        fd = self.sys.open_tree(src, S.OPEN_TREE_CLONE | S.OPEN_TREE_CLOEXEC
                                | (S.AT_RECURSIVE if recursive else 0))
        try:
            attrs |= (S.MOUNT_ATTR_RDONLY if readonly else 0)
            if idmap:
                attrs |= S.MOUNT_ATTR_IDMAP
            if attrs or clear:
                self.sys.mount_setattr(fd, attrs, clear,
                                       userns_fd=self.userns_fd if idmap else -1)
            if mapped is not None:
                self.sys.mount_setattr(fd, S.MOUNT_ATTR_IDMAP, userns_fd=mapped[0],
                                       recursive=mapped[1])
            self.sys.move_mount(fd, to_path, to_dfd=to_fd)
        finally:
            os.close(fd)

    def bind_root(self, op: P.BindRoot) -> None:
        """Bind the image onto ``dst``; idmapped so image root shows as container root.
        Always nodev: a block or character node the root (or an image) holds gives no device
        (the container's /dev is a tmpfs of its own; OCI devices are bound onto themselves).

        Filesystems without idmapped-mount support get a plain bind: the image's files then
        show as nobody inside, and a writable copy must be chowned to the jail's range.
        """
        if op.idmap and self.userns_fd >= 0:
            try:
                self._attach(op.src, op.dst, idmap=True, attrs=S.MOUNT_ATTR_NODEV)
                return
            except OSError as e:
                if e.errno not in (22, 95):  # EINVAL, EOPNOTSUPP: no idmap support here
                    raise
        self._attach(op.src, op.dst, attrs=S.MOUNT_ATTR_NODEV)

    def packed_image(self, op: P.PackedImage) -> None:
        self.sys.mount(op.device, op.dst, op.fstype, S.MS_RDONLY | S.MS_NODEV)

    def overlay(self, op: P.Overlay) -> None:
        data = f"lowerdir={op.lower},upperdir={op.upper},workdir={op.work}"
        self.sys.mount("overlay", op.dst, "overlay", S.MS_NODEV, data)

    def fs_mount(self, op: P.FsMount) -> None:
        rel, data = op.dst, op.data
        if op.owned and self.creator and "uid=" not in (data or ""):
            data = ",".join(filter(None, [data, f"uid={self.creator},gid={self.creator}"]))
        if rel in ORDINARY or (op.fstype in KERNEL_FS and op.fstype != "tmpfs"):
            fd, target = self._ordinary_dir(rel)
        else:
            fd, target = self.target(rel, "dir")
        try:
            self.sys.mount(op.source, target, op.fstype, op.flags, data)
        finally:
            os.close(fd)
        if op.fstype == "devpts":  # the new instance's ptmx, not something the image put there
            os.close(self.char_dev(rel + "/ptmx", 5, 2)[0])

    def bind(self, op: P.Bind) -> None:
        """Bind host path ``src`` on ``dst`` with the record's mount attributes (nosuid and
        nodev when it names none: whether a source may stay a device is the front end's
        call, made when it built the plan)."""
        fd = self.resolve(op.dst, None if op.create == "existing" else op.create)
        mapped = None
        try:
            attrs = op.attrs
            if attrs is None:
                attrs = S.MOUNT_ATTR_NOSUID | S.MOUNT_ATTR_NODEV
            if op.idmap is not None:
                mapped = (self._idmap_userns(op), op.idmap[2])
            try:
                self._attach(op.src, to_fd=fd, readonly=op.readonly, recursive=op.recursive,
                             attrs=attrs, clear=op.clear, mapped=mapped)
            except OSError as e:
                if mapped is None or e.errno not in (22, 95):  # EINVAL, EOPNOTSUPP
                    raise
                raise JailerError(f"idmapped bind of {op.src} on {op.dst}: {e.strerror} (the "
                                  "filesystem, or a mount in the tree, takes no idmapping)",
                                  stage="mount", path=op.dst, errno=e.errno) from None
        finally:
            os.close(fd)
            if mapped is not None and mapped[0] != self.userns_fd:
                os.close(mapped[0])

    def _idmap_userns(self, op: P.Bind) -> int:
        """The user namespace whose mappings an idmapped bind takes: one made for its own
        mappings, or the container's."""
        uids, gids, _recursive = op.idmap
        if uids:
            return mapped_userns(self.sys, uids, gids)
        if self.userns_fd < 0:
            raise JailerError(f"idmapped bind on {op.dst}: no mappings and no user namespace",
                              stage="mount", path=op.dst)
        return self.userns_fd

    def device_node(self, op: P.DeviceNode) -> None:
        """A device node, unless the plan put something there (a bind) already."""
        rel, mode = op.path, op.mode
        try:
            os.close(self.resolve(rel))
            return
        except FileNotFoundError:
            pass
        pfd = self.resolve(os.path.dirname(rel), "dir")
        try:
            name = os.path.basename(rel)
            os.mknod(name, mode, os.makedev(op.major, op.minor), dir_fd=pfd)
            os.chmod(name, mode & 0o7777, dir_fd=pfd)
            os.chown(name, self.creator + op.uid, self.creator + op.gid, dir_fd=pfd,
                     follow_symlinks=False)
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

    def symlink(self, op: P.Symlink) -> None:
        pfd = self.resolve(os.path.dirname(op.path), "dir")
        name = os.path.basename(op.path)
        try:
            os.symlink(op.target, name, dir_fd=pfd)
            os.chown(name, self.creator, self.creator, dir_fd=pfd, follow_symlinks=False)
        except FileExistsError:
            pass
        finally:
            os.close(pfd)

    def make_dir(self, op: P.MakeDir) -> None:
        os.close(self.resolve(op.path, "dir"))

    def mount_point(self, op: P.MountPoint) -> None:
        os.close(self._ordinary_dir(op.path)[0])

    def propagation(self, op: P.Propagation) -> None:
        fd, target = self.target(op.dst)
        try:
            self.sys.mount(None, target, None, op.flags)
        finally:
            os.close(fd)

    def read_only(self, op: P.ReadOnly) -> None:
        """Make ``path`` read-only (only that mount: submounts such as /dev keep their mode).

        The root is already a mount; any other path gets a read-only bind of itself.
        """
        found = self._no_symlink(op.path, "read-only path")
        if found is None:
            return
        fd, target = found
        try:
            if op.path == "/":
                self.sys.mount_setattr(fd, S.MOUNT_ATTR_RDONLY, recursive=False)
            else:
                self._attach(target, to_fd=fd, readonly=True)
        finally:
            os.close(fd)

    def read_only_mount(self, op: P.ReadOnlyMount) -> None:
        fd, _path = self.target(op.path)
        try:
            self.sys.mount_setattr(fd, S.MOUNT_ATTR_RDONLY, recursive=False)
        finally:
            os.close(fd)

    def lift(self, op: P.Lift) -> None:
        """Move the mount at ``dst`` to its slot in a staging tmpfs on ``op.stage`` (made on
        the first lift, in this mount namespace only; 0711 so that the container's root,
        in a user namespace, can reach a slot by its number)."""
        if self.stage_fd < 0:
            self.sys.mount("tmpfs", op.stage, "tmpfs", NODEV_NOSUID_NOEXEC, "mode=711,size=4k")
            self.stage_fd = os.open(op.stage, self.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        fd = self.resolve(op.dst)
        try:
            slot = str(op.index)
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                os.mkdir(slot, 0o700, dir_fd=self.stage_fd)
            else:  # a file's mount goes on a file
                os.close(os.open(slot, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC,
                                 0o600, dir_fd=self.stage_fd))
            self.sys.move_mount(fd, slot, to_dfd=self.stage_fd)
        finally:
            os.close(fd)

    def unstage(self, op: P.Unstage) -> None:
        """Attach a copy of the mount in slot ``index`` (with what is mounted inside it) at
        ``dst``: made now, so it comes in mountinfo's order where the config puts it (the
        kernel lists mounts as they were made); a copy of a mount made before the user
        namespace keeps its locked flags (a read-only bind stays read-only)."""
        tree = self.sys.open_tree(str(op.index), S.OPEN_TREE_CLONE | S.OPEN_TREE_CLOEXEC
                                  | S.AT_RECURSIVE, dfd=self.stage_fd)
        try:
            fd = self.resolve(op.dst)
            try:
                self.sys.move_mount(tree, "", to_dfd=fd)
            finally:
                os.close(fd)
        finally:
            os.close(tree)

    def sysctl(self, op: P.Sysctl) -> None:
        """Write /proc/sys/KEY (dots become slashes) inside the container's /proc: only a
        regular file of that procfs (f_type PROC_SUPER_MAGIC: not an image's plain /proc
        when the config mounts none), reached without a symlink."""
        key, value = op.key, op.value
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

    def mask(self, op: P.Mask) -> None:
        """Hide ``path``: /dev/null over a file, an empty read-only tmpfs over a directory.
        No symlink is followed on the way, /dev/null must be the real 1:3, and the mask is
        checked to cover its target afterwards."""
        rel = op.path
        if (found := self._no_symlink(rel, "masked path")) is None:
            return
        fd, target = found
        try:
            before = os.fstat(fd)
            if stat.S_ISDIR(before.st_mode):
                self.sys.mount("tmpfs", target, "tmpfs", S.MS_RDONLY | NODEV_NOSUID_NOEXEC,
                               "size=0")
            else:
                null, src = self.char_dev("/dev/null", 1, 3)
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


def detach_tree(path: str) -> None:
    """Detach whatever is mounted on ``path`` (a directory of the runtime's alone, where the
    root of a container sharing the runtime's mount namespace was assembled), all of it;
    one line if something stays mounted there (so that nothing removes the image's files
    through it)."""
    from jailer.kernel.fsutil import mounted_under

    sys_ = S.Syscalls()
    for _ in range(8):  # (one detach per mount stacked on path; each takes its whole tree)
        if path not in mounted_under(path):
            return
        sys_.umount2(path, S.MNT_DETACH | S.UMOUNT_NOFOLLOW)
    raise JailerError(f"the container's root is still mounted on {path}", stage="delete",
                      path=path)


def userns_helper(sys_: S.Syscalls, close: tuple[int, ...] = (), before=None,
                  after=None) -> tuple[int, int]:
    """Fork a child that makes a new user namespace and holds it (its id maps are written
    from outside, by its parent); return (its pid, the fd to close to let it go: then reap
    it) once it has, or raise. In the child, ``close`` are closed first, ``before()`` runs
    before the unshare and ``after()`` once the parent knows of it."""
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    hold_r, hold_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        try:
            for fd in (*close, ready_r, hold_w):
                os.close(fd)
            if before is not None:
                before()
            sys_.unshare(S.CLONE_NEWUSER)
            os.write(ready_w, b"1")
            if after is not None:
                after()
        except OSError:
            os._exit(1)
        os.read(hold_r, 1)
        os._exit(0)
    os.close(ready_w)
    os.close(hold_r)
    try:
        if os.read(ready_r, 1) != b"1":
            os.close(hold_w)
            os.waitpid(pid, 0)
            raise OSError(1, "unshare(CLONE_NEWUSER) failed in the helper")
    finally:
        os.close(ready_r)
    return pid, hold_w


def mapped_userns(sys_: S.Syscalls, uids: tuple, gids: tuple) -> int:
    """An fd of a new user namespace with these (inside, outside, size) mappings, made by a
    short-lived child (a user namespace lives on through the fd)."""
    pid, hold = userns_helper(sys_)
    try:
        return write_id_maps(pid, uids, gids)
    finally:
        os.close(hold)
        os.waitpid(pid, 0)


def write_id_maps(pid: int, uids, gids) -> int:
    """Write the (inside, outside, size) mappings of process ``pid``'s new user namespace
    (as its parent, host root); return an fd of that namespace."""
    for kind, maps in (("uid", uids), ("gid", gids)):
        with open(f"/proc/{pid}/{kind}_map", "w") as f:
            f.write("".join(f"{c} {h} {n}\n" for c, h, n in maps))
    return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)


def _symlink_refused(what: str, rel: str, e: OSError) -> Exception:
    if e.errno in (40, 20):  # ELOOP, ENOTDIR
        return JailerError(f"{what} {rel}: a symlink on the way in the root; refused",
                           stage="mount", path=rel)
    return e


OPERATIONS = {
    P.BindRoot: Mounter.bind_root, P.PackedImage: Mounter.packed_image,
    P.Overlay: Mounter.overlay, P.FsMount: Mounter.fs_mount, P.Bind: Mounter.bind,
    P.DeviceNode: Mounter.device_node, P.Symlink: Mounter.symlink,
    P.MakeDir: Mounter.make_dir, P.MountPoint: Mounter.mount_point,
    P.Propagation: Mounter.propagation,
    P.ReadOnly: Mounter.read_only, P.ReadOnlyMount: Mounter.read_only_mount,
    P.Mask: Mounter.mask, P.Sysctl: Mounter.sysctl,
    P.Lift: Mounter.lift, P.Unstage: Mounter.unstage,
}
