"""Move a root filesystem between uid/gid ranges: copy it shifted, or re-own it in place.

A rootfs that belongs to one range (an image unpacked for ids 0..65535, or a jail's tree
owned by its pool range) has to be owned by another before a differently mapped user
namespace can use it (say a jail delegated to a service user, mapped to its /etc/subuid
range). Both walks work on directory file descriptors and never follow a symlink, so a
hostile tree (one a container wrote) cannot make them read or write outside it; they do not
descend into other filesystems mounted inside the tree.

What travels with an entry: type, mode incl. setuid/setgid/sticky, atime and mtime (ns), hard
links, owner (shifted), xattrs ``user.*``, file capabilities (``security.capability``; a v3
entry's namespace root id is shifted with the owner) and POSIX ACLs (their named users and
groups shifted). Other xattrs (``trusted.*`` such as overlayfs' own, ``security.selinux``) are
dropped.
"""

from __future__ import annotations

import errno
import os
import stat
import struct

CAPS = "security.capability"
ACLS = ("system.posix_acl_access", "system.posix_acl_default")
_ACL_USER, _ACL_GROUP = 0x02, 0x08
_CAP_V3 = 0x03000000
_ID_MAX = 2**32 - 2  # (uid_t)-1 means "unchanged" to chown
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PROGRESS_EVERY = 256
_NO_OFFLOAD = (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP)


def _keep_xattr(name: str) -> bool:
    return name.startswith("user.") or name == CAPS or name in ACLS


def _namespaced_caps(value: bytes) -> bool:
    return len(value) == 24 and struct.unpack_from("<I", value)[0] >> 24 == 3


def _shift_value(name: str, value: bytes, shift, gshift=None) -> bytes:
    """A copy of an xattr value with the ids inside it (v3 capability root id, ACL entries
    for named users and groups) passed through ``shift`` (groups: ``gshift``)."""
    gshift = gshift or shift
    if name == CAPS and len(value) == 24 and struct.unpack_from("<I", value)[0] >> 24 == 3:
        return value[:20] + struct.pack("<I", shift(struct.unpack_from("<I", value, 20)[0]))
    if name in ACLS and len(value) >= 4 and (len(value) - 4) % 8 == 0:
        out = bytearray(value)
        for off in range(4, len(value), 8):
            tag, _perm, ident = struct.unpack_from("<HHI", value, off)
            if tag in (_ACL_USER, _ACL_GROUP):
                struct.pack_into("<I", out, off + 4,
                                 (shift if tag == _ACL_USER else gshift)(ident))
        return bytes(out)
    return value


def _open_dir(name: str, dir_fd: int | None = None) -> int:
    return os.open(name, _DIR, dir_fd=dir_fd)


# ── copy ─────────────────────────────────────────────────────────────────────────────────────
def copy_shifted(src: str | int, dst: str, offset: int, *, progress=None,
                 dst_dir_fd: int | None = None, uid_map=None, gid_map=None,
                 plain: bool = False, devices: bool = True) -> None:
    """Copy the tree ``src`` to ``dst`` (which must not exist; it is created) with every owner
    uid and gid moved up by ``offset``.

    Regular files, directories, symlinks, fifos and hard links (as hard links) are copied,
    device nodes recreated when mknod is allowed (as real root) and skipped otherwise, sockets
    skipped. Sparse files stay sparse where the filesystem reports holes (SEEK_HOLE).
    ``progress(n)`` is called with the number of entries copied so far every few hundred
    entries and at the end. On failure ``dst`` is removed again.

    ``src`` may be an open directory fd (it is not closed), ``dst`` a name in ``dst_dir_fd``;
    ``uid_map``/``gid_map`` (functions of an id) replace the offset. ``plain`` copies for
    someone else's hands: no device nodes, no setuid/setgid bits and no file capabilities
    but namespaced (v3) ones, which act only inside the user namespace they name; without
    ``devices``, device nodes are skipped but the rest is copied as is.
    """
    def shift(i: int) -> int:
        j = i + offset
        if not 0 <= j <= _ID_MAX:
            raise ValueError(f"id {i} + offset {offset} is outside the valid id range")
        return j

    sfd = os.dup(src) if isinstance(src, int) else _open_dir(src)
    try:
        top = os.fstat(sfd)
        os.mkdir(dst, 0o700, dir_fd=dst_dir_fd)
    except BaseException:
        os.close(sfd)
        raise
    try:
        try:
            dfd = _open_dir(dst, dst_dir_fd)
        except BaseException:
            os.close(sfd)
            raise
        copier = _Copier(uid_map or shift, progress, top.st_dev, gid_map or uid_map or shift)
        if plain:
            copier.mknod, copier.plain = False, True
        if not devices:
            copier.mknod = False
        copier.run(sfd, dfd, top)
    except BaseException:
        if dst_dir_fd is not None:
            from jailer.kernel.fsutil import remove_at

            try:
                remove_at(dst_dir_fd, dst)
            except OSError:
                pass
        else:
            _remove_partial(dst)
        raise


def _remove_partial(path: str) -> None:
    """Best effort: remove what a failed copy made, even directories it made read-only."""
    from jailer.kernel.fsutil import remove_tree

    try:
        remove_tree(path)
    except OSError:
        pass


class _Copier:
    def __init__(self, shift, progress, dev: int, gshift=None) -> None:
        self.shift = shift
        self.gshift = gshift or shift
        self.plain = False
        self.progress = progress
        self.dev = dev
        self.links: dict[tuple[int, int], str] = {}  # (dev, ino) -> path under dst
        self.done = 0
        self.mknod = True

    def run(self, sfd: int, dfd: int, top: os.stat_result) -> None:
        self.root = dfd
        # each level: (src dir fd, dst dir fd, path under dst, names still to copy, its stat)
        stack = [(sfd, dfd, "", iter(sorted(os.listdir(sfd))), top)]
        try:
            while stack:
                sfd, dfd, rel, names, st = stack[-1]
                for name in names:
                    child = self.entry(sfd, dfd, rel, name)
                    if child is not None:
                        stack.append(child)
                        break
                else:
                    stack.pop()
                    self.finish(sfd, dfd, st)
        finally:
            for sfd, dfd, *_ in stack:
                os.close(sfd)
                os.close(dfd)
        if self.progress:
            self.progress(self.done)

    def tick(self) -> None:
        self.done += 1
        if self.progress and self.done % _PROGRESS_EVERY == 0:
            self.progress(self.done)

    def entry(self, sfd: int, dfd: int, rel: str, name: str):
        """Copy one entry of a directory; for a subdirectory return its stack level instead."""
        try:
            st = os.stat(name, dir_fd=sfd, follow_symlinks=False)
        except FileNotFoundError:
            return None  # vanished since the listing
        mode = st.st_mode
        path = f"{rel}/{name}" if rel else name
        if stat.S_ISDIR(mode):
            os.mkdir(name, 0o700, dir_fd=dfd)
            self.tick()
            if st.st_dev != self.dev:
                self.finish_path(dfd, name, st)  # a mount point: copied empty
                return None
            csfd = _open_dir(name, sfd)
            cdfd = -1
            try:
                if os.fstat(csfd).st_ino != st.st_ino:
                    raise OSError(errno.ESTALE, "changed while being copied", path)
                cdfd = _open_dir(name, dfd)
                return (csfd, cdfd, path, iter(sorted(os.listdir(csfd))), st)
            except BaseException:
                os.close(csfd)
                if cdfd >= 0:
                    os.close(cdfd)
                raise
        if stat.S_ISSOCK(mode):
            return None
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in self.links:
            os.link(self.links[key], name, src_dir_fd=self.root, dst_dir_fd=dfd,
                    follow_symlinks=False)
            self.tick()
            return None
        if stat.S_ISREG(mode):
            self.copy_file(sfd, dfd, name, st, path)
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(name, dir_fd=sfd), name, dir_fd=dfd)
            os.chown(name, self.shift(st.st_uid), self.gshift(st.st_gid), dir_fd=dfd,
                     follow_symlinks=False)
            os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dfd,
                     follow_symlinks=False)
        elif stat.S_ISFIFO(mode):
            os.mkfifo(name, 0o600, dir_fd=dfd)
            self.finish_path(dfd, name, st)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            if not self.mknod:
                return None
            try:
                os.mknod(name, stat.S_IFMT(mode) | 0o600, st.st_rdev, dir_fd=dfd)
            except PermissionError:
                self.mknod = False  # not real root (or a user namespace): skip devices
                return None
            self.finish_path(dfd, name, st)
        else:
            return None
        if st.st_nlink > 1:
            self.links[key] = path
        self.tick()
        return None

    def copy_file(self, sfd: int, dfd: int, name: str, st: os.stat_result, path: str) -> None:
        src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                      dir_fd=sfd)
        try:
            now = os.fstat(src)
            if not stat.S_ISREG(now.st_mode) or now.st_ino != st.st_ino:
                raise OSError(errno.ESTALE, "changed while being copied", path)
            dst = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                          | os.O_CLOEXEC, 0o600, dir_fd=dfd)
            try:
                _copy_data(src, dst, now)
                self.finish_fd(src, dst, now)
            finally:
                os.close(dst)
        finally:
            os.close(src)

    def finish_fd(self, src: int, dst: int, st: os.stat_result) -> None:
        """Owner, mode, xattrs, times of a copied file or directory, via fds."""
        os.fchown(dst, self.shift(st.st_uid), self.gshift(st.st_gid))
        os.fchmod(dst, self.mode(st))  # after chown, which clears setuid/setgid
        try:
            names = os.listxattr(src)
        except OSError as e:
            if e.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
            names = []
        for x in names:
            if _keep_xattr(x):
                try:
                    value = os.getxattr(src, x)
                except OSError as e:
                    if e.errno == errno.ENODATA:
                        continue
                    raise
                if self.plain and x == CAPS and not _namespaced_caps(value):
                    continue  # a v2 capability set acts on the host: not for their hands
                os.setxattr(dst, x, _shift_value(x, value, self.shift, self.gshift))
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))

    def finish_path(self, dfd: int, name: str, st: os.stat_result) -> None:
        """Owner, mode, times of an entry we just created in dst (fifo, device, mount point)."""
        os.chown(name, self.shift(st.st_uid), self.gshift(st.st_gid), dir_fd=dfd,
                 follow_symlinks=False)
        os.chmod(name, self.mode(st), dir_fd=dfd)
        os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dfd, follow_symlinks=False)

    def mode(self, st: os.stat_result) -> int:
        m = stat.S_IMODE(st.st_mode)
        return m & ~(stat.S_ISUID | stat.S_ISGID) if self.plain and not stat.S_ISDIR(
            st.st_mode) else m

    def finish(self, sfd: int, dfd: int, st: os.stat_result) -> None:
        """A directory is complete: its attributes go last (its mode may forbid writing)."""
        try:
            self.finish_fd(sfd, dfd, st)
        finally:
            os.close(sfd)
            os.close(dfd)


def _copy_data(src: int, dst: int, st: os.stat_result) -> None:
    size = st.st_size
    if size == 0:
        return
    if st.st_blocks * 512 >= size:  # not sparse: one stream
        _copy_range(src, dst, 0, size)
        return
    off = 0
    while off < size:
        try:
            data = os.lseek(src, off, os.SEEK_DATA)
        except OSError as e:
            if e.errno != errno.ENXIO:  # ENXIO: only a hole is left
                raise
            break
        hole = os.lseek(src, data, os.SEEK_HOLE)
        _copy_range(src, dst, data, hole - data)
        off = hole
    os.ftruncate(dst, size)


def _copy_range(src: int, dst: int, off: int, n: int) -> None:
    end = off + n
    try:
        while off < end:
            k = os.copy_file_range(src, dst, end - off, off, off)
            if k == 0:
                return  # the file shrank under us
            off += k
        return
    except OSError as e:
        if e.errno not in _NO_OFFLOAD:
            raise
    try:  # another filesystem: still in the kernel, through a pipe
        os.lseek(dst, off, os.SEEK_SET)  # sendfile writes at the file position
        while off < end:
            k = os.sendfile(dst, src, off, end - off)
            if k == 0:
                return
            off += k
        return
    except OSError as e:
        if e.errno not in _NO_OFFLOAD:
            raise
    while off < end:
        data = os.pread(src, min(1 << 20, end - off), off)
        if not data:
            return
        while data:
            k = os.pwrite(dst, data, off)
            data = data[k:]
            off += k


# ── shift in place ───────────────────────────────────────────────────────────────────────────
def shift_in_place(path: str, old_base: int, new_base: int, count: int = 65536) -> int:
    """Re-own every entry under ``path`` (including ``path``) whose uid or gid lies in
    [old_base, old_base+count) to new_base + (id - old_base); ids outside that range are
    left alone. Setuid/setgid bits, file capabilities and ACLs survive (chown drops the first
    two: they are restored). Returns the number of entries changed (a hard-linked inode
    counts once).

    A hard link reaches its inode wherever its other names are: run this only on trees no
    other host user could write to (a jail's own rootfs), or one of them could link in a file
    of its own (fs.protected_hardlinks) and see it re-owned."""
    if not (0 <= new_base and new_base + count - 1 <= _ID_MAX and count > 0):
        raise ValueError(f"new range {new_base}+{count} is outside the valid id range")

    def shift(i: int) -> int:
        return i - old_base + new_base if old_base <= i < old_base + count else i

    path = os.path.abspath(path)
    parent, name = os.path.split(path)
    if not name:
        raise ValueError("refusing to re-own /")
    pfd = _open_dir(parent)
    try:
        return _Shifter(shift).run(pfd, name)
    finally:
        os.close(pfd)


class _Shifter:
    def __init__(self, shift) -> None:
        self.shift = shift
        self.changed = 0
        self.seen: set[tuple[int, int]] = set()  # hard-linked inodes done already

    def run(self, pfd: int, name: str) -> int:
        st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        if not stat.S_ISDIR(st.st_mode):
            self.entry(pfd, name, st)
            return self.changed
        self.dev = st.st_dev
        stack = [self.open(pfd, name, st)]
        try:
            while stack:
                dfd, names = stack[-1]
                for name in names:
                    st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                    if stat.S_ISDIR(st.st_mode):
                        if st.st_dev != self.dev:
                            continue  # a mount point: neither it nor what is under it
                        stack.append(self.open(dfd, name, st))
                        break
                    self.entry(dfd, name, st)
                else:
                    os.close(stack.pop()[0])
        finally:
            for dfd, _ in stack:
                os.close(dfd)
        return self.changed

    def open(self, pfd: int, name: str, st: os.stat_result):
        fd = _open_dir(name, pfd)
        try:
            now = os.fstat(fd)
            if now.st_ino != st.st_ino:
                raise OSError(errno.ESTALE, "changed while being re-owned", name)
            self.fix(fd, now)
            return fd, iter(os.listdir(fd))
        except BaseException:
            os.close(fd)
            raise

    def entry(self, dfd: int, name: str, st: os.stat_result) -> None:
        uid, gid = self.shift(st.st_uid), self.shift(st.st_gid)
        if (uid, gid) == (st.st_uid, st.st_gid):
            return
        if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if key in self.seen:
                return  # re-owned under another name already
            self.seen.add(key)
        if stat.S_ISLNK(st.st_mode):
            os.chown(name, uid, gid, dir_fd=dfd, follow_symlinks=False)
            self.changed += 1
            return
        # an O_PATH fd pins this very inode (never a symlink's target) without opening a
        # device or fifo; its /proc/self/fd link then serves the path-only calls
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
        try:
            now = os.fstat(fd)
            if now.st_ino != st.st_ino or stat.S_ISLNK(now.st_mode):
                raise OSError(errno.ESTALE, "changed while being re-owned", name)
            self.fix(f"/proc/self/fd/{fd}", now)
        finally:
            os.close(fd)

    def fix(self, target, st: os.stat_result) -> None:
        """chown ``target`` (an fd or a /proc/self/fd path), then put back what chown drops."""
        uid, gid = self.shift(st.st_uid), self.shift(st.st_gid)
        if (uid, gid) == (st.st_uid, st.st_gid):
            return
        try:
            names = [x for x in os.listxattr(target) if x == CAPS or x in ACLS]
        except OSError as e:
            if e.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
            names = []
        saved = {}
        for x in names:
            try:
                saved[x] = os.getxattr(target, x)
            except OSError as e:
                if e.errno != errno.ENODATA:
                    raise
        os.chown(target, uid, gid)
        if st.st_mode & (stat.S_ISUID | stat.S_ISGID):
            os.chmod(target, stat.S_IMODE(st.st_mode))
        for x, value in saved.items():
            new = _shift_value(x, value, self.shift)
            if x == CAPS or new != value:
                os.setxattr(target, x, new)
        self.changed += 1
