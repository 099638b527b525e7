"""Walking a root filesystem tree without ever following a symlink.

* :class:`Entry` is one filesystem object as every source yields it (a tar member, a layer
  member, a file of a directory being imported) and as :mod:`images.extract` writes it.
* :func:`dir_entries` walks a directory (sorted, depth first, holes of sparse files skipped,
  hardlinks reported once, never crossing into another mounted filesystem).
* :class:`DirCursor` holds the directory fds along one path, at most a few dozen of them, and
  :func:`remove_at` removes a tree: every walk here is iterative, so a tree of any depth (an
  archive may nest thousands of directories: the kernel limits only one path string, to
  PATH_MAX) neither recurses nor runs out of file descriptors.
* :func:`summarize` makes an image's digest: sha256 over a deterministic listing of every entry
  (path, type, mode, owner, size, content hash / link target / device numbers, xattrs;
  modification times are left out, so an export/import round trip keeps the digest).
* :func:`open_in_root` opens a path the way the container would see it (symlinks resolved
  inside the root, ``..`` stopping at the root), for reading an image's own files safely.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

CHUNK = 1 << 20
KINDS = ("file", "dir", "symlink", "hardlink", "chr", "blk", "fifo")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

Regions = Callable[[], Iterable[tuple[int, bytes]]]


@dataclass
class Entry:
    """One object of a root filesystem, independent of where it comes from.

    ``name`` is the path inside the image ("" or "." for the root itself); ``data`` (regular
    files only) yields ``(offset, bytes)`` regions in increasing order: what lies between
    them is a hole. ``linkname`` is a symlink's target or a hardlink's image path.
    """

    name: str
    kind: str
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: float = 0.0
    size: int = 0
    linkname: str = ""
    major: int = 0
    minor: int = 0
    xattrs: dict[str, bytes] = field(default_factory=dict)
    data: Regions | None = None


def _kind(mode: int) -> str | None:
    return {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink",
            stat.S_IFCHR: "chr", stat.S_IFBLK: "blk", stat.S_IFIFO: "fifo"}.get(
        stat.S_IFMT(mode))


def read_xattrs(dirfd: int, name: str) -> dict[str, bytes]:
    """Extended attributes of ``name`` in ``dirfd`` (the object itself, never a link target)."""
    path = f"/proc/self/fd/{dirfd}/{name}"
    try:
        keys = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    out = {}
    for k in sorted(keys):
        try:
            out[k] = os.getxattr(path, k, follow_symlinks=False)
        except OSError:
            continue
    return out


def file_regions(dirfd: int, name: str, size: int) -> Iterator[tuple[int, bytes]]:
    """The data regions of a regular file, skipping holes (SEEK_DATA / SEEK_HOLE)."""
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                 dir_fd=dirfd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return
        pos = 0
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
                end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
            except OSError as e:
                if e.errno == errno.ENXIO:
                    return  # only a hole is left
                if e.errno != errno.EINVAL:
                    raise
                start, end = pos, size  # filesystem without SEEK_DATA
            os.lseek(fd, start, os.SEEK_SET)
            p = start
            while p < end:
                chunk = os.read(fd, min(CHUNK, end - p))
                if not chunk:
                    return  # the file shrank under us
                yield p, chunk
                p += len(chunk)
            pos = end
    finally:
        os.close(fd)


# ── directories of any depth with a bounded number of open files ──────────────────────────
Opener = Callable[[int, tuple[str, ...], int], "int | None"]


def open_dir_at(fd: int, parts: tuple[str, ...], i: int) -> int:
    """The default :class:`DirCursor` opener: component ``parts[i]`` of ``fd``, no symlink."""
    return os.open(parts[i], _DIR_FLAGS, dir_fd=fd)


class DirCursor:
    """The directories along one path below ``root_fd``, opened a component at a time.

    At most ``keep`` fds are held, those of the deepest components, so a tree of any depth
    (the kernel sets none: only one path string is limited to PATH_MAX) is walked with a
    bounded number of open files and no recursion; moving above the fds held walks down
    again from the root. ``goto`` returns the fd of a path, valid until the cursor moves
    above or away from it. ``root_fd`` stays the caller's to close.
    """

    def __init__(self, root_fd: int, keep: int = 64) -> None:
        self.root_fd = root_fd
        self.keep = max(2, keep)
        self.parts: tuple[str, ...] = ()
        self.fds: list[int] = []  # the fds of the deepest len(fds) prefixes of parts

    def goto(self, parts: tuple[str, ...], opener: Opener = open_dir_at) -> int | None:
        """fd of directory ``parts``; None when ``opener(parent fd, parts, i)`` returns None
        for a component (missing); whatever the opener raises propagates."""
        cur = self.parts
        if parts == cur:
            return self.fds[-1] if cur else self.root_fd
        n, m = len(parts), len(cur)
        if n < m and cur[:n] == parts:
            common = n
        elif n > m and parts[:m] == cur:
            common = m
        else:
            common = 0
            while common < min(n, m) and cur[common] == parts[common]:
                common += 1
        self._up(common)
        depth = len(self.parts)
        fd = self.fds[-1] if depth else self.root_fd
        try:
            for i in range(depth, n):
                sub = opener(fd, parts, i)
                if sub is None:
                    return None
                self.fds.append(sub)
                depth = i + 1
                if len(self.fds) > self.keep:
                    os.close(self.fds.pop(0))
                fd = sub
        finally:
            self.parts = parts[:depth]
        return fd

    def _up(self, depth: int) -> None:
        """Keep the first ``depth`` components (none when that level's fd was given up)."""
        drop = len(self.parts) - depth
        if drop >= len(self.fds):
            depth, drop = 0, len(self.fds)
        for _ in range(drop):
            os.close(self.fds.pop())
        self.parts = self.parts[:depth]

    def forget(self, prefix: tuple[str, ...]) -> None:
        """``prefix`` was removed or replaced: close the fds at or below it."""
        if self.parts[:len(prefix)] == prefix:
            self._up(len(prefix) - 1 if prefix else 0)

    def close(self) -> None:
        self._up(0)


def remove_at(dirfd: int, name: str) -> None:
    """Remove ``name`` of ``dirfd`` and, for a directory, everything below it: iterative (a
    tree of any depth, a bounded number of fds), never following a symlink, never entering
    another filesystem (EBUSY). Unprivileged, directories of the caller's that it cannot
    write are made writable first. Missing is fine."""
    try:
        st = os.lstat(name, dir_fd=dirfd)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=dirfd)
        return
    dev, euid = st.st_dev, os.geteuid()

    def opener(fd: int, parts: tuple[str, ...], i: int) -> int:
        sub = os.open(parts[i], _DIR_FLAGS, dir_fd=fd)
        here = os.fstat(sub)
        if here.st_dev != dev:
            os.close(sub)
            raise OSError(errno.EBUSY, "another filesystem is mounted here: not removing it",
                          "/".join(parts[:i + 1]))
        if euid and here.st_uid == euid and here.st_mode & 0o700 != 0o700:
            os.fchmod(sub, stat.S_IMODE(here.st_mode) | 0o700)
        return sub

    cursor = DirCursor(dirfd)
    path: tuple[str, ...] = (name,)
    try:
        try:
            pending = [_listed(cursor.goto(path, opener))]  # subdirectories left, per level
        except FileNotFoundError:
            return
        while path:
            if pending[-1]:
                path += (pending[-1].pop(),)
                pending.append(_listed(cursor.goto(path, opener)))
                continue
            parent = cursor.goto(path[:-1], opener)
            try:
                os.rmdir(path[-1], dir_fd=parent)
            except FileNotFoundError:
                pass
            path = path[:-1]
            pending.pop()
    finally:
        cursor.close()


def _listed(fd: int | None) -> list[str]:
    """Unlink every non-directory of ``fd``; return its subdirectories."""
    dirs: list[str] = []
    for child in os.listdir(fd) if fd is not None else ():
        try:
            st = os.lstat(child, dir_fd=fd)
            if stat.S_ISDIR(st.st_mode):
                dirs.append(child)
            else:
                os.unlink(child, dir_fd=fd)
        except FileNotFoundError:
            continue
    return dirs


# ── walking ──────────────────────────────────────────────────────────────────────────────
def dir_entries(top: str, warn: Callable[[str], None] | None = None) -> Iterator[Entry]:
    """Every object under ``top`` (first the root as name ""), sorted, depth first.

    Symlinks are reported, never followed (``top`` itself may be a link to a directory);
    a second name of an inode is a "hardlink" entry naming the first; mount points below
    ``top`` are skipped with a warning. Iterative, with a bounded number of open files
    (:class:`DirCursor`): a file's data must be read before the next entry is taken.
    """
    warn = warn or (lambda msg: None)
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    cursor = DirCursor(fd)
    try:
        st = os.fstat(fd)
        dev = st.st_dev
        yield Entry(name="", kind="dir", mode=stat.S_IMODE(st.st_mode), uid=st.st_uid,
                    gid=st.st_gid, mtime=st.st_mtime,
                    xattrs=read_xattrs(fd, "."))
        seen: dict[tuple[int, int], str] = {}

        def opener(pfd: int, parts: tuple[str, ...], i: int) -> int:
            sub = os.open(parts[i], _DIR_FLAGS, dir_fd=pfd)
            if os.fstat(sub).st_dev != dev:  # mounted since it was listed
                os.close(sub)
                raise OSError(errno.EXDEV, "another filesystem is mounted there")
            return sub

        # one level per directory being listed: (its parts, "its/path/", names left)
        stack = [((), "", iter(sorted(os.listdir(fd))))]
        while stack:
            parts, prefix, names = stack[-1]
            name = next(names, None)
            if name is None:
                stack.pop()
                continue
            dirfd = cursor.goto(parts, opener)
            assert dirfd is not None
            e = _entry(dirfd, prefix + name, name, dev, seen, warn)
            if e is None:
                continue
            yield e
            if e.kind == "dir":
                try:
                    sub = cursor.goto(parts + (name,), opener)
                    assert sub is not None
                    stack.append((parts + (name,), e.name + "/", iter(sorted(os.listdir(sub)))))
                except OSError as err:
                    warn(f"skipped the contents of {e.name}: {err.strerror}")
    finally:
        cursor.close()
        os.close(fd)


def _entry(dirfd: int, path: str, name: str, dev: int, seen: dict[tuple[int, int], str],
           warn: Callable[[str], None]) -> Entry | None:
    """The entry of ``name`` in ``dirfd`` (None: vanished, a socket, or a mount point)."""
    try:
        st = os.lstat(name, dir_fd=dirfd)
    except FileNotFoundError:
        return None
    kind = _kind(st.st_mode)
    if kind is None:
        warn(f"skipped {path}: a socket or unknown file type")
        return None
    if st.st_dev != dev:
        warn(f"skipped {path}: another filesystem is mounted there")
        return None
    if kind != "dir" and st.st_nlink > 1:
        first = seen.setdefault((st.st_dev, st.st_ino), path)
        if first != path:
            return Entry(name=path, kind="hardlink", linkname=first)
    e = Entry(name=path, kind=kind, mode=stat.S_IMODE(st.st_mode), uid=st.st_uid,
              gid=st.st_gid, mtime=st.st_mtime, xattrs=read_xattrs(dirfd, name))
    if kind == "file":
        e.size = st.st_size
        e.data = (lambda d=dirfd, n=name, s=st.st_size: file_regions(d, n, s))
    elif kind == "symlink":
        e.linkname = os.readlink(name, dir_fd=dirfd)
    elif kind in ("chr", "blk"):
        e.major, e.minor = os.major(st.st_rdev), os.minor(st.st_rdev)
    return e


def content_hash(e: Entry) -> str:
    """sha256 of a regular file's logical content (holes count as zeros)."""
    h = hashlib.sha256()
    pos = 0
    zeros = bytes(CHUNK)
    for offset, chunk in (e.data() if e.data else ()):
        while pos < offset:
            n = min(CHUNK, offset - pos)
            h.update(zeros[:n])
            pos += n
        h.update(chunk)
        pos = offset + len(chunk)
    while pos < e.size:
        n = min(CHUNK, e.size - pos)
        h.update(zeros[:n])
        pos += n
    return h.hexdigest()


def listing_line(e: Entry) -> str:
    """The listing line of one entry (JSON: path, type, mode, uid, gid, size, extra, xattrs)."""
    if e.kind == "file":
        extra = content_hash(e)
    elif e.kind in ("symlink", "hardlink"):
        extra = e.linkname
    elif e.kind in ("chr", "blk"):
        extra = f"{e.major},{e.minor}"
    else:
        extra = ""
    xattrs = [[k, v.hex()] for k, v in sorted(e.xattrs.items())]
    return json.dumps([e.name, e.kind, oct(e.mode), e.uid, e.gid, e.size, extra, xattrs])


def listing(top: str) -> Iterator[str]:
    """The deterministic listing that :func:`summarize` hashes, one line per entry."""
    for e in dir_entries(top):
        yield listing_line(e)


def summarize(top: str) -> dict:
    """``{"digest": "sha256:...", "size": bytes of regular files, "files": entries}``."""
    h = hashlib.sha256()
    size = files = 0
    for e in dir_entries(top):
        h.update(listing_line(e).encode("utf-8", "surrogateescape") + b"\n")
        files += 1
        size += e.size
    return {"digest": f"sha256:{h.hexdigest()}", "size": size, "files": files}


def open_in_root(root: str, path: str, flags: int = os.O_RDONLY, max_links: int = 40) -> int:
    """Open ``path`` as seen from inside ``root``: symlinks resolve within the root.

    Absolute symlinks restart at ``root``, ``..`` never climbs above it; raises OSError
    (ENOENT, ELOOP, ...) like open(2). Returns a file descriptor.
    """
    rootfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    stack = [rootfd]
    todo = [p for p in path.split("/") if p not in ("", ".")]
    todo.reverse()
    links = 0
    try:
        while todo:
            comp = todo.pop()
            if comp == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                continue
            cur = stack[-1]
            last = not todo
            try:
                fd = os.open(comp, (flags if last else _DIR_FLAGS) | os.O_NOFOLLOW
                             | os.O_CLOEXEC, dir_fd=cur)
            except OSError as e:
                if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                st = os.lstat(comp, dir_fd=cur)
                if not stat.S_ISLNK(st.st_mode):
                    raise
                links += 1
                if links > max_links:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path) from None
                target = os.readlink(comp, dir_fd=cur)
                parts = [p for p in target.split("/") if p not in ("", ".")]
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                todo.extend(reversed(parts))
                continue
            if last:
                return fd
            stack.append(fd)
        return os.dup(stack[-1])
    finally:
        for fd in stack:
            os.close(fd)


ELF_MACHINES = {62: "amd64", 183: "arm64", 3: "386", 40: "arm", 243: "riscv64",
                21: "ppc64le", 22: "s390x", 258: "loong64"}


def guess_arch(root: str) -> str | None:
    """The architecture of a rootfs from the ELF header of its shell or env binary."""
    for candidate in ("bin/sh", "usr/bin/env", "bin/busybox", "bin/bash"):
        try:
            fd = open_in_root(root, candidate)
        except OSError:
            continue
        try:
            head = os.pread(fd, 20, 0)
        finally:
            os.close(fd)
        if head[:4] == b"\x7fELF" and len(head) >= 20:
            order = "little" if head[5] == 1 else "big"
            return ELF_MACHINES.get(int.from_bytes(head[18:20], order))
    return None
